//! A forward pass after the first allocates nothing but its output, for
//! MobileNet and for a network composed from the public API.
//!
//! A counting global allocator sees every allocation of the test's threads
//! and of the workers of the pool the forward runs in (they mark themselves)
//! while a later forward runs; the harness's threads, which may be reporting
//! another test meanwhile, and the test's other pool are not counted. With one rayon thread that is exactly the
//! output.
//! With two, rayon's scheduler itself allocates on each forward: usually two
//! blocks, 1,520 B (the size of a crossbeam-deque injector block) and
//! 2,304 B, measured on rayon 1.12, and now and then a third of 552 B (a
//! deque growing, under load: seen once in CI); the test bounds those at
//! [`RAYON_ALLOCATIONS`] blocks and [`RAYON_BYTES`], the same for every model
//! and batch. A buffer of sepconv's that depends on the thread count (an
//! im2col scratch regrown for two threads) is tens of KiB and would still
//! show; anything smaller than that the one-thread runs count exactly.

use std::alloc::{GlobalAlloc, Layout, System};

/// The allocations rayon's scheduler may make in a forward on two threads.
const RAYON_ALLOCATIONS: usize = 4;
/// Their bytes, at most.
const RAYON_BYTES: usize = 8192;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use ndarray::Array4;
use sepconv::init::{Init, SplitMix64};
use sepconv::mobilenet::{MobileNet, MobileNetConfig, Variant};
use sepconv::{
    Activation, Conv2d, Dense, DepthwiseConv2d, GlobalAvgPool, InvertedResidual, Layer, MaxPool2d,
    Padding, PointwiseConv2d, Residual, SeparableConv2d, Sequential,
};

struct Counting;

/// The pool whose workers' allocations count now (its mark), 0 for none.
static COUNTING: AtomicU8 = AtomicU8::new(0);

/// The mark of a test thread.
const TEST_THREAD: u8 = 1;

thread_local! {
    /// Whose this thread is: 0 the harness's, [`TEST_THREAD`], or `10 + n`
    /// a worker of the test's pool of n threads.
    static OURS: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Whether an allocation now counts: a test thread's, or a worker's of the
/// pool being counted (not of the test's other pool, whose workers may still
/// be settling after its last forward).
fn counts() -> bool {
    let active = COUNTING.load(Ordering::SeqCst);
    active != 0 && OURS.with(|o| o.get() == TEST_THREAD || o.get() == active)
}

/// Pools of 1 and 2 threads whose workers' allocations count, built once
/// per test and started before it counts (a worker starting, or exiting from
/// a dropped pool, allocates); marks the calling thread as a test thread.
fn pools() -> [rayon::ThreadPool; 2] {
    OURS.with(|o| o.set(TEST_THREAD));
    [1u8, 2].map(|threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.into())
            .start_handler(move |_| OURS.with(|o| o.set(10 + threads)))
            .build()
            .unwrap();
        // Every worker started (and done allocating for it) before counting.
        pool.broadcast(|_| ());
        pool
    })
}
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counts() {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
            BYTES.fetch_add(layout.size(), Ordering::SeqCst);
        }
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counts() {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
            BYTES.fetch_add(new_size, Ordering::SeqCst);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests of this file take turns: the counter sees every thread's
/// allocations, so two tests counting at once would count each other's.
static TURNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether the kernels a forward runs here allocate nothing of their own: the
/// SIMD paths. The portable path's GEMM, matrixmultiply, allocates its
/// packing buffers in every call (19 blocks, 1 MB, for MobileNet 0.25-96, as
/// at the main of 2026-11-28); on a CPU without AVX2+FMA, or with
/// `SEPCONV_ALGORITHM=portable`, the tests say so and check nothing.
fn simd_path() -> bool {
    let algorithm = sepconv::Algorithm::Auto.resolve().unwrap();
    if algorithm == sepconv::Algorithm::Portable {
        eprintln!(
            "not tested here: Auto runs the portable path, whose matrixmultiply GEMM allocates \
             its packing buffers per call"
        );
        return false;
    }
    true
}

/// Counts the allocations of the test threads and of the calling worker's
/// pool while `f` runs; called inside that pool.
fn counted<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let pool = OURS.with(|o| o.get());
    assert!(pool > 10, "counted runs inside a test pool");
    ALLOCATIONS.store(0, Ordering::SeqCst);
    BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(pool, Ordering::SeqCst);
    let t = f();
    COUNTING.store(0, Ordering::SeqCst);
    (
        t,
        ALLOCATIONS.load(Ordering::SeqCst),
        BYTES.load(Ordering::SeqCst),
    )
}

