//! SVG line charts (plotters, SVG backend only, so no font libraries are needed).
//! Tick labels are short numbers; a latency axis whose values span more than two
//! decades is drawn on a log scale; a throughput chart can carry the y = x line
//! (everything offered is served); a chart with fewer than two x values says why
//! no curve was drawn, in the SVG itself.

use plotters::coord::Shift;
use plotters::prelude::*;

/// Why a chart could not be drawn (what the plotting backend said).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PlotError(pub String);

fn plot_err(e: impl std::fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

/// One line on a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points (x, y), drawn in x order.
    pub points: Vec<(f64, f64)>,
    /// Draw markers only, no line (measured points).
    pub markers_only: bool,
}

/// How a chart is drawn beyond its series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChartOptions {
    /// Draw the line y = x (a throughput against the offered load).
    pub y_equals_x: bool,
    /// Use a log y axis when the positive values span more than two decades.
    pub log_y_when_wide: bool,
    /// Text written on the chart when no line series has two x values (why no
    /// curve was drawn); `None`: [`ONE_POINT_SVG_NOTE`].
    pub one_point_note: Option<String>,
}

/// What a chart with a single x value says.
pub const ONE_POINT_SVG_NOTE: &str =
    "One sweep point: no curve drawn (a curve needs at least two values along x)";

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A tick label: at most 3 significant digits after the point, no trailing zeros,
/// thousands as `k` and millions as `M` from 10 000 up.
pub fn tick_label(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    let s = if a == 0.0 {
        "0".to_string()
    } else if a >= 1e7 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        let digits = (2.0 - a.log10().floor()).clamp(0.0, 12.0) as usize;
        trim(format!("{v:.digits$}"))
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// Whether positive values from `lo` to `hi` span more than two decades.
pub fn spans_decades(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi.is_finite() && hi / lo > 100.0
}

/// Renders a line chart to an SVG string.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, PlotError> {
    line_chart_with(title, x_label, y_label, series, &ChartOptions::default())
}

/// Draws the mesh (axis labels and tick formats), the series and the y = x line on
/// a chart of either y scale.
macro_rules! draw_body {
    ($chart:expr, ($x_desc:expr, $y_desc:expr, $x_fmt:expr, $y_fmt:expr), $series:expr, $diag:expr, $clean:expr) => {{
        let chart = $chart;
        chart
            .configure_mesh()
            .x_desc($x_desc)
            .y_desc($y_desc)
            .x_label_formatter($x_fmt)
            .y_label_formatter($y_fmt)
            .draw()
            .map_err(plot_err)?;
        if let Some((a, b)) = $diag {
            let grey = RGBColor(150, 150, 150);
            let n = 40;
            let pts: Vec<(f64, f64)> = (0..=n)
                .map(|i| a + (b - a) * i as f64 / n as f64)
                .map(|x| (x, x))
                .collect();
            // Dashed: every other segment.
            for seg in pts.chunks(2) {
                if seg.len() == 2 {
                    chart
                        .draw_series(LineSeries::new(seg.to_vec(), grey.stroke_width(1)))
                        .map_err(plot_err)?;
                }
            }
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(plot_err)?
                .label("y = x (all offered load served)")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1))
                });
        }
        for (i, (s, p)) in $series.iter().zip($clean).enumerate() {
            let color = COLORS[i % COLORS.len()];
            if s.markers_only {
                chart
                    .draw_series(
                        p.iter()
                            .map(|&(x, y)| Cross::new((x, y), 6, color.stroke_width(2))),
                    )
                    .map_err(plot_err)?
                    .label(s.label.clone())
                    .legend(move |(x, y)| Cross::new((x + 10, y), 5, color.stroke_width(2)));
            } else {
                chart
                    .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(
                        p.iter()
                            .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                    )
                    .map_err(plot_err)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_err)?;
    }};
}

