//! The networks suite: whole MobileNet v1 forwards across α, resolution,
//! the Conv MobileNet variant and batch size, timed with per-layer shares;
//! then MobileNetV2 across α and resolution, timed whole.

use std::hint::black_box;
use std::time::Instant;

use ndarray::Array4;
use sepconv::mobilenet::{
    LayerKind, MobileNet, MobileNetConfig, MobileNetV2, MobileNetV2Config, Variant,
};
use serde_json::{Value, json};

use crate::args::Options;
use crate::layers::gmacs;
use crate::support;

/// Seed of every weight and input.
pub const SEED: u64 = 0;
/// The chart's grid.
pub const ALPHAS: [f64; 4] = [1.0, 0.75, 0.5, 0.25];
pub const RESOLUTIONS: [usize; 4] = [224, 192, 160, 128];
/// MobileNetV2's α grid (its published checkpoints), at [`RESOLUTIONS`].
pub const V2_ALPHAS: [f64; 4] = [1.0, 0.75, 0.5, 0.35];

/// Fractions 0–1 per layer type, in the order pointwise, depthwise, full
/// conv, FC.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Shares(pub [f64; 4]);

pub const KINDS: [LayerKind; 4] = [
    LayerKind::Pointwise,
    LayerKind::Depthwise,
    LayerKind::Conv,
    LayerKind::FullyConnected,
];
pub const KIND_KEYS: [&str; 4] = ["pointwise", "depthwise", "full_conv", "fc"];
pub const KIND_LABELS: [&str; 4] = ["1×1", "DW", "full conv", "FC"];

impl Shares {
    pub fn json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in KIND_KEYS.iter().zip(self.0) {
            m.insert((*k).into(), json!(v));
        }
        Value::Object(m)
    }
}

pub fn kind_index(k: LayerKind) -> usize {
    KINDS
        .iter()
        .position(|&x| x == k)
        .expect("every kind is listed")
}

#[derive(Clone, Debug)]
pub struct NetResult {
    pub config: MobileNetConfig,
    pub batch: usize,
    /// For the whole batch.
    pub madds: u64,
    pub params: u64,
    pub ms: f64,
    pub time_share: Shares,
    pub madds_share: Shares,
}

impl NetResult {
    pub fn model(&self) -> String {
        self.config.name()
    }
    pub fn gmacs(&self) -> f64 {
        gmacs(self.madds, self.ms)
    }
    pub fn is(&self, alpha: f64, res: usize, variant: Variant, batch: usize) -> bool {
        self.config.alpha == alpha
            && self.config.resolution == res
            && self.config.variant == variant
            && self.batch == batch
    }
}

pub fn time_network(
    config: MobileNetConfig,
    batch: usize,
    o: &Options,
) -> Result<NetResult, String> {
    let e = |e: sepconv::Error| format!("{}: {e}", config.name());
    let net = MobileNet::<f32>::seeded(&config, SEED).map_err(e)?;
    let summary = net.summary();
    let x = Array4::<f32>::from_shape_fn(net.input_shape(batch), |(n, y, x, c)| {
        (((n * 7 + y * 3 + x * 5 + c) % 17) as f32 / 8.0) - 1.0
    });
    let layers = net.layers().len();
    let mut totals = Vec::with_capacity(o.runs);
    let mut per_layer = vec![Vec::with_capacity(o.runs); layers];
    for run in 0..o.warmup + o.runs {
        let t = Instant::now();
        let (y, times) = net.forward_profiled(black_box(x.view())).map_err(e)?;
        let total = t.elapsed();
        black_box(y);
        if times.len() != layers {
            return Err(format!(
                "{}: {} layer times for {layers} layers",
                config.name(),
                times.len()
            ));
        }
        if run >= o.warmup {
            totals.push(total);
            for (col, t) in per_layer.iter_mut().zip(times) {
                col.push(t);
            }
        }
    }
    let mut time = [0.0; 4];
    for (spec, col) in net.layers().iter().zip(per_layer) {
        time[kind_index(spec.kind)] += support::median_ms(col);
    }
    let sum: f64 = time.iter().sum();
    let mut madds_share = Shares::default();
    for b in summary.breakdown() {
        madds_share.0[kind_index(b.kind)] = b.mult_adds_share;
    }
    Ok(NetResult {
        config,
        batch,
        madds: summary.total.mult_adds * batch as u64,
        params: summary.total.params.paper(),
        ms: support::median_ms(totals),
        time_share: Shares(time.map(|t| t / sum)),
        madds_share,
    })
}

/// Throughput of one network at batch 8 against batch 1, timed in
/// alternating runs so that both see the same machine.
#[derive(Clone, Copy, Debug)]
pub struct BatchResult {
    /// Median of a batch-1 forward.
    pub ms_batch1: f64,
    /// Median of a batch-8 forward, divided by 8.
    pub ms_per_image_batch8: f64,
}