/// A network a user composes: an im2col stem, a separable block, a residual
/// block with a strided projection, max pooling, global pooling and a dense
/// classifier.
fn composed() -> Sequential<f32> {
    let rng = &mut SplitMix64::new(5);
    let sep = |c, n, s: usize, rng: &mut SplitMix64| {
        SeparableConv2d::builder(
            Init::HeNormal.depthwise([3, 3, c, 1], rng).unwrap(),
            Init::HeNormal.dense([c, n], rng).unwrap(),
        )
        .stride(s)
        .padding(Padding::Same)
        .depthwise_activation(Activation::Relu6)
        .activation(Activation::Relu6)
        .build()
        .unwrap()
    };
    let projection = Conv2d::builder(Init::HeNormal.conv2d([1, 1, 16, 24], rng).unwrap())
        .stride(2)
        .build()
        .unwrap();
    Sequential::new()
        .with(
            Conv2d::builder(Init::HeNormal.conv2d([3, 3, 3, 16], rng).unwrap())
                .stride(2)
                .padding(Padding::Same)
                .activation(Activation::Relu)
                .build()
                .unwrap(),
        )
        .with(sep(16, 16, 1, rng))
        .with(
            Residual::new(Sequential::new().with(sep(16, 24, 2, rng)).with(
                PointwiseConv2d::new(Init::HeNormal.dense([24, 24], rng).unwrap(), None).unwrap(),
            ))
            .with_projection(projection)
            .with_activation(Activation::Relu),
        )
        .with(MaxPool2d::new(2))
        .with(GlobalAvgPool)
        .with(Dense::new(Init::GlorotNormal.dense([24, 10], rng).unwrap(), None).unwrap())
}

#[test]
fn composed_network_allocates_only_its_output() {
    if !simd_path() {
        return;
    }
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let pools = pools();
    let net = composed();
    for batch in [1, 4] {
        let x = Array4::<f32>::from_elem((batch, 40, 40, 3), 0.25);
        let mut outputs = Vec::new();
        for (threads, pool) in pools.iter().enumerate().map(|(i, p)| (i + 1, p)) {
            let (second, allocations, bytes) = pool.install(|| {
                let first = net.forward(x.view()).unwrap();
                let (second, allocations, bytes) = counted(|| net.forward(x.view()).unwrap());
                assert_eq!(second, first);
                (second, allocations, bytes)
            });
            let what = format!("composed net, batch {batch}, {threads} thread(s)");
            assert_eq!(second.shape(), &[batch, 1, 1, 10], "{what}");
            if threads == 1 {
                assert_eq!(
                    (allocations, bytes),
                    (1, batch * 10 * 4),
                    "{what}: expected only the [{batch}, 1, 1, 10] f32 output"
                );
            } else {
                assert!(
                    allocations <= RAYON_ALLOCATIONS && bytes <= batch * 10 * 4 + RAYON_BYTES,
                    "{what}: {allocations} allocations, {bytes} B"
                );
            }
            // The caller's scratch and output: nothing is allocated on one
            // thread (rayon's own blocks only, on two).
            let len = pool
                .install(|| net.scratch_len([batch, 40, 40, 3]))
                .unwrap();
            let mut scratch = vec![0.0; len];
            let mut out = Array4::zeros((batch, 1, 1, 10));
            let ((), allocations, bytes) = pool.install(|| {
                counted(|| {
                    net.forward_with_scratch(x.view(), out.view_mut(), &mut scratch)
                        .unwrap()
                })
            });
            assert_eq!(out, second, "{what}: forward_with_scratch");
            match threads {
                1 => assert_eq!(allocations, 0, "{what}: forward_with_scratch allocated"),
                _ => assert!(
                    allocations <= RAYON_ALLOCATIONS && bytes <= RAYON_BYTES,
                    "{what}: forward_with_scratch: {allocations} allocations, {bytes} B"
                ),
            }
            outputs.push(second);
        }
        let bits = |a: &Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&outputs[0]),
            bits(&outputs[1]),
            "batch {batch}: 1 and 2 threads differ"
        );
    }
}

