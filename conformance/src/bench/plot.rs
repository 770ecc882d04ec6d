//! The report's SVG figures, drawn with `plotters` (SVG backend only): median
//! latency per verb ours vs reference, portmap latency vs pods mapped,
//! parallel-pod wall time, achieved vs configured rate. Reads only the JSON
//! document; writes only into the plots directory.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

type Figures = Vec<(String, PathBuf)>;
/// One line of a figure: its legend, colour and points.
type Line = (String, RGBColor, Vec<(f64, f64)>);

const OURS: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const REFERENCE: RGBColor = RGBColor(0xff, 0x7f, 0x0e);

/// What the SVG backend reports.
type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// Why a figure could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The plots directory could not be created.
    #[error("creating the plots directory {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// plotters could not draw or write the figure.
    #[error("drawing {}: {source}", path.display())]
    Draw { path: PathBuf, source: DrawError },
}

/// The `map_err` of every drawing call of the figure at `path`.
fn err(path: &Path) -> impl Fn(DrawError) -> PlotError + '_ {
    move |source| PlotError::Draw {
        path: path.to_path_buf(),
        source,
    }
}

/// Grouped bars (ours, reference) per label on a log scale of `unit`.
fn bars(
    path: &Path,
    title: &str,
    unit: &str,
    rows: &[(String, Option<f64>, Option<f64>)],
) -> Result<(), PlotError> {
    let vals = rows.iter().flat_map(|r| [r.1, r.2]).flatten();
    let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    let (lo, hi) = if lo > hi {
        (0.1, 1.0)
    } else {
        ((lo / 2.0).max(1e-3), hi * 2.0)
    };
    let width = (rows.len() as u32 * 60).max(600);
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let n = rows.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(90)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n - 0.5, (lo..hi).log_scale())
        .map_err(err(path))?;
    let label = |x: &f64| {
        rows.get(x.round().max(0.0) as usize)
            .map_or(String::new(), |r| r.0.clone())
    };
    chart
        .configure_mesh()
        .x_labels(rows.len())
        .x_label_formatter(&label)
        .x_label_style(
            ("sans-serif", 12)
                .into_font()
                .transform(FontTransform::Rotate90),
        )
        .y_desc(unit)
        .disable_x_mesh()
        .draw()
        .map_err(err(path))?;
    for (k, (name, color)) in [("ours", OURS), ("reference", REFERENCE)]
        .into_iter()
        .enumerate()
    {
        let rects = rows.iter().enumerate().filter_map(|(i, r)| {
            let v = if k == 0 { r.1 } else { r.2 }?;
            let x0 = i as f64 - 0.4 + 0.4 * k as f64;
            Some(Rectangle::new([(x0, lo), (x0 + 0.4, v)], color.filled()))
        });
        chart
            .draw_series(rects)
            .map_err(err(path))?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(err(path))?;
    root.present().map_err(err(path))
}

/// Lines of `(x, y)` points, log-scaled on both axes.
fn lines(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    series: &[Line],
    diagonal: bool,
) -> Result<(), PlotError> {
    let pts = series.iter().flat_map(|s| s.2.iter());
    let (xl, xh, yl, yh) = pts.fold((f64::MAX, f64::MIN, f64::MAX, f64::MIN), |a, p| {
        (a.0.min(p.0), a.1.max(p.0), a.2.min(p.1), a.3.max(p.1))
    });
    if xl > xh {
        return Ok(());
    }
    let (xl, xh) = (xl / 1.5, xh * 1.5);
    let (yl, yh) = if diagonal {
        (xl.min(yl / 1.5), xh.max(yh * 1.5))
    } else {
        (yl / 1.5, yh * 1.5)
    };
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((xl..xh).log_scale(), (yl..yh).log_scale())
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .x_desc(axes.0)
        .y_desc(axes.1)
        .draw()
        .map_err(err(path))?;
    if diagonal {
        chart
            .draw_series(LineSeries::new([(xl, xl), (xh, xh)], BLACK.mix(0.3)))
            .map_err(err(path))?
            .label("configured")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK.mix(0.3)));
    }
    for (name, color, pts) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)).point_size(3))
            .map_err(err(path))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(err(path))?;
    root.present().map_err(err(path))
}

