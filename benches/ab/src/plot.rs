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
    let lines = series
        .iter()
        .map(|(s, spec, color, arm)| (s.to_vec(), format!("{arm}: {spec}"), *color))
        .collect();
    line_chart(
        path,
        Chart {
            caption: format!("Throughput, workload {} (committed tx/s)", report.workload),
            x_desc: "arm's active time (s, rounds end to end)",
            y_desc: "tx/s",
            y_label_area: 70,
            x_max,
            y_max,
        },
        lines,
    )
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
    let lines = series
        .iter()
        .map(|(q, spec, color, arm)| {
            let pts = q
                .iter()
                .enumerate()
                .map(|(i, ms)| (*ms, i as f64 / (q.len().max(2) - 1) as f64))
                .collect();
            (pts, format!("{arm}: {spec}"), *color)
        })
        .collect();
    line_chart(
        path,
        Chart {
            caption: format!("Submit-to-commit latency CDF, workload {}", report.workload),
            x_desc: "latency (ms)",
            y_desc: "share of transactions",
            y_label_area: 60,
            x_max,
            y_max: 1.0,
        },
        lines,
    )
}

/// One line of a chart: its points, its legend label and its colour.
type Line = (Vec<(f64, f64)>, String, RGBColor);

/// The frame of a line chart: axes from 0 to the maxima.
struct Chart {
    caption: String,
    x_desc: &'static str,
    y_desc: &'static str,
    y_label_area: u32,
    x_max: f64,
    y_max: f64,
}

/// Draws `lines` (points, legend label, colour) on `chart`'s frame into an SVG at `path`.
fn line_chart(path: &Path, chart: Chart, lines: Vec<Line>) -> Result<()> {
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(e(path))?;
    let mut c = ChartBuilder::on(&root)
        .caption(chart.caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(chart.y_label_area)
        .build_cartesian_2d(0.0..chart.x_max, 0.0..chart.y_max)
        .map_err(e(path))?;
    c.configure_mesh()
        .x_desc(chart.x_desc)
        .y_desc(chart.y_desc)
        .draw()
        .map_err(e(path))?;
    for (pts, label, color) in lines {
        c.draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(e(path))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(e(path))?;
    root.present().map_err(e(path))?;
    Ok(())
}