/// A layer with scratch of its own, called on its own (not inside a
/// container, whose scratch it would use): `forward_into` allocates that
/// scratch on the first call, in one block of exactly `scratch_len`
/// elements, and keeps it, so a later call, or one on a smaller input,
/// allocates nothing; a clone starts without it; an input that needs more
/// grows it once. The outputs are those of `forward_with_scratch`.
#[test]
fn layers_on_their_own_keep_their_scratch() {
    if !simd_path() {
        return;
    }
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let pools = pools();
    let rng = &mut SplitMix64::new(9);
    // 16 input channels: im2col (the direct kernel takes at most 4).
    let conv = Conv2d::builder(Init::HeNormal.conv2d([3, 3, 16, 24], rng).unwrap())
        .padding(Padding::Same)
        .activation(Activation::Relu6)
        .build()
        .unwrap();
    let sep = SeparableConv2d::builder(
        Init::HeNormal.depthwise([3, 3, 16, 1], rng).unwrap(),
        Init::HeNormal.dense([16, 24], rng).unwrap(),
    )
    .padding(Padding::Same)
    .depthwise_activation(Activation::Relu6)
    .build()
    .unwrap();
    let residual = Residual::new(
        Sequential::new()
            .with(PointwiseConv2d::new(Init::HeNormal.dense([16, 32], rng).unwrap(), None).unwrap())
            .with(
                PointwiseConv2d::new(Init::HeNormal.dense([32, 16], rng).unwrap(), None).unwrap(),
            ),
    );
    let inverted =
        InvertedResidual::init(16, 16, 6, 1, Activation::Relu6, Init::HeNormal, rng).unwrap();
    let layers: [(&str, &dyn Layer<f32>); 4] = [
        ("Conv2d", &conv),
        ("SeparableConv2d", &sep),
        ("Residual", &residual),
        ("InvertedResidual", &inverted),
    ];
    let (small, large) = ([1, 12, 12, 16], [2, 20, 20, 16]);
    let input = |shape: [usize; 4]| {
        Array4::<f32>::from_shape_fn(shape, |(b, y, x, c)| {
            ((b * 7 + y * 5 + x * 3 + c) % 11) as f32 / 11.0 - 0.5
        })
    };
    for (name, layer) in layers {
        for (threads, pool) in pools.iter().enumerate().map(|(i, p)| (i + 1, p)) {
            pool.install(|| {
                let what = format!("{name} on its own, {threads} thread(s)");
                let fresh = layer.clone_layer();
                let expected = |shape: [usize; 4]| {
                    let mut scratch = vec![0.0; layer.scratch_len(shape).unwrap()];
                    let mut out = Array4::zeros(layer.output_shape(shape).unwrap());
                    layer
                        .forward_with_scratch(input(shape).view(), out.view_mut(), &mut scratch)
                        .unwrap();
                    out
                };
                let run = |layer: &dyn Layer<f32>, shape: [usize; 4]| {
                    let (x, mut out) = (
                        input(shape),
                        Array4::zeros(layer.output_shape(shape).unwrap()),
                    );
                    let ((), allocations, bytes) =
                        counted(|| layer.forward_into(x.view(), out.view_mut()).unwrap());
                    (out, allocations, bytes)
                };
                let limit = |allocations: usize, bytes: usize, own: (usize, usize), when: &str| {
                    match threads {
                        1 => assert_eq!((allocations, bytes), own, "{what}: {when}"),
                        _ => assert!(
                            allocations <= own.0 + RAYON_ALLOCATIONS
                                && bytes <= own.1 + RAYON_BYTES,
                            "{what}: {when}: {allocations} allocations, {bytes} B"
                        ),
                    }
                };
                let scratch = |shape| (1, layer.scratch_len(shape).unwrap() * 4);
                assert!(scratch(small).1 > 0, "{what}: no scratch to keep");
                let (out, allocations, bytes) = run(&*fresh, small);
                assert_eq!(out, expected(small), "{what}: first call");
                limit(allocations, bytes, scratch(small), "first call");
                let (out, allocations, bytes) = run(&*fresh, small);
                assert_eq!(out, expected(small), "{what}: second call");
                limit(allocations, bytes, (0, 0), "second call allocated");
                let (out, allocations, bytes) = run(&*fresh, large);
                assert_eq!(out, expected(large), "{what}: larger input");
                // Growing only when the larger input needs more (im2col's
                // tiles may not).
                let grown = match scratch(large).1 > scratch(small).1 {
                    true => scratch(large),
                    false => (0, 0),
                };
                limit(allocations, bytes, grown, "larger input");
                let (out, allocations, bytes) = run(&*fresh, small);
                assert_eq!(out, expected(small), "{what}: smaller input again");
                limit(allocations, bytes, (0, 0), "smaller input allocated");
                let clone = fresh.clone_layer();
                let (out, allocations, bytes) = run(&*clone, small);
                assert_eq!(out, expected(small), "{what}: clone");
                limit(allocations, bytes, scratch(small), "a clone's first call");
            });
        }
    }
}

