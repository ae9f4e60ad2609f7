//! Hostile input (issue 12): sizes that cannot be allocated or indexed,
//! configurations at and past their bounds, files that are not regular or
//! too large, broadcasts, non-finite and out-of-range weights. Each case
//! must give an error value that names what was wrong, never a panic or an
//! abort.
//!
//! Whether an allocator refuses 68.7 GB depends on the machine, so the test
//! binary first caps its own address space at 48 GiB (`RLIMIT_AS`, Linux):
//! every size below that the allocator refuses is then refused on any
//! machine. The tests that count bytes do so per thread, with a counting
//! allocator, so tests running beside them do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use ndarray::{Array1, Array2, Array4, ArrayD, ArrayView4, IxDyn};
use sepconv::io::LoadOptions;
#[cfg(feature = "tf")]
use sepconv::io::tf::GraphDefWeights;
use sepconv::mobilenet::{MobileNet, MobileNetConfig, MobileNetWeights};
use sepconv::{
    BatchNorm, Conv2d, DepthwiseConv2d, Error, Layer, Padding, PointwiseConv2d, Sequential, Shape,
};

// ---------------------------------------------------------------------------
// The address-space cap and the per-thread allocation counter.
// ---------------------------------------------------------------------------

struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts requested bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(layout.size())));
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(new_size)));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes this thread asked the allocator for while running `f`.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let r = f();
    (r, ALLOCATED.with(Cell::get) - before)
}

/// Caps this process's address space at 48 GiB, once.
fn cap_address_space() {
    #[cfg(target_os = "linux")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            #[repr(C)]
            struct Rlimit {
                cur: u64,
                max: u64,
            }
            unsafe extern "C" {
                fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
            }
            const RLIMIT_AS: i32 = 9;
            let cap = Rlimit {
                cur: 48 << 30,
                max: u64::MAX,
            };
            // SAFETY: a plain system call on a valid struct.
            let rc = unsafe { setrlimit(RLIMIT_AS, &cap) };
            assert_eq!(rc, 0, "setrlimit(RLIMIT_AS)");
        });
    }
}

/// Asserts `r` is [`Error::TooLarge`] for `what` of `shape` needing `bytes`.
fn assert_too_large<T: std::fmt::Debug>(
    r: sepconv::Result<T>,
    what: &str,
    shape: &[usize],
    bytes: u128,
) {
    match r {
        Err(Error::TooLarge {
            what: w,
            shape: s,
            bytes: b,
            ..
        }) => {
            assert_eq!(w, what);
            assert_eq!(s, Shape(shape.to_vec()));
            assert_eq!(b, bytes);
        }
        other => panic!("expected TooLarge for {what} {shape:?}, got {other:?}"),
    }
}

fn one() -> Array4<f32> {
    Array4::ones((1, 1, 1, 1))
}

// ---------------------------------------------------------------------------
// Forwards whose output or input copy cannot be had.
// ---------------------------------------------------------------------------

#[test]
fn padding_2_16_on_one_pixel_is_an_error_naming_shape_and_bytes() {
    cap_address_space();
    let side = (1 << 17) + 1;
    let conv = Conv2d::builder(one())
        .padding(Padding::symmetric(1 << 16))
        .build()
        .unwrap();
    assert_eq!(conv.output_shape([1, 1, 1, 1]).unwrap(), [1, side, side, 1]);
    let bytes = 4 * (side as u128) * (side as u128);
    assert_eq!(bytes, 68_720_525_316);
    assert_too_large(
        conv.forward(one().view()),
        "Conv2d output",
        &[1, side, side, 1],
        bytes,
    );
    let msg = conv.forward(one().view()).unwrap_err().to_string();
    assert!(
        msg.contains("[1, 131073, 131073, 1]") && msg.contains("68720525316 bytes"),
        "{msg}"
    );

    let dw = DepthwiseConv2d::builder(one())
        .padding(Padding::symmetric(1 << 16))
        .build()
        .unwrap();
    assert_too_large(
        dw.forward(one().view()),
        "DepthwiseConv2d output",
        &[1, side, side, 1],
        bytes,
    );
}

