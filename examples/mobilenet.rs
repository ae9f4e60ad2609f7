//! Build any MobileNet v1 or MobileNetV2 configuration, print its cost
//! table, and time a forward pass with seeded weights.
//!
//! ```text
//! cargo run --release --example mobilenet -- --alpha 0.5 --resolution 160
//! cargo run --release --example mobilenet -- --version 2 --classes 1001 --json
//! cargo run --release --example mobilenet -- --variant full-conv --json
//! cargo run --release --example mobilenet -- --threads 1 --profile   # time per layer
//! cargo run --release --example mobilenet -- --threads 1 --profile --json   # the same as JSON
//! cargo run --release --example mobilenet -- --threads 2 --scaling   # 1 vs 2 threads
//! ```

#[path = "support/mod.rs"]
mod support;

use ndarray::Array4;
use sepconv::Activation;
use sepconv::mobilenet::{Architecture, MobileNet, MobileNetConfig, MobileNetV2Config, Variant};

const HELP: &str = "\
mobilenet: cost table and forward time of a MobileNet v1 or v2 configuration (seeded weights)

usage: cargo run --release --example mobilenet -- [OPTIONS]

  --version V          1 (MobileNet v1, default) or 2 (MobileNetV2)
  --alpha A            width multiplier α, > 0 (default 1.0)
  --resolution R       input side, >= 32 (default 224)
  --rho P              resolution multiplier: side = round(224·ρ) (instead of --resolution)
  --variant V          v1: standard | shallow | full-conv (default standard)
  --classes K          classifier outputs (default 1000)
  --depth-multiplier M v1: depthwise channel multiplier (default 1)
  --relu               plain ReLU (as the paper's text) instead of ReLU6
  --batch N            images per forward (default 1)
  --threads T          rayon threads (default 0: all cores)
  --runs N             timed forward passes after one warm-up (default 10)
  --seed S             weight seed (default 0)
  --profile            time each layer (median over the runs) instead of the cost table;
                       with --json: each layer's name, output, mult-adds and median ms,
                       and the CPU (comparisons/layers.sh reads it)
  --scaling            time each layer and the forward with 1 thread and with --threads T
                       (default: all cores), alternating run by run, and print the speed-ups
  --markdown           print the table as markdown
  --json               machine-readable output
  -h, --help           this text";

/// The family asked for, and its configuration.
enum Model {
    V1(MobileNetConfig),
    V2(MobileNetV2Config),
}

struct Args {
    model: Model,
    opts: Opts,
}

/// `Ok(None)` for `--help`.
fn parse() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    // v1's settings hold every option; v2 takes the ones it shares.
    let mut config = MobileNetConfig::new();
    let (mut version, mut rho) = (1u32, None::<f64>);
    let mut a = Args {
        model: Model::V1(config),
        opts: Opts {
            batch: 1,
            threads: 0,
            runs: 10,
            seed: 0,
            json: false,
            markdown: false,
            profile: false,
            scaling: false,
        },
    };
    let mut parser = lexopt::Parser::from_env();
    use support::value as v;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("version") => version = v(&mut parser, "--version")?,
            Long("alpha") => config.alpha = v(&mut parser, "--alpha")?,
            Long("resolution") => config.resolution = v(&mut parser, "--resolution")?,
            Long("rho") => rho = Some(v(&mut parser, "--rho")?),
            Long("variant") => config.variant = v(&mut parser, "--variant")?,
            Long("classes") => config.classes = v(&mut parser, "--classes")?,
            Long("depth-multiplier") => {
                config.depth_multiplier = v(&mut parser, "--depth-multiplier")?
            }
            Long("relu") => config.activation = Activation::Relu,
            Long("batch") => a.opts.batch = v(&mut parser, "--batch")?,
            Long("threads") => a.opts.threads = v(&mut parser, "--threads")?,
            Long("runs") => a.opts.runs = v(&mut parser, "--runs")?,
            Long("seed") => a.opts.seed = v(&mut parser, "--seed")?,
            Long("json") => a.opts.json = true,
            Long("markdown") => a.opts.markdown = true,
            Long("profile") => a.opts.profile = true,
            Long("scaling") => a.opts.scaling = true,
            _ => return Err(arg.unexpected()),
        }
    }
    if let Some(rho) = rho {
        config = config.with_rho(rho);
    }
    a.model = match version {
        1 => Model::V1(config),
        2 if config.variant != Variant::Standard || config.depth_multiplier != 1 => {
            return Err("--variant and --depth-multiplier are MobileNet v1's".into());
        }
        2 => Model::V2(MobileNetV2Config {
            alpha: config.alpha,
            resolution: config.resolution,
            classes: config.classes,
            activation: config.activation,
            ..MobileNetV2Config::new()
        }),
        v => return Err(format!("--version {v}: expected 1 or 2").into()),
    };
    Ok(Some(a))
}

