//! `soak lock`: gates derived from a passing run — each headline metric plus a margin —
//! written as a profile that reruns the same load with those gates.

use serde_json::Value;

use crate::profile::ProfileSpec;

/// The gates a passing run earns with `margin` (a ratio: 0.10 for 10 %).
pub fn gates(summary: &Value, margin: f64) -> Vec<String> {
    let f = |p: &str| summary.pointer(p).and_then(Value::as_f64);
    let mut gates = Vec::new();
    let ms = |v: f64| (v * (1.0 + margin)).max(v + 1.0).ceil();
    for (metric, pointer) in [
        ("p95", "/latency_ms/run/p95"),
        ("p99", "/latency_ms/run/p99"),
        ("ttff_p99", "/ttff_ms/run/p99"),
    ] {
        if let Some(v) = f(pointer) {
            gates.push(format!("{metric} < {}ms", ms(v)));
        }
    }
    if let Some(rate) = f("/totals/error_ratio") {
        // Never tighter than 0.1 %: a clean baseline must not fail on one stray error.
        let limit = (rate * (1.0 + margin)).max(0.001) * 100.0;
        gates.push(format!("error_rate <= {}%", round(limit)));
    }
    if let Some(ok) = f("/connects/success_ratio") {
        gates.push(format!(
            "connect_success >= {}%",
            round(ok * (1.0 - margin / 10.0) * 100.0)
        ));
    }
    if let Some(stalls) = f("/stalls/count") {
        gates.push(format!("stalls <= {stalls}"));
    }
    if let Some(v) = summary.pointer("/memory/verdict").and_then(Value::as_str)
        && v != "leak"
    {
        gates.push(String::from("memory != leak"));
    }
    gates
}

/// The locked profile: the run's effective config with the derived gates, as TOML.
pub fn profile(summary: &Value, margin: f64) -> Result<String, String> {
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
    spec.gates.checks = gates(summary, margin);
    let body = toml::to_string(&spec).map_err(|e| format!("cannot write the profile: {e}"))?;
    let mut header = format!(
        "# Locked by `soak lock` from {run}: the same load, gated at its results plus {:.0}%.\n",
        margin * 100.0
    );
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
        let g = gates(&passing(), 0.10);
        assert_eq!(
            g,
            [
                "p95 < 22ms",
                "p99 < 45ms",
                "error_rate <= 0.1%",
                "connect_success >= 99%",
                "stalls <= 0",
                "memory != leak"
            ]
        );
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
    fn the_locked_profile_parses_back_with_its_gates() {
        let text = profile(&passing(), 0.10).unwrap();
        let spec = crate::profile::parse(&text, "locked.toml").unwrap();
        assert_eq!(spec.gates.checks.len(), 6);
        assert!(spec.description.contains("r1"));
    }
}
