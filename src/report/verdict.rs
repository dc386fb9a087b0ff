//! The run's verdict: pass, fail or error with its reasons (where the CPU went, memory,
//! stalls, soak's own lag), and the gates folded into it.

use serde_json::Value;

use crate::analysis::gates::{self, Gate, GateResult};
use crate::analysis::stall::Stall;
use crate::metrics::snapshot::RunTotals;
use crate::profile::spec::GatesSpec;
use crate::report::summary::{Status, tester};
use crate::report::summary_model::{Summary, Verdict};

/// Where the CPU went while users ran: soak's and, when sampled, the target's, and which
/// one was near its ceiling (a bottleneck check for throughput runs).
fn cpu_line(totals: &RunTotals) -> Option<String> {
    let me = totals.tester_memory.as_ref()?;
    let (mean, max) = (me.cpu_pct_mean?, me.cpu_pct_max.unwrap_or(0.0));
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64;
    let mut line = format!(
        "CPU while users ran: soak {mean:.0} % of one core on average (peak {max:.0} %, {cores} cores)"
    );
    let target = totals.memory.as_ref().and_then(|m| m.cpu_pct_mean);
    if let Some(target) = target {
        line.push_str(&format!(", the target {target:.0} %"));
    }
    line.push_str(bottleneck(mean, target, cores));
    Some(line)
}

/// Which side set the pace, from mean CPU (% of one core) of soak and the target.
fn bottleneck(soak: f64, target: Option<f64>, cores: f64) -> &'static str {
    if soak > 0.8 * cores * 100.0 {
        "; soak was CPU-bound, so the load it offered was limited by itself"
    } else if target.is_some_and(|t| t >= 85.0) {
        "; the target was near a full core (the ceiling of a single-threaded server) while soak had room: the target set the pace"
    } else {
        ""
    }
}

pub(super) fn verdict(status: Status, totals: &RunTotals) -> Verdict {
    let (result, reason) = match status {
        Status::Running => ("incomplete", "the run is still going; this is a checkpoint"),
        Status::Completed => ("pass", "the run completed and no gates are configured"),
        Status::Interrupted => (
            "interrupted",
            "the run was stopped early; figures cover the time it ran",
        ),
        Status::TargetExited => (
            "error",
            "the target process exited during the run; figures cover the time it ran",
        ),
        Status::Aborted => (
            "fail",
            "the run was ended early because a gate could no longer pass",
        ),
        Status::Failed => (
            "error",
            "soak itself failed (an internal error) and stopped the run; figures cover the time up to then",
        ),
    };
    let mut reasons = vec![reason.to_string()];
    reasons.extend(cpu_line(totals));
    if let Some(m) = &totals.memory {
        reasons.push(format!(
            "memory verdict: {} — {}{}",
            m.verdict.verdict,
            m.verdict.reason,
            m.attribution
                .as_ref()
                .map_or(String::new(), |a| format!("; {}", a.reason))
        ));
        if m.gaps > 0 {
            reasons.push(format!(
                "{} readings of the target failed and are gaps in memory.csv (the last: {})",
                m.gaps,
                m.last_gap.as_deref().unwrap_or("?")
            ));
        }
    }
    let t = tester(totals);
    if t.bottleneck {
        let worst = totals.lag.map_or(0.0, |l| l.max);
        reasons.push(format!(
            "soak itself was the bottleneck for {:.1} s ({:.1} % of the run): its own timers fired up to {worst:.0} ms late, so latencies then include soak's delay and stalls then are not blamed on the target",
            t.tester_bound_s,
            t.tester_bound_ratio * 100.0
        ));
    }
    let target: Vec<&Stall> = totals.stalls.iter().filter(|s| !s.tester_bound).collect();
    if !target.is_empty() {
        let longest = target.iter().map(|s| s.length_ms).fold(0.0, f64::max);
        reasons.push(format!(
            "the target's event loop stalled {} time(s), the longest for {longest:.0} ms",
            target.len()
        ));
    }
    Verdict { result, reasons }
}

