//! The MobileNet paper's cost tables, recomputed from the builder alone, and
//! beside them the grid of MobileNetV2's published checkpoints.
//!
//! ```text
//! cargo run --example flops            # markdown
//! cargo run --example flops -- --json
//! ```
//!
//! Mult-adds count the multiplications of conv and FC layers (1 mult-add =
//! 2 FLOPs); parameters are conv and FC weights (the paper's convention; see
//! `sepconv::cost`).

use sepconv::cost::{self, Cost};
use sepconv::mobilenet::{MobileNetConfig, MobileNetV2Config, Summary, Variant};

const HELP: &str = "\
flops: the MobileNet paper's cost tables (Tables 2-7) and MobileNetV2's checkpoint grid, recomputed by sepconv

usage: cargo run --example flops -- [--json]";

struct Row {
    table: &'static str,
    model: String,
    mult_adds: u64,
    params: u64,
    /// The paper's figures (millions), for side-by-side reading.
    paper: (f64, f64),
}

fn network(
    table: &'static str,
    model: &str,
    c: MobileNetConfig,
    paper: (f64, f64),
) -> Result<Row, sepconv::Error> {
    let s = c.summary()?;
    Ok(Row {
        table,
        model: model.into(),
        mult_adds: s.total.mult_adds,
        params: s.total.params.paper(),
        paper,
    })
}

/// One 14×14×512 → 512 layer (the paper's Table 3): standard 3×3 conv,
/// depthwise separable, then with α = 0.75 and ρ = 0.714 (side 10).
fn layer_rows() -> Result<Vec<Row>, sepconv::Error> {
    let sep = |side: usize, c: usize| -> Result<Cost, sepconv::Error> {
        Ok(cost::depthwise([1, side, side], [3, 3], c, 1, false)?
            + cost::pointwise([1, side, side], c, c, false)?)
    };
    let rows = [
        (
            "Convolution",
            cost::conv2d([1, 14, 14], [3, 3], 512, 512, 1, false)?,
            (462.0, 2.36),
        ),
        ("Depthwise Separable Conv", sep(14, 512)?, (52.3, 0.27)),
        ("α = 0.75", sep(14, 384)?, (29.6, 0.15)),
        ("ρ = 0.714", sep(10, 384)?, (15.1, 0.15)),
    ];
    Ok(rows
        .into_iter()
        .map(|(model, c, paper)| Row {
            table: "3",
            model: model.into(),
            mult_adds: c.mult_adds,
            params: c.params.weights,
            paper,
        })
        .collect())
}

fn rows() -> Result<Vec<Row>, sepconv::Error> {
    let m = MobileNetConfig::new;
    let mut rows = layer_rows()?;
    rows.push(network(
        "4",
        "Conv MobileNet",
        m().with_variant(Variant::FullConv),
        (4866.0, 29.3),
    )?);
    rows.push(network("4", "MobileNet", m(), (569.0, 4.2))?);
    rows.push(network(
        "5",
        "0.75 MobileNet",
        m().with_alpha(0.75),
        (325.0, 2.6),
    )?);
    rows.push(network(
        "5",
        "Shallow MobileNet",
        m().with_variant(Variant::Shallow),
        (307.0, 2.9),
    )?);
    for (a, paper) in [
        (1.0, (569.0, 4.2)),
        (0.75, (325.0, 2.6)),
        (0.5, (149.0, 1.3)),
        (0.25, (41.0, 0.5)),
    ] {
        rows.push(network(
            "6",
            &format!("{a:.2} MobileNet-224"),
            m().with_alpha(a),
            paper,
        )?);
    }
    for (r, paper) in [
        (224, (569.0, 4.2)),
        (192, (418.0, 4.2)),
        (160, (290.0, 4.2)),
        (128, (186.0, 4.2)),
    ] {
        rows.push(network(
            "7",
            &format!("1.0 MobileNet-{r}"),
            m().with_resolution(r),
            paper,
        )?);
    }
    Ok(rows)
}

