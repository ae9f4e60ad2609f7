//! Does the 8–9× mult-add reduction of depthwise separable convolution show
//! up as time? Times the nine separable block shapes of MobileNet v1 against
//! the standard 3×3 convs they replace, then whole networks across α,
//! resolution, the Conv MobileNet variant and batch size, and prints markdown
//! tables (or JSON) and an SVG of latency against mult-adds.
//!
//! ```text
//! cargo run --release --example bench_report                 # 1 thread, everything
//! cargo run --release --example bench_report -- --threads 2
//! cargo run --release --example bench_report -- --quick --json
//! ```
//!
//! No criterion: each measurement is a warm-up, then `--runs` timed runs, and
//! the median is reported (on a shared machine the median is the robust
//! figure; single runs can be 2× off). Everything runs inside a rayon
//! `ThreadPool` of `--threads` threads (`install`, not the global pool).
//!
//! # Suites
//!
//! - **layers**: for each distinct block of 1.0 MobileNet-224 (named as in
//!   `benches/layers.rs`: `sep/14x14x512->512`, `/s2` for stride 2), a bare
//!   standard [`Conv2d`] 3×3 (same stride, TF SAME padding) against a bare
//!   [`DepthwiseConv2d`] 3×3 + [`PointwiseConv2d`] (no BN, no activation),
//!   each written with `forward_into` into preallocated buffers (the
//!   depthwise output too), standard and separable alternating in every run.
//!   The analytic ratio is standard / separable mult-adds from the layers'
//!   own `cost()`, checked to be exactly 9N/(9 + N) = 1/(1/N + 1/9).
//! - **networks**: `MobileNet::<f32>::seeded` forwards timed with
//!   `forward_profiled`; `ms` is the median wall time of the whole call, the
//!   time shares are per-layer medians summed by layer type (the classifier's
//!   time includes the global pooling) over their sum, next to the
//!   mult-add shares of `Summary::breakdown`. The 16-network α × resolution
//!   grid is timed for the chart; the table lists the α grid at 224, the
//!   resolution grid at α = 1, Conv MobileNet 1.0-224 and batch 8. Then the
//!   batch-8 throughput of 1.0-224 against batch 1, batch-1 and batch-8
//!   forwards alternating, so the ratio is not decided by a change in load
//!   between two separately timed cases.

#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ndarray::{Array2, Array4};
use sepconv::init::SplitMix64;
use sepconv::mobilenet::{LayerKind, MobileNet, MobileNetConfig, Variant};
use sepconv::{Conv2d, DepthwiseConv2d, Padding, PointwiseConv2d};
use serde_json::{Value, json};

const HELP: &str = "\
bench_report: standard vs depthwise separable conv on MobileNet v1's block shapes,
and whole MobileNet v1 networks, timed (median of repeated runs) and set against
the paper's mult-adds

usage: cargo run --release --example bench_report -- [OPTIONS]

  --threads T     rayon threads of the pool everything runs in (default 1)
  --runs N        timed runs per measurement, after the warm-up (default 21)
  --quick         5 runs and 1 warm-up run (--runs still wins)
  --only SUITE    layers | networks (default: both)
  --json          print JSON instead of markdown tables
  --json-out PATH also write the JSON to PATH (tables still on stdout)
  --svg PATH      where the latency vs mult-adds chart goes
                  (default target/bench_report/latency_vs_madds.svg)
  --no-svg        do not write the chart
  -h, --help      this text

Progress goes to stderr; tables or JSON to stdout.";

/// Timed runs by default and with `--quick`.
const RUNS: usize = 21;
const QUICK_RUNS: usize = 5;
/// Untimed runs before the timed ones.
const WARMUP: usize = 2;
const QUICK_WARMUP: usize = 1;
/// Seed of every weight and input.
const SEED: u64 = 0;
/// The chart's grid.
const ALPHAS: [f64; 4] = [1.0, 0.75, 0.5, 0.25];
const RESOLUTIONS: [usize; 4] = [224, 192, 160, 128];

