//! Export seeded MobileNet weights, inputs and sepconv's outputs for the
//! engine comparison in `comparisons/` (ONNX Runtime, tract), and time the
//! 14×14×512 layer.
//!
//! ```text
//! cargo run --release --example export -- --out comparisons/out/data --model 1.0-224 --model 0.25-128 --layer
//! cargo run --release --example export -- --out /tmp/x --model v2-1.0-224
//! cargo run --release --example export -- --out /tmp/x --alpha 0.5 --resolution 160
//! cargo run --release --example export -- --out /tmp/x --layer --time --threads 1,2 --runs 50
//! ```

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array2, Array4, ArrayD, Axis, Ix4};
use sepconv::init::SplitMix64;
use sepconv::mobilenet::{
    Architecture, MobileNet, MobileNetConfig, MobileNetV2Config, MobileNetWeights, Variant,
};
use sepconv::{Conv2d, Padding, SeparableConv2d};

const HELP: &str = "\
export: seeded MobileNet v1 and v2 weights, inputs and sepconv outputs for comparisons/

usage: cargo run --release --example export -- --out DIR [OPTIONS]

  --out DIR            folder to write into (created)
  --model A-R          a MobileNet v1 to export, e.g. 1.0-224 or 0.25-128 (repeatable);
                       v2-A-R for a MobileNetV2, e.g. v2-1.0-224
  --alpha A            with --resolution: one more model (default 1.0)
  --resolution R       with --alpha: one more model (default 224)
  --layer              export the 14×14×512 layer: a standard 3×3 conv 512→512 and
                       the separable pair (depthwise 3×3 + pointwise 512→512),
                       stride 1, TF SAME, no bias, BatchNorm or activation
  --time               time that layer (both forms) and print JSON
  --threads T,T,...    thread counts for --time (default 1,2)
  --runs N             timed runs per measurement after 3 warm-ups (default 50)
  --seed S             weight seed (default 0)
  -h, --help           this text

Files (all float32; .npy in C order, activations NHWC):
  mobilenet_A-R.safetensors    MobileNetWeights::seeded, TF-slim names, 1000 classes
  mobilenet_A-R_input.npy      [1, R, R, 3], uniform in [-1, 1)
  mobilenet_A-R_logits.npy     [1, 1000], sepconv's forward
  mobilenet_v2-A-R.*           the same for a MobileNetV2 (scope MobilenetV2)
  layer_14x14x512_input.npy                [1, 14, 14, 512], uniform in [-1, 1)
  layer_14x14x512_standard_weights.npy     [3, 3, 512, 512] HWIO
  layer_14x14x512_standard_output.npy      [1, 14, 14, 512]
  layer_14x14x512_depthwise_weights.npy    [3, 3, 512, 1]
  layer_14x14x512_pointwise_weights.npy    [512, 512]
  layer_14x14x512_separable_output.npy     [1, 14, 14, 512]
The layer weights are those of the seeded 1.0-224 network: Conv2d_7 of the
full-conv variant, and Conv2d_7_depthwise / Conv2d_7_pointwise of the standard one.";

/// The layer's name in file names and JSON.
const LAYER: &str = "layer_14x14x512";

/// A model to export.
enum Model {
    V1(MobileNetConfig),
    V2(MobileNetV2Config),
}

struct Args {
    out: PathBuf,
    models: Vec<Model>,
    layer: bool,
    time: bool,
    threads: Vec<usize>,
    runs: usize,
    seed: u64,
}

/// `A-R` (e.g. `0.25-128`) or `v2-A-R` (e.g. `v2-1.0-224`) as a configuration.
fn parse_model(s: &str) -> Result<Model, String> {
    let bad =
        || format!("--model: expected ALPHA-RESOLUTION such as 1.0-224 or v2-1.0-224, got {s:?}");
    let (v2, rest) = match s.strip_prefix("v2-") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (a, r) = rest.split_once('-').ok_or_else(bad)?;
    let (alpha, side) = (a.parse().map_err(|_| bad())?, r.parse().map_err(|_| bad())?);
    let invalid = |e: sepconv::Error| format!("--model {s}: {e}");
    Ok(if v2 {
        let config = MobileNetV2Config::new()
            .with_alpha(alpha)
            .with_resolution(side);
        config.validate().map_err(invalid)?;
        Model::V2(config)
    } else {
        let config = MobileNetConfig::new()
            .with_alpha(alpha)
            .with_resolution(side);
        config.validate().map_err(invalid)?;
        Model::V1(config)
    })
}