#[test]
fn outputs_over_isize_max_bytes_are_refused_before_allocating() {
    let side = (1usize << 32) + 1;
    let conv = Conv2d::builder(one())
        .padding(Padding::symmetric(1 << 31))
        .build()
        .unwrap();
    let bytes = 4 * (side as u128) * (side as u128);
    let (r, allocated) = allocated_by(|| conv.forward(one().view()));
    assert!(
        matches!(&r, Err(Error::TooLarge { reason, .. }) if reason.contains("isize::MAX")),
        "{r:?}"
    );
    assert_too_large(r, "Conv2d output", &[1, side, side, 1], bytes);
    assert!(allocated < 1 << 20, "allocated {allocated} bytes");
    let dw = DepthwiseConv2d::builder(one())
        .padding(Padding::symmetric(1 << 31))
        .build()
        .unwrap();
    assert_too_large(
        dw.forward(one().view()),
        "DepthwiseConv2d output",
        &[1, side, side, 1],
        bytes,
    );
    // Padding so large the padded size overflows.
    for p in [usize::MAX, usize::MAX / 2 + 1] {
        let conv = Conv2d::builder(one())
            .padding(Padding::symmetric(p))
            .build()
            .unwrap();
        assert!(matches!(
            conv.forward(one().view()),
            Err(Error::Overflow(_))
        ));
        let dw = DepthwiseConv2d::builder(one())
            .padding(Padding::symmetric(p))
            .build()
            .unwrap();
        assert!(matches!(
            dw.output_shape([1, 1, 1, 1]),
            Err(Error::Overflow(_))
        ));
    }
}

#[test]
fn broadcast_views_of_one_value_are_errors() {
    cap_address_space();
    let v = [1.0f32];
    let base = ArrayView4::from_shape((1, 1, 1, 1), &v).unwrap();
    let big = base.broadcast((1, 1 << 20, 1 << 20, 1)).unwrap();
    let tb = 4u128 << 40; // 4.4 TB
    let c1 = Conv2d::builder(one()).build().unwrap();
    assert_too_large(
        c1.forward(big),
        "Conv2d output",
        &[1, 1 << 20, 1 << 20, 1],
        tb,
    );
    let c3 = Conv2d::builder(Array4::ones((3, 3, 1, 1)))
        .padding(Padding::Same)
        .build()
        .unwrap();
    assert_too_large(
        c3.forward(big),
        "Conv2d output",
        &[1, 1 << 20, 1 << 20, 1],
        tb,
    );
    let pw = PointwiseConv2d::new(Array2::ones((1, 1)), None).unwrap();
    let mid = base.broadcast((1, 1 << 17, 1 << 17, 1)).unwrap();
    assert_too_large(
        pw.forward(mid),
        "PointwiseConv2d output",
        &[1, 1 << 17, 1 << 17, 1],
        4 << 34,
    );
    let bn = BatchNorm::new(
        Array1::ones(1),
        Array1::zeros(1),
        Array1::zeros(1),
        Array1::ones(1),
        1e-3,
    )
    .unwrap();
    assert_too_large(
        bn.forward(mid),
        "BatchNorm output",
        &[1, 1 << 17, 1 << 17, 1],
        4 << 34,
    );
    let net = Sequential::new().with(pw.clone());
    assert_too_large(
        net.forward(mid),
        "Sequential output",
        &[1, 1 << 17, 1 << 17, 1],
        4 << 34,
    );
}

#[test]
fn a_small_output_of_a_huge_broadcast_input_is_an_error_on_the_copy() {
    cap_address_space();
    let v = [1.0f32];
    let base = ArrayView4::from_shape((1, 1, 1, 1), &v).unwrap();
    // Stride 2^10: a 1024 × 1024 output (4 MiB) of a 2^40-pixel input, which
    // the direct, im2col and depthwise kernels read from a contiguous copy.
    let big = base.broadcast((1, 1 << 20, 1 << 20, 1)).unwrap();
    let shape = [1, 1 << 20, 1 << 20, 1];
    for algorithm in sepconv::Algorithm::available() {
        if algorithm == sepconv::Algorithm::Reference {
            continue; // the oracle reads the view in place
        }
        let conv = Conv2d::builder(Array4::ones((3, 3, 1, 1)))
            .stride(1 << 10)
            .algorithm(algorithm)
            .build()
            .unwrap();
        let mut out = Array4::from_elem(conv.output_shape(shape).unwrap(), f32::NAN);
        assert_too_large(
            conv.forward_into(big, out.view_mut()),
            "Conv2d input copy",
            &shape,
            4 << 40,
        );
        assert!(
            out.iter().all(|v| v.is_nan()),
            "{algorithm:?}: out was written"
        );
        let dw = DepthwiseConv2d::builder(Array4::ones((3, 3, 1, 1)))
            .stride(1 << 10)
            .algorithm(algorithm)
            .build()
            .unwrap();
        assert_too_large(
            dw.forward(big),
            "DepthwiseConv2d input copy",
            &shape,
            4 << 40,
        );
    }
}

