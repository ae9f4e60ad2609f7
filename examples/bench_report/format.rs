//! The report as markdown tables and as JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::networks::{ALPHAS, BATCH, KIND_LABELS, NetResult, RESOLUTIONS, V2Result, table_rows};
use crate::report::Report;
use sepconv::mobilenet::Variant;

pub fn thousands(n: u64) -> String {
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

pub fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

impl Report {
    pub fn markdown(&self) -> String {
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
        if !self.networks_v2.is_empty() {
            s.push_str(
                "\n### Networks: MobileNetV2 forward (f32, seeded weights, BN folded, batch 1)\n\n\
                 Beside each, the MobileNet v1 of the same α and resolution where it was timed: \
                 v2's mult-adds and time over v1's.\n\n\
                 | model | mult-adds | params | ms | GMAC/s | v1 ms | mult-adds v2/v1 | time v2/v1 |\n\
                 | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            );
            for n in &self.networks_v2 {
                let _ = write!(
                    s,
                    "| {} | {} | {} | {:.2} | {:.1} |",
                    n.model(),
                    thousands(n.madds),
                    thousands(n.params),
                    n.ms,
                    n.gmacs()
                );
                match self.v1_twin(n) {
                    Some(v1) => {
                        let _ = writeln!(
                            s,
                            " {:.2} | {:.2} | {:.2} |",
                            v1.ms,
                            n.madds as f64 / v1.madds as f64,
                            n.ms / v1.ms
                        );
                    }
                    None => {
                        let _ = writeln!(s, " – | – | – |");
                    }
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

    pub fn json(&self) -> Value {
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
        let v2_json = |n: &V2Result| {
            let v1 = self.v1_twin(n);
            json!({
                "model": n.config.name(), "version": 2, "batch": 1,
                "mult_adds": n.madds, "params": n.params, "ms": n.ms, "gmacs": n.gmacs(),
                "v1_ms": v1.map(|v| v.ms),
                "mult_adds_over_v1": v1.map(|v| n.madds as f64 / v.madds as f64),
                "time_over_v1": v1.map(|v| n.ms / v.ms),
            })
        };
        json!({
            "threads": self.threads, "runs": self.runs, "warmup": self.warmup, "cpu": self.cpu,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "layers": layers,
            "networks": table_rows(&self.networks).into_iter().map(net_json).collect::<Vec<_>>(),
            "grid": self.grid().map(net_json).collect::<Vec<_>>(),
            "networks_v2": self.networks_v2.iter().map(v2_json).collect::<Vec<_>>(),
            "batch_throughput": self.batches.map(|b| json!({
                "model": "1.0-224", "batch": BATCH, "ms_batch1": b.ms_batch1,
                "ms_per_image_batch8": b.ms_per_image_batch8, "ratio": b.ratio(),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::report::tests::fake_report;

    #[test]
    fn json_has_the_documented_shape() {
        let j = fake_report().json();
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
        let v2 = j["networks_v2"].as_array().unwrap();
        assert_eq!(v2.len(), 16);
        assert_eq!(v2[0]["model"], "1.0-224");
        assert_eq!(v2[0]["mult_adds"], 300_774_272);
        // 1.0-224 has a v1 twin; 0.35 does not.
        assert_eq!(v2[0]["v1_ms"], j["grid"][0]["ms"]);
        assert!(v2[15]["v1_ms"].is_null());
        assert_eq!(j["batch_throughput"]["ratio"], 1.25);
        assert_eq!(j["batch_throughput"]["batch"], 8);
    }

    #[test]
    fn markdown() {
        let r = fake_report();
        let md = r.markdown();
        assert!(md.contains("| sep/14x14x512->512 | 462,422,016 | 52,283,392 | 8.8445× |"));
        assert!(md.contains("| 1.0-224 | full-conv | 1 | 4,867,293,184 |"));
        assert!(md.contains("| 20.00 | 16.00 | 1.25× |"));
        assert!(
            md.contains("| v2 1.0-224 | 300,774,272 | 3,469,760 |"),
            "{md}"
        );
    }
}