/// What the report says of a configuration beyond [`Architecture`].
struct Meta {
    version: u32,
    alpha: f64,
    classes: usize,
    variant: &'static str,
}

fn run() -> Result<(), String> {
    let Some(args) = parse().map_err(|e| format!("{e}; see --help"))? else {
        println!("{HELP}");
        return Ok(());
    };
    let Args { model, opts } = args;
    if opts.batch == 0 || opts.runs == 0 {
        return Err("--batch and --runs must be ≥ 1".into());
    }
    match model {
        Model::V1(c) => {
            let meta = Meta {
                version: 1,
                alpha: c.alpha,
                classes: c.classes,
                variant: c.variant.name(),
            };
            go(c, meta, opts)
        }
        Model::V2(c) => {
            let meta = Meta {
                version: 2,
                alpha: c.alpha,
                classes: c.classes,
                variant: "standard",
            };
            go(c, meta, opts)
        }
    }
}

/// The run's options other than the model.
struct Opts {
    batch: usize,
    runs: usize,
    seed: u64,
    threads: usize,
    json: bool,
    markdown: bool,
    profile: bool,
    scaling: bool,
}

fn go<C: Architecture>(config: C, meta: Meta, o: Opts) -> Result<(), String> {
    let Opts {
        batch,
        runs,
        seed,
        threads,
        json,
        markdown,
        profile,
        scaling,
    } = o;
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
        return pool.install(|| per_layer(config, &meta, batch, runs, seed, json));
    }
    pool.install(|| report(config, &meta, batch, runs, seed, json, markdown))
}

/// Deterministic test input for `net`.
fn input<C: Architecture>(net: &MobileNet<f32, C>, batch: usize) -> Array4<f32> {
    Array4::<f32>::from_shape_fn(net.input_shape(batch), |(n, y, x, c)| {
        (((n * 7 + y * 3 + x * 5 + c) % 17) as f32 / 8.0) - 1.0
    })
}

/// A profiled layer: name, output `[H, W, C]` and mult-adds for a batch of one.
type Row = (String, [usize; 3], u64);

/// `H×W×C`, as the tables print an output shape.
fn hwc([h, w, c]: &[usize; 3]) -> String {
    format!("{h}×{w}×{c}")
}

/// The layers of the network as it runs (v1: each conv; v2: the stem, each
/// inverted residual block, `Conv_1`), the pooling with the classifier.
fn rows<C: Architecture>(net: &MobileNet<f32, C>) -> Result<Vec<Row>, String> {
    let e = |e: sepconv::Error| e.to_string();
    let mut shape = net.input_shape(1);
    let mut rows: Vec<Row> = Vec::new();
    for (name, layer) in net.network().layers() {
        let cost = layer.cost(shape).map_err(e)?.mult_adds;
        shape = layer.output_shape(shape).map_err(e)?;
        let [_, h, w, c] = shape;
        if name == "Logits" {
            // The pooling's time is in the classifier's row.
            rows.pop();
        }
        rows.push((name.to_owned(), [h, w, c], cost));
    }
    if !net.config().include_top() {
        rows.pop();
    }
    Ok(rows)
}

/// This machine's CPU as the JSON reports it: the model name of Linux's
/// `/proc/cpuinfo` (null elsewhere) and the x86 vector extensions that
/// decide which kernels run (null off x86-64).
fn cpu_json() -> serde_json::Value {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        });
    #[cfg(target_arch = "x86_64")]
    let isa = serde_json::json!({
        "avx2": std::is_x86_feature_detected!("avx2"),
        "fma": std::is_x86_feature_detected!("fma"),
        "avx512f": std::is_x86_feature_detected!("avx512f"),
    });
    #[cfg(not(target_arch = "x86_64"))]
    let isa = serde_json::Value::Null;
    serde_json::json!({
        "model": model,
        "logical_cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "x86": isa,
    })
}

