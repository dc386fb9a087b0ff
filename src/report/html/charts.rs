//! The report's charts: load, latency, TTFF, errors, memory with its fitted trend, probes
//! with stalls marked, and soak's own timer lag — all on one x axis (the planned run),
//! with each interval's point at its midpoint and the phases shaded by name.

use serde_json::Value;

use crate::report::chart::{
    BLUE, Band, GREEN, GREY, HOLD, ORANGE, PURPLE, RAMP, RED, Series, WARMUP, legend, line_chart,
};
use crate::report::table::Table;

/// One chart: its SVG and, under it, its legend, in a block that names the chart and its
/// longest series' point count (what the live page's browser test reads).
fn chart(
    page: &mut String,
    title: &str,
    y: &str,
    series: &[Series<'_>],
    bands: &[Band<'_>],
    x_max: f64,
) {
    let points = series.iter().map(|s| s.points.len()).max().unwrap_or(0);
    page.push_str(&format!(
        r#"<div class="chart" data-title="{}" data-points="{points}">"#,
        crate::report::junit::escape(title)
    ));
    page.push_str(&line_chart(title, y, series, bands, x_max));
    page.push_str(&legend(series, bands));
    page.push_str("</div>");
}

pub(super) fn charts(page: &mut String, summary: &Value, ts: &Table, memory: &Table) {
    let x_max = x_extent(summary, ts);
    let half = interval_s(summary) / 2.0;
    let bands = phase_bands(summary);
    let line = |name, color, column: &str| Series {
        name,
        color,
        points: ts
            .series(column)
            .into_iter()
            .map(|(t, y)| ((t - half).max(0.0), y))
            .collect(),
    };
    page.push_str("<h2>Over time</h2>");
    let load = [
        line("active users", BLUE, "active_users"),
        line("sent/s", GREEN, "sent_per_s"),
        line("received/s", ORANGE, "received_per_s"),
    ];
    chart(
        page,
        "Active users and message rate",
        "users · messages/s",
        &load,
        &bands,
        x_max,
    );
    let latency = [
        line("p50", GREEN, "p50_ms"),
        line("p95", ORANGE, "p95_ms"),
        line("p99", RED, "p99_ms"),
    ];
    let streamed = !ts.series("ttff_p99_ms").is_empty();
    let title = if streamed {
        "Time to the last frame (TTLF), from the intended send"
    } else {
        "Latency from the intended send"
    };
    chart(page, title, "ms", &latency, &bands, x_max);
    if !ts.series("fanout_p50_ms").is_empty() {
        fanout_charts(page, &line, &bands, x_max);
    }
    if streamed {
        // Its own chart: TTFF is often a hundredth of TTLF and vanishes on its axis.
        let ttff = [
            line("TTFF p50", BLUE, "ttff_p50_ms"),
            line("TTFF p99", PURPLE, "ttff_p99_ms"),
        ];
        chart(
            page,
            "Time to the first frame (TTFF), from the intended send",
            "ms",
            &ttff,
            &bands,
            x_max,
        );
    }
    chart(
        page,
        "Errors",
        "errors/s",
        &[line("errors/s", RED, "errors_per_s")],
        &bands,
        x_max,
    );
    memory_chart(page, summary, memory, &with_warmup(summary, &bands), x_max);
    let mut probe_bands = bands.clone();
    probe_bands.extend(stall_bands(summary));
    chart(
        page,
        "Probe round trip p99 (stalls marked)",
        "ms",
        &[line("probe p99", PURPLE, "probe_p99_ms")],
        &probe_bands,
        x_max,
    );
    let lag = [line("tester lag max", GREY, "tester_lag_max_ms")];
    chart(
        page,
        "Tester lag: how late soak's own timers fired",
        "ms",
        &lag,
        &bands,
        x_max,
    );
}

/// Rooms: fan-out latency to each member, and reach, over time.
fn fanout_charts<'a>(
    page: &mut String,
    line: &impl Fn(&'a str, plotters::style::RGBColor, &str) -> Series<'a>,
    bands: &[Band<'_>],
    x_max: f64,
) {
    let fanout = [
        line("fan-out p50", GREEN, "fanout_p50_ms"),
        line("fan-out p99", RED, "fanout_p99_ms"),
        line("last member p99", GREY, "last_member_p99_ms"),
    ];
    chart(
        page,
        "Fan-out: a room message to each member, from the intended send",
        "ms",
        &fanout,
        bands,
        x_max,
    );
    let reach = [line("reach", BLUE, "reach")];
    chart(
        page,
        "Reach (copies delivered / expected)",
        "share",
        &reach,
        bands,
        x_max,
    );
}

/// The x axis every chart shares: the planned run (its last phase's end), or what the
/// files hold if the run went longer.
fn x_extent(summary: &Value, ts: &Table) -> f64 {
    let planned = summary
        .get("phases")
        .and_then(Value::as_array)
        .and_then(|p| p.last())
        .and_then(|p| p.get("end_s"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let seen = ts.series("active_users").last().map_or(0.0, |p| p.0);
    planned.max(seen)
}

/// The timeseries interval, s (each row's `elapsed_s` is its interval's end).
fn interval_s(summary: &Value) -> f64 {
    summary
        .pointer("/config/output/interval")
        .and_then(Value::as_str)
        .and_then(|t| crate::units::parse_duration(t).ok())
        .map_or(1.0, |d| d.as_secs_f64())
}

/// The colour of a phase, by its name (never by its position).
fn phase_color(name: &str) -> plotters::style::RGBColor {
    match name {
        "hold" => HOLD,
        "ramp-up" | "ramp-down" => RAMP,
        _ => GREY, // baseline, cool-down: idle time
    }
}

/// The planned phases (from the summary: exact, not rounded to intervals) as bands.
fn phase_bands(summary: &Value) -> Vec<Band<'static>> {
    summary
        .get("phases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let label: &'static str = match name {
                "baseline" => "baseline",
                "ramp-up" => "ramp-up",
                "hold" => "hold",
                "ramp-down" => "ramp-down",
                "cool-down" => "cool-down",
                _ => "",
            };
            Some(Band {
                from: p.get("start_s")?.as_f64()?,
                to: p.get("end_s")?.as_f64()?,
                color: phase_color(name),
                label,
            })
        })
        .filter(|b| b.to > b.from)
        .collect()
}

/// The phases with the memory verdict's warm-up (the hold's start it leaves out) marked.
fn with_warmup(summary: &Value, bands: &[Band<'static>]) -> Vec<Band<'static>> {
    let mut out = bands.to_vec();
    let warmup = summary.pointer("/memory/warmup_s").and_then(Value::as_f64);
    if let (Some(w), Some(hold)) = (
        warmup.filter(|w| *w > 0.0),
        bands.iter().find(|b| b.label == "hold"),
    ) {
        out.push(Band {
            from: hold.from,
            to: (hold.from + w).min(hold.to),
            color: WARMUP,
            label: "warm-up",
        });
    }
    out
}

/// Each stall as a red band.
fn stall_bands(summary: &Value) -> Vec<Band<'static>> {
    stall_spans(summary)
        .into_iter()
        .map(|(from, to)| Band {
            from,
            to,
            color: RED,
            label: "stall",
        })
        .collect()
}

/// Each stall as (start, end) in seconds from the run's start.
fn stall_spans(summary: &Value) -> Vec<(f64, f64)> {
    summary
        .pointer("/stalls/list")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let start = s.get("start_s")?.as_f64()?;
            Some((start, start + s.get("length_ms")?.as_f64()? / 1000.0))
        })
        .collect()
}

/// Target RSS with the fitted Theil–Sen line over the verdict's window, and the verdict.
fn memory_chart(
    page: &mut String,
    summary: &Value,
    memory: &Table,
    bands: &[Band<'_>],
    x_max: f64,
) {
    let rss = memory.series("target_rss_mb");
    let (title, series) = if rss.is_empty() {
        (
            "soak's own RSS (no target process sampled)".to_string(),
            vec![Series {
                name: "soak RSS",
                color: BLUE,
                points: memory.series("tester_rss_mb"),
            }],
        )
    } else {
        let verdict = summary
            .pointer("/memory/verdict")
            .and_then(Value::as_str)
            .unwrap_or("–");
        let slope = summary
            .pointer("/memory/slope_mb_per_hour")
            .and_then(Value::as_f64);
        // A cgroup target: the verdict's line is its anonymous memory, with the page cache
        // (reclaimable, not judged) beside it.
        let cache = memory.series("target_cache_mb");
        let name = if cache.is_empty() {
            "target RSS"
        } else {
            "target anonymous memory"
        };
        let mut series = vec![Series {
            name,
            color: BLUE,
            points: rss.clone(),
        }];
        if !cache.is_empty() {
            series.push(Series {
                name: "page cache (not judged)",
                color: GREEN,
                points: cache,
            });
        }
        if let Some(slope) = slope {
            series.push(Series {
                name: "fitted slope",
                color: RED,
                points: fitted(summary, &rss, slope),
            });
        }
        let shown = slope.map_or(String::new(), |s| format!(", {s:.1} MB/h"));
        let what = if name == "target RSS" {
            "Target RSS"
        } else {
            "Target anonymous memory"
        };
        (format!("{what} — verdict: {verdict}{shown}"), series)
    };
    chart(page, &title, "MB", &series, bands, x_max);
}

/// The Theil–Sen line over the hold after warm-up: slope from the summary, intercept the
/// median of `y − slope·t` over that window.
fn fitted(summary: &Value, rss: &[(f64, f64)], slope_per_hour: f64) -> Vec<(f64, f64)> {
    let phase = |name: &str| {
        summary
            .get("phases")?
            .as_array()?
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .cloned()
    };
    let Some(hold) = phase("hold") else {
        return Vec::new();
    };
    let warmup = summary
        .pointer("/memory/warmup_s")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let from = hold.get("start_s").and_then(Value::as_f64).unwrap_or(0.0) + warmup;
    let to = hold.get("end_s").and_then(Value::as_f64).unwrap_or(from);
    let per_s = slope_per_hour / 3600.0;
    let mut offsets: Vec<f64> = rss
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(t, y)| y - per_s * t)
        .collect();
    if offsets.is_empty() {
        return Vec::new();
    }
    offsets.sort_by(f64::total_cmp);
    let b = offsets[offsets.len() / 2];
    vec![(from, b + per_s * from), (to, b + per_s * to)]
}
