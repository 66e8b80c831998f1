//! The SVG charts of BENCHMARKS.md, drawn with plotters (SVG backend only)
//! from the figures a bench has just measured.

use std::path::Path;

use plotters::prelude::*;

/// One line of a chart: its legend, colour and points.
pub struct Line<'a> {
    pub label: &'a str,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

pub const OURS: RGBColor = RGBColor(0xd6, 0x27, 0x28);
pub const OURS_2: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
pub const BASELINE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
pub const LIMIT: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// `1`, `1k`, `100k`, `1M`.
pub fn human(v: f64) -> String {
    let (v, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}{unit}")
    } else {
        format!("{v:.1}{unit}")
    }
}

fn range(lines: &[Line<'_>], axis: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    lines
        .iter()
        .flat_map(|l| l.points.iter().map(&axis))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A chart with both axes in log scale (cost per call against the number
/// of series).
pub fn log_log(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line<'_>],
) -> Result<(), String> {
    let (x_lo, x_hi) = range(lines, |p| p.0);
    let (y_lo, y_hi) = range(lines, |p| p.1);
    // Whole decades, and room above for the legend.
    let y_lo = 10f64.powf(y_lo.log10().floor());
    let y_hi = 10f64.powf((y_hi * 3.0).log10().ceil());
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x_lo / 2.0..x_hi * 2.0).log_scale(),
            (y_lo..y_hi).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| human(*v))
        .y_labels(20)
        .y_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(err)?;
    for line in lines {
        let color = line.color;
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(line.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 4, color.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Lines/s against producer threads (linear axes, from 0), with a
/// horizontal `limit` line across the chart.
pub fn against_producers(
    path: &Path,
    title: &str,
    y_desc: &str,
    lines: &[Line<'_>],
    limit: (&str, f64),
) -> Result<(), String> {
    let (x_lo, x_hi) = range(lines, |p| p.0);
    let (_, y_hi) = range(lines, |p| p.1);
    // Room above the limit line for the legend.
    let y_hi = y_hi.max(limit.1) * 1.4;
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo - 0.5..x_hi + 0.5, 0.0..y_hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("producer threads")
        .y_desc(y_desc)
        .x_labels(((x_hi - x_lo) * 2.0 + 3.0) as usize)
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(err)?;
    let (label, value) = limit;
    chart
        .draw_series(LineSeries::new(
            [(x_lo - 0.5, value), (x_hi + 0.5, value)],
            LIMIT.stroke_width(2),
        ))
        .map_err(err)?
        .label(label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], LIMIT.stroke_width(2)));
    for line in lines {
        let color = line.color;
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(line.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 4, color.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers() {
        assert_eq!(human(1.0), "1");
        assert_eq!(human(1000.0), "1k");
        assert_eq!(human(100_000.0), "100k");
        assert_eq!(human(1_000_000.0), "1M");
        assert_eq!(human(1500.0), "1.5k");
    }

    #[test]
    fn charts_are_svg_files_with_their_legends() {
        let dir = std::env::temp_dir().join(format!("graphyte-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.svg");
        log_log(
            &a,
            "cost",
            "series",
            "ns per call",
            &[
                Line {
                    label: "ours",
                    color: OURS,
                    points: vec![(1.0, 10.0), (1e6, 100.0)],
                },
                Line {
                    label: "baseline",
                    color: BASELINE,
                    points: vec![(1.0, 20.0), (1e6, 300.0)],
                },
            ],
        )
        .unwrap();
        let b = dir.join("b.svg");
        against_producers(
            &b,
            "lines/s",
            "M lines/s",
            &[Line {
                label: "send",
                color: OURS,
                points: vec![(1.0, 14.0), (2.0, 18.0)],
            }],
            ("raw limit", 50.0),
        )
        .unwrap();
        for (path, words) in [(a, ["ours", "baseline"]), (b, ["send", "raw limit"])] {
            let svg = std::fs::read_to_string(&path).unwrap();
            assert!(svg.starts_with("<svg"), "{svg:.100}");
            for w in words {
                assert!(svg.contains(w), "{w} missing from {}", path.display());
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