#[derive(Clone, Debug, PartialEq)]
struct Options {
    threads: usize,
    runs: usize,
    warmup: usize,
    layers: bool,
    networks: bool,
    json: bool,
    json_out: Option<PathBuf>,
    svg: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 1,
            runs: RUNS,
            warmup: WARMUP,
            layers: true,
            networks: true,
            json: false,
            json_out: None,
            svg: Some(PathBuf::from("target/bench_report/latency_vs_madds.svg")),
        }
    }
}

/// `Ok(None)` for `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut o = Options::default();
    let (mut runs, mut quick) = (None, false);
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--threads" => o.threads = support::flag_value(&mut it, &arg)?,
            "--runs" => runs = Some(support::flag_value(&mut it, &arg)?),
            "--quick" => quick = true,
            "--only" => match support::flag_value::<String>(&mut it, &arg)?.as_str() {
                "layers" => o.networks = false,
                "networks" => o.layers = false,
                s => return Err(format!("--only: expected layers or networks, got {s:?}")),
            },
            "--json" => o.json = true,
            "--json-out" => o.json_out = Some(support::flag_value(&mut it, &arg)?),
            "--svg" => o.svg = Some(support::flag_value(&mut it, &arg)?),
            "--no-svg" => o.svg = None,
            s => return Err(format!("unknown argument {s}; see --help")),
        }
    }
    if quick {
        o.warmup = QUICK_WARMUP;
    }
    o.runs = runs.unwrap_or(if quick { QUICK_RUNS } else { RUNS });
    if o.threads == 0 || o.runs == 0 {
        return Err("--threads and --runs must be ≥ 1".into());
    }
    Ok(Some(o))
}

// ---------------------------------------------------------------- layers --

/// One depthwise separable block of 1.0 MobileNet-224.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    /// Input height = width.
    size: usize,
    cin: usize,
    cout: usize,
    stride: usize,
}

impl Block {
    /// `14x14x512->512`, as in `benches/layers.rs` without the `sep/` prefix.
    fn shape(&self) -> String {
        format!("{0}x{0}x{1}->{2}", self.size, self.cin, self.cout)
    }

    /// `sep/14x14x512->512`, `sep/112x112x64->128/s2`: the criterion group of `benches/layers.rs`.
    fn name(&self) -> String {
        match self.stride {
            1 => format!("sep/{}", self.shape()),
            s => format!("sep/{}/s{s}", self.shape()),
        }
    }
}