#[test]
fn second_forward_allocates_only_its_output() {
    if !simd_path() {
        return;
    }
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let pools = pools();
    // Standard (depthwise + pointwise) and FullConv (im2col everywhere).
    for (variant, batch) in [
        (Variant::Standard, 1),
        (Variant::Standard, 3),
        (Variant::FullConv, 2),
    ] {
        let config = MobileNetConfig::new()
            .with_alpha(0.25)
            .with_resolution(96)
            .with_classes(10)
            .with_variant(variant);
        let net = MobileNet::<f32>::seeded(&config, 1).unwrap();
        let x = Array4::<f32>::from_elem(net.input_shape(batch), 0.5);
        for (threads, pool) in pools.iter().enumerate().map(|(i, p)| (i + 1, p)) {
            let (allocations, bytes) = pool.install(|| {
                let first = net.forward(x.view()).unwrap();
                assert_eq!(net.forward(x.view()).unwrap(), first);
                let (second, allocations, bytes) = counted(|| net.forward(x.view()));
                assert_eq!(second.unwrap(), first);
                (allocations, bytes)
            });
            let what = format!("{variant:?}, batch {batch}, {threads} thread(s)");
            if threads == 1 {
                assert_eq!(
                    (allocations, bytes),
                    (1, batch * 10 * 4),
                    "{what}: expected only the [{batch}, 10] f32 logits"
                );
            } else {
                assert!(
                    allocations <= RAYON_ALLOCATIONS && bytes <= batch * 10 * 4 + RAYON_BYTES,
                    "{what}: {allocations} allocations, {bytes} B"
                );
            }
        }
    }
}

/// A network of [`banded`], with its input shape and the elements of the
/// maps a forward that is not banded holds whole.
struct Banded {
    name: &'static str,
    net: Sequential<f32>,
    input: [usize; 4],
    whole: usize,
}