impl BatchResult {
    /// Images per second at batch 8 over images per second at batch 1.
    pub fn ratio(&self) -> f64 {
        self.ms_batch1 / self.ms_per_image_batch8
    }
}

pub const BATCH: usize = 8;

pub fn time_batches(config: MobileNetConfig, o: &Options) -> Result<BatchResult, String> {
    let e = |e: sepconv::Error| format!("{}: {e}", config.name());
    let net = MobileNet::<f32>::seeded(&config, SEED).map_err(e)?;
    let input = |n| {
        Array4::<f32>::from_shape_fn(net.input_shape(n), |(n, y, x, c)| {
            (((n * 7 + y * 3 + x * 5 + c) % 17) as f32 / 8.0) - 1.0
        })
    };
    let (one, batch) = (input(1), input(BATCH));
    let (mut t1, mut t8) = (Vec::with_capacity(o.runs), Vec::with_capacity(o.runs));
    for run in 0..o.warmup + o.runs {
        for (x, times) in [(&one, &mut t1), (&batch, &mut t8)] {
            let t = Instant::now();
            black_box(net.forward(black_box(x.view())).map_err(e)?);
            if run >= o.warmup {
                times.push(t.elapsed());
            }
        }
    }
    Ok(BatchResult {
        ms_batch1: support::median_ms(t1),
        ms_per_image_batch8: support::median_ms(t8) / BATCH as f64,
    })
}

/// Every network timed: the α × resolution grid at batch 1, then Conv
/// MobileNet 1.0-224 and 1.0-224 at batch 8.
pub fn network_cases() -> Vec<(MobileNetConfig, usize)> {
    let mut out = Vec::new();
    for alpha in ALPHAS {
        for res in RESOLUTIONS {
            out.push((
                MobileNetConfig::new()
                    .with_alpha(alpha)
                    .with_resolution(res),
                1,
            ));
        }
    }
    out.push((MobileNetConfig::new().with_variant(Variant::FullConv), 1));
    out.push((MobileNetConfig::new(), 8));
    out
}

/// The rows of the networks table: α grid at 224, resolution grid at 1.0,
/// Conv MobileNet, batch 8.
pub fn table_rows(nets: &[NetResult]) -> Vec<&NetResult> {
    let mut keys: Vec<(f64, usize, Variant, usize)> = ALPHAS
        .iter()
        .map(|&a| (a, 224, Variant::Standard, 1))
        .collect();
    keys.extend(
        RESOLUTIONS[1..]
            .iter()
            .map(|&r| (1.0, r, Variant::Standard, 1)),
    );
    keys.push((1.0, 224, Variant::FullConv, 1));
    keys.push((1.0, 224, Variant::Standard, 8));
    keys.iter()
        .filter_map(|&(a, r, v, b)| nets.iter().find(|n| n.is(a, r, v, b)))
        .collect()
}

/// A MobileNetV2 forward, timed whole (its blocks mix pointwise and
/// depthwise convs, so there are no per-type shares).
#[derive(Clone, Debug)]
pub struct V2Result {
    pub config: MobileNetV2Config,
    pub madds: u64,
    pub params: u64,
    pub ms: f64,
}

impl V2Result {
    pub fn model(&self) -> String {
        format!("v2 {}", self.config.name())
    }
    pub fn gmacs(&self) -> f64 {
        gmacs(self.madds, self.ms)
    }
}

/// The v2 grid: [`V2_ALPHAS`] × [`RESOLUTIONS`], 1000 classes, batch 1.
pub fn v2_cases() -> Vec<MobileNetV2Config> {
    V2_ALPHAS
        .iter()
        .flat_map(|&a| {
            RESOLUTIONS.map(|r| MobileNetV2Config::new().with_alpha(a).with_resolution(r))
        })
        .collect()
}

/// Median of `o.runs` batch-1 forwards of the seeded `config`, after
/// `o.warmup`.
pub fn time_v2(config: MobileNetV2Config, o: &Options) -> Result<V2Result, String> {
    let e = |e: sepconv::Error| format!("v2 {}: {e}", config.name());
    let net = MobileNetV2::<f32>::seeded(&config, SEED).map_err(e)?;
    let summary = net.summary();
    let x = Array4::<f32>::from_shape_fn(net.input_shape(1), |(n, y, x, c)| {
        (((n * 7 + y * 3 + x * 5 + c) % 17) as f32 / 8.0) - 1.0
    });
    let mut times = Vec::with_capacity(o.runs);
    for run in 0..o.warmup + o.runs {
        let t = Instant::now();
        black_box(net.forward(black_box(x.view())).map_err(e)?);
        if run >= o.warmup {
            times.push(t.elapsed());
        }
    }
    Ok(V2Result {
        config,
        madds: summary.total.mult_adds,
        params: summary.total.params.paper(),
        ms: support::median_ms(times),
    })
}
