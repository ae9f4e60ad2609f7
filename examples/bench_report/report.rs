//! The report: every suite run inside one thread pool, and what the
//! report knows of the machine.

use std::time::{Duration, Instant};

use sepconv::init::SplitMix64;
use sepconv::mobilenet::{MobileNetConfig, Variant};

use crate::args::Options;
use crate::layers::{LayerResult, Rng, blocks, time_block};
use crate::networks::{
    ALPHAS, BATCH, BatchResult, NetResult, RESOLUTIONS, V2Result, network_cases, time_batches,
    time_network, time_v2, v2_cases,
};

pub struct Report {
    pub threads: usize,
    pub runs: usize,
    pub warmup: usize,
    pub cpu: String,
    pub elapsed: Duration,
    pub layers: Vec<LayerResult>,
    pub networks: Vec<NetResult>,
    /// MobileNetV2's α × resolution grid at batch 1.
    pub networks_v2: Vec<V2Result>,
    /// 1.0-224 at batch 8 against batch 1, alternating.
    pub batches: Option<BatchResult>,
}

/// Runs the suites inside a pool of `o.threads` threads.
pub fn run_report(o: &Options) -> Result<Report, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(o.threads)
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    // Progress on stderr: step k of n, what is timed, time so far; none
    // under --json.
    let (blocks, cases) = (blocks(), network_cases());
    let total =
        if o.layers { blocks.len() } else { 0 } + if o.networks { cases.len() + 1 } else { 0 };
    let mut step = 0;
    let mut progress = |what: String| {
        step += 1;
        if !o.json {
            eprintln!(
                "bench_report: [{step}/{total}] {what} ({:.0} s so far)",
                start.elapsed().as_secs_f64()
            );
        }
    };
    pool.install(|| {
        let threads = rayon::current_num_threads();
        let mut layers = Vec::new();
        if o.layers {
            let mut rng = Rng(SplitMix64::new(0x5EB_C0DE));
            for &b in &blocks {
                progress(format!("layers {}", b.name()));
                layers.push(time_block(b, o, &mut rng)?);
            }
        }
        let mut networks = Vec::new();
        if o.networks {
            for &(config, batch) in &cases {
                progress(format!(
                    "network {} {} batch {batch}",
                    config.name(),
                    config.variant.name()
                ));
                networks.push(time_network(config, batch, o)?);
            }
        }
        let mut networks_v2 = Vec::new();
        if o.networks {
            for config in v2_cases() {
                eprintln!("bench_report: network v2 {}", config.name());
                networks_v2.push(time_v2(config, o)?);
            }
        }
        let batches = if o.networks {
            progress(format!(
                "1.0-224 batch {BATCH} against batch 1, alternating"
            ));
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
            networks_v2,
            batches,
        })
    })
}

/// The CPU's model name from /proc/cpuinfo, or "unknown CPU".
pub fn cpu_name() -> String {
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

impl Report {
    /// The MobileNet v1 of `v2`'s α and resolution, where it was timed.
    pub fn v1_twin(&self, v2: &V2Result) -> Option<&NetResult> {
        let (a, r) = (v2.config.alpha, v2.config.resolution);
        self.grid().find(|n| n.is(a, r, Variant::Standard, 1))
    }

    /// The α × resolution networks at batch 1.
    pub fn grid(&self) -> impl Iterator<Item = &NetResult> {
        self.networks.iter().filter(|n| {
            n.batch == 1
                && n.config.variant == Variant::Standard
                && ALPHAS.contains(&n.config.alpha)
                && RESOLUTIONS.contains(&n.config.resolution)
        })
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::layers::blocks;
    use crate::networks::{Shares, V2Result, v2_cases};

    pub fn fake_report() -> Report {
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
            networks_v2: v2_cases()
                .into_iter()
                .map(|config| {
                    let total = config.summary().unwrap().total;
                    V2Result {
                        config,
                        madds: total.mult_adds,
                        params: total.params.paper(),
                        ms: total.mult_adds as f64 / 12e6,
                    }
                })
                .collect(),
            batches: Some(BatchResult {
                ms_batch1: 20.0,
                ms_per_image_batch8: 16.0,
            }),
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
