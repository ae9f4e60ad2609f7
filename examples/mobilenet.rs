//! Build any MobileNet v1 configuration, print its cost table, and time a
//! forward pass with seeded weights.
//!
//! ```text
//! cargo run --release --example mobilenet -- --alpha 0.5 --resolution 160
//! cargo run --release --example mobilenet -- --variant full-conv --json
//! cargo run --release --example mobilenet -- --threads 1 --profile   # time per layer
//! cargo run --release --example mobilenet -- --threads 2 --scaling   # 1 vs 2 threads
//! ```

#[path = "support/mod.rs"]
mod support;

use ndarray::Array4;
use sepconv::Activation;
use sepconv::mobilenet::{MobileNet, MobileNetConfig};

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
  --profile            time each layer (median over the runs) instead of the cost table
  --scaling            time each layer and the forward with 1 thread and with --threads T
                       (default: all cores), alternating run by run, and print the speed-ups
  --markdown           print the table as markdown
  --json               machine-readable output
  -h, --help           this text";

struct Args {
    config: MobileNetConfig,
    batch: usize,
    threads: usize,
    runs: usize,
    seed: u64,
    json: bool,
    markdown: bool,
    profile: bool,
    scaling: bool,
}

/// `Ok(None)` for `--help`.
fn parse() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut a = Args {
        config: MobileNetConfig::new(),
        batch: 1,
        threads: 0,
        runs: 10,
        seed: 0,
        json: false,
        markdown: false,
        profile: false,
        scaling: false,
    };
    let mut parser = lexopt::Parser::from_env();
    use support::value as v;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("alpha") => a.config.alpha = v(&mut parser, "--alpha")?,
            Long("resolution") => a.config.resolution = v(&mut parser, "--resolution")?,
            Long("rho") => a.config = a.config.with_rho(v(&mut parser, "--rho")?),
            Long("variant") => a.config.variant = v(&mut parser, "--variant")?,
            Long("classes") => a.config.classes = v(&mut parser, "--classes")?,
            Long("depth-multiplier") => {
                a.config.depth_multiplier = v(&mut parser, "--depth-multiplier")?
            }
            Long("relu") => a.config.activation = Activation::Relu,
            Long("batch") => a.batch = v(&mut parser, "--batch")?,
            Long("threads") => a.threads = v(&mut parser, "--threads")?,
            Long("runs") => a.runs = v(&mut parser, "--runs")?,
            Long("seed") => a.seed = v(&mut parser, "--seed")?,
            Long("json") => a.json = true,
            Long("markdown") => a.markdown = true,
            Long("profile") => a.profile = true,
            Long("scaling") => a.scaling = true,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(a))
}

fn run() -> Result<(), String> {
    let Some(args) = parse().map_err(|e| format!("{e}; see --help"))? else {
        println!("{HELP}");
        return Ok(());
    };
    let Args {
        config,
        batch,
        threads,
        runs,
        seed,
        json,
        markdown,
        profile,
        scaling,
    } = args;
    if batch == 0 || runs == 0 {
        return Err("--batch and --runs must be ≥ 1".into());
    }
    if scaling {
        if json || markdown || profile {
            return Err(
                "--scaling prints its own table: drop --json, --markdown and --profile".into(),
            );
        }
        return thread_scaling(config, batch, runs, seed, threads);
    }
    // Run inside the pool (not from the main thread into it), so the
    // forward's parallel sections start on a worker instead of hopping cores.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    if profile {
        return pool.install(|| per_layer(config, batch, runs, seed));
    }
    pool.install(|| report(config, batch, runs, seed, json, markdown))
}

/// Deterministic test input for `net`.
fn input(net: &MobileNet<f32>, batch: usize) -> Array4<f32> {
    Array4::<f32>::from_shape_fn(net.input_shape(batch), |(n, y, x, c)| {
        (((n * 7 + y * 3 + x * 5 + c) % 17) as f32 / 8.0) - 1.0
    })
}

