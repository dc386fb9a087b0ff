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
#[derive(Debug, Clone)]
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

/// Light green, for the hold.
pub const HOLD: RGBColor = RGBColor(120, 190, 120);
/// Light blue, for the ramps.
pub const RAMP: RGBColor = RGBColor(110, 160, 220);
/// Sand, for warm-up (the part of the hold the memory verdict leaves out).
pub const WARMUP: RGBColor = RGBColor(230, 190, 90);

/// A band label is drawn only on a band at least this share of the x axis wide, so labels
/// of short phases never run into each other (the HTML legend under each chart names
/// every band's colour anyway).
const LABEL_MIN_SHARE: f64 = 0.08;

/// Renders a chart to an SVG string over x in `0..x_max` seconds (the same for every chart
/// of a report, so they line up); an empty chart says there is no data. The legend is
/// not drawn inside the plot (where it covers data): [`legend`] gives it as HTML.
pub fn line_chart(
    title: &str,
    y_label: &str,
    series: &[Series<'_>],
    bands: &[Band<'_>],
    x_max: f64,
) -> String {
    let mut svg = String::new();
    let points = series.iter().flat_map(|s| s.points.iter());
    let mut y_max = 0.0f64;
    let mut any = false;
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            y_max = y_max.max(y);
            any = true;
        }
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

/// The legend of a chart as one HTML line: a swatch and name per series, then per band
/// kind (each name once).
pub fn legend(series: &[Series<'_>], bands: &[Band<'_>]) -> String {
    let mut out = String::from(r#"<div class="legend">"#);
    let swatch = |c: RGBColor, alpha: f64, name: &str| {
        format!(
            r#"<span><i style="background:rgba({},{},{},{alpha})"></i>{}</span>"#,
            c.0,
            c.1,
            c.2,
            crate::report::junit::escape(name)
        )
    };
    for s in series {
        out.push_str(&swatch(s.color, 1.0, s.name));
    }
    let mut seen: Vec<&str> = Vec::new();
    for b in bands {
        if !b.label.is_empty() && !seen.contains(&b.label) {
            seen.push(b.label);
            out.push_str(&swatch(b.color, 0.35, b.label));
        }
    }
    out.push_str("</div>");
    out
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
        .margin_right(28) // room for the last x label
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
        let (from, to) = (b.from.clamp(0.0, x_max), b.to.clamp(0.0, x_max));
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, 0.0), (to.max(from), y_max)],
            b.color.mix(0.18).filled(),
        )))?;
        if !b.label.is_empty() && (to - from) / x_max >= LABEL_MIN_SHARE {
            chart.draw_series(std::iter::once(Text::new(
                b.label.to_string(),
                (from + x_max * 0.005, y_max * 0.97),
                ("sans-serif", 11).into_font().color(&RGBColor(90, 90, 90)),
            )))?;
        }
    }
    for s in series {
        chart.draw_series(LineSeries::new(
            s.points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite()),
            s.color.stroke_width(2),
        ))?;
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
                to: 5.0,
                color: GREY,
                label: "ramp-up",
            }],
            10.0,
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
        assert!(line_chart("rss", "MB", &[], &[], 1.0).contains("no data"));
    }

    #[test]
    fn labels_are_drawn_only_where_they_fit_and_the_legend_names_each_band_once() {
        let band = |from, to, label| Band {
            from,
            to,
            color: GREY,
            label,
        };
        let bands = [
            band(0.0, 1.0, "baseline"),
            band(1.0, 50.0, "hold"),
            band(50.0, 60.0, "stall"),
            band(70.0, 80.0, "stall"),
        ];
        let svg = line_chart("x", "ms", &[], &bands, 100.0);
        assert!(!svg.contains("baseline"), "1 % wide: no label");
        assert!(svg.contains("hold"), "{svg}");
        let html = legend(&[], &bands);
        assert_eq!(html.matches("stall").count(), 1, "{html}");
        assert!(html.contains("baseline"));
    }
}
