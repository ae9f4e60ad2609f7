//! The command line: options, their defaults and `--help`.

use std::path::PathBuf;

use crate::support;

pub const HELP: &str = "\
bench_report: standard vs depthwise separable conv on MobileNet v1's block shapes,
and whole MobileNet v1 and v2 networks, timed (median of repeated runs) and set against
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

Progress (step k of n, what is timed, seconds so far) goes to stderr, none
with --json; tables or JSON to stdout.";

/// Timed runs by default and with `--quick`.
pub const RUNS: usize = 21;
pub const QUICK_RUNS: usize = 5;
/// Untimed runs before the timed ones.
pub const WARMUP: usize = 2;
pub const QUICK_WARMUP: usize = 1;
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub threads: usize,
    pub runs: usize,
    pub warmup: usize,
    pub layers: bool,
    pub networks: bool,
    pub json: bool,
    pub json_out: Option<PathBuf>,
    pub svg: Option<PathBuf>,
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
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
) -> Result<Option<Options>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut o = Options::default();
    let (mut runs, mut quick) = (None, false);
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("threads") => o.threads = support::value(&mut parser, "--threads")?,
            Long("runs") => runs = Some(support::value(&mut parser, "--runs")?),
            Long("quick") => quick = true,
            Long("only") => match parser.value()?.string()?.as_str() {
                "layers" => o.networks = false,
                "networks" => o.layers = false,
                s => return Err(format!("--only: expected layers or networks, got {s:?}").into()),
            },
            Long("json") => o.json = true,
            Long("json-out") => o.json_out = Some(parser.value()?.into()),
            Long("svg") => o.svg = Some(parser.value()?.into()),
            Long("no-svg") => o.svg = None,
            _ => return Err(arg.unexpected()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Options>, lexopt::Error> {
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
}