/// TF-slim's published MobileNetV2 checkpoints (its `mobilenet_v2` README, 1001
/// classes): α, side, millions of MACs (truncated) and of parameters.
const V2_PUBLISHED: [(f64, usize, f64, f64); 22] = [
    (1.4, 224, 582.0, 6.06),
    (1.3, 224, 509.0, 5.34),
    (1.0, 224, 300.0, 3.47),
    (1.0, 192, 221.0, 3.47),
    (1.0, 160, 154.0, 3.47),
    (1.0, 128, 99.0, 3.47),
    (1.0, 96, 56.0, 3.47),
    (0.75, 224, 209.0, 2.61),
    (0.75, 192, 153.0, 2.61),
    (0.75, 160, 107.0, 2.61),
    (0.75, 128, 69.0, 2.61),
    (0.75, 96, 39.0, 2.61),
    (0.5, 224, 97.0, 1.95),
    (0.5, 192, 71.0, 1.95),
    (0.5, 160, 50.0, 1.95),
    (0.5, 128, 32.0, 1.95),
    (0.5, 96, 18.0, 1.95),
    (0.35, 224, 59.0, 1.66),
    (0.35, 192, 43.0, 1.66),
    (0.35, 160, 30.0, 1.66),
    (0.35, 128, 20.0, 1.66),
    (0.35, 96, 11.0, 1.66),
];

/// The v2 grid: every published checkpoint, from the v2 builder.
fn v2_rows() -> Result<Vec<Row>, sepconv::Error> {
    V2_PUBLISHED
        .iter()
        .map(|&(alpha, side, macs, params)| {
            let c = MobileNetV2Config::new()
                .with_alpha(alpha)
                .with_resolution(side)
                .with_classes(1001);
            let s = c.summary()?;
            Ok(Row {
                table: "v2",
                model: format!("MobileNetV2 {}", c.name()),
                mult_adds: s.total.mult_adds,
                params: s.total.params.paper(),
                paper: (macs, params),
            })
        })
        .collect()
}

/// `--json`; `Ok(None)` for `--help`.
fn parse() -> Result<Option<bool>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut json = false;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("json") => json = true,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(json))
}

fn main() -> Result<(), sepconv::Error> {
    let json = match parse() {
        Ok(Some(json)) => json,
        Ok(None) => {
            println!("{HELP}");
            return Ok(());
        }
        Err(e) => {
            eprintln!("flops: {e}; see --help");
            std::process::exit(2);
        }
    };
    let rows = rows()?;
    let v2 = v2_rows()?;
    let base: Summary = MobileNetConfig::new().summary()?;
    if json {
        let json_rows = |rows: &[Row]| -> Vec<serde_json::Value> {
            rows.iter()
                .map(|r| {
                    serde_json::json!({
                        "table": r.table, "model": r.model, "mult_adds": r.mult_adds, "params": r.params,
                        "paper_mult_adds_millions": r.paper.0, "paper_params_millions": r.paper.1,
                    })
                })
                .collect()
        };
        let breakdown: Vec<_> = base
            .breakdown()
            .iter()
            .map(|b| {
                serde_json::json!({
                    "type": b.kind.key(), "mult_adds": b.mult_adds, "params": b.params,
                    "mult_adds_share": b.mult_adds_share, "params_share": b.params_share,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "unit": "mult-add = 1 multiply + 1 add = 2 FLOPs",
                "rows": json_rows(&rows),
                "breakdown_1_0_224": breakdown,
                "v2_checkpoints": json_rows(&v2),
            })
        );
        return Ok(());
    }
    println!("# MobileNet v1 costs, recomputed from the architecture\n");
    println!(
        "Mult-adds: conv and FC multiplications (1 mult-add = 2 FLOPs). Parameters: conv and FC weights.\n"
    );
    println!("| paper table | model | mult-adds | M (paper) | parameters | M (paper) |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} ({}) | {} | {:.2} ({}) |",
            r.table,
            r.model,
            r.mult_adds,
            r.mult_adds as f64 / 1e6,
            r.paper.0,
            r.params,
            r.params as f64 / 1e6,
            r.paper.1
        );
    }
    println!("\n## Table 2: resources per layer type, 1.0 MobileNet-224\n");
    println!("| type | mult-adds | parameters |\n| --- | ---: | ---: |");
    for b in base.breakdown() {
        println!(
            "| {} | {:.2}% | {:.2}% |",
            b.kind.label(),
            100.0 * b.mult_adds_share,
            100.0 * b.params_share
        );
    }
    println!("\n# MobileNetV2: TF-slim's published checkpoints (1001 classes)\n");
    println!(
        "TF-slim's table gives millions of MACs truncated and millions of parameters to two decimals.\n"
    );
    println!("| model | mult-adds | M (TF-slim) | parameters | M (TF-slim) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for r in &v2 {
        println!(
            "| {} | {} | {:.1} ({}) | {} | {:.2} ({}) |",
            r.model,
            r.mult_adds,
            r.mult_adds as f64 / 1e6,
            r.paper.0,
            r.params,
            r.params as f64 / 1e6,
            r.paper.1
        );
    }
    Ok(())
}
