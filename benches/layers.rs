//! Layer benchmarks on the real shapes of MobileNet v1 1.0-224: what a
//! depthwise separable block costs next to the standard 3×3 conv it replaces.
//!
//! # What is measured
//!
//! One criterion group per distinct depthwise separable block shape of the
//! paper's Table 1 (f32, batch 1, 3×3 kernels, TensorFlow SAME padding), each
//! with five functions on the same deterministic input:
//!
//! | function    | what runs                                                                 |
//! | ----------- | ------------------------------------------------------------------------- |
//! | `standard`  | [`Conv2d`] 3×3 `C_in → C_out` at the block's stride, no bias/activation   |
//! | `separable` | [`DepthwiseConv2d`] 3×3 (stride, SAME) then [`PointwiseConv2d`], both bare |
//! | `block`     | [`SeparableConv2d`] with BN + ReLU6 after each conv (BN folded at build)  |
//! | `depthwise` | the depthwise 3×3 conv alone                                              |
//! | `pointwise` | the pointwise 1×1 conv alone (on the depthwise output's shape)            |
//!
//! Every function reports `Throughput::Elements(mult_adds)` taken from the
//! layer's own `cost()`, so criterion prints mult-adds per second (the paper's
//! unit: 1 mult-add = 2 FLOPs; BN and activations count zero). Outputs (and the
//! depthwise → pointwise intermediate of `separable`) are preallocated and
//! written with `forward_into`, so the caller side allocates nothing inside
//! the timed loop. Two allocations remain *inside* the library and are
//! therefore measured: `Conv2d`'s im2col buffers, and `block`'s intermediate
//! (`SeparableConv2d::forward_into` allocates the depthwise output itself;
//! the API takes no scratch buffer). The gap between `block` and `separable`
//! is that allocation plus the fused bias + ReLU6 epilogues.
//!
//! Layers run with `Algorithm::Auto` (the fastest path for this CPU) and the
//! default `rayon` feature, i.e. as the MobileNet model would run them.
//!
//! # Names (stable; scripts may rely on them)
//!
//! Group `sep/{H}x{W}x{C_in}->{C_out}` for stride 1 and
//! `sep/{H}x{W}x{C_in}->{C_out}/s2` for stride 2, where H×W×C_in is the block
//! input; benchmark ids are `{group}/{function}`, e.g.
//! `sep/14x14x512->512/standard`, `sep/112x112x64->128/s2/block`:
//!
//! ```text
//! sep/112x112x32->64        sep/112x112x64->128/s2
//! sep/56x56x128->128        sep/56x56x128->256/s2
//! sep/28x28x256->256        sep/28x28x256->512/s2
//! sep/14x14x512->512        sep/14x14x512->1024/s2
//! sep/7x7x1024->1024
//! ```
//!
//! # Running
//!
//! ```text
//! cargo bench --bench layers                                  # everything
//! cargo bench --bench layers -- 'sep/14x14x512->512'          # one group
//! cargo bench --bench layers -- 'sep/112x112x64->128/s2/block' # one function
//! cargo bench --bench layers -- '/standard$'                  # one function, all shapes
//! ```
//!
//! The filter is a regular expression matched against the benchmark id (no
//! group name is a prefix of another's, so a group name alone selects exactly
//! that group; append `--list` to see what a filter selects). Results land in `target/criterion/`; the medians are
//! `median.point_estimate` (ns) in `…/new/estimates.json`.
//!
//! # Budget
//!
//! Each group runs 10 samples (flat sampling) with 1 s warm-up and 2 s
//! measurement per function: 9 groups × 5 functions ≈ 45 × ~3.5 s. Measured
//! on the 2-core development machine, already compiled: 2 min 51 s and
//! 2 min 41 s for two full runs (`time cargo bench --bench layers`); the
//! first build of the bench profile adds about 3.5 min. The standard conv
//! dominates: up to 0.46 G mult-adds per iteration (every stride-1 shape from
//! 56×56 down; 0.23 G for the 112×112 and stride-2 shapes), 5–40 ms each.
//!
//! On a shared 2-core machine single medians move by up to 2× between runs;
//! read ratios within one run, and re-run a group on a quiet machine (with
//! a longer `--measurement-time`) before quoting a number.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ndarray::{Array1, Array2, Array4};
use sepconv::init::SplitMix64;
use sepconv::{
    Activation, BatchNorm, Conv2d, DepthwiseConv2d, Padding, PointwiseConv2d, SeparableConv2d,
};

