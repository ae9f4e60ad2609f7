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
//! - **networks, v2**: `MobileNetV2::<f32>::seeded` forwards over its α grid
//!   (1.0, 0.75, 0.5, 0.35) × the same resolutions, timed whole, each beside
//!   the v1 of the same α and resolution (mult-adds and time, v2 over v1),
//!   and drawn on the same chart.

//!
//! # Modules
//!
//! `args` (the command line), `layers` and `networks` (the two suites and
//! their timing), `report` (the pool they run in), `format` (markdown and
//! JSON), `svg` (the chart).

mod args;
mod format;
mod layers;
mod networks;
mod report;
#[path = "../support/mod.rs"]
mod support;
mod svg;

use args::{HELP, parse_args};
use report::run_report;
use svg::write_svg;

fn run() -> Result<(), String> {
    let Some(o) = parse_args(std::env::args().skip(1)).map_err(|e| format!("{e}; see --help"))?
    else {
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
        if !o.json {
            eprintln!("bench_report: chart written to {}", path.display());
        }
    }
    if !o.json {
        eprintln!(
            "bench_report: done in {:.1} s",
            report.elapsed.as_secs_f64()
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_report: {e}");
        std::process::exit(1);
    }
}
