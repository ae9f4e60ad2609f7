//! Build any MobileNet v1 configuration, print its cost table, and time a
//! forward pass with seeded weights.
//!
//! ```text
//! cargo run --release --example mobilenet -- --alpha 0.5 --resolution 160
//! cargo run --release --example mobilenet -- --variant full-conv --json
//! ```

#[path = "support/mod.rs"]
mod support;

use ndarray::Array4;
use sepconv::Activation;
use sepconv::mobilenet::{MobileNet, MobileNetConfig, Variant};

const HELP: &str = "\
mobilenet: cost table and forward time of a MobileNet v1 configuration (seeded weights)

usage: cargo run --release --example mobilenet -- [OPTIONS]

  --alpha A            width multiplier α, > 0 (default 1.0)
  --resolution R       input side, >= 32 (default 224)
  --rho P              resolution multiplier: side = round(224·ρ) (instead of --resolution)
  --variant V          standard | shallow | full-conv (default standard)
  --classes K          classifier outputs (default 1000)
  --depth-multiplier M depthwise channel multiplier (default 1)
  --relu               plain ReLU (as the paper's text) instead of ReLU6
  --batch N            images per forward (default 1)
  --threads T          rayon threads (default 0: all cores)
  --runs N             timed forward passes after one warm-up (default 10)
  --seed S             weight seed (default 0)
  --markdown           print the table as markdown
  --json               machine-readable output
  -h, --help           this text";

fn run() -> Result<(), String> {
    let mut config = MobileNetConfig::new();
    let (mut batch, mut threads, mut runs, mut seed) = (1usize, 0usize, 10usize, 0u64);
    let (mut json, mut markdown) = (false, false);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            "--alpha" => config.alpha = support::flag_value(&mut it, &arg)?,
            "--resolution" => config.resolution = support::flag_value(&mut it, &arg)?,
            "--rho" => config = config.with_rho(support::flag_value(&mut it, &arg)?),
            "--variant" => {
                config.variant = support::flag_value::<String>(&mut it, &arg)?
                    .parse::<Variant>()
                    .map_err(|e| e.to_string())?
            }
            "--classes" => config.classes = support::flag_value(&mut it, &arg)?,
            "--depth-multiplier" => config.depth_multiplier = support::flag_value(&mut it, &arg)?,
            "--relu" => config.activation = Activation::Relu,
            "--batch" => batch = support::flag_value(&mut it, &arg)?,
            "--threads" => threads = support::flag_value(&mut it, &arg)?,
            "--runs" => runs = support::flag_value(&mut it, &arg)?,
            "--seed" => seed = support::flag_value(&mut it, &arg)?,
            "--json" => json = true,
            "--markdown" => markdown = true,
            s => return Err(format!("unknown argument {s}; see --help")),
        }
    }
    if batch == 0 || runs == 0 {
        return Err("--batch and --runs must be ≥ 1".into());
    }
    // Run inside the pool (not from the main thread into it), so the
    // forward's parallel sections start on a worker instead of hopping cores.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    pool.install(|| report(config, batch, runs, seed, json, markdown))
}

fn report(
    config: MobileNetConfig,
    batch: usize,
    runs: usize,
    seed: u64,
    json: bool,
    markdown: bool,
) -> Result<(), String> {
    let net = MobileNet::<f32>::seeded(&config, seed).map_err(|e| e.to_string())?;
    let summary = net.summary();
    let x = Array4::<f32>::from_shape_fn(net.input_shape(batch), |(n, y, x, c)| {
        (((n * 7 + y * 3 + x * 5 + c) % 17) as f32 / 8.0) - 1.0
    });
    net.forward(x.view()).map_err(|e| e.to_string())?; // warm-up
    let ms = support::time_median_ms(runs, || {
        let _ = net.forward(x.view());
    });
    let gmacs = summary.total.mult_adds as f64 * batch as f64 / (ms * 1e6);
    if json {
        let layers: Vec<_> = summary
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.spec.name, "kind": r.spec.kind.key(), "stride": r.spec.stride,
                    "input": r.spec.input, "output": r.spec.output,
                    "mult_adds": r.cost.mult_adds, "params": r.cost.params.weights,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "alpha": config.alpha, "resolution": config.resolution, "variant": config.variant.name(),
                "classes": config.classes, "batch": batch, "threads": rayon::current_num_threads(),
                "mult_adds": summary.total.mult_adds, "params": summary.total.params.paper(),
                "params_total": summary.total.params.total(),
                "layers": layers, "forward_ms_median": ms, "gmacs": gmacs,
            })
        );
    } else {
        println!(
            "MobileNet v1 {} ({}), {} classes\n",
            config.name(),
            config.variant.name(),
            config.classes
        );
        print!(
            "{}",
            if markdown {
                summary.to_markdown()
            } else {
                summary.to_text()
            }
        );
        println!(
            "\nforward, batch {batch}, {} thread(s): {ms:.2} ms (median of {runs}), {gmacs:.1} GMAC/s",
            rayon::current_num_threads()
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("mobilenet: {e}");
        std::process::exit(1);
    }
}
