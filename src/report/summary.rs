//! `summary.json`: the run's metadata, effective config, phases, totals, latency and verdict.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::analysis::gates::{self, Gate, GateResult};
use crate::analysis::stall::Stall;
use crate::metrics::ErrorKind;
use crate::metrics::snapshot::RunTotals;
use crate::redact;
pub use crate::report::summary_model::*;

/// Version of the summary's shape; bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// Where the run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Still going: this summary is a checkpoint, rewritten each interval.
    Running,
    /// The plan ran to its end.
    Completed,
    /// Ctrl-C or SIGTERM ended it early.
    Interrupted,
    /// The target process ended during the run.
    TargetExited,
}

impl Status {
    /// The name used on screen and in files.
    pub fn label(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Interrupted => "interrupted",
            Status::TargetExited => "target_exited",
        }
    }
}

/// The summary of `meta` and `totals` at `now`.
pub fn build(meta: &RunMeta, totals: &RunTotals, status: Status, now: SystemTime) -> Summary {
    let mut config = meta.config.clone();
    config.target.url = config.target.url.as_deref().map(redact::url);
    Summary {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "soak",
            version: env!("CARGO_PKG_VERSION"),
        },
        run: RunInfo {
            id: meta.id.clone(),
            profile: meta.profile.clone(),
            status,
            model: meta.model,
            target: redact::url(&meta.target),
            demo_target: meta.demo_target,
            started_at: timestamp(meta.started_at),
            updated_at: timestamp(now),
            elapsed_s: secs(totals.elapsed),
        },
        config,
        phases: meta
            .phases
            .iter()
            .map(|p| PhaseInfo {
                name: p.phase.label(),
                start_s: secs(p.start),
                end_s: secs(p.end),
                started_at: timestamp(meta.started_at + p.start),
            })
            .collect(),
        totals: totals_of(totals),
        errors: ErrorKind::ALL
            .iter()
            .map(|k| (k.label(), totals.counters.errors[k.index()]))
            .collect(),
        connects: connects_of(totals),
        latency_ms: Latency {
            run: totals.latency_run,
            hold: totals.latency_hold,
            corrected: totals.latency_corrected,
            corrected_interval_ms: meta.correction.map(|d| d.as_secs_f64() * 1000.0),
        },
        ttff_ms: meta.messages.iter().any(|m| m.2).then_some(Latency {
            run: totals.ttff_run,
            hold: totals.ttff_hold,
            corrected: None,
            corrected_interval_ms: None,
        }),
        messages: messages(meta, totals),
        close_codes: totals
            .close_codes
            .iter()
            .map(|(code, n)| (code.to_string(), *n))
            .collect(),
        probes: meta.probes.clone().map(|setup| Probes {
            setup,
            threshold_ms: meta.stall_rule.threshold.as_secs_f64() * 1000.0,
            quorum: meta.stall_rule.quorum,
            rtt_ms: totals.probe,
        }),
        stalls: meta.probes.as_ref().map(|_| stalls(meta, totals)),
        tester: tester(totals),
        mocks: mocks(meta),
        memory: meta
            .process
            .clone()
            .zip(totals.memory.clone())
            .map(|(process, report)| MemorySummary { process, report }),
        connect_time_ms: totals.connect_time,
        gates: Vec::new(),
        verdict: verdict(status, totals),
    }
}

/// `num / den`, or `empty` when nothing was counted.
fn ratio(num: u64, den: u64, empty: f64) -> f64 {
    if den == 0 {
        empty
    } else {
        num as f64 / den as f64
    }
}

fn totals_of(totals: &RunTotals) -> Totals {
    let c = &totals.counters;
    Totals {
        sent: c.sent,
        received: c.received,
        errors: c.error_total(),
        late_replies: c.late,
        abandoned: c.abandoned,
        dropped_samples: totals.dropped_samples,
        users_started: c.users_started,
        error_ratio: ratio(c.error_total(), c.sent, 0.0),
    }
}

