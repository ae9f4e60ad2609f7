//! The per-layer table of any network, from shapes alone.

use std::fmt::Write;

use crate::cost::Cost;
use crate::layer::SummaryRow;

/// A network's cost layer by layer, in the paper's convention
/// ([`crate::cost`]): mult-adds of the convs and dense layers, parameters by
/// part. Made by [`Sequential::summary`](super::Sequential::summary) from
/// shapes alone (no forward runs).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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

/// A table row: the five descriptive cells, then the cost's mult-adds and
/// weights.
pub(crate) type Cells = [String; 7];

/// The cells of a row: `name`, `kind`, `filter`, `input`, `output` and `cost`.
pub(crate) fn cells(
    name: String,
    kind: String,
    filter: String,
    input: String,
    output: String,
    cost: &Cost,
) -> Cells {
    [
        name,
        kind,
        filter,
        input,
        output,
        thousands(cost.mult_adds),
        thousands(cost.params.weights),
    ]
}

/// The `total` row.
pub(crate) fn total_cells(total: &Cost) -> Cells {
    let blank = String::new;
    cells("total".into(), blank(), blank(), blank(), blank(), total)
}

/// `rows` as aligned plain text under the header (numbers right-aligned).
pub(crate) fn text_table(rows: &[Cells]) -> String {
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
    let line = |out: &mut String, r: &Cells| {
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
    for r in rows {
        line(&mut out, r);
    }
    out
}

/// `rows` as a GitHub markdown table.
pub(crate) fn markdown_table(rows: &[Cells]) -> String {
    let mut out = format!(
        "| {} |\n| --- | --- | --- | --- | --- | ---: | ---: |\n",
        HEADER.join(" | ")
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out
}

/// The totals line: `{what}: … mult-adds (… FLOPs), … parameters ({weights});
/// stored in all: …`.
pub(crate) fn totals_line(what: &str, weights: &str, total: &Cost) -> String {
    let p = total.params;
    format!(
        "{what}: {} mult-adds ({} FLOPs), {} parameters ({weights}); \
         stored in all: {} (+ {} biases, {} BN γ/β, {} BN mean/var)",
        thousands(total.mult_adds),
        thousands(total.flops()),
        thousands(p.weights),
        thousands(p.total()),
        thousands(p.biases),
        thousands(p.bn_affine),
        thousands(p.bn_stats),
    )
}

impl Summary {
    pub(crate) fn new(input: [usize; 4], rows: Vec<SummaryRow>) -> crate::Result<Self> {
        let total = rows.iter().try_fold(Cost::default(), |t, r| {
            t.checked_add(r.cost, "a network's cost")
        })?;
        Ok(Summary { input, rows, total })
    }

    fn cells(&self) -> Vec<Cells> {
        let mut rows: Vec<Cells> = self
            .rows
            .iter()
            .map(|r| {
                let kind = match r.info.stride {
                    Some([sh, sw]) if sh == sw => format!("{} / s{sh}", r.info.kind),
                    Some([sh, sw]) => format!("{} / s{sh}×{sw}", r.info.kind),
                    None => r.info.kind.to_owned(),
                };
                let filter = r.info.filter.clone().unwrap_or_default();
                cells(
                    r.name.clone(),
                    kind,
                    filter,
                    hwc(r.input),
                    hwc(r.output),
                    &r.cost,
                )
            })
            .collect();
        rows.push(total_cells(&self.total));
        rows
    }

    fn footer(&self) -> String {
        let what = format!("batch {}", self.input[0]);
        totals_line(&what, "conv + dense weights", &self.total)
    }

    /// The table as aligned plain text (numbers right-aligned), then the totals.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n", text_table(&self.cells()), self.footer())
    }

    /// The table as GitHub markdown, then the totals.
    pub fn to_markdown(&self) -> String {
        format!("{}\n{}\n", markdown_table(&self.cells()), self.footer())
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

/// The table as [`to_text`](Summary::to_text) prints it.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}
