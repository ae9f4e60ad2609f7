//! Whole-network benchmarks of MobileNet v1 and MobileNetV2: does latency
//! follow the papers' mult-add counts across the width multiplier α, the
//! resolution, the Conv MobileNet variant, the batch size and the family?
//!
//! # What is measured
//!
//! One forward pass ([`MobileNet::forward`], f32, seeded weights with every
//! BatchNorm folded, ReLU6, 1000 classes) on a fixed deterministic input.
//! Each benchmark reports `Throughput::Elements(mult_adds × batch)`, the
//! mult-adds taken from the network's own [`Summary`](sepconv::mobilenet::Summary),
//! so criterion prints mult-adds per second (1 mult-add = 2 FLOPs).
//! The forward allocates its activations inside the library; that is part of
//! what is measured (the network API takes no scratch buffers).
//!
//! Layers run with `Algorithm::Auto` and the default `rayon` feature on
//! rayon's global pool (all cores), as an application would run the network.
//! For single-thread numbers, and for the share of time per layer type, run
//! `cargo run --release --example bench_report -- --threads 1`.
//!
//! # Names (stable; scripts may rely on them)
//!
//! All benchmarks are in the group `mobilenet`; ids are
//! `mobilenet/{α}-{resolution}` (the model name of
//! [`MobileNetConfig::name`]), with a `full-conv/` prefix for the
//! Conv MobileNet variant, a `/batch{N}` suffix for N > 1, and a `v2/`
//! prefix for MobileNetV2:
//!
//! ```text
//! mobilenet/1.0-224     mobilenet/0.75-224    mobilenet/0.5-224     mobilenet/0.25-224
//! mobilenet/1.0-192     mobilenet/1.0-160     mobilenet/1.0-128
//! mobilenet/full-conv/1.0-224
//! mobilenet/1.0-224/batch8
//! mobilenet/v2/1.0-224  mobilenet/v2/0.75-224 mobilenet/v2/0.5-224  mobilenet/v2/0.35-224
//! mobilenet/v2/1.0-160
//! ```
//!
//! | ids | paper | mult-adds / image |
//! | --- | --- | --- |
//! | `1.0-224`, `0.75-224`, `0.5-224`, `0.25-224` | Table 6 (width multiplier) | 569 M, 325 M, 149 M, 41 M |
//! | `1.0-192`, `1.0-160`, `1.0-128` | Table 7 (resolution multiplier) | 418 M, 291 M, 186 M |
//! | `full-conv/1.0-224` | Table 4 (Conv MobileNet) | 4867 M |
//! | `1.0-224/batch8` | — | 8 × 569 M |
//! | `v2/1.0-224`, `v2/0.75-224`, `v2/0.5-224`, `v2/0.35-224`, `v2/1.0-160` | MobileNetV2, Table 2 and TF-slim's checkpoints | 300 M, 209 M, 97 M, 59 M, 154 M |
//!
//! # Running
//!
//! ```text
//! cargo bench --bench mobilenet                          # everything
//! cargo bench --bench mobilenet -- 'mobilenet/1.0-224$'  # exactly one benchmark
//! cargo bench --bench mobilenet -- '/1.0-'               # the resolution grid (and 1.0-224's variants)
//! cargo bench --bench mobilenet -- --list                # the ids
//! ```
//!
//! The filter is a regular expression matched against the id, so
//! `mobilenet/1.0-224` alone also selects `full-conv/1.0-224` and
//! `1.0-224/batch8`; anchor it with `$`. Results land in
//! `target/criterion/mobilenet/`.
//!
//! # Budget
//!
//! 10 samples (flat sampling), 1 s warm-up and 3 s measurement per benchmark:
//! 14 × ~4 s plus analysis (the v1 figure below is from before the five v2
//! cases were added). Measured on the 2-core development machine,
//! already compiled, while another engineer's two `rustc` processes held
//! both cores: 1 min 03 s (`time cargo bench --bench mobilenet`). The slowest
//! benchmarks (`full-conv/1.0-224`, about 4.9 G mult-adds, and `batch8`,
//! 4.5 G) take 250–300 ms per iteration, so their 10 samples may stretch the
//! measurement past 3 s (criterion says so); they are still 10 samples. On a
//! shared machine, single medians move by up to 2× between runs: compare
//! within one run.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use ndarray::Array4;
use sepconv::mobilenet::{Architecture, MobileNet, MobileNetConfig, MobileNetV2Config, Variant};