/// The distinct (depthwise, pointwise) pairs of 1.0 MobileNet-224, in
/// network order, read off the architecture itself.
fn blocks() -> Vec<Block> {
    let specs = MobileNetConfig::new()
        .layers()
        .expect("the default config is valid");
    let mut out: Vec<Block> = Vec::new();
    for pair in specs.windows(2) {
        if let [dw, pw] = pair
            && dw.kind == LayerKind::Depthwise
            && pw.kind == LayerKind::Pointwise
        {
            let b = Block {
                size: dw.input[0],
                cin: dw.input[2],
                cout: pw.output[2],
                stride: dw.stride,
            };
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    out
}

/// Standard / separable mult-adds, checked against the paper's closed form:
/// sep / std = 1/N + 1/9 for a 3×3 kernel. Checked three ways: in integers
/// (std·(9 + N) = sep·9·N), the f64 quotient equal to 9N/(9 + N) to the last
/// bit (both are the correctly rounded value of the same rational), and
/// equal to 1/(1/N + 1/9) to 12 significant digits (that form rounds four
/// times).
fn analytic_ratio(standard: u64, separable: u64, n: u64) -> Result<f64, String> {
    if standard * (9 + n) != separable * 9 * n {
        return Err(format!(
            "cost model: {standard} / {separable} mult-adds is not 9N/(9+N) for N = {n}"
        ));
    }
    let ratio = standard as f64 / separable as f64;
    let closed = (9 * n) as f64 / (9 + n) as f64;
    let paper = 1.0 / (1.0 / n as f64 + 1.0 / 9.0);
    if ratio != closed || (ratio - paper).abs() > 1e-12 * ratio {
        return Err(format!(
            "ratio {ratio} ≠ 9N/(9+N) = {closed} or 1/(1/N + 1/9) = {paper} for N = {n}"
        ));
    }
    Ok(ratio)
}

/// Deterministic uniform f32 values from the crate's [`SplitMix64`], without
/// a `rand` dependency.
struct Rng(SplitMix64);

impl Rng {
    /// Uniform in [0, 1), from the top 24 bits (exact in f32).
    fn next(&mut self) -> f32 {
        (self.0.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [−a, a): 1/√fan_in weights keep activations O(1) (no
    /// subnormals to slow anything down).
    fn array4(&mut self, shape: [usize; 4], a: f32) -> Array4<f32> {
        Array4::from_shape_simple_fn(shape, || a * (2.0 * self.next() - 1.0))
    }

    fn array2(&mut self, shape: [usize; 2], a: f32) -> Array2<f32> {
        Array2::from_shape_simple_fn(shape, || a * (2.0 * self.next() - 1.0))
    }
}

#[derive(Clone, Debug)]
struct LayerResult {
    block: Block,
    madds_standard: u64,
    madds_separable: u64,
    analytic_ratio: f64,
    ms_standard: f64,
    ms_separable: f64,
}

impl LayerResult {
    fn measured_ratio(&self) -> f64 {
        self.ms_standard / self.ms_separable
    }
    fn gmacs_standard(&self) -> f64 {
        gmacs(self.madds_standard, self.ms_standard)
    }
    fn gmacs_separable(&self) -> f64 {
        gmacs(self.madds_separable, self.ms_separable)
    }
}

fn gmacs(madds: u64, ms: f64) -> f64 {
    madds as f64 / (ms * 1e6)
}

fn time_block(b: Block, o: &Options, rng: &mut Rng) -> Result<LayerResult, String> {
    let e = |e: sepconv::Error| format!("{}: {e}", b.name());
    let fan = |n: usize| 1.0 / (n as f32).sqrt();
    let standard = Conv2d::builder(rng.array4([3, 3, b.cin, b.cout], fan(9 * b.cin)))
        .stride(b.stride)
        .padding(Padding::Same)
        .build()
        .map_err(e)?;
    let depthwise = DepthwiseConv2d::builder(rng.array4([3, 3, b.cin, 1], fan(9)))
        .stride(b.stride)
        .padding(Padding::Same)
        .build()
        .map_err(e)?;
    let pointwise =
        PointwiseConv2d::new(rng.array2([b.cin, b.cout], fan(b.cin)), None).map_err(e)?;

    let input = [1, b.size, b.size, b.cin];
    let x = rng.array4(input, 1.0);
    let mid_shape = depthwise.output_shape(input).map_err(e)?;
    let out_shape = pointwise.output_shape(mid_shape).map_err(e)?;
    if standard.output_shape(input).map_err(e)? != out_shape {
        return Err(format!(
            "{}: standard and separable shapes differ",
            b.name()
        ));
    }
    let mut mid = Array4::<f32>::zeros(mid_shape);
    let mut out_std = Array4::<f32>::zeros(out_shape);
    let mut out_sep = Array4::<f32>::zeros(out_shape);

    let madds_standard = standard.cost(input).map_err(e)?.mult_adds;
    let madds_separable = depthwise.cost(input).map_err(e)?.mult_adds
        + pointwise.cost(mid_shape).map_err(e)?.mult_adds;
    let analytic_ratio = analytic_ratio(madds_standard, madds_separable, b.cout as u64)?;

    let (mut t_std, mut t_sep) = (Vec::new(), Vec::new());
    for run in 0..o.warmup + o.runs {
        let t = Instant::now();
        standard
            .forward_into(black_box(x.view()), out_std.view_mut())
            .map_err(e)?;
        black_box(&mut out_std);
        let std_time = t.elapsed();
        let t = Instant::now();
        depthwise
            .forward_into(black_box(x.view()), mid.view_mut())
            .map_err(e)?;
        pointwise
            .forward_into(mid.view(), out_sep.view_mut())
            .map_err(e)?;
        black_box(&mut out_sep);
        let sep_time = t.elapsed();
        if run >= o.warmup {
            t_std.push(std_time);
            t_sep.push(sep_time);
        }
    }
    Ok(LayerResult {
        block: b,
        madds_standard,
        madds_separable,
        analytic_ratio,
        ms_standard: support::median_ms(t_std),
        ms_separable: support::median_ms(t_sep),
    })
}

// -------------------------------------------------------------- networks --

/// Fractions 0–1 per layer type, in the order pointwise, depthwise, full
/// conv, FC.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Shares([f64; 4]);

const KINDS: [LayerKind; 4] = [
    LayerKind::Pointwise,
    LayerKind::Depthwise,
    LayerKind::Conv,
    LayerKind::FullyConnected,
];
const KIND_KEYS: [&str; 4] = ["pointwise", "depthwise", "full_conv", "fc"];
const KIND_LABELS: [&str; 4] = ["1×1", "DW", "full conv", "FC"];

impl Shares {
    fn json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in KIND_KEYS.iter().zip(self.0) {
            m.insert((*k).into(), json!(v));
        }
        Value::Object(m)
    }
}

fn kind_index(k: LayerKind) -> usize {
    KINDS
        .iter()
        .position(|&x| x == k)
        .expect("every kind is listed")
}

#[derive(Clone, Debug)]
struct NetResult {
    config: MobileNetConfig,
    batch: usize,
    /// For the whole batch.
    madds: u64,
    params: u64,
    ms: f64,
    time_share: Shares,
    madds_share: Shares,
}

impl NetResult {
    fn model(&self) -> String {
        self.config.name()
    }
    fn gmacs(&self) -> f64 {
        gmacs(self.madds, self.ms)
    }
    fn is(&self, alpha: f64, res: usize, variant: Variant, batch: usize) -> bool {
        self.config.alpha == alpha
            && self.config.resolution == res
            && self.config.variant == variant
            && self.batch == batch
    }
}

fn time_network(config: MobileNetConfig, batch: usize, o: &Options) -> Result<NetResult, String> {
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
struct BatchResult {
    /// Median of a batch-1 forward.
    ms_batch1: f64,
    /// Median of a batch-8 forward, divided by 8.
    ms_per_image_batch8: f64,
}

impl BatchResult {
    /// Images per second at batch 8 over images per second at batch 1.
    fn ratio(&self) -> f64 {
        self.ms_batch1 / self.ms_per_image_batch8
    }
}

const BATCH: usize = 8;

fn time_batches(config: MobileNetConfig, o: &Options) -> Result<BatchResult, String> {
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
fn network_cases() -> Vec<(MobileNetConfig, usize)> {
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
fn table_rows(nets: &[NetResult]) -> Vec<&NetResult> {
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

// ---------------------------------------------------------------- report --

struct Report {
    threads: usize,
    runs: usize,
    warmup: usize,
    cpu: String,
    elapsed: Duration,
    layers: Vec<LayerResult>,
    networks: Vec<NetResult>,
    /// 1.0-224 at batch 8 against batch 1, alternating.
    batches: Option<BatchResult>,
}

/// Runs the suites inside a pool of `o.threads` threads.
fn run_report(o: &Options) -> Result<Report, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(o.threads)
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    pool.install(|| {
        let threads = rayon::current_num_threads();
        let mut layers = Vec::new();
        if o.layers {
            let mut rng = Rng(SplitMix64::new(0x5EB_C0DE));
            for b in blocks() {
                eprintln!("bench_report: layers {}", b.name());
                layers.push(time_block(b, o, &mut rng)?);
            }
        }
        let mut networks = Vec::new();
        if o.networks {
            for (config, batch) in network_cases() {
                eprintln!(
                    "bench_report: network {} {} batch {batch}",
                    config.name(),
                    config.variant.name()
                );
                networks.push(time_network(config, batch, o)?);
            }
        }
        let batches = if o.networks {
            eprintln!("bench_report: 1.0-224 batch {BATCH} against batch 1, alternating");
            Some(time_batches(MobileNetConfig::new(), o)?)
        } else {
            None
        };
        Ok(Report {
            threads,
            runs: o.runs,
            warmup: o.warmup,
            cpu: cpu_name(),
            elapsed: start.elapsed(),
            layers,
            networks,
            batches,
        })
    })
}

/// The CPU's model name from /proc/cpuinfo, or "unknown CPU".
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

impl Report {
    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "bench_report: {} thread(s), {}; median of {} runs after {} warm-up; {:.0} s in all\n",
            self.threads,
            self.cpu,
            self.runs,
            self.warmup,
            self.elapsed.as_secs_f64()
        );
        if !self.layers.is_empty() {
            s.push_str(
                "### Layers: standard 3×3 conv vs depthwise 3×3 + pointwise 1×1 \
                 (f32, batch 1, TF SAME, no BN)\n\n\
                 | layer | mult-adds standard | mult-adds separable | analytic ratio 9N/(9+N) \
                 | ms standard | ms separable | measured ratio | GMAC/s standard | GMAC/s separable |\n\
                 | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            );
            for l in &self.layers {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.4}× | {:.3} | {:.3} | {:.2}× | {:.1} | {:.1} |",
                    l.block.name(),
                    thousands(l.madds_standard),
                    thousands(l.madds_separable),
                    l.analytic_ratio,
                    l.ms_standard,
                    l.ms_separable,
                    l.measured_ratio(),
                    l.gmacs_standard(),
                    l.gmacs_separable(),
                );
            }
            s.push('\n');
        }
        if !self.networks.is_empty() {
            s.push_str(
                "### Networks: MobileNet v1 forward (f32, seeded weights, BN folded)\n\n\
                 Share of time / share of mult-adds per layer type \
                 (FC time includes the global pooling).\n\n\
                 | model | variant | batch | mult-adds | params | ms | GMAC/s |",
            );
            for l in KIND_LABELS {
                let _ = write!(s, " {l} time / madds |");
            }
            s.push_str(
                "\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            );
            for n in table_rows(&self.networks) {
                let _ = write!(
                    s,
                    "| {} | {} | {} | {} | {} | {:.2} | {:.1} |",
                    n.model(),
                    n.config.variant.name(),
                    n.batch,
                    thousands(n.madds),
                    thousands(n.params),
                    n.ms,
                    n.gmacs()
                );
                for i in 0..4 {
                    if n.madds_share.0[i] == 0.0 {
                        s.push_str(" – |");
                    } else {
                        let _ = write!(
                            s,
                            " {} / {} |",
                            pct(n.time_share.0[i]),
                            pct(n.madds_share.0[i])
                        );
                    }
                }
                s.push('\n');
            }
            let grid: Vec<_> = self.grid().collect();
            if !grid.is_empty() {
                s.push_str(
                    "\n### Latency grid (ms, batch 1; mult-adds in millions in parentheses)\n\n| α \\ resolution |",
                );
                for r in RESOLUTIONS {
                    let _ = write!(s, " {r} |");
                }
                s.push_str("\n| --- | ---: | ---: | ---: | ---: |\n");
                for a in ALPHAS {
                    let _ = write!(s, "| {a:?} |");
                    for r in RESOLUTIONS {
                        match grid.iter().find(|n| n.is(a, r, Variant::Standard, 1)) {
                            Some(n) => {
                                let _ = write!(s, " {:.2} ({:.0}) |", n.ms, n.madds as f64 / 1e6);
                            }
                            None => s.push_str(" – |"),
                        }
                    }
                    s.push('\n');
                }
            }
        }
        if let Some(b) = self.batches {
            let _ = write!(
                s,
                "\n### Batch throughput: 1.0-224, batch {BATCH} vs batch 1 (alternating runs)\n\n\
                 | ms per image, batch 1 | ms per image, batch {BATCH} | throughput ratio |\n\
                 | ---: | ---: | ---: |\n\
                 | {:.2} | {:.2} | {:.2}× |\n",
                b.ms_batch1,
                b.ms_per_image_batch8,
                b.ratio()
            );
        }
        s
    }

    /// The α × resolution networks at batch 1.
    fn grid(&self) -> impl Iterator<Item = &NetResult> {
        self.networks.iter().filter(|n| {
            n.batch == 1
                && n.config.variant == Variant::Standard
                && ALPHAS.contains(&n.config.alpha)
                && RESOLUTIONS.contains(&n.config.resolution)
        })
    }

    fn json(&self) -> Value {
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| {
                json!({
                    "shape": l.block.shape(), "stride": l.block.stride, "name": l.block.name(),
                    "mult_adds_standard": l.madds_standard,
                    "mult_adds_separable": l.madds_separable,
                    "analytic_ratio": l.analytic_ratio,
                    "ms_standard": l.ms_standard, "ms_separable": l.ms_separable,
                    "measured_ratio": l.measured_ratio(),
                    "gmacs_standard": l.gmacs_standard(), "gmacs_separable": l.gmacs_separable(),
                })
            })
            .collect();
        let net_json = |n: &NetResult| {
            json!({
                "model": n.model(), "variant": n.config.variant.name(), "batch": n.batch,
                "mult_adds": n.madds, "params": n.params, "ms": n.ms, "gmacs": n.gmacs(),
                "time_share": n.time_share.json(), "mult_adds_share": n.madds_share.json(),
            })
        };
        json!({
            "threads": self.threads, "runs": self.runs, "warmup": self.warmup, "cpu": self.cpu,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "layers": layers,
            "networks": table_rows(&self.networks).into_iter().map(net_json).collect::<Vec<_>>(),
            "grid": self.grid().map(net_json).collect::<Vec<_>>(),
            "batch_throughput": self.batches.map(|b| json!({
                "model": "1.0-224", "batch": BATCH, "ms_batch1": b.ms_batch1,
                "ms_per_image_batch8": b.ms_per_image_batch8, "ratio": b.ratio(),
            })),
        })
    }
}

// ----------------------------------------------------------------- chart --

/// Series colours (colour-blind safe, Okabe–Ito).
const COLORS: [(u8, u8, u8); 4] = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167)];

/// Latency against mult-adds on log–log axes, one series per α, each point
/// labelled with its model name, and a grey line of constant throughput
/// through 1.0-224 (where latency would lie if it scaled exactly with
/// mult-adds).
fn write_svg(report: &Report, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let grid: Vec<&NetResult> = report.grid().collect();
    if grid.is_empty() {
        return Err("no α × resolution networks were timed".into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let e = |e: DrawingAreaErrorKind<std::io::Error>| format!("{}: {e}", path.display());
    let mm = |n: &NetResult| n.madds as f64 / 1e6;
    let (x0, x1) = grid
        .iter()
        .map(|n| mm(n))
        .fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (y0, y1) = grid
        .iter()
        .map(|n| n.ms)
        .fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (x0, x1, y0, y1) = (x0 / 1.3, x1 * 1.3, y0 / 1.3, y1 * 1.3);

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let caption = format!(
        "MobileNet v1 latency vs mult-adds (f32, batch 1, {} thread{}, median of {} runs)",
        report.threads,
        if report.threads == 1 { "" } else { "s" },
        report.runs
    );
    let (x_ticks, y_ticks) = (ticks(x0, x1), ticks(y0, y1));
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x0..x1)
                .log_scale()
                .with_key_points(x_ticks.0)
                .with_light_points(x_ticks.1),
            (y0..y1)
                .log_scale()
                .with_key_points(y_ticks.0)
                .with_light_points(y_ticks.1),
        )
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("mult-adds per image (millions, log scale)")
        .y_desc("latency (ms, log scale)")
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .bold_line_style(RGBColor(200, 200, 200))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(e)?;

    if let Some(base) = grid.iter().find(|n| n.is(1.0, 224, Variant::Standard, 1)) {
        let per_ms = mm(base) / base.ms;
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(LineSeries::new(
                [x0, x1].map(|x| (x, x / per_ms)),
                grey.stroke_width(1),
            ))
            .map_err(e)?
            .label(format!("constant {:.1} GMAC/s (1.0-224's)", base.gmacs()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    for (i, (alpha, rgb)) in ALPHAS.iter().zip(COLORS).enumerate() {
        // Labels above the points of every other series, below the rest, so
        // neighbouring series (0.5-192 and 0.75-128 have nearly the same
        // cost) do not write over each other.
        let label_at = if i % 2 == 0 { (-22, -18) } else { (-22, 8) };
        let color = RGBColor(rgb.0, rgb.1, rgb.2);
        let mut pts: Vec<&NetResult> = grid
            .iter()
            .copied()
            .filter(|n| n.config.alpha == *alpha)
            .collect();
        pts.sort_by_key(|n| n.madds);
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|n| (mm(n), n.ms)),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(format!("α = {alpha}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|n| {
                EmptyElement::at((mm(n), n.ms))
                    + Circle::new((0, 0), 4, color.filled())
                    + Text::new(
                        n.model(),
                        label_at,
                        ("sans-serif", 12).into_font().color(&color),
                    )
            }))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Ticks on a log axis between `lo` and `hi`: (1–2–5 × 10^k for labels and
/// bold lines, the other k × 10^e for light lines).
fn ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for k in 1..10 {
            let v = decade * k as f64;
            if (lo..=hi).contains(&v) {
                if matches!(k, 1 | 2 | 5) {
                    bold.push(v);
                } else {
                    light.push(v);
                }
            }
        }
        decade *= 10.0;
    }
    (bold, light)
}

fn tick_label(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn run() -> Result<(), String> {
    let Some(o) = parse_args(std::env::args().skip(1))? else {
        println!("{HELP}");
        return Ok(());
    };
    let report = run_report(&o)?;
    if let Some(path) = &o.json_out {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&report.json()).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.json()).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", report.markdown());
    }
    if let Some(path) = &o.svg
        && !report.networks.is_empty()
    {
        write_svg(&report, path)?;
        eprintln!("bench_report: chart written to {}", path.display());
    }
    eprintln!(
        "bench_report: done in {:.1} s",
        report.elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_report: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Options>, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn options() {
        assert_eq!(args("").unwrap(), Some(Options::default()));
        assert_eq!(args("--help").unwrap(), None);
        let o = args("--threads 2 --quick --json --svg a/b.svg")
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.threads, o.runs, o.warmup, o.json),
            (2, QUICK_RUNS, QUICK_WARMUP, true)
        );
        assert_eq!(o.svg, Some(PathBuf::from("a/b.svg")));
        // --runs wins over --quick, in either order.
        assert_eq!(args("--runs 3 --quick").unwrap().unwrap().runs, 3);
        assert_eq!(args("--quick --runs 3").unwrap().unwrap().runs, 3);
        let o = args("--json-out r.json").unwrap().unwrap();
        assert_eq!((o.json, o.json_out), (false, Some(PathBuf::from("r.json"))));
        let o = args("--only layers --no-svg").unwrap().unwrap();
        assert_eq!((o.layers, o.networks, o.svg), (true, false, None));
        for bad in [
            "--threads 0",
            "--runs 0",
            "--runs",
            "--threads x",
            "--only x",
            "--frob",
        ] {
            assert!(args(bad).is_err(), "{bad}");
        }
    }

    /// The same nine shapes, in the same order and with the same names, as
    /// the criterion groups of benches/layers.rs.
    #[test]
    fn blocks_are_the_layer_bench_groups() {
        let names: Vec<String> = blocks().iter().map(Block::name).collect();
        assert_eq!(
            names,
            [
                "sep/112x112x32->64",
                "sep/112x112x64->128/s2",
                "sep/56x56x128->128",
                "sep/56x56x128->256/s2",
                "sep/28x28x256->256",
                "sep/28x28x256->512/s2",
                "sep/14x14x512->512",
                "sep/14x14x512->1024/s2",
                "sep/7x7x1024->1024",
            ]
        );
    }

    #[test]
    fn the_papers_ratio() {
        // Table 3's layer: 462,422,016 vs 52,283,392 mult-adds.
        let r = analytic_ratio(462_422_016, 52_283_392, 512).unwrap();
        assert_eq!(format!("{r:.4}"), "8.8445");
        assert_eq!(r, 4608.0 / 521.0);
        assert!(analytic_ratio(462_422_016, 52_283_393, 512).is_err());
    }

    fn fake_report() -> Report {
        let mut networks = Vec::new();
        for (config, batch) in network_cases() {
            let summary = config.summary().unwrap();
            let madds = summary.total.mult_adds * batch as u64;
            networks.push(NetResult {
                config,
                batch,
                madds,
                params: summary.total.params.paper(),
                ms: madds as f64 / 20e6,
                time_share: Shares([0.7, 0.2, 0.08, 0.02]),
                madds_share: Shares([0.9486, 0.0306, 0.0191, 0.0018]),
            });
        }
        Report {
            threads: 1,
            runs: 3,
            warmup: 1,
            cpu: "test".into(),
            elapsed: Duration::from_secs(1),
            layers: vec![LayerResult {
                block: blocks()[6],
                madds_standard: 462_422_016,
                madds_separable: 52_283_392,
                analytic_ratio: 4608.0 / 521.0,
                ms_standard: 20.0,
                ms_separable: 4.0,
            }],
            networks,
            batches: Some(BatchResult {
                ms_batch1: 20.0,
                ms_per_image_batch8: 16.0,
            }),
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let j = fake_report().json();
        assert_eq!(ticks(0.7, 60.0).0, [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        assert_eq!(j["threads"], 1);
        let l = &j["layers"][0];
        assert_eq!(l["shape"], "14x14x512->512");
        assert_eq!(l["stride"], 1);
        assert_eq!(l["measured_ratio"], 5.0);
        for key in [
            "mult_adds_standard",
            "mult_adds_separable",
            "analytic_ratio",
            "ms_standard",
            "ms_separable",
        ] {
            assert!(l[key].is_number(), "{key}");
        }
        let nets = j["networks"].as_array().unwrap();
        let models: Vec<_> = nets
            .iter()
            .map(|n| format!("{} {} {}", n["model"], n["variant"], n["batch"]))
            .collect();
        assert_eq!(
            models,
            [
                r#""1.0-224" "standard" 1"#,
                r#""0.75-224" "standard" 1"#,
                r#""0.5-224" "standard" 1"#,
                r#""0.25-224" "standard" 1"#,
                r#""1.0-192" "standard" 1"#,
                r#""1.0-160" "standard" 1"#,
                r#""1.0-128" "standard" 1"#,
                r#""1.0-224" "full-conv" 1"#,
                r#""1.0-224" "standard" 8"#,
            ]
        );
        assert_eq!(nets[0]["mult_adds"], 568_740_352);
        assert_eq!(nets[8]["mult_adds"], 8 * 568_740_352u64);
        for key in ["pointwise", "depthwise", "full_conv", "fc"] {
            assert!(nets[0]["time_share"][key].is_number(), "{key}");
        }
        assert_eq!(j["grid"].as_array().unwrap().len(), 16);
        assert_eq!(j["batch_throughput"]["ratio"], 1.25);
        assert_eq!(j["batch_throughput"]["batch"], 8);
    }

    #[test]
    fn markdown_and_svg() {
        let r = fake_report();
        let md = r.markdown();
        assert!(md.contains("| sep/14x14x512->512 | 462,422,016 | 52,283,392 | 8.8445× |"));
        assert!(md.contains("| 1.0-224 | full-conv | 1 | 4,867,293,184 |"));
        assert!(md.contains("| 20.00 | 16.00 | 1.25× |"));
        let path =
            std::env::temp_dir().join(format!("bench_report_test_{}.svg", std::process::id()));
        write_svg(&r, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for label in ["0.25-128", "1.0-224", "α = 0.75"] {
            assert!(svg.contains(label), "{label}");
        }
    }

    /// The pool is the one the work runs in, not the global one.
    #[test]
    fn threads_come_from_the_pool() {
        let o = Options {
            threads: 2,
            layers: false,
            networks: false,
            svg: None,
            ..Options::default()
        };
        assert_eq!(run_report(&o).unwrap().threads, 2);
    }
}
