//! The report's plots, as SVG (plotters' SVG backend: no fonts or system libraries; text
//! is left to the viewer): throughput over each arm's active time, and the CDF of
//! submit-to-commit latency of both arms.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::report::AbReport;

const A_COLOR: RGBColor = RGBColor(31, 119, 180);
const B_COLOR: RGBColor = RGBColor(214, 39, 40);

fn e<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |err| anyhow!("[E_AB_PLOT] {}: {err}", path.display())
}

/// Committed tx/s over time for both arms.
pub fn throughput(report: &AbReport, path: &Path) -> Result<()> {
    let series = [
        (&report.a.throughput_series, &report.a.spec, A_COLOR, "A"),
        (&report.b.throughput_series, &report.b.spec, B_COLOR, "B"),
    ];
    let x_max = series
        .iter()
        .flat_map(|(s, ..)| s.iter().map(|p| p.0))
        .fold(0.0f64, f64::max)
        .max(0.1)
        * 1.05;
    let y_max = series
        .iter()
        .flat_map(|(s, ..)| s.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(e(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Throughput, workload {} (committed tx/s)", report.workload),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(e(path))?;
    chart
        .configure_mesh()
        .x_desc("arm's active time (s, rounds end to end)")
        .y_desc("tx/s")
        .draw()
        .map_err(e(path))?;
    for (s, spec, color, arm) in series {
        chart
            .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
            .map_err(e(path))?
            .label(format!("{arm}: {spec}"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(e(path))?;
    root.present().map_err(e(path))?;
    Ok(())
}

/// The CDF of submit-to-commit latency of both arms (from the 0..100% quantiles).
pub fn latency_cdf(report: &AbReport, path: &Path) -> Result<()> {
    let series = [
        (&report.a.latency_quantiles_ms, &report.a.spec, A_COLOR, "A"),
        (&report.b.latency_quantiles_ms, &report.b.spec, B_COLOR, "B"),
    ];
    let x_max = series
        .iter()
        .flat_map(|(s, ..)| s.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.05;
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(e(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Submit-to-commit latency CDF, workload {}", report.workload),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..1.0)
        .map_err(e(path))?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("share of transactions")
        .draw()
        .map_err(e(path))?;
    for (q, spec, color, arm) in series {
        let pts = q
            .iter()
            .enumerate()
            .map(|(i, ms)| (*ms, i as f64 / (q.len().max(2) - 1) as f64));
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(e(path))?
            .label(format!("{arm}: {spec}"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(e(path))?;
    root.present().map_err(e(path))?;
    Ok(())
}
