//! Line charts as inline SVG (plotters' SVG backend), for the self-contained HTML report.

use plotters::prelude::*;

/// One line.
pub struct Series<'a> {
    /// Legend label.
    pub name: &'a str,
    /// Colour.
    pub color: RGBColor,
    /// Points (x seconds, y).
    pub points: Vec<(f64, f64)>,
}

/// A shaded span of the x axis (phases, stalls) with its label.
pub struct Band<'a> {
    /// Start, s.
    pub from: f64,
    /// End, s.
    pub to: f64,
    /// Fill colour (drawn translucent).
    pub color: RGBColor,
    /// Label drawn at the top of the band.
    pub label: &'a str,
}

/// Palette used across the report.
pub const BLUE: RGBColor = RGBColor(31, 119, 180);
/// Orange.
pub const ORANGE: RGBColor = RGBColor(255, 127, 14);
/// Red.
pub const RED: RGBColor = RGBColor(214, 39, 40);
/// Green.
pub const GREEN: RGBColor = RGBColor(44, 160, 44);
/// Purple.
pub const PURPLE: RGBColor = RGBColor(148, 103, 189);
/// Grey, for phase shading.
pub const GREY: RGBColor = RGBColor(160, 160, 160);

/// Renders a chart to an SVG string; an empty chart says there is no data.
pub fn line_chart(title: &str, y_label: &str, series: &[Series<'_>], bands: &[Band<'_>]) -> String {
    let mut svg = String::new();
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_max) = (0.0f64, 0.0f64);
    let mut any = false;
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            x_max = x_max.max(x);
            y_max = y_max.max(y);
            any = true;
        }
    }
    for b in bands {
        x_max = x_max.max(b.to);
    }
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    {
        let root = SVGBackend::with_string(&mut svg, (960, 280)).into_drawing_area();
        let _ = draw(&root, title, y_label, series, bands, (x_max, y_max), any);
        let _ = root.present();
    }
    svg
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    series: &[Series<'_>],
    bands: &[Band<'_>],
    (x_max, y_max): (f64, f64),
    any: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let title = if any {
        title.to_string()
    } else {
        format!("{title} — no data")
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc(y_label)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for b in bands {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(b.from, 0.0), (b.to.max(b.from), y_max)],
            b.color.mix(0.15).filled(),
        )))?;
        if !b.label.is_empty() {
            chart.draw_series(std::iter::once(Text::new(
                b.label.to_string(),
                (b.from, y_max * 0.97),
                ("sans-serif", 11).into_font().color(&RGBColor(90, 90, 90)),
            )))?;
        }
    }
    for s in series {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(
                s.points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite()),
                color.stroke_width(2),
            ))?
            .label(s.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    if series.len() > 1 || !series.is_empty() && !series[0].name.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_svg_with_the_title_and_lines() {
        let svg = line_chart(
            "latency",
            "ms",
            &[Series {
                name: "p99",
                color: RED,
                points: vec![(0.0, 1.0), (1.0, 3.0)],
            }],
            &[Band {
                from: 0.0,
                to: 0.5,
                color: GREY,
                label: "ramp-up",
            }],
        );
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        assert!(svg.contains("latency") && svg.contains("ramp-up") && svg.contains("<polyline"));
        assert!(
            !svg.contains("http://") || svg.contains("xmlns"),
            "no external references but the SVG namespace"
        );
    }

    #[test]
    fn an_empty_chart_says_so() {
        assert!(line_chart("rss", "MB", &[], &[]).contains("no data"));
    }
}