/// Renders a line chart to an SVG string, drawn as `opts` asks.
pub fn line_chart_with(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    opts: &ChartOptions,
) -> Result<String, PlotError> {
    let clean: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            let mut p = s.points.clone();
            p.retain(|(x, y)| x.is_finite() && y.is_finite());
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            p
        })
        .collect();
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    let mut ypos = f64::INFINITY;
    for &(x, y) in clean.iter().flatten() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
        if y > 0.0 {
            ypos = ypos.min(y);
        }
    }
    if !x0.is_finite() {
        x0 = 0.0;
        x1 = 1.0;
    }
    let one_point = series
        .iter()
        .zip(&clean)
        .filter(|(s, _)| !s.markers_only)
        .all(|(_, p)| {
            p.windows(2).all(|w| w[0].0 == w[1].0) // fewer than two distinct x
        });
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let diag = opts.y_equals_x.then_some((x0.max(0.0), x1));
    if diag.is_some() {
        y1 = y1.max(x1);
    }
    let log_y = opts.log_y_when_wide && spans_decades(ypos, y1) && diag.is_none();
    let pad = (x1 - x0) * 0.03;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let x_fmt = |v: &f64| tick_label(*v);
        let y_fmt = |v: &f64| tick_label(*v);
        let y_desc = if log_y {
            format!("{y_label}, log scale")
        } else {
            y_label.to_string()
        };
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70);
        if log_y {
            let mut chart = builder
                .build_cartesian_2d((x0 - pad)..(x1 + pad), (ypos / 1.3..y1 * 1.3).log_scale())
                .map_err(plot_err)?;
            draw_body!(
                &mut chart,
                (x_label, y_desc, &x_fmt, &y_fmt),
                series,
                diag,
                &clean
            );
        } else {
            let y1 = if y1 > 0.0 { y1 * 1.08 } else { 1.0 };
            let mut chart = builder
                .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..y1)
                .map_err(plot_err)?;
            draw_body!(
                &mut chart,
                (x_label, y_desc, &x_fmt, &y_fmt),
                series,
                diag,
                &clean
            );
        }
        if one_point && series.iter().any(|s| !s.markers_only) {
            note(
                &root,
                opts.one_point_note.as_deref().unwrap_or(ONE_POINT_SVG_NOTE),
            )?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Writes `text` across the middle of the chart.
fn note(root: &DrawingArea<SVGBackend, Shift>, text: &str) -> Result<(), PlotError> {
    let style = ("sans-serif", 16)
        .into_font()
        .color(&RGBColor(160, 60, 0))
        .pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ));
    root.draw(&Text::new(text.to_string(), (400, 250), style))
        .map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(points: Vec<(f64, f64)>) -> Series {
        Series {
            label: "continuous".into(),
            points,
            markers_only: false,
        }
    }

    #[test]
    fn renders_svg_with_title_and_labels() {
        let s = line_chart(
            "t",
            "rate (req/s)",
            "tok/s",
            &[line(vec![(1.0, 2.0), (2.0, 3.0)])],
        )
        .unwrap();
        assert!(s.starts_with("<svg"));
        assert!(s.contains("rate (req/s)"));
        assert!(s.contains("continuous"));
        assert!(!s.contains(ONE_POINT_SVG_NOTE));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(2.50), "2.5");
        assert_eq!(tick_label(1234.4), "1234");
        assert_eq!(tick_label(25_000.0), "25k");
        assert_eq!(tick_label(12_500_000.0), "12.5M");
        assert_eq!(tick_label(0.012345), "0.0123");
        assert_eq!(tick_label(0.30000000000000004), "0.3");
    }

    #[test]
    fn wide_latencies_get_a_log_axis_and_narrow_ones_do_not() {
        let o = ChartOptions {
            log_y_when_wide: true,
            ..ChartOptions::default()
        };
        let wide = line_chart_with(
            "t",
            "x (req/s)",
            "TTFT (ms)",
            &[line(vec![(1.0, 5.0), (2.0, 5000.0)])],
            &o,
        )
        .unwrap();
        assert!(wide.contains("TTFT (ms), log scale"));
        let narrow = line_chart_with(
            "t",
            "x (req/s)",
            "TTFT (ms)",
            &[line(vec![(1.0, 50.0), (2.0, 4000.0)])],
            &o,
        )
        .unwrap();
        assert!(!narrow.contains("log scale"));
        assert!(
            spans_decades(1.0, 100.1) && !spans_decades(1.0, 100.0) && !spans_decades(0.0, 1e9)
        );
    }

    #[test]
    fn diagonal_and_one_point_note() {
        let o = ChartOptions {
            y_equals_x: true,
            ..ChartOptions::default()
        };
        let s = line_chart_with(
            "t",
            "offered load (req/s)",
            "req/s",
            &[line(vec![(4.0, 3.9)])],
            &o,
        )
        .unwrap();
        assert!(s.contains("y = x (all offered load served)"));
        assert!(s.contains(ONE_POINT_SVG_NOTE));
        let two =
            line_chart_with("t", "x", "y", &[line(vec![(4.0, 3.9), (8.0, 7.0)])], &o).unwrap();
        assert!(!two.contains(ONE_POINT_SVG_NOTE));
    }
}
