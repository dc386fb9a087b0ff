//! `soak lock`: gates derived from a passing run — each headline metric plus a margin —
//! written as a profile that reruns the same load with those gates. A run whose verdicts
//! failed (stalls, a leak, descriptor growth, errors, a failed gate) is not locked unless
//! asked to with `--accept-current`, and then the file says what it accepts.

use serde_json::Value;

use crate::profile::ProfileSpec;
use crate::profile::spec::Check;

/// What in the run a locked profile would bless as its baseline: one line each, empty
/// for a clean run.
pub fn problems(summary: &Value) -> Vec<String> {
    let f = |p: &str| summary.pointer(p).and_then(Value::as_f64);
    let mut found = Vec::new();
    match summary.pointer("/verdict/result").and_then(Value::as_str) {
        Some("pass") => {}
        other => found.push(format!(
            "the run's verdict is `{}`",
            other.unwrap_or("missing")
        )),
    }
    if let Some(n) = f("/stalls/count").filter(|n| *n > 0.0) {
        found.push(format!("the target's event loop stalled {n} time(s)"));
    }
    if summary.pointer("/memory/verdict").and_then(Value::as_str) == Some("leak") {
        let slope = f("/memory/slope_mb_per_hour").unwrap_or(0.0);
        found.push(format!("the memory verdict is `leak` ({slope:.2} MB/h)"));
    }
    if let Some(n) = f("/memory/fd_growth").filter(|n| *n > 0.0) {
        found.push(format!("open file descriptors grew by {n}"));
    }
    if let Some(n) = f("/totals/errors").filter(|n| *n > 0.0) {
        found.push(format!("{n} error(s)"));
    }
    found
}

/// The gates a run earns with `margin` (a ratio: 0.10 for 10 %). For a clean run, stalls,
/// descriptor growth and leaks are gated at none; with `accept` (a run with
/// [`problems`]), at what the run had.
pub fn gates(summary: &Value, margin: f64, accept: bool) -> Vec<String> {
    let f = |p: &str| summary.pointer(p).and_then(Value::as_f64);
    let mut gates = Vec::new();
    let ms = |v: f64| (v * (1.0 + margin)).max(v + 1.0).ceil();
    for (metric, pointer) in [
        ("p95", "/latency_ms/run/p95"),
        ("p99", "/latency_ms/run/p99"),
        ("ttff_p99", "/ttff_ms/run/p99"),
        ("join_p99", "/join_time_ms/p99"),
        ("fanout_p99", "/fanout/fanout_ms/p99"),
        ("last_member_p99", "/fanout/last_member_ms/p99"),
    ] {
        if let Some(v) = f(pointer) {
            gates.push(format!("{metric} < {}ms", ms(v)));
        }
    }
    let errors = f("/totals/errors").unwrap_or(0.0);
    if let Some(rate) = f("/totals/error_ratio") {
        if errors > 0.0 && !accept {
            gates.push(String::from("errors == 0"));
        } else {
            // Never tighter than 0.1 %: a clean baseline must not fail on one stray error.
            let limit = (rate * (1.0 + margin)).max(0.001) * 100.0;
            gates.push(format!("error_rate <= {}%", round(limit)));
        }
    }
    if let Some(ok) = f("/connects/success_ratio") {
        gates.push(format!(
            "connect_success >= {}%",
            round(ok * (1.0 - margin / 10.0) * 100.0)
        ));
    }
    // A room run locks its reach like connect success: at what it had, less a tenth of
    // the margin.
    if let Some(reach) = f("/fanout/reach") {
        gates.push(format!(
            "reach >= {}%",
            round(reach * (1.0 - margin / 10.0) * 100.0)
        ));
    }
    match f("/stalls/count") {
        Some(n) if n > 0.0 && accept => gates.push(format!("stalls <= {n}")),
        Some(_) => gates.push(String::from("stalls == 0")),
        None => {}
    }
    match summary.pointer("/memory/verdict").and_then(Value::as_str) {
        Some("leak") if accept => {
            let slope = f("/memory/slope_mb_per_hour").unwrap_or(0.0);
            gates.push(format!("slope_mb_h <= {}", round(slope * (1.0 + margin))));
        }
        Some(_) => gates.push(String::from("memory != leak")),
        None => {}
    }
    match f("/memory/fd_growth") {
        Some(n) if n > 0.0 && accept => gates.push(format!("fd_growth <= {n}")),
        Some(_) => gates.push(String::from("fd_growth == 0")),
        None => {}
    }
    gates
}

