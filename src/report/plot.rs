//! SVG line charts (plotters, SVG backend only, so no font libraries are needed).

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

/// Renders a line chart to an SVG string.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let pts = series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for &(x, y) in pts {
            if x.is_finite() && y.is_finite() {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
        if !x0.is_finite() {
            x0 = 0.0;
            x1 = 1.0;
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let pad = (x1 - x0) * 0.03;
        let y1 = if y1 > 0.0 { y1 * 1.08 } else { 1.0 };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(plot_err)?;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut p = s.points.clone();
            p.retain(|(x, y)| x.is_finite() && y.is_finite());
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
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
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_svg_with_title_and_labels() {
        let s = line_chart(
            "t",
            "rate (req/s)",
            "tok/s",
            &[Series {
                label: "continuous".into(),
                points: vec![(1.0, 2.0), (2.0, 3.0)],
                markers_only: false,
            }],
        )
        .unwrap();
        assert!(s.starts_with("<svg"));
        assert!(s.contains("rate (req/s)"));
        assert!(s.contains("continuous"));
    }
}