/// Seed of the weights (any seed gives the same cost; fixed so runs compare).
const SEED: u64 = 0;

/// One benchmark: a configuration and a batch size.
struct Case {
    config: MobileNetConfig,
    batch: usize,
}

/// A MobileNetV2 at `alpha` and `resolution`, batch 1.
fn v2(alpha: f64, resolution: usize) -> MobileNetV2Config {
    MobileNetV2Config::new()
        .with_alpha(alpha)
        .with_resolution(resolution)
}

impl Case {
    fn new(alpha: f64, resolution: usize) -> Self {
        Case {
            config: MobileNetConfig::new()
                .with_alpha(alpha)
                .with_resolution(resolution),
            batch: 1,
        }
    }

    fn variant(mut self, v: Variant) -> Self {
        self.config = self.config.with_variant(v);
        self
    }

    fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    /// The benchmark id inside the `mobilenet` group; see the module docs. Keep stable.
    fn id(&self) -> String {
        let mut id = self.config.name();
        if self.config.variant != Variant::Standard {
            id = format!("{}/{id}", self.config.variant.name());
        }
        if self.batch > 1 {
            id = format!("{id}/batch{}", self.batch);
        }
        id
    }
}

/// The suite, in the order it runs (and prints).
fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = [1.0, 0.75, 0.5, 0.25]
        .into_iter()
        .map(|a| Case::new(a, 224))
        .collect();
    cases.extend([192, 160, 128].map(|r| Case::new(1.0, r)));
    cases.push(Case::new(1.0, 224).variant(Variant::FullConv));
    cases.push(Case::new(1.0, 224).batch(8));
    cases
}

/// A fixed input in [−1, 1] (the range of TF-slim's preprocessing).
fn input(shape: [usize; 4]) -> Array4<f32> {
    Array4::from_shape_fn(shape, |(n, y, x, c)| {
        (((n * 7 + y * 3 + x * 5 + c) % 17) as f32 / 8.0) - 1.0
    })
}

fn mobilenet(c: &mut Criterion) {
    let mut group = c.benchmark_group("mobilenet");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    for case in cases() {
        bench(&mut group, case.id(), &case.config, case.batch);
    }
    for config in [
        v2(1.0, 224),
        v2(0.75, 224),
        v2(0.5, 224),
        v2(0.35, 224),
        v2(1.0, 160),
    ] {
        bench(&mut group, format!("v2/{}", config.name()), &config, 1);
    }
    group.finish();
}

/// One benchmark `id`: a forward of the seeded `config` on a batch of `batch`.
fn bench<C: Architecture>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: String,
    config: &C,
    batch: usize,
) {
    let net = MobileNet::<f32, C>::seeded(config, SEED).expect("valid configuration");
    let macs = net.summary().total.mult_adds * batch as u64;
    let x = input(net.input_shape(batch));
    let x = x.view();
    group.throughput(Throughput::Elements(macs));
    group.bench_function(id, |b| {
        b.iter(|| black_box(net.forward(black_box(x)).expect("forward")))
    });
}

criterion_group! {
    name = benches;
    // Fewer bootstrap resamples than the default 100 000: with 10 samples the
    // intervals are no better for more.
    config = Criterion::default().nresamples(10_000);
    targets = mobilenet
}
criterion_main!(benches);
