//! Runs every graph of `manifest.tsv` (written by `comparisons/build_onnx.py`)
//! in tract: loads the .onnx, optimizes it, checks the output against
//! sepconv's (max |diff| / max |ref| ≤ tol, else exit status 1 naming the
//! graph), and takes the median of timed runs after warm-ups. Only
//! `run` is timed; the input tensor is built beforehand.
//!
//! Threads: tract runs single-threaded by default. With its `multithread-mm`
//! feature (enabled in Cargo.toml) matrix products can run on a rayon pool
//! through `multithread::Executor`, set here per thread count with
//! `multithread_tract_scope`; the other ops stay single-threaded.
//!
//! ```text
//! sepconv-compare-tract MANIFEST [--threads 1,2] [--runs N] [--warmup N] [--tol T]
//! ```
//!
//! Prints `{"engine", "version", "results": [{"case", "threads", "median_ms",
//! "runs", "max_rel_diff"}]}` on stdout, progress on stderr.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tract_onnx::prelude::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;

const USAGE: &str =
    "usage: sepconv-compare-tract MANIFEST [--threads 1,2] [--runs N] [--warmup N] [--tol T]";
/// The tract-onnx version this is built against (pinned in Cargo.toml).
const TRACT_VERSION: &str = "0.23.9";

struct Args {
    manifest: PathBuf,
    threads: Vec<usize>,
    runs: usize,
    warmup: usize,
    tol: f64,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        manifest: PathBuf::new(),
        threads: vec![1, 2],
        runs: 50,
        warmup: 5,
        tol: 1e-4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Err(USAGE.into()),
            "--threads" => {
                args.threads = value("--threads")?
                    .split(',')
                    .map(|t| match t.trim().parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("--threads: {t:?} is not a thread count ≥ 1")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--runs" => args.runs = parse_num(&value("--runs")?, "--runs")?,
            "--warmup" => args.warmup = parse_num(&value("--warmup")?, "--warmup")?,
            "--tol" => args.tol = parse_num(&value("--tol")?, "--tol")?,
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s => args.manifest = s.into(),
        }
    }
    if args.manifest.as_os_str().is_empty() {
        return Err(USAGE.into());
    }
    if args.runs == 0 {
        return Err("--runs must be ≥ 1".into());
    }
    Ok(args)
}

fn parse_num<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{flag}: cannot parse {s:?}"))
}

/// Reads a little-endian float32 `.npy` file in C order (format 1.0–3.0).
fn read_npy(path: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |m: &str| format!("{}: not a float32 .npy file: {m}", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("bad magic"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("unsupported version {v}"))),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or non-text header"))?;
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(bad(&format!("need '<f4' in C order, header {header:?}")));
    }
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_, _>>()?;
    let data: Vec<f32> = bytes[start + len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if data.len() != shape.iter().product::<usize>() {
        return Err(bad(&format!("{} values for shape {shape:?}", data.len())));
    }
    Tensor::from_shape(&shape, &data).map_err(|e| bad(&e.to_string()))
}

/// max |got − ref| / max |ref|, in f64.
fn max_rel_diff(got: &Tensor, reference: &Tensor) -> Result<f64, String> {
    if got.shape() != reference.shape() {
        return Err(format!(
            "output shape {:?}, expected {:?}",
            got.shape(),
            reference.shape()
        ));
    }
    let (g, r) = (
        got.to_plain_array_view::<f32>()
            .map_err(|e| e.to_string())?,
        reference
            .to_plain_array_view::<f32>()
            .map_err(|e| e.to_string())?,
    );
    let diff = g
        .iter()
        .zip(r.iter())
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .fold(0.0, f64::max);
    let scale = r.iter().map(|&b| (b as f64).abs()).fold(0.0, f64::max);
    Ok(diff / scale)
}

fn median_ms(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let mid = if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    };
    mid * 1e3
}

struct Row {
    case: String,
    threads: usize,
    median_ms: f64,
    max_rel_diff: f64,
}

fn run() -> Result<(), String> {
    let args = parse()?;
    let root = args.manifest.parent().unwrap_or(Path::new("."));
    let manifest = std::fs::read_to_string(&args.manifest)
        .map_err(|e| format!("{}: {e}", args.manifest.display()))?;
    let (mut rows, mut failures) = (Vec::new(), Vec::new());
    for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
        let [name, graph, input, expected] =
            <[&str; 4]>::try_from(line.split('\t').collect::<Vec<_>>())
                .map_err(|_| format!("{}: bad line {line:?}", args.manifest.display()))?;
        let model = tract_onnx::onnx()
            .model_for_path(root.join(graph))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("{graph}: tract could not load it: {e:?}"))?;
        let x = read_npy(&root.join(input))?;
        let reference = read_npy(&root.join(expected))?;
        for &t in &args.threads {
            let executor = if t == 1 {
                Executor::SingleThread
            } else {
                Executor::multithread(t)
            };
            let row = multithread_tract_scope(executor, || -> Result<Option<Row>, String> {
                let once = || -> Result<Tensor, String> {
                    let mut out = model
                        .run(tvec!(x.clone().into()))
                        .map_err(|e| format!("{name}: {e:?}"))?;
                    Ok(out.remove(0).into_tensor())
                };
                let rel = max_rel_diff(&once()?, &reference).map_err(|e| format!("{name}: {e}"))?;
                if rel.is_nan() || rel > args.tol {
                    let msg = format!(
                        "{name}, {t} thread(s): max |diff| / max |ref| = {rel:.3e} > {:e}",
                        args.tol
                    );
                    eprintln!("tract: MISMATCH {msg}");
                    failures.push(msg);
                    return Ok(None);
                }
                for _ in 0..args.warmup {
                    once()?;
                }
                let mut times = Vec::with_capacity(args.runs);
                for _ in 0..args.runs {
                    let input = tvec!(x.clone().into());
                    let start = Instant::now();
                    model.run(input).map_err(|e| format!("{name}: {e:?}"))?;
                    times.push(start.elapsed().as_secs_f64());
                }
                Ok(Some(Row {
                    case: name.into(),
                    threads: t,
                    median_ms: median_ms(times),
                    max_rel_diff: rel,
                }))
            })?;
            if let Some(r) = row {
                eprintln!(
                    "tract: {:34} {} thread(s) {:9.3} ms   max rel diff {:.2e}",
                    r.case, r.threads, r.median_ms, r.max_rel_diff
                );
                rows.push(r);
            }
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "outputs disagree with sepconv's:\n  {}",
            failures.join("\n  ")
        ));
    }
    let results: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"case\": \"{}\", \"threads\": {}, \"median_ms\": {}, \"runs\": {}, \"max_rel_diff\": {:e}}}",
                r.case, r.threads, r.median_ms, args.runs, r.max_rel_diff
            )
        })
        .collect();
    println!(
        "{{\"engine\": \"tract\", \"version\": \"{TRACT_VERSION}\", \"results\": [{}]}}",
        results.join(", ")
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("tract: {e}");
        std::process::exit(1);
    }
}
