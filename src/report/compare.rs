//! `soak compare`: the headline numbers of two runs side by side, and whether the candidate
//! regressed beyond a tolerance. Reads two `summary.json` files (or run folders).

use std::fmt::Write as _;

use serde_json::Value;

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
}

/// Headline metrics: label, where, which way is better, and the smallest absolute change
/// that can count as a regression (so 1.2 → 1.4 ms of p50 noise is not one).
const HEADLINE: &[(&str, &str, Better, f64)] = &[
    ("p50 ms", "/latency_ms/run/p50", Better::Lower, 1.0),
    ("p95 ms", "/latency_ms/run/p95", Better::Lower, 1.0),
    ("p99 ms", "/latency_ms/run/p99", Better::Lower, 1.0),
    ("p99.9 ms", "/latency_ms/run/p99_9", Better::Lower, 2.0),
    ("TTFF p99 ms", "/ttff_ms/run/p99", Better::Lower, 1.0),
    (
        "corrected p99 ms",
        "/latency_ms/corrected/p99",
        Better::Lower,
        1.0,
    ),
    ("error rate", "/totals/error_ratio", Better::Lower, 0.001),
    (
        "connect success",
        "/connects/success_ratio",
        Better::Higher,
        0.001,
    ),
    ("connect p99 ms", "/connect_time_ms/p99", Better::Lower, 1.0),
    ("join p99 ms", "/join_time_ms/p99", Better::Lower, 1.0),
    (
        "fan-out p99 ms",
        "/fanout/fanout_ms/p99",
        Better::Lower,
        1.0,
    ),
    (
        "last member p99 ms",
        "/fanout/last_member_ms/p99",
        Better::Lower,
        1.0,
    ),
    ("reach", "/fanout/reach", Better::Higher, 0.001),
    ("stalls", "/stalls/count", Better::Lower, 0.5),
    (
        "longest stall ms",
        "/stalls/longest_ms",
        Better::Lower,
        10.0,
    ),
    (
        "memory slope MB/h",
        "/memory/slope_mb_per_hour",
        Better::Lower,
        1.0,
    ),
    ("retained MB", "/memory/retained_mb", Better::Lower, 5.0),
    ("fd growth", "/memory/fd_growth", Better::Lower, 0.5),
];

/// One line of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What.
    pub metric: &'static str,
    /// The baseline's value.
    pub baseline: String,
    /// The candidate's value.
    pub candidate: String,
    /// Relative change, when both are numbers.
    pub change_pct: Option<f64>,
    /// Whether this line is a regression beyond the tolerance.
    pub regression: bool,
}

/// Compares two summaries; `tolerance` is a ratio (0.10 for 10 %).
pub fn compare(baseline: &Value, candidate: &Value, tolerance: f64) -> Vec<Row> {
    let mut rows = Vec::new();
    for &(metric, pointer, better, floor) in HEADLINE {
        let (b, c) = (
            baseline.pointer(pointer).and_then(Value::as_f64),
            candidate.pointer(pointer).and_then(Value::as_f64),
        );
        if b.is_none() && c.is_none() {
            continue;
        }
        let change_pct = b
            .zip(c)
            .and_then(|(b, c)| (b != 0.0).then(|| (c - b) / b * 100.0));
        let regression = match (b, c) {
            (Some(b), Some(c)) => match better {
                Better::Lower => c > b * (1.0 + tolerance) && c - b > floor,
                Better::Higher => c < b * (1.0 - tolerance) && b - c > floor,
            },
            _ => false,
        };
        rows.push(Row {
            metric,
            baseline: num(b),
            candidate: num(c),
            change_pct,
            regression,
        });
    }
    for (metric, pointer, bad) in [
        ("memory verdict", "/memory/verdict", "leak"),
        ("verdict", "/verdict/result", "fail"),
    ] {
        let (b, c) = (word(baseline, pointer), word(candidate, pointer));
        if b == "–" && c == "–" {
            continue;
        }
        rows.push(Row {
            metric,
            regression: c == bad && b != bad,
            baseline: b,
            candidate: c,
            change_pct: None,
        });
    }
    rows
}

/// The comparison as a text table.
pub fn table(rows: &[Row], tolerance: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>14} {:>14} {:>9}  ",
        "metric", "baseline", "candidate", "change"
    );
    for r in rows {
        let change = r.change_pct.map_or(String::new(), |c| format!("{c:+.1}%"));
        let flag = if r.regression { "REGRESSION" } else { "" };
        let _ = writeln!(
            out,
            "{:<20} {:>14} {:>14} {:>9}  {flag}",
            r.metric, r.baseline, r.candidate, change
        );
    }
    let n = rows.iter().filter(|r| r.regression).count();
    let _ = writeln!(
        out,
        "{n} regression(s) beyond {:.1}% tolerance",
        tolerance * 100.0
    );
    out
}

fn num(v: Option<f64>) -> String {
    v.map_or(String::from("–"), |v| {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        }
    })
}

fn word(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("–")
        .to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(p99: f64, p50: f64, verdict: &str) -> Value {
        json!({"latency_ms": {"run": {"p50": p50, "p99": p99}}, "totals": {"error_ratio": 0.0},
               "memory": {"verdict": verdict}, "verdict": {"result": "pass"}})
    }

    #[test]
    fn a_doubled_p99_is_a_regression() {
        let rows = compare(&run(100.0, 10.0, "none"), &run(200.0, 10.5, "none"), 0.10);
        let p99 = rows.iter().find(|r| r.metric == "p99 ms").unwrap();
        assert!(p99.regression);
        assert_eq!(p99.change_pct, Some(100.0));
        assert!(
            !rows
                .iter()
                .find(|r| r.metric == "p50 ms")
                .unwrap()
                .regression,
            "within tolerance"
        );
        assert!(table(&rows, 0.10).contains("1 regression(s)"));
    }

    #[test]
    fn tiny_absolute_changes_and_improvements_are_not_regressions() {
        let rows = compare(&run(1.0, 0.5, "none"), &run(1.5, 0.4, "none"), 0.10);
        assert!(rows.iter().all(|r| !r.regression), "{rows:?}");
    }

    #[test]
    fn a_new_leak_is_a_regression() {
        let rows = compare(&run(100.0, 10.0, "none"), &run(100.0, 10.0, "leak"), 0.10);
        assert!(
            rows.iter()
                .find(|r| r.metric == "memory verdict")
                .unwrap()
                .regression
        );
    }
}