/// One depthwise separable block of MobileNet v1 1.0-224.
#[derive(Clone, Copy)]
struct Shape {
    /// Input height = width.
    size: usize,
    /// Input channels.
    cin: usize,
    /// Output channels.
    cout: usize,
    /// Depthwise (and standard conv) stride.
    stride: usize,
}

/// The distinct block shapes of Table 1, in network order (blocks 7–11 share
/// one shape and appear once).
const SHAPES: [Shape; 9] = [
    Shape::new(112, 32, 64, 1),
    Shape::new(112, 64, 128, 2),
    Shape::new(56, 128, 128, 1),
    Shape::new(56, 128, 256, 2),
    Shape::new(28, 256, 256, 1),
    Shape::new(28, 256, 512, 2),
    Shape::new(14, 512, 512, 1),
    Shape::new(14, 512, 1024, 2),
    Shape::new(7, 1024, 1024, 1),
];

impl Shape {
    const fn new(size: usize, cin: usize, cout: usize, stride: usize) -> Self {
        Shape {
            size,
            cin,
            cout,
            stride,
        }
    }

    /// The criterion group name; see the module docs. Keep stable.
    fn group_name(&self) -> String {
        let Shape {
            size,
            cin,
            cout,
            stride,
        } = *self;
        match stride {
            1 => format!("sep/{size}x{size}x{cin}->{cout}"),
            s => format!("sep/{size}x{size}x{cin}->{cout}/s{s}"),
        }
    }

    fn input_shape(&self) -> [usize; 4] {
        [1, self.size, self.size, self.cin]
    }
}

/// A fixed-seed stream of uniform f32 from the crate's [`SplitMix64`], so
/// every run sees the same input and weights without a `rand` dependency.
struct Rng(SplitMix64);

impl Rng {
    /// Uniform in [lo, hi), from the top 24 bits (exact in f32).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.0.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    /// Uniform in [−a, a): weights scaled by 1/√fan_in keep activations O(1),
    /// so ReLU6 neither saturates everywhere nor produces subnormals.
    fn symmetric(&mut self, a: f32) -> f32 {
        self.uniform(-a, a)
    }

    fn array4(&mut self, shape: [usize; 4], a: f32) -> Array4<f32> {
        Array4::from_shape_simple_fn(shape, || self.symmetric(a))
    }

    fn array2(&mut self, shape: [usize; 2], a: f32) -> Array2<f32> {
        Array2::from_shape_simple_fn(shape, || self.symmetric(a))
    }

    /// A plausible trained BatchNorm (TF-slim's ε = 0.001).
    fn batch_norm(&mut self, channels: usize) -> BatchNorm<f32> {
        let mut v = |lo, hi| Array1::from_shape_simple_fn(channels, || self.uniform(lo, hi));
        let (gamma, beta, mean, var) = (v(0.5, 1.5), v(-0.1, 0.1), v(-0.1, 0.1), v(0.5, 1.5));
        BatchNorm::new(gamma, beta, mean, var, 1e-3).expect("valid BatchNorm")
    }
}

/// Everything one group needs, built once outside the timed loops.
struct Layers {
    standard: Conv2d<f32>,
    depthwise: DepthwiseConv2d<f32>,
    pointwise: PointwiseConv2d<f32>,
    block: SeparableConv2d<f32>,
}