/// The locked profile: the run's effective config with the derived gates, as TOML.
/// `accepted` lists the [`problems`] the caller chose to accept (`--accept-current`).
pub fn profile(summary: &Value, margin: f64, accepted: &[String]) -> Result<String, String> {
    let config = summary
        .get("config")
        .cloned()
        .ok_or("the summary has no config")?;
    let mut spec: ProfileSpec = serde_json::from_value(config)
        .map_err(|e| format!("the summary's config is not a profile: {e}"))?;
    let run = summary
        .pointer("/run/id")
        .and_then(Value::as_str)
        .unwrap_or("a run");
    spec.description = format!(
        "Gates locked from {run} with a {:.0}% margin",
        margin * 100.0
    );
    spec.gates.checks = gates(summary, margin, !accepted.is_empty())
        .into_iter()
        .map(Check::Expr)
        .collect();
    let body = toml::to_string(&spec).map_err(|e| format!("cannot write the profile: {e}"))?;
    let mut header = format!(
        "# Locked by `soak lock` from {run}: the same load, gated at its results plus {:.0}%.\n",
        margin * 100.0
    );
    if !accepted.is_empty() {
        header.push_str(
            "# --accept-current: these gates ACCEPT what the source run got wrong, as its baseline:\n",
        );
        for p in accepted {
            header.push_str(&format!("#   - {p}\n"));
        }
    }
    if body.contains(crate::redact::MASK) {
        header.push_str(
            "# Secrets were redacted in the source run (***): put them back before use.\n",
        );
    }
    Ok(header + &body)
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::analysis::gates as gate;

    fn passing() -> Value {
        json!({
            "run": {"id": "r1"},
            "latency_ms": {"run": {"p95": 20.0, "p99": 40.2}},
            "totals": {"error_ratio": 0.0},
            "connects": {"success_ratio": 1.0},
            "stalls": {"count": 0},
            "memory": {"verdict": "none"},
            "config": serde_json::to_value(ProfileSpec::default()).unwrap(),
            "verdict": {"result": "pass"}
        })
    }

    #[test]
    fn each_headline_metric_gets_its_margin() {
        let g = gates(&passing(), 0.10, false);
        assert_eq!(
            g,
            [
                "p95 < 22ms",
                "p99 < 45ms",
                "error_rate <= 0.1%",
                "connect_success >= 99%",
                "stalls == 0",
                "memory != leak"
            ]
        );
        assert!(problems(&passing()).is_empty());
        for expr in &g {
            assert!(gate::parse(expr).is_ok(), "{expr}");
        }
        let results = gate::evaluate(
            &g.iter()
                .map(|e| gate::parse(e).unwrap())
                .collect::<Vec<_>>(),
            &passing(),
        );
        assert!(
            results.iter().all(|r| r.passed),
            "the run it came from passes its own gates: {results:?}"
        );
    }

    #[test]
    fn a_room_run_locks_its_fan_out_and_reach() {
        let mut s = passing();
        s["fanout"] = json!({"fanout_ms": {"p99": 30.0}, "last_member_ms": {"p99": 40.0},
            "reach": 1.0});
        let g = gates(&s, 0.10, false);
        assert!(g.contains(&String::from("fanout_p99 < 33ms")), "{g:?}");
        assert!(g.contains(&String::from("last_member_p99 < 44ms")), "{g:?}");
        assert!(g.contains(&String::from("reach >= 99%")), "{g:?}");
        let parsed: Vec<_> = g.iter().map(|e| gate::parse(e).unwrap()).collect();
        assert!(gate::evaluate(&parsed, &s).iter().all(|r| r.passed));
    }

    #[test]
    fn a_run_with_connect_time_steps_locks_its_join_time_too() {
        let mut s = passing();
        s["join_time_ms"] = json!({"p99": 12.4});
        let g = gates(&s, 0.10, false);
        assert!(g.contains(&String::from("join_p99 < 14ms")), "{g:?}");
        let results = gate::evaluate(
            &g.iter()
                .map(|e| gate::parse(e).unwrap())
                .collect::<Vec<_>>(),
            &s,
        );
        assert!(results.iter().all(|r| r.passed), "{results:?}");
    }

    #[test]
    fn the_locked_profile_parses_back_with_its_gates() {
        let text = profile(&passing(), 0.10, &[]).unwrap();
        let spec = crate::profile::parse(&text, "locked.toml").unwrap();
        assert_eq!(spec.gates.checks.len(), 6);
        assert!(spec.description.contains("r1"));
        assert!(!text.contains("accept-current"));
    }

    fn stalled_and_leaking() -> Value {
        let mut s = passing();
        s["stalls"]["count"] = json!(20);
        s["memory"] = json!({"verdict": "leak", "slope_mb_per_hour": 12.0, "fd_growth": 3});
        s["totals"] = json!({"error_ratio": 0.01, "errors": 7});
        s["verdict"]["result"] = json!("fail");
        s
    }

    #[test]
    fn a_run_with_stalls_a_leak_or_errors_is_not_blessed() {
        let bad = stalled_and_leaking();
        let found = problems(&bad);
        assert_eq!(found.len(), 5, "{found:?}");
        // Even if asked for its gates without accepting, none of them accepts the problems.
        let strict = gates(&bad, 0.10, false);
        for must in [
            "stalls == 0",
            "memory != leak",
            "fd_growth == 0",
            "errors == 0",
        ] {
            assert!(strict.iter().any(|g| g == must), "{must} in {strict:?}");
        }
        let results = gate::evaluate(
            &strict
                .iter()
                .map(|e| gate::parse(e).unwrap())
                .collect::<Vec<_>>(),
            &bad,
        );
        assert!(results.iter().any(|r| !r.passed), "the bad run fails them");
    }

    #[test]
    fn accept_current_locks_what_the_run_had_and_says_so() {
        let bad = stalled_and_leaking();
        let found = problems(&bad);
        let text = profile(&bad, 0.10, &found).unwrap();
        assert!(text.contains("--accept-current"), "{text}");
        assert!(text.contains("stalled 20 time(s)"), "{text}");
        let spec = crate::profile::parse(&text, "locked.toml").unwrap();
        let checks: Vec<&str> = spec.gates.checks.iter().map(Check::expr).collect();
        assert!(checks.contains(&"stalls <= 20"), "{checks:?}");
        assert!(checks.contains(&"slope_mb_h <= 13.2"), "{checks:?}");
    }
}
