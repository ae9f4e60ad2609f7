//! The per-layer table of any network, from shapes alone.

use std::fmt::Write;

use crate::cost::Cost;
use crate::layer::SummaryRow;

/// A network's cost layer by layer, in the paper's convention
/// ([`crate::cost`]): mult-adds of the convs and dense layers, parameters by
/// part. Made by [`Sequential::summary`](super::Sequential::summary) from
/// shapes alone (no forward runs).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The network's input `[N, H, W, C]`.
    pub input: [usize; 4],
    /// One row per layer, containers opened (`block/0`, `block/add`, …).
    pub rows: Vec<SummaryRow>,
    /// The sum of the rows.
    pub total: Cost,
}

/// `n` with thousands separators: `568,740,352`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn hwc(s: [usize; 4]) -> String {
    format!("{}×{}×{}", s[1], s[2], s[3])
}

const HEADER: [&str; 7] = [
    "layer",
    "type / stride",
    "filter shape",
    "input",
    "output",
    "mult-adds",
    "params",
];

impl Summary {
    pub(crate) fn new(input: [usize; 4], rows: Vec<SummaryRow>) -> Self {
        let total = rows.iter().map(|r| r.cost).sum();
        Summary { input, rows, total }
    }

    fn cells(&self) -> Vec<[String; 7]> {
        let mut rows: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                let kind = match r.info.stride {
                    Some([sh, sw]) if sh == sw => format!("{} / s{sh}", r.info.kind),
                    Some([sh, sw]) => format!("{} / s{sh}×{sw}", r.info.kind),
                    None => r.info.kind.to_owned(),
                };
                [
                    r.name.clone(),
                    kind,
                    r.info.filter.clone().unwrap_or_default(),
                    hwc(r.input),
                    hwc(r.output),
                    thousands(r.cost.mult_adds),
                    thousands(r.cost.params.weights),
                ]
            })
            .collect();
        rows.push([
            "total".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            thousands(self.total.mult_adds),
            thousands(self.total.params.weights),
        ]);
        rows
    }

    /// The totals and the conventions, as a line under the table.
    fn footer(&self) -> String {
        let p = self.total.params;
        format!(
            "batch {}: {} mult-adds ({} FLOPs), {} parameters (conv + dense weights); \
             stored in all: {} (+ {} biases, {} BN γ/β, {} BN mean/var)",
            self.input[0],
            thousands(self.total.mult_adds),
            thousands(self.total.flops()),
            thousands(p.weights),
            thousands(p.total()),
            thousands(p.biases),
            thousands(p.bn_affine),
            thousands(p.bn_stats),
        )
    }

    /// The table as aligned plain text (numbers right-aligned), then the totals.
    pub fn to_text(&self) -> String {
        let rows = self.cells();
        let header = HEADER.map(String::from);
        let widths: Vec<usize> = (0..7)
            .map(|i| {
                rows.iter()
                    .chain([&header])
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, r: &[String; 7]| {
            for (i, cell) in r.iter().enumerate() {
                let pad = " ".repeat(widths[i] - cell.chars().count());
                let _ = match i >= 5 {
                    true => write!(out, "{pad}{cell}  "),
                    false => write!(out, "{cell}{pad}  "),
                };
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        };
        line(&mut out, &header);
        out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 12));
        out.push('\n');
        for r in &rows {
            line(&mut out, r);
        }
        out.push('\n');
        out.push_str(&self.footer());
        out.push('\n');
        out
    }

    /// The table as GitHub markdown, then the totals.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "| {} |\n| --- | --- | --- | --- | --- | ---: | ---: |\n",
            HEADER.join(" | ")
        );
        for r in &self.cells() {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        out.push('\n');
        out.push_str(&self.footer());
        out.push('\n');
        out
    }

    /// The table as JSON: `{"input": [N, H, W, C], "layers": [{"name",
    /// "kind", "stride", "filter", "input", "output", "mult_adds", "params":
    /// {"weights", "biases", "bn_affine", "bn_stats"}}, …], "total": {…}}`.
    pub fn to_json(&self) -> String {
        use serde_json::json;
        let params = |c: &Cost| {
            json!({
                "weights": c.params.weights,
                "biases": c.params.biases,
                "bn_affine": c.params.bn_affine,
                "bn_stats": c.params.bn_stats,
            })
        };
        let layers: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "kind": r.info.kind,
                    "stride": r.info.stride,
                    "filter": r.info.filter,
                    "input": r.input,
                    "output": r.output,
                    "mult_adds": r.cost.mult_adds,
                    "params": params(&r.cost),
                })
            })
            .collect();
        json!({
            "input": self.input,
            "layers": layers,
            "total": { "mult_adds": self.total.mult_adds, "params": params(&self.total) },
        })
        .to_string()
    }
}