/// `--threads 1,2`: thread counts ≥ 1.
fn parse_threads(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|t| match t.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("--threads: {t:?} is not a thread count ≥ 1")),
        })
        .collect()
}

/// `Ok(None)` for `--help`.
fn parse() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        out: PathBuf::new(),
        models: vec![],
        layer: false,
        time: false,
        threads: vec![1, 2],
        runs: 50,
        seed: 0,
    };
    let (mut alpha, mut resolution) = (None, None);
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("out") => args.out = parser.value()?.into(),
            Long("model") => args.models.push(parse_model(&parser.value()?.string()?)?),
            Long("alpha") => alpha = Some(support::value::<f64>(&mut parser, "--alpha")?),
            Long("resolution") => {
                resolution = Some(support::value::<usize>(&mut parser, "--resolution")?)
            }
            Long("layer") => args.layer = true,
            Long("time") => args.time = true,
            Long("threads") => args.threads = parse_threads(&parser.value()?.string()?)?,
            Long("runs") => args.runs = support::value(&mut parser, "--runs")?,
            Long("seed") => args.seed = support::value(&mut parser, "--seed")?,
            _ => return Err(arg.unexpected()),
        }
    }
    if alpha.is_some() || resolution.is_some() {
        let config = MobileNetConfig::new()
            .with_alpha(alpha.unwrap_or(1.0))
            .with_resolution(resolution.unwrap_or(224));
        config.validate().map_err(|e| e.to_string())?;
        args.models.push(Model::V1(config));
    }
    if args.out.as_os_str().is_empty() {
        return Err("--out DIR is required".into());
    }
    if args.models.is_empty() && !args.layer && !args.time {
        return Err("nothing to do: give --model, --alpha/--resolution, --layer or --time".into());
    }
    if args.runs == 0 {
        return Err("--runs must be ≥ 1".into());
    }
    Ok(Some(args))
}