fn connects_of(totals: &RunTotals) -> Connects {
    let c = &totals.counters;
    Connects {
        attempts: c.connect_attempts,
        successes: c.connects,
        failures: c.connect_attempts.saturating_sub(c.connects),
        success_ratio: ratio(c.connects, c.connect_attempts, 1.0),
        reconnects: c.reconnects,
        churned: c.churned,
    }
}

fn messages(meta: &RunMeta, totals: &RunTotals) -> Vec<MessageSummary> {
    meta.messages
        .iter()
        .zip(&totals.messages)
        .map(|((name, weight, _), m)| MessageSummary {
            name: name.clone(),
            weight: *weight,
            counts: m.counters,
            latency_ms: m.latency,
            ttff_ms: m.ttff,
        })
        .collect()
}

/// The counters of the mocks the run started, each with its base URL.
fn mocks(meta: &RunMeta) -> Option<Value> {
    let mut out = serde_json::Map::new();
    if let Some((llm, url)) = &meta.llm {
        let mut v = serde_json::to_value(llm.stats.snapshot()).unwrap_or_default();
        v["base_url"] = Value::from(url.as_str());
        out.insert("llm".into(), v);
    }
    if let Some((tg, url)) = &meta.telegram {
        let mut v = serde_json::to_value(tg.snapshot()).unwrap_or_default();
        v["base_url"] = Value::from(url.as_str());
        out.insert("telegram".into(), v);
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// Share of the run during which the tester itself was late before it is called a bottleneck.
const TESTER_BOTTLENECK_RATIO: f64 = 0.01;

fn stalls(meta: &RunMeta, totals: &RunTotals) -> Stalls {
    let target: Vec<&Stall> = totals.stalls.iter().filter(|s| !s.tester_bound).collect();
    Stalls {
        count: target.len(),
        longest_ms: target.iter().map(|s| s.length_ms).fold(0.0, f64::max),
        total_ms: target.iter().map(|s| s.length_ms).fold(0.0, |a, b| a + b),
        tester_bound_count: totals.stalls.len() - target.len(),
        list: totals
            .stalls
            .iter()
            .map(|s| StallInfo {
                at: timestamp(meta.started_at + Duration::from_secs_f64(s.start_s)),
                stall: s.clone(),
            })
            .collect(),
    }
}

fn tester(totals: &RunTotals) -> Tester {
    let bound = totals.tester_bound.as_secs_f64();
    let ratio = if totals.elapsed.is_zero() {
        0.0
    } else {
        bound / totals.elapsed.as_secs_f64()
    };
    Tester {
        lag_ms: totals.lag,
        tester_bound_s: secs(totals.tester_bound),
        tester_bound_ratio: (ratio * 10_000.0).round() / 10_000.0,
        bottleneck: ratio > TESTER_BOTTLENECK_RATIO,
        memory: totals.tester_memory.clone(),
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    }
}

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

fn verdict(status: Status, totals: &RunTotals) -> Verdict {
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
    };
    let mut reasons = vec![reason.to_string()];
    reasons.extend(cpu_line(totals));
    if let Some(m) = &totals.memory {
        reasons.push(format!(
            "memory verdict: {} — {}",
            m.verdict.verdict, m.verdict.reason
        ));
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
    let completed = summary.run.status == Status::Completed;
    let (result, first, extra) = gate_verdict(&summary.gates, completed);
    if let Some(result) = result {
        summary.verdict.result = result;
        summary.verdict.reasons[0] = first;
    }
    summary.verdict.reasons.extend(extra);
}

/// The same on a saved `summary.json` (for `soak report`): gates re-read from its config.
pub fn apply_gates_json(summary: &mut Value) -> Result<(), String> {
    let checks: Vec<String> = summary
        .pointer("/config/gates/checks")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let gates = checks
        .iter()
        .map(|c| gates::parse(c).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let results = gates::evaluate(&gates, summary);
    let completed = summary.pointer("/run/status").and_then(Value::as_str) == Some("completed");
    let (result, first, extra) = gate_verdict(&results, completed);
    summary["gates"] = serde_json::to_value(&results).map_err(|e| e.to_string())?;
    let mut reasons: Vec<Value> = summary
        .pointer("/verdict/reasons")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| !r.as_str().is_some_and(|r| r.starts_with("gate `")))
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

/// The verdict gates give a completed run (`None` otherwise), its first reason, and one
/// reason per failed gate.
fn gate_verdict(
    results: &[GateResult],
    completed: bool,
) -> (Option<&'static str>, String, Vec<String>) {
    let failed: Vec<&GateResult> = results.iter().filter(|g| !g.passed).collect();
    let first = if results.is_empty() {
        String::from("the run completed and no gates are configured")
    } else if failed.is_empty() {
        format!("the run completed and all {} gates passed", results.len())
    } else {
        format!("{} of {} gates failed", failed.len(), results.len())
    };
    let result = completed.then_some(if failed.is_empty() { "pass" } else { "fail" });
    let extra = failed
        .iter()
        .map(|g| format!("gate `{}` failed: {}", g.gate, g.message))
        .collect();
    (result, first, extra)
}

/// Writes the summary as pretty JSON.
pub fn render<W: Write>(summary: &Summary, mut out: W) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut out, summary)?;
    out.write_all(b"\n")
}

/// RFC 3339 UTC to the millisecond.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::stall::StallRule;
    use crate::plan::Plan;
    use crate::profile::ProfileSpec;
    use crate::profile::spec::Model;

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

    fn meta() -> RunMeta {
        let mut config = ProfileSpec::default();
        config.target.url = Some("ws://u:pw@127.0.0.1:1/ws?token=s3cret".into());
        RunMeta {
            id: "run".into(),
            profile: "smoke".into(),
            target: "ws://u:pw@127.0.0.1:1/ws?token=s3cret".into(),
            demo_target: false,
            started_at: SystemTime::UNIX_EPOCH,
            config,
            phases: Plan::new(
                1,
                Duration::from_secs(10),
                Duration::from_secs(2),
                Duration::ZERO,
            )
            .phases(),
            model: Model::Open,
            process: None,
            gates: Vec::new(),
            llm: None,
            telegram: None,
            correction: None,
            messages: vec![("message".into(), 1, false)],
            probes: None,
            stall_rule: StallRule {
                threshold: Duration::from_millis(50),
                quorum: 0.75,
                bin: Duration::from_millis(100),
            },
        }
    }

    #[test]
    fn renders_counts_ratios_and_redacts() {
        let mut totals = RunTotals::default();
        totals.counters.sent = 10;
        totals.counters.received = 9;
        totals.counters.errors[ErrorKind::Timeout.index()] = 1;
        totals.counters.connect_attempts = 4;
        totals.counters.connects = 3;
        let summary = build(&meta(), &totals, Status::Completed, SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        render(&summary, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("s3cret") && !text.contains(":pw@"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        assert_eq!(v["totals"]["sent"], 10);
        assert_eq!(v["totals"]["error_ratio"], 0.1);
        assert_eq!(v["errors"]["timeout"], 1);
        assert_eq!(v["errors"]["closed"], 0);
        assert_eq!(v["connects"]["failures"], 1);
        assert_eq!(v["connects"]["success_ratio"], 0.75);
        assert_eq!(v["phases"][1]["name"], "hold");
        assert_eq!(v["phases"][1]["started_at"], "1970-01-01T00:00:02.000Z");
        assert_eq!(v["verdict"]["result"], "pass");
        assert!(v["latency_ms"]["run"].is_null());
        assert!(
            v["latency_ms"].get("corrected").is_none(),
            "open model: no corrected figures"
        );
        assert!(v["ttff_ms"].is_null(), "no streaming");
        assert_eq!(v["run"]["model"], "open");
    }
}