/// Prints each layer's median time over `runs` profiled forwards, as a
/// table or (`json`) as one JSON object.
fn per_layer<C: Architecture>(
    config: C,
    meta: &Meta,
    batch: usize,
    runs: usize,
    seed: u64,
    json: bool,
) -> Result<(), String> {
    let net = MobileNet::<f32, C>::seeded(&config, seed).map_err(|e| e.to_string())?;
    let summary = net.summary();
    let rows = rows(&net)?;
    let x = input(&net, batch);
    net.forward(x.view()).map_err(|e| e.to_string())?; // warm-up
    let mut samples = vec![Vec::with_capacity(runs); rows.len()];
    for _ in 0..runs {
        let (_, times) = net.forward_profiled(x.view()).map_err(|e| e.to_string())?;
        for (s, t) in samples.iter_mut().zip(times) {
            s.push(t);
        }
    }
    let medians: Vec<f64> = samples.into_iter().map(support::median_ms).collect();
    let total: f64 = medians.iter().sum();
    if json {
        let layers: Vec<_> = rows
            .iter()
            .zip(&medians)
            .map(|((name, output, mult_adds), ms)| {
                serde_json::json!({
                    "name": name, "output": output, "mult_adds": mult_adds, "median_ms": ms,
                })
            })
            .collect();
        // The summary's rows: the convolutions inside each profiled layer
        // (for v2 the expand, depthwise and project of each block).
        let parts: Vec<_> = summary
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.spec.name, "kind": r.spec.kind.key(), "stride": r.spec.stride,
                    "input": r.spec.input, "output": r.spec.output, "mult_adds": r.cost.mult_adds,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "version": meta.version, "alpha": meta.alpha, "resolution": config.resolution(),
                "variant": meta.variant, "classes": meta.classes, "batch": batch,
                "threads": rayon::current_num_threads(), "runs": runs, "seed": seed,
                "cpu": cpu_json(), "mult_adds": summary.total.mult_adds,
                "layers": layers, "sum_ms": total, "parts": parts,
            })
        );
        return Ok(());
    }
    println!(
        "{} {}, batch {batch}, {} thread(s), median of {runs} per layer\n",
        config.family(),
        config.name(),
        rayon::current_num_threads()
    );
    println!(
        "{:<24} {:>16} {:>14} {:>9} {:>7} {:>8}",
        "layer", "output", "mult-adds", "ms", "share", "GMAC/s"
    );
    for ((name, output, mult_adds), ms) in rows.iter().zip(&medians) {
        let macs = *mult_adds as f64 * batch as f64;
        println!(
            "{name:<24} {:>16} {mult_adds:>14} {ms:>9.3} {:>6.1}% {:>8.1}",
            hwc(output),
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
fn thread_scaling<C: Architecture>(
    config: C,
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
    let net = MobileNet::<f32, C>::seeded(&config, seed).map_err(|e| e.to_string())?;
    let rows = rows(&net)?;
    let x = input(&net, batch);
    let pools = [1, threads]
        .into_iter()
        .map(|t| rayon::ThreadPoolBuilder::new().num_threads(t).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let layers = rows.len();
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
        "{} {}, batch {batch}, 1 thread and {threads} threads alternating, median of {runs}\n",
        config.family(),
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
    for (((name, output, _), a), b) in rows.iter().zip(&one).zip(&many) {
        println!(
            "{name:<24} {:>16} {a:>10.3} {b:>10.3} {:>8.2}×",
            hwc(output),
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

fn report<C: Architecture>(
    config: C,
    meta: &Meta,
    batch: usize,
    runs: usize,
    seed: u64,
    json: bool,
    markdown: bool,
) -> Result<(), String> {
    let net = MobileNet::<f32, C>::seeded(&config, seed).map_err(|e| e.to_string())?;
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
                "version": meta.version, "alpha": meta.alpha, "resolution": config.resolution(),
                "variant": meta.variant, "classes": meta.classes, "batch": batch, "threads": rayon::current_num_threads(),
                "mult_adds": summary.total.mult_adds, "params": summary.total.params.paper(),
                "params_total": summary.total.params.total(),
                "layers": layers, "forward_ms_median": ms, "gmacs": gmacs,
            })
        );
    } else {
        let variant = match meta.version {
            1 => format!(" ({})", meta.variant),
            _ => String::new(),
        };
        println!(
            "{} {}{variant}, {} classes\n",
            config.family(),
            config.name(),
            meta.classes
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