/// Deterministic values uniform in [−1, 1), from a [`SplitMix64`] seeded with `seed`.
fn uniform_tensor(shape: [usize; 4], seed: u64) -> Array4<f32> {
    let mut rng = SplitMix64::new(seed);
    Array4::from_shape_simple_fn(shape, || {
        // The top 24 bits, exactly representable in f32.
        ((rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    })
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Writes `prefix` + the model name: weights, input and logits.
fn export_model<C: Architecture>(
    config: &C,
    prefix: &str,
    seed: u64,
    out: &Path,
) -> Result<(), String> {
    let name = format!("mobilenet_{prefix}{}", config.name());
    let weights = MobileNetWeights::<f32>::seeded(config, seed).map_err(err)?;
    weights
        .save_safetensors(out.join(format!("{name}.safetensors")))
        .map_err(err)?;
    let net = MobileNet::<f32, C>::new(config, &weights).map_err(err)?;
    let x = uniform_tensor(net.input_shape(1), seed ^ 0x5EED_1A7E);
    let logits = net.forward(x.view()).map_err(err)?;
    support::write_npy_f32(&out.join(format!("{name}_input.npy")), &x)?;
    support::write_npy_f32(&out.join(format!("{name}_logits.npy")), &logits)?;
    eprintln!(
        "export: {name}: {} tensors, input {:?}, logits {:?}",
        weights.len(),
        x.shape(),
        logits.shape()
    );
    Ok(())
}

/// The 14×14×512 layer in both forms, with its input.
struct Layer {
    input: Array4<f32>,
    standard_weights: Array4<f32>,
    depthwise_weights: Array4<f32>,
    pointwise_weights: Array2<f32>,
    standard: Conv2d<f32>,
    separable: SeparableConv2d<f32>,
}

fn seeded_tensor(
    weights: &MobileNetWeights<f32>,
    name: &str,
    shape: &[usize],
) -> Result<ArrayD<f32>, String> {
    Ok(weights
        .tensor(&format!("MobilenetV1/{name}"), shape)
        .map_err(err)?
        .to_owned())
}

fn layer(seed: u64) -> Result<Layer, String> {
    let base = MobileNetConfig::new();
    let seeded = MobileNetWeights::<f32>::seeded(&base, seed).map_err(err)?;
    let full = MobileNetWeights::<f32>::seeded(&base.with_variant(Variant::FullConv), seed)
        .map_err(err)?;
    let c = 512;
    let as4 = |a: ArrayD<f32>| a.into_dimensionality::<Ix4>().map_err(err);
    let standard_weights = as4(seeded_tensor(&full, "Conv2d_7/weights", &[3, 3, c, c])?)?;
    let depthwise_weights = as4(seeded_tensor(
        &seeded,
        "Conv2d_7_depthwise/depthwise_weights",
        &[3, 3, c, 1],
    )?)?;
    let pointwise_weights = as4(seeded_tensor(
        &seeded,
        "Conv2d_7_pointwise/weights",
        &[1, 1, c, c],
    )?)?
    .index_axis_move(Axis(0), 0)
    .index_axis_move(Axis(0), 0);
    let standard = Conv2d::builder(standard_weights.clone())
        .padding(Padding::Same)
        .build()
        .map_err(err)?;
    let separable = SeparableConv2d::builder(depthwise_weights.clone(), pointwise_weights.clone())
        .padding(Padding::Same)
        .build()
        .map_err(err)?;
    Ok(Layer {
        input: uniform_tensor([1, 14, 14, c], seed ^ 0x1414_0512),
        standard_weights,
        depthwise_weights,
        pointwise_weights,
        standard,
        separable,
    })
}

fn export_layer(l: &Layer, out: &Path) -> Result<(), String> {
    let file = |part: &str| out.join(format!("{LAYER}_{part}.npy"));
    let standard = l.standard.forward(l.input.view()).map_err(err)?;
    let separable = l.separable.forward(l.input.view()).map_err(err)?;
    support::write_npy_f32(&file("input"), &l.input)?;
    support::write_npy_f32(&file("standard_weights"), &l.standard_weights)?;
    support::write_npy_f32(&file("standard_output"), &standard)?;
    support::write_npy_f32(&file("depthwise_weights"), &l.depthwise_weights)?;
    support::write_npy_f32(&file("pointwise_weights"), &l.pointwise_weights)?;
    support::write_npy_f32(&file("separable_output"), &separable)?;
    eprintln!("export: {LAYER}: input, weights and outputs of both forms");
    Ok(())
}

/// Median forward time of `f` (ms) after 3 warm-ups.
fn median_of(runs: usize, f: impl Fn() -> Result<(), String>) -> Result<f64, String> {
    for _ in 0..3 {
        f()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    Ok(support::median_ms(times))
}

fn time_layer(l: &Layer, threads: &[usize], runs: usize) -> Result<serde_json::Value, String> {
    let mut rows = Vec::new();
    for &t in threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(err)?;
        let (standard_ms, separable_ms) = pool.install(|| -> Result<(f64, f64), String> {
            let x = l.input.view();
            let standard = median_of(runs, || l.standard.forward(x).map(drop).map_err(err))?;
            let separable = median_of(runs, || l.separable.forward(x).map(drop).map_err(err))?;
            Ok((standard, separable))
        })?;
        rows.push(serde_json::json!({
            "threads": t, "standard_ms": standard_ms, "separable_ms": separable_ms,
        }));
    }
    Ok(serde_json::json!({ "layer": LAYER, "runs": runs, "timings": rows }))
}

fn run() -> Result<(), String> {
    let Some(args) = parse().map_err(|e| format!("{e}; see --help"))? else {
        println!("{HELP}");
        return Ok(());
    };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    for config in &args.models {
        match config {
            Model::V1(c) => export_model(c, "", args.seed, &args.out)?,
            Model::V2(c) => export_model(c, "v2-", args.seed, &args.out)?,
        }
    }
    if args.layer || args.time {
        let l = layer(args.seed)?;
        if args.layer {
            export_layer(&l, &args.out)?;
        }
        if args.time {
            println!("{}", time_layer(&l, &args.threads, args.runs)?);
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("export: {e}");
        std::process::exit(1);
    }
}