/// Prints each layer's median time over `runs` profiled forwards.
fn per_layer(config: MobileNetConfig, batch: usize, runs: usize, seed: u64) -> Result<(), String> {
    let net = MobileNet::<f32>::seeded(&config, seed).map_err(|e| e.to_string())?;
    let summary = net.summary();
    let x = input(&net, batch);
    net.forward(x.view()).map_err(|e| e.to_string())?; // warm-up
    let mut samples = vec![Vec::with_capacity(runs); summary.rows.len()];
    for _ in 0..runs {
        let (_, times) = net.forward_profiled(x.view()).map_err(|e| e.to_string())?;
        for (s, t) in samples.iter_mut().zip(times) {
            s.push(t);
        }
    }
    let medians: Vec<f64> = samples.into_iter().map(support::median_ms).collect();
    let total: f64 = medians.iter().sum();
    println!(
        "MobileNet v1 {}, batch {batch}, {} thread(s), median of {runs} per layer\n",
        config.name(),
        rayon::current_num_threads()
    );
    println!(
        "{:<24} {:>16} {:>14} {:>9} {:>7} {:>8}",
        "layer", "output", "mult-adds", "ms", "share", "GMAC/s"
    );
    for (row, ms) in summary.rows.iter().zip(&medians) {
        let [h, w, c] = row.spec.output;
        let macs = row.cost.mult_adds as f64 * batch as f64;
        println!(
            "{:<24} {:>16} {:>14} {:>9.3} {:>6.1}% {:>8.1}",
            row.spec.name,
            format!("{h}×{w}×{c}"),
            row.cost.mult_adds,
            ms,
            100.0 * ms / total,
            macs / (ms * 1e6)
        );
    }
    let macs = summary.total.mult_adds as f64 * batch as f64;
    println!(
        "{:<24} {:>16} {:>14} {:>9.3} {:>6.1}% {:>8.1}",
        "sum",
        "",
        summary.total.mult_adds,
        total,
        100.0,
        macs / (total * 1e6)
    );
    Ok(())
}

/// Times each layer and the whole forward with one thread and with
/// `threads`, alternating the two pools run by run so that both see the same
/// machine (on a shared VM, runs minutes apart differ more than the speed-up
/// itself), and prints the medians and speed-ups. The sum of the layers
/// leaves out what happens between them (handing out the buffers, the
/// pool's hand-offs); the forward line includes it.
fn thread_scaling(
    config: MobileNetConfig,
    batch: usize,
    runs: usize,
    seed: u64,
    threads: usize,
) -> Result<(), String> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    };
    if threads < 2 {
        return Err(format!(
            "--scaling compares 1 thread with more: --threads {threads} (0 means all cores, \
             and this machine reports {})",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ));
    }
    let net = MobileNet::<f32>::seeded(&config, seed).map_err(|e| e.to_string())?;
    let summary = net.summary();
    let x = input(&net, batch);
    let pools = [1, threads]
        .into_iter()
        .map(|t| rayon::ThreadPoolBuilder::new().num_threads(t).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let layers = summary.rows.len();
    let mut forward = [Vec::with_capacity(runs), Vec::with_capacity(runs)];
    let mut per_layer = [
        vec![Vec::with_capacity(runs); layers],
        vec![Vec::with_capacity(runs); layers],
    ];
    for pool in &pools {
        pool.install(|| net.forward(x.view()))
            .map_err(|e| e.to_string())?; // warm-up
    }
    for _ in 0..runs {
        for (p, pool) in pools.iter().enumerate() {
            pool.install(|| -> Result<(), String> {
                // The profiled forward first: it wakes this pool's workers
                // after the other pool's turn, so the timed forward after it
                // sees a warm pool, as forwards run back to back do.
                let (_, times) = net.forward_profiled(x.view()).map_err(|e| e.to_string())?;
                for (s, t) in per_layer[p].iter_mut().zip(times) {
                    s.push(t);
                }
                let t = std::time::Instant::now();
                std::hint::black_box(net.forward(x.view()).map_err(|e| e.to_string())?);
                forward[p].push(t.elapsed());
                Ok(())
            })?;
        }
    }
    let [one, many] = per_layer.map(|l| l.into_iter().map(support::median_ms).collect::<Vec<_>>());
    println!(
        "MobileNet v1 {}, batch {batch}, 1 thread and {threads} threads alternating, median of {runs}\n",
        config.name()
    );
    println!(
        "{:<24} {:>16} {:>10} {:>10} {:>9}",
        "layer",
        "output",
        "ms 1T",
        format!("ms {threads}T"),
        "speed-up"
    );
    for ((row, a), b) in summary.rows.iter().zip(&one).zip(&many) {
        let [h, w, c] = row.spec.output;
        println!(
            "{:<24} {:>16} {a:>10.3} {b:>10.3} {:>8.2}×",
            row.spec.name,
            format!("{h}×{w}×{c}"),
            a / b
        );
    }
    let (a, b): (f64, f64) = (one.iter().sum(), many.iter().sum());
    println!(
        "{:<24} {:>16} {a:>10.3} {b:>10.3} {:>8.2}×",
        "sum of layers",
        "",
        a / b
    );
    let [a, b] = forward.map(support::median_ms);
    println!(
        "{:<24} {:>16} {a:>10.3} {b:>10.3} {:>8.2}×",
        "forward",
        "",
        a / b
    );
    Ok(())
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
    let x = input(&net, batch);
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