// ---------------------------------------------------------------------------
// Configurations: what validates builds; the rest is an error.
// ---------------------------------------------------------------------------

#[test]
fn unbuildable_configurations_do_not_validate() {
    let m = MobileNetConfig::new();
    let cases = [
        ("alpha 1e5", m.with_alpha(1e5)),
        ("alpha 9.7e5", m.with_alpha(9.7e5)),
        ("classes 2^40", m.with_classes(1 << 40)),
        ("depth_multiplier 2^40", m.with_depth_multiplier(1 << 40)),
        (
            "depth_multiplier usize::MAX",
            m.with_depth_multiplier(usize::MAX),
        ),
        ("min_depth 2^30", m.with_min_depth(1 << 30)),
        ("min_depth usize::MAX", m.with_min_depth(usize::MAX)),
        ("resolution usize::MAX", m.with_resolution(usize::MAX)),
    ];
    for (what, c) in cases {
        let err = c.validate().unwrap_err();
        assert!(
            matches!(err, Error::InvalidParameter { .. } | Error::Overflow(_)),
            "{what}: {err:?}"
        );
        assert_eq!(c.summary().unwrap_err(), err, "{what}: summary");
        assert_eq!(c.layers().unwrap_err(), err, "{what}: layers");
        assert_eq!(
            MobileNetWeights::<f32>::seeded(&c, 1).unwrap_err(),
            err,
            "{what}: weights"
        );
        assert_eq!(
            MobileNet::<f32>::seeded(&c, 1).unwrap_err(),
            err,
            "{what}: network"
        );
    }
    let msg = m.with_alpha(1e5).validate().unwrap_err().to_string();
    assert!(msg.contains("Conv2d_0") && msg.contains("2^28"), "{msg}");
    let msg = m.with_classes(1 << 20).validate().unwrap_err().to_string();
    assert!(
        msg.contains("Logits") && msg.contains("2^30 parameters"),
        "{msg}"
    );
}

#[test]
fn the_documented_bounds_of_each_knob_hold_exactly() {
    // MobileNetConfig::validate's docs: with the other knobs at their
    // defaults, these are the largest values that validate.
    let m = MobileNetConfig::new();
    let ok = |c: MobileNetConfig| c.validate().is_ok();
    assert!(ok(m.with_alpha(18.3)) && !ok(m.with_alpha(18.4)));
    assert!(ok(m.with_classes(1_041_355)) && !ok(m.with_classes(1_041_356)));
    assert!(ok(m.with_depth_multiplier(334)) && !ok(m.with_depth_multiplier(335)));
    assert!(ok(m.with_min_depth(9_040)) && !ok(m.with_min_depth(9_041)));
    assert!(ok(m.with_resolution(4_096)) && !ok(m.with_resolution(4_097)));
}

#[test]
fn a_validated_configuration_near_the_bounds_builds() {
    // 2 × 10⁵ classes on 256 features: 51 million classifier parameters
    // (205 MB of f32),
    // at 64 px so the test stays quick. It builds, or memory refuses it
    // with an error value.
    let c = MobileNetConfig::new()
        .with_alpha(0.25)
        .with_resolution(64)
        .with_classes(200_000);
    c.validate().unwrap();
    match MobileNet::<f32>::seeded(&c, 7) {
        Ok(net) => {
            let y = net.forward(Array4::zeros((1, 64, 64, 3)).view()).unwrap();
            assert_eq!(y.shape(), &[1, 200_000]);
        }
        Err(e) => assert!(matches!(e, Error::TooLarge { .. }), "{e:?}"),
    }
}

