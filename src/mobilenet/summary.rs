//! The per-layer cost table of a MobileNet configuration.

use super::{Architecture, LayerKind, LayerSpec, MobileNetConfig};
use crate::cost::Cost;
use crate::error::Result;
use crate::net::summary::{Cells, cells, markdown_table, text_table, total_cells, totals_line};

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LayerRow {
    /// The layer.
    pub spec: LayerSpec,
    /// Its cost (batch 1), BatchNorm parameters included as parts.
    pub cost: Cost,
}

impl LayerRow {
    /// The paper's filter-shape notation: `3×3×3×32`, `3×3×32 dw`, `1×1×32×64`, `1024×1000`.
    pub fn filter(&self) -> String {
        let [kh, kw, ci, co] = self.spec.weight_shape();
        match self.spec.kind {
            LayerKind::Depthwise if co == 1 => format!("{kh}×{kw}×{ci} dw"),
            LayerKind::Depthwise => format!("{kh}×{kw}×{ci}×{co} dw"),
            LayerKind::FullyConnected => format!("{ci}×{co}"),
            _ => format!("{kh}×{kw}×{ci}×{co}"),
        }
    }
}

/// Share of mult-adds and parameters of one layer type (the paper's Table 2).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Breakdown {
    /// The layer type.
    pub kind: LayerKind,
    /// Its mult-adds.
    pub mult_adds: u64,
    /// Its parameters (paper convention: weights).
    pub params: u64,
    /// Share of all mult-adds, 0–1.
    pub mult_adds_share: f64,
    /// Share of all parameters, 0–1.
    pub params_share: f64,
}

/// A network's cost, layer by layer, in the paper's convention
/// ([`crate::cost`]), for a MobileNet v1 ([`MobileNetConfig`], the default
/// `C`) or v2 ([`MobileNetV2Config`](super::v2::MobileNetV2Config)).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Summary<C = MobileNetConfig> {
    /// The configuration summarized.
    pub config: C,
    /// One row per layer, in order.
    pub rows: Vec<LayerRow>,
    /// Sum of all rows.
    pub total: Cost,
}

fn hwc(s: [usize; 3]) -> String {
    format!("{}×{}×{}", s[0], s[1], s[2])
}

impl<C: Architecture> Summary<C> {
    pub(crate) fn new(config: &C) -> Result<Self> {
        let rows = config
            .layers()?
            .into_iter()
            .map(|spec| {
                Ok(LayerRow {
                    cost: spec.cost()?,
                    spec,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let total = rows.iter().map(|r| r.cost).sum();
        Ok(Summary {
            config: config.clone(),
            rows,
            total,
        })
    }

    /// Mult-adds and parameters per layer type, with their shares (types
    /// absent from the network are left out).
    pub fn breakdown(&self) -> Vec<Breakdown> {
        let kinds = [
            LayerKind::Pointwise,
            LayerKind::Depthwise,
            LayerKind::Conv,
            LayerKind::FullyConnected,
        ];
        kinds
            .into_iter()
            .filter_map(|kind| {
                let rows = self.rows.iter().filter(|r| r.spec.kind == kind);
                let c: Cost = rows.map(|r| r.cost).sum();
                (c.params.weights > 0).then(|| Breakdown {
                    kind,
                    mult_adds: c.mult_adds,
                    params: c.params.weights,
                    mult_adds_share: c.mult_adds as f64 / self.total.mult_adds as f64,
                    params_share: c.params.weights as f64 / self.total.params.weights as f64,
                })
            })
            .collect()
    }

    fn cells(&self) -> Vec<Cells> {
        let mut rows: Vec<Cells> = self
            .rows
            .iter()
            .map(|r| {
                let kind = format!("{} / s{}", r.spec.kind.label(), r.spec.stride);
                let (input, output) = (hwc(r.spec.input), hwc(r.spec.output));
                cells(
                    r.spec.name.clone(),
                    kind,
                    r.filter(),
                    input,
                    output,
                    &r.cost,
                )
            })
            .collect();
        rows.push(total_cells(&self.total));
        rows
    }

    /// The totals and conventions, as a line under the table.
    fn footer(&self) -> String {
        let name = format!("{} {}", self.config.family(), self.config.name());
        totals_line(&name, "paper: conv + FC weights", &self.total)
    }

    /// The breakdown by layer type as lines `type: x% of mult-adds, y% of parameters`.
    fn breakdown_lines(&self, bullet: &str) -> String {
        self.breakdown()
            .iter()
            .map(|b| {
                format!(
                    "{bullet}{}: {:.2}% of mult-adds, {:.2}% of parameters\n",
                    b.kind.label(),
                    100.0 * b.mult_adds_share,
                    100.0 * b.params_share
                )
            })
            .collect()
    }

    /// The table as aligned plain text, then totals and the breakdown.
    pub fn to_text(&self) -> String {
        let table = text_table(&self.cells());
        format!("{table}\n{}\n{}", self.footer(), self.breakdown_lines("  "))
    }

    /// The table as GitHub markdown, then totals and the breakdown.
    pub fn to_markdown(&self) -> String {
        let table = markdown_table(&self.cells());
        format!(
            "{table}\n{}\n\n{}",
            self.footer(),
            self.breakdown_lines("- ")
        )
    }
}

/// The table as [`to_text`](Summary::to_text) prints it.
///
/// ```
/// let s = sepconv::mobilenet::MobileNetConfig::new().with_alpha(0.25).summary()?;
/// assert_eq!(s.to_string(), s.to_text());
/// assert!(s.to_string().contains("Conv2d_13_pointwise"));
/// # Ok::<(), sepconv::Error>(())
/// ```
impl<C: Architecture> std::fmt::Display for Summary<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}