impl Layers {
    fn new(s: Shape, rng: &mut Rng) -> Self {
        let fan = |n: usize| 1.0 / (n as f32).sqrt();
        let std_w = rng.array4([3, 3, s.cin, s.cout], fan(9 * s.cin));
        let dw_w = rng.array4([3, 3, s.cin, 1], fan(9));
        let pw_w = rng.array2([s.cin, s.cout], fan(s.cin));
        let standard = Conv2d::builder(std_w)
            .stride(s.stride)
            .padding(Padding::Same)
            .build()
            .expect("standard conv");
        let depthwise = DepthwiseConv2d::builder(dw_w.clone())
            .stride(s.stride)
            .padding(Padding::Same)
            .build()
            .expect("depthwise conv");
        let pointwise = PointwiseConv2d::new(pw_w.clone(), None).expect("pointwise conv");
        let block = SeparableConv2d::builder(dw_w, pw_w)
            .stride(s.stride)
            .padding(Padding::Same)
            .depthwise_norm(rng.batch_norm(s.cin))
            .depthwise_activation(Activation::Relu6)
            .pointwise_norm(rng.batch_norm(s.cout))
            .activation(Activation::Relu6)
            .build()
            .expect("separable block");
        Layers {
            standard,
            depthwise,
            pointwise,
            block,
        }
    }
}

fn layers(c: &mut Criterion) {
    let mut rng = Rng(SplitMix64::new(0x5EB_C0DE));
    for shape in SHAPES {
        let l = Layers::new(shape, &mut rng);
        let input_shape = shape.input_shape();
        let x = rng.array4(input_shape, 1.0);
        let x = x.view();

        let mid_shape = l.depthwise.output_shape(input_shape).expect("mid shape");
        let out_shape = l.pointwise.output_shape(mid_shape).expect("out shape");
        assert_eq!(l.standard.output_shape(input_shape).unwrap(), out_shape);
        assert_eq!(l.block.output_shape(input_shape).unwrap(), out_shape);
        let mut mid = Array4::<f32>::zeros(mid_shape);
        let mut out = Array4::<f32>::zeros(out_shape);

        let macs = |cost: sepconv::Result<sepconv::Cost>| cost.expect("cost").mult_adds;
        let standard_macs = macs(l.standard.cost(input_shape));
        let depthwise_macs = macs(l.depthwise.cost(input_shape));
        let pointwise_macs = macs(l.pointwise.cost(mid_shape));
        let block_macs = macs(l.block.cost(input_shape));
        // The paper's identity, checked on the layers' own counts:
        // separable / standard = 1/N + 1/9, i.e. sep·9·N = std·(9 + N).
        let n = shape.cout as u64;
        assert_eq!(
            (depthwise_macs + pointwise_macs) * 9 * n,
            standard_macs * (9 + n)
        );
        assert_eq!(block_macs, depthwise_macs + pointwise_macs);

        let mut group = c.benchmark_group(shape.group_name());
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2))
            .sampling_mode(SamplingMode::Flat);

        group.throughput(Throughput::Elements(standard_macs));
        group.bench_function("standard", |b| {
            b.iter(|| {
                l.standard
                    .forward_into(black_box(x), out.view_mut())
                    .expect("standard forward");
                black_box(&mut out);
            })
        });

        group.throughput(Throughput::Elements(depthwise_macs + pointwise_macs));
        group.bench_function("separable", |b| {
            b.iter(|| {
                l.depthwise
                    .forward_into(black_box(x), mid.view_mut())
                    .expect("depthwise forward");
                l.pointwise
                    .forward_into(mid.view(), out.view_mut())
                    .expect("pointwise forward");
                black_box(&mut out);
            })
        });

        group.throughput(Throughput::Elements(block_macs));
        group.bench_function("block", |b| {
            b.iter(|| {
                l.block
                    .forward_into(black_box(x), out.view_mut())
                    .expect("block forward");
                black_box(&mut out);
            })
        });

        group.throughput(Throughput::Elements(depthwise_macs));
        group.bench_function("depthwise", |b| {
            b.iter(|| {
                l.depthwise
                    .forward_into(black_box(x), mid.view_mut())
                    .expect("depthwise forward");
                black_box(&mut mid);
            })
        });

        group.throughput(Throughput::Elements(pointwise_macs));
        group.bench_function("pointwise", |b| {
            b.iter(|| {
                l.pointwise
                    .forward_into(black_box(mid.view()), out.view_mut())
                    .expect("pointwise forward");
                black_box(&mut out);
            })
        });

        group.finish();
    }
}

criterion_group! {
    name = benches;
    // Fewer bootstrap resamples than the default 100 000: with 10 samples the
    // confidence intervals are no better for more, and analysis time adds up
    // over 45 benchmarks.
    config = Criterion::default().nresamples(10_000);
    targets = layers
}
criterion_main!(benches);