/// Networks whose maps pass 1 MiB an image, so that they run band by band
/// (see `net::band`): a MobileNet-like stem chain (3×3 conv, depthwise, 1×1,
/// strided depthwise: 96 × 96 maps of 32 and 64 channels) and MobileNetV2's
/// expanding blocks (the 112 × 112 × 96 expansion of its second block, and a
/// 56 × 56 × 144 one with its residual sum). Each scratch is smaller than
/// the maps a forward that is not banded holds whole (the block's expanded
/// and depthwise maps; the stem's two ping-pong buffers of its largest map,
/// as a chain's inner maps live in its bands): so the banded path is the
/// one counted.
fn banded() -> Vec<Banded> {
    let rng = &mut SplitMix64::new(9);
    let same = |weight, stride| {
        DepthwiseConv2d::builder(weight)
            .stride(stride)
            .padding(Padding::Same)
            .activation(Activation::Relu6)
            .build()
            .unwrap()
    };
    let pw = |c, n, rng: &mut SplitMix64| {
        PointwiseConv2d::new(Init::HeNormal.dense([c, n], rng).unwrap(), None)
            .unwrap()
            .with_activation(Activation::Relu6)
    };
    let head = |c, rng: &mut SplitMix64| {
        Sequential::new()
            .with(GlobalAvgPool)
            .with(Dense::new(Init::GlorotNormal.dense([c, 10], rng).unwrap(), None).unwrap())
    };
    let stem = Sequential::new()
        .with(
            Conv2d::builder(Init::HeNormal.conv2d([3, 3, 3, 32], rng).unwrap())
                .stride(2)
                .padding(Padding::Same)
                .activation(Activation::Relu6)
                .build()
                .unwrap(),
        )
        .with(same(
            Init::HeNormal.depthwise([3, 3, 32, 1], rng).unwrap(),
            1,
        ))
        .with(pw(32, 64, rng))
        .with(same(
            Init::HeNormal.depthwise([3, 3, 64, 1], rng).unwrap(),
            2,
        ))
        .with(head(64, rng));
    let block = |c_in, c_out, stride, rng: &mut SplitMix64| {
        InvertedResidual::init(
            c_in,
            c_out,
            6,
            stride,
            Activation::Relu6,
            Init::HeNormal,
            rng,
        )
        .unwrap()
    };
    let v2 = Sequential::new()
        .with(block(16, 24, 2, rng))
        .with(head(24, rng));
    let residual = Sequential::new()
        .with(block(24, 24, 1, rng))
        .with(head(24, rng));
    let case = |name, net, input, whole| Banded {
        name,
        net,
        input,
        whole,
    };
    vec![
        case("stem chain", stem, [1, 192, 192, 3], 2 * 96 * 96 * 64),
        case(
            "expanding block",
            v2,
            [1, 112, 112, 16],
            112 * 112 * 96 + 56 * 56 * 96,
        ),
        case(
            "expanding residual block",
            residual,
            [1, 56, 56, 24],
            2 * 56 * 56 * 144,
        ),
    ]
}

#[test]
fn banded_chains_allocate_only_their_output() {
    if !simd_path() {
        return;
    }
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let pools = pools();
    for Banded {
        name,
        net,
        input: shape,
        whole,
    } in banded()
    {
        let x = Array4::<f32>::from_shape_fn(shape, |(_, h, w, c)| {
            ((h * 7 + w * 3 + c) % 13) as f32 / 13.0 - 0.4
        });
        let len = net.scratch_len(shape).unwrap();
        assert!(
            len < whole,
            "{name}: scratch of {len} elements, not smaller than the maps a forward that is \
             not banded holds ({whole})"
        );
        let mut outputs = Vec::new();
        for (threads, pool) in pools.iter().enumerate().map(|(i, p)| (i + 1, p)) {
            let what = format!("{name}, {threads} thread(s)");
            let (second, allocations, bytes) = pool.install(|| {
                let first = net.forward(x.view()).unwrap();
                let (second, allocations, bytes) = counted(|| net.forward(x.view()).unwrap());
                assert_eq!(second, first, "{what}");
                (second, allocations, bytes)
            });
            if threads == 1 {
                assert_eq!(
                    (allocations, bytes),
                    (1, 10 * 4),
                    "{what}: expected only the [1, 1, 1, 10] f32 output"
                );
            } else {
                assert!(
                    allocations <= RAYON_ALLOCATIONS && bytes <= 10 * 4 + RAYON_BYTES,
                    "{what}: {allocations} allocations, {bytes} B"
                );
            }
            let mut scratch = vec![0.0; len];
            let mut out = Array4::zeros((1, 1, 1, 10));
            let ((), allocations, _) = pool.install(|| {
                counted(|| {
                    net.forward_with_scratch(x.view(), out.view_mut(), &mut scratch)
                        .unwrap()
                })
            });
            assert_eq!(out, second, "{what}: forward_with_scratch");
            if threads == 1 {
                assert_eq!(allocations, 0, "{what}: forward_with_scratch allocated");
            }
            outputs.push(second);
        }
        assert_eq!(outputs[0], outputs[1], "{name}: 1 and 2 threads differ");
    }
}