fn verb_bars(doc: &Value) -> Vec<(String, Option<f64>, Option<f64>)> {
    let rows = doc["verbs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["verb"].is_string());
    rows.map(|r| {
        let label = format!(
            "{} {}",
            r["plugin"].as_str().unwrap_or(""),
            super::report::verb_label(r)
        );
        (
            label,
            r["ours"]["median_ms"].as_f64(),
            r["reference"]["median_ms"].as_f64(),
        )
    })
    .collect()
}

/// One line per side and per `kind` (the second, lighter): the points
/// `point(row, side)` of the rows of that side and kind.
fn side_lines(
    rows: &Value,
    kinds: [&str; 2],
    of_kind: impl Fn(&Value, &str, &str) -> bool,
    point: impl Fn(&Value, &str) -> Option<(f64, f64)>,
) -> Vec<Line> {
    let mut out = Vec::new();
    for (side, color) in [("ours", OURS), ("reference", REFERENCE)] {
        for (i, kind) in kinds.iter().enumerate() {
            let rows = rows.as_array().into_iter().flatten();
            let pts = rows
                .filter(|r| of_kind(r, side, kind))
                .filter_map(|r| point(r, side));
            let c = if i == 1 {
                color.mix(0.55).rgb()
            } else {
                color.rgb()
            };
            out.push((
                format!("{side} {kind}"),
                RGBColor(c.0, c.1, c.2),
                pts.collect(),
            ));
        }
    }
    out
}

fn scaling_lines(doc: &Value) -> Vec<Line> {
    side_lines(
        &doc["scaling"]["portmap"],
        ["ADD", "DEL"],
        |r, _, verb| r["verb"] == verb,
        |r, side| Some((r["pods"].as_f64()?, r[side]["median_ms"].as_f64()?)),
    )
}

fn node_bars(doc: &Value) -> Vec<(String, Option<f64>, Option<f64>)> {
    let n = &doc["node"];
    ["add", "del"]
        .iter()
        .map(|op| {
            (
                format!("{} pods {}", n["pods"], op.to_uppercase()),
                n["ours"][op]["wall_s"].as_f64(),
                n["reference"][op]["wall_s"].as_f64(),
            )
        })
        .collect()
}

fn rate_lines(doc: &Value) -> Vec<Line> {
    side_lines(
        &doc["shaping"]["rates"],
        ["ingress", "egress"],
        |r, side, dir| r["side"] == side && r["direction"] == dir,
        |r, _| Some((r["mbit"].as_f64()?, r["achieved_mbit"].as_f64()?)),
    )
}

/// Draws every figure into `dir`; returns (title, path) of each drawn.
pub fn draw_all(doc: &Value, dir: &Path) -> Result<Figures, PlotError> {
    std::fs::create_dir_all(dir).map_err(|source| PlotError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    let mut add = |name: &str,
                   title: &str,
                   f: &dyn Fn(&Path, &str) -> Result<(), PlotError>|
     -> Result<(), PlotError> {
        let path = dir.join(name);
        f(&path, title)?;
        out.push((title.to_string(), path));
        Ok(())
    };
    add(
        "verbs.svg",
        "median latency per plugin verb (ms, log)",
        &|p, t| bars(p, t, "ms", &verb_bars(doc)),
    )?;
    add(
        "portmap-scaling.svg",
        "portmap one more pod vs pods mapped (median ms)",
        &|p, t| lines(p, t, ("pods mapped", "ms"), &scaling_lines(doc), false),
    )?;
    add(
        "node.svg",
        "parallel pods, whole chain: wall time (s)",
        &|p, t| bars(p, t, "s", &node_bars(doc)),
    )?;
    add(
        "shaping.svg",
        "achieved vs configured rate (Mbit/s)",
        &|p, t| {
            lines(
                p,
                t,
                ("configured Mbit/s", "achieved Mbit/s"),
                &rate_lines(doc),
                true,
            )
        },
    )?;
    Ok(out)
}
