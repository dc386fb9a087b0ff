//! The report's charts: load, latency, errors, memory with its fitted trend, probes with
//! stalls marked, and soak's own timer lag.

use serde_json::Value;

use crate::report::chart::{BLUE, Band, GREEN, GREY, ORANGE, PURPLE, RED, Series, line_chart};
use crate::report::table::Table;

pub(super) fn charts(page: &mut String, summary: &Value, ts: &Table, memory: &Table) {
    let phases: Vec<(f64, f64, String)> = ts.phase_bands();
    let phase_bands = shaded(&phases);
    let line = |name, color, column: &str| Series {
        name,
        color,
        points: ts.series(column),
    };
    page.push_str("<h2>Over time</h2>");
    let load = [
        line("active users", BLUE, "active_users"),
        line("sent/s", GREEN, "sent_per_s"),
        line("received/s", ORANGE, "received_per_s"),
    ];
    page.push_str(&line_chart(
        "Active users and message rate (phases shaded)",
        "users · messages/s",
        &load,
        &phase_bands,
    ));
    let mut latency = vec![
        line("p50", GREEN, "p50_ms"),
        line("p95", ORANGE, "p95_ms"),
        line("p99", RED, "p99_ms"),
    ];
    if !ts.series("ttff_p99_ms").is_empty() {
        latency.extend([
            line("TTFF p50", BLUE, "ttff_p50_ms"),
            line("TTFF p99", PURPLE, "ttff_p99_ms"),
        ]);
    }
    page.push_str(&line_chart(
        "Latency from the intended send (TTLF)",
        "ms",
        &latency,
        &phase_bands,
    ));
    page.push_str(&line_chart(
        "Errors",
        "errors/s",
        &[line("errors/s", RED, "errors_per_s")],
        &phase_bands,
    ));
    memory_chart(page, summary, memory);
    page.push_str(&line_chart(
        "Probe round trip p99 (stalls marked)",
        "ms",
        &[line("probe p99", PURPLE, "probe_p99_ms")],
        &stall_bands(summary),
    ));
    let lag = [line("tester lag max", GREY, "tester_lag_max_ms")];
    page.push_str(&line_chart(
        "Tester lag: how late soak's own timers fired",
        "ms",
        &lag,
        &phase_bands,
    ));
}

/// The run's phases as bands, shaded alternately.
fn shaded(phases: &[(f64, f64, String)]) -> Vec<Band<'_>> {
    phases
        .iter()
        .enumerate()
        .map(|(i, (from, to, label))| Band {
            from: *from,
            to: *to,
            color: if i % 2 == 0 { GREY } else { BLUE },
            label,
        })
        .collect()
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
fn memory_chart(page: &mut String, summary: &Value, memory: &Table) {
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
        let mut series = vec![Series {
            name: "target RSS",
            color: BLUE,
            points: rss.clone(),
        }];
        if let Some(slope) = slope {
            series.push(Series {
                name: "fitted slope",
                color: RED,
                points: fitted(summary, &rss, slope),
            });
        }
        let shown = slope.map_or(String::new(), |s| format!(", {s:.1} MB/h"));
        (format!("Target RSS — verdict: {verdict}{shown}"), series)
    };
    page.push_str(&line_chart(&title, "MB", &series, &[]));
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