/// Evaluates `gates` on the finished summary and folds them into the verdict: any failed
/// gate makes a completed run `fail`.
pub fn apply_gates(summary: &mut Summary, gates: &[Gate]) {
    let Ok(json) = serde_json::to_value(&*summary) else {
        return;
    };
    summary.gates = gates::evaluate(gates, &json);
    let (result, first, extra) = gate_verdict(&summary.gates, summary.run.status);
    if let Some(result) = result {
        summary.verdict.result = result;
        summary.verdict.reasons[0] = first;
    }
    summary.verdict.reasons.extend(extra);
}

/// The same on a saved `summary.json` (for `soak report`): gates re-derived from its config
/// as the run derived them.
pub fn apply_gates_json(summary: &mut Value) -> Result<(), String> {
    let spec: GatesSpec = match summary.pointer("/config/gates") {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| format!("config.gates is not a gates section: {e}"))?,
        None => GatesSpec::default(),
    };
    let gates = crate::profile::resolve::gates_of(&spec)
        .map_err(|(field, e)| format!("config {field}: {e}"))?;
    let results = gates::evaluate(&gates, summary);
    let status = match summary.pointer("/run/status").and_then(Value::as_str) {
        Some("completed") => Status::Completed,
        Some("aborted") => Status::Aborted,
        _ => Status::Interrupted, // running, killed, interrupted, target_exited: no pass
    };
    let (result, first, extra) = gate_verdict(&results, status);
    summary["gates"] = serde_json::to_value(&results).map_err(|e| e.to_string())?;
    let mut reasons: Vec<Value> = summary
        .pointer("/verdict/reasons")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            !r.as_str()
                .is_some_and(|r| r.starts_with("gate `") || r.starts_with("default gate `"))
        })
        .collect();
    if let Some(result) = result {
        summary["verdict"]["result"] = Value::from(result);
        if reasons.is_empty() {
            reasons.push(Value::from(first));
        } else {
            reasons[0] = Value::from(first);
        }
    }
    reasons.extend(extra.into_iter().map(Value::from));
    summary["verdict"]["reasons"] = Value::from(reasons);
    Ok(())
}

/// The verdict gates give a completed run (`fail` for one ended early by a gate, `None`
/// otherwise), its first reason, and one reason per failed gate.
fn gate_verdict(
    results: &[GateResult],
    status: Status,
) -> (Option<&'static str>, String, Vec<String>) {
    let applied: Vec<&GateResult> = results.iter().filter(|g| !g.skipped).collect();
    let failed: Vec<&GateResult> = applied.iter().copied().filter(|g| !g.passed).collect();
    let kind = if applied.iter().all(|g| g.default) {
        "default "
    } else {
        ""
    };
    let count = |n: usize| if n == 1 { "gate" } else { "gates" };
    let first = if applied.is_empty() {
        String::from("the run completed and no gates are configured")
    } else if failed.is_empty() {
        format!(
            "the run completed and all {} {kind}{} passed",
            applied.len(),
            count(applied.len())
        )
    } else {
        format!(
            "{} of {} {kind}{} failed",
            failed.len(),
            applied.len(),
            count(applied.len())
        )
    };
    let result = match status {
        Status::Completed if failed.is_empty() => Some("pass"),
        Status::Completed | Status::Aborted => Some("fail"),
        _ => None,
    };
    let extra = failed
        .iter()
        .map(|g| format!("gate `{}` failed: {}", g.gate, g.message))
        .chain(
            results
                .iter()
                .filter(|g| g.skipped)
                .map(|g| format!("default gate `{}` not applied: {}", g.gate, g.message)),
        )
        .collect();
    (result, first, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_names_the_side_that_set_the_pace() {
        assert!(bottleneck(178.0, Some(93.0), 2.0).contains("soak was CPU-bound"));
        assert!(bottleneck(89.0, Some(93.0), 2.0).contains("the target set the pace"));
        assert_eq!(bottleneck(89.0, Some(40.0), 2.0), "");
        assert_eq!(
            bottleneck(89.0, None, 2.0),
            "",
            "no target sampled: no claim"
        );
    }
}