// ---------------------------------------------------------------------------
// Files.
// ---------------------------------------------------------------------------

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sepconv-hostile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `f` on a thread and fails the test if it takes more than 10 s (a
/// loader that blocks on a FIFO would otherwise hang the suite).
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the loader did not return within 10 s")
}

fn assert_io_error<T: std::fmt::Debug>(r: sepconv::Result<T>, needle: &str) {
    match r {
        Err(Error::Io { message, .. }) => assert!(message.contains(needle), "{message}"),
        other => panic!("expected an Io error containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn loaders_read_regular_files_only() {
    let dir = temp_dir("special");
    let zero = std::path::Path::new("/dev/zero");
    #[cfg(feature = "tf")]
    assert_io_error(
        within_10s(move || GraphDefWeights::from_file(zero).map(|_| ())),
        "regular",
    );
    assert_io_error(
        within_10s(move || MobileNetWeights::<f32>::load_safetensors(zero).map(|_| ())),
        "regular",
    );
    #[cfg(feature = "tf")]
    assert_io_error(GraphDefWeights::from_file(&dir).map(|_| ()), "a directory");
    assert_io_error(
        MobileNetWeights::<f32>::load_safetensors(&dir).map(|_| ()),
        "a directory",
    );
    #[cfg(unix)]
    {
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        #[cfg(feature = "tf")]
        {
            let f = fifo.clone();
            assert_io_error(
                within_10s(move || GraphDefWeights::from_file(&f).map(|_| ())),
                "FIFO",
            );
        }
        let f = fifo.clone();
        assert_io_error(
            within_10s(move || MobileNetWeights::<f32>::load_safetensors(&f).map(|_| ())),
            "FIFO",
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_size_limit_is_checked_before_reading() {
    let dir = temp_dir("limit");
    let mut w = MobileNetWeights::<f32>::new();
    w.insert("t", ArrayD::from_elem(IxDyn(&[1000]), 0.5f32));
    let path = dir.join("w.safetensors");
    w.save_safetensors(&path).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let opts = LoadOptions::new().with_max_bytes(len - 1);
    let (r, allocated) =
        allocated_by(|| MobileNetWeights::<f32>::load_safetensors_with(&path, &opts));
    match r {
        Err(Error::TooLarge { bytes, reason, .. }) => {
            assert_eq!(bytes, len as u128);
            assert!(reason.contains("max_bytes"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(allocated < len as usize, "read {allocated} bytes");
    let ok =
        MobileNetWeights::<f32>::load_safetensors_with(&path, &opts.with_max_bytes(len)).unwrap();
    assert_eq!(ok, w);
    #[cfg(feature = "tf")]
    assert!(matches!(
        GraphDefWeights::from_file_with(&path, &LoadOptions::new().with_max_bytes(3)),
        Err(Error::TooLarge { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

// A minimal protobuf writer for GraphDefs (field numbers from TensorFlow's
// graph.proto, node_def.proto, attr_value.proto, tensor.proto).
#[cfg(feature = "tf")]
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
#[cfg(feature = "tf")]
fn field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(tag << 3 | 2), out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}
#[cfg(feature = "tf")]
/// A float `Const` node `name` of `dims` with `float_val` `vals`.
fn const_node(name: &str, dims: &[i64], vals: &[f32]) -> Vec<u8> {
    let mut shape = Vec::new();
    for &d in dims {
        let mut dim = Vec::new();
        varint(1 << 3, &mut dim);
        varint(d as u64, &mut dim);
        field(2, &dim, &mut shape);
    }
    let mut tensor = vec![1 << 3, 1]; // dtype DT_FLOAT
    field(2, &shape, &mut tensor);
    let packed: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    if !vals.is_empty() {
        field(5, &packed, &mut tensor);
    }
    let mut attr_value = Vec::new();
    field(8, &tensor, &mut attr_value);
    let mut entry = Vec::new();
    field(1, b"value", &mut entry);
    field(2, &attr_value, &mut entry);
    let mut node = Vec::new();
    field(1, name.as_bytes(), &mut node);
    field(2, b"Const", &mut node);
    field(5, &entry, &mut node);
    let mut graph = Vec::new();
    field(1, &node, &mut graph);
    graph
}

#[cfg(feature = "tf")]
#[test]
fn graphdef_broadcasts_are_budgeted_before_anything_is_allocated() {
    // 56 bytes that ask for 2^28 floats (1 GiB).
    let tiny = const_node("c", &[1 << 14, 1 << 14], &[1.0]);
    assert!(tiny.len() <= 56, "{} bytes", tiny.len());
    let (r, allocated) = allocated_by(|| GraphDefWeights::from_bytes(&tiny));
    assert!(
        matches!(&r, Err(Error::Format { detail, .. }) if detail.contains("\"c\"") && detail.contains("max_broadcast_elements")),
        "{r:?}"
    );
    assert!(allocated < 1 << 20, "allocated {allocated} bytes");
    // Five broadcasts of 2^22: the fifth passes the 2^24 budget, and the
    // four before it were not allocated either.
    let graph: Vec<u8> = (0..5)
        .flat_map(|i| const_node(&format!("b{i}"), &[1 << 11, 1 << 11], &[2.0]))
        .collect();
    let (r, allocated) = allocated_by(|| GraphDefWeights::from_bytes(&graph));
    assert!(
        matches!(&r, Err(Error::Format { detail, .. }) if detail.contains("\"b4\"")),
        "{r:?}"
    );
    assert!(allocated < 1 << 20, "allocated {allocated} bytes");
    // Four fit, and are what they say; a larger budget takes the fifth.
    let four = &graph[..graph.len() / 5 * 4];
    let g = GraphDefWeights::from_bytes(four).unwrap();
    assert!(g.get("b3").unwrap().data.iter().all(|&v| v == 2.0));
    let opts = LoadOptions::new().with_max_broadcast_elements(5 << 22);
    assert_eq!(
        GraphDefWeights::from_bytes_with(&graph, &opts)
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn non_finite_weights_are_refused_unless_allowed() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let allow = LoadOptions::new().with_allow_non_finite(true);
        #[cfg(feature = "tf")]
        {
            let g = const_node("w", &[3], &[0.5, bad, 1.0]);
            let err = GraphDefWeights::from_bytes(&g).unwrap_err();
            assert!(
                matches!(&err, Error::Format { detail, .. } if detail.contains("\"w\"") && detail.contains("element 1") && detail.contains("allow_non_finite")),
                "{err}"
            );
            let kept = GraphDefWeights::from_bytes_with(&g, &allow).unwrap();
            assert_eq!(kept.get("w").unwrap().data[1].to_bits(), bad.to_bits());
        }

        let mut w = MobileNetWeights::<f32>::new();
        w.insert(
            "t",
            ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.0, bad]).unwrap(),
        );
        let bytes = w.to_safetensors().unwrap();
        let err = MobileNetWeights::<f32>::from_safetensors(&bytes).unwrap_err();
        assert!(
            matches!(&err, Error::Format { detail, .. } if detail.contains("element 1")),
            "{err}"
        );
        let kept = MobileNetWeights::<f32>::from_safetensors_with(&bytes, &allow).unwrap();
        assert_eq!(kept.get("t").unwrap()[[1]].to_bits(), bad.to_bits());
    }
}

#[test]
fn f64_weights_beyond_f32_range_are_an_error_not_inf() {
    let mut w = MobileNetWeights::<f64>::new();
    w.insert(
        "t",
        ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, -1e39, 2.0]).unwrap(),
    );
    let bytes = w.to_safetensors().unwrap();
    let allow = LoadOptions::new().with_allow_non_finite(true);
    for opts in [LoadOptions::new(), allow] {
        let err = MobileNetWeights::<f32>::from_safetensors_with(&bytes, &opts).unwrap_err();
        assert!(
            matches!(&err, Error::Format { detail, .. } if detail.contains("element 1") && detail.contains("overflows f32")),
            "{err}"
        );
    }
    // Read as f64 the value is kept.
    let wide = MobileNetWeights::<f64>::from_safetensors(&bytes).unwrap();
    assert_eq!(wide.get("t").unwrap()[[1]], -1e39);
}
