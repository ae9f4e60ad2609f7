//! The chart: latency against mult-adds on log–log axes (plotters, SVG).

use std::path::Path;

use sepconv::mobilenet::Variant;

use crate::networks::{ALPHAS, NetResult, V2_ALPHAS, V2Result};
use crate::report::Report;

/// Series colours (colour-blind safe, Okabe–Ito): v1's α grid.
pub const COLORS: [(u8, u8, u8); 4] = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167)];
/// MobileNetV2's α grid: v1's colours where the α is the same (1.0, 0.75,
/// 0.5), Okabe–Ito's orange for 0.35.
pub const V2_COLORS: [(u8, u8, u8); 4] =
    [(0, 114, 178), (213, 94, 0), (0, 158, 115), (230, 159, 0)];

/// Latency against mult-adds on log–log axes, one series per α and family
/// (v1: circles and solid lines, v2: triangles and thin lines), each point
/// labelled with its model name, and a grey line of constant throughput
/// through v1's 1.0-224 (where latency would lie if it scaled exactly with
/// mult-adds): v2's points above it show what its extra memory traffic per
/// mult-add costs.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let grid: Vec<&NetResult> = report.grid().collect();
    if grid.is_empty() {
        return Err("no α × resolution networks were timed".into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let e = |e: DrawingAreaErrorKind<std::io::Error>| format!("{}: {e}", path.display());
    let mm = |n: &NetResult| n.madds as f64 / 1e6;
    let v2 = &report.networks_v2;
    let points = grid
        .iter()
        .map(|n| (mm(n), n.ms))
        .chain(v2.iter().map(|n| (n.madds as f64 / 1e6, n.ms)));
    let ((x0, x1), (y0, y1)) = points.fold(
        ((f64::MAX, 0.0f64), (f64::MAX, 0.0f64)),
        |((a, b), (c, d)), (x, y)| ((a.min(x), b.max(x)), (c.min(y), d.max(y))),
    );
    let (x0, x1, y0, y1) = (x0 / 1.3, x1 * 1.3, y0 / 1.3, y1 * 1.3);

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let family = if v2.is_empty() { "v1" } else { "v1 and v2" };
    let caption = format!(
        "MobileNet {family} latency vs mult-adds (f32, batch 1, {} thread{}, median of {} runs)",
        report.threads,
        if report.threads == 1 { "" } else { "s" },
        report.runs
    );
    let (x_ticks, y_ticks) = (ticks(x0, x1), ticks(y0, y1));
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x0..x1)
                .log_scale()
                .with_key_points(x_ticks.0)
                .with_light_points(x_ticks.1),
            (y0..y1)
                .log_scale()
                .with_key_points(y_ticks.0)
                .with_light_points(y_ticks.1),
        )
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("mult-adds per image (millions, log scale)")
        .y_desc("latency (ms, log scale)")
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .bold_line_style(RGBColor(200, 200, 200))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(e)?;

    if let Some(base) = grid.iter().find(|n| n.is(1.0, 224, Variant::Standard, 1)) {
        let per_ms = mm(base) / base.ms;
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(LineSeries::new(
                [x0, x1].map(|x| (x, x / per_ms)),
                grey.stroke_width(1),
            ))
            .map_err(e)?
            .label(format!("constant {:.1} GMAC/s (1.0-224's)", base.gmacs()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    for (i, (alpha, rgb)) in ALPHAS.iter().zip(COLORS).enumerate() {
        // Labels above the points of every other series, below the rest, so
        // neighbouring series (0.5-192 and 0.75-128 have nearly the same
        // cost) do not write over each other.
        let label_at = if i % 2 == 0 { (-22, -18) } else { (-22, 8) };
        let color = RGBColor(rgb.0, rgb.1, rgb.2);
        let mut pts: Vec<&NetResult> = grid
            .iter()
            .copied()
            .filter(|n| n.config.alpha == *alpha)
            .collect();
        pts.sort_by_key(|n| n.madds);
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|n| (mm(n), n.ms)),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(format!("α = {alpha}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|n| {
                EmptyElement::at((mm(n), n.ms))
                    + Circle::new((0, 0), 4, color.filled())
                    + Text::new(
                        n.model(),
                        label_at,
                        ("sans-serif", 12).into_font().color(&color),
                    )
            }))
            .map_err(e)?;
    }
    for (alpha, rgb) in V2_ALPHAS.iter().zip(V2_COLORS) {
        let color = RGBColor(rgb.0, rgb.1, rgb.2);
        let mut pts: Vec<&V2Result> = v2.iter().filter(|n| n.config.alpha == *alpha).collect();
        if pts.is_empty() {
            continue;
        }
        pts.sort_by_key(|n| n.madds);
        let at = |n: &V2Result| (n.madds as f64 / 1e6, n.ms);
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|n| at(n)),
                color.stroke_width(1),
            ))
            .map_err(e)?
            .label(format!("v2 α = {alpha}"))
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 5, color.filled()));
        chart
            .draw_series(pts.iter().map(|n| {
                EmptyElement::at(at(n))
                    + TriangleMarker::new((0, 0), 5, color.filled())
                    + Text::new(
                        n.model(),
                        (6, -4),
                        ("sans-serif", 11).into_font().color(&color),
                    )
            }))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Ticks on a log axis between `lo` and `hi`: (1–2–5 × 10^k for labels and
/// bold lines, the other k × 10^e for light lines).
pub fn ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for k in 1..10 {
            let v = decade * k as f64;
            if (lo..=hi).contains(&v) {
                if matches!(k, 1 | 2 | 5) {
                    bold.push(v);
                } else {
                    light.push(v);
                }
            }
        }
        decade *= 10.0;
    }
    (bold, light)
}

pub fn tick_label(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::fake_report;

    #[test]
    fn svg() {
        let r = fake_report();
        assert_eq!(ticks(0.7, 60.0).0, [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        let path =
            std::env::temp_dir().join(format!("bench_report_test_{}.svg", std::process::id()));
        write_svg(&r, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for label in [
            "0.25-128",
            "1.0-224",
            "α = 0.75",
            "v2 α = 0.35",
            "v2 0.35-128",
        ] {
            assert!(svg.contains(label), "{label}");
        }
    }
}
