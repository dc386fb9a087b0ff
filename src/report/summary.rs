//! `summary.json`: the run's metadata, effective config, phases, totals, latency and verdict.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::analysis::stall::Stall;
use crate::metrics::ErrorKind;
use crate::metrics::snapshot::RunTotals;
use crate::redact;
pub use crate::report::summary_model::*;
use crate::report::verdict::verdict;
pub use crate::report::verdict::{apply_gates, apply_gates_json};

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
    /// `--abort-on-fail` ended it early: a gate could no longer pass.
    Aborted,
    /// A bug in soak (a panic in one of its tasks) stopped it; figures up to then.
    Failed,
}

impl Status {
    /// The name used on screen and in files.
    pub fn label(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Interrupted => "interrupted",
            Status::TargetExited => "target_exited",
            Status::Aborted => "aborted",
            Status::Failed => "failed",
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
        run: run_info(meta, totals, status, now),
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
        // Socket.IO pushes are counted by event name (a name seen only as deliveries
        // counts 0 and is left out), WebSocket ones by rule.
        pushes: meta
            .socketio
            .as_ref()
            .map_or_else(|| meta.config.session.push.clone(), |s| s.names.names())
            .into_iter()
            .zip(totals.counters.pushes)
            .filter(|(_, n)| meta.socketio.is_none() || *n > 0)
            .collect(),
        probes: probes(meta, totals),
        stalls: meta.probes.as_ref().map(|_| stalls(meta, totals)),
        tester: tester(totals),
        mocks: mocks(meta),
        memory: meta
            .process
            .clone()
            .zip(totals.memory.clone())
            .map(|(process, report)| MemorySummary { process, report }),
        connect_time_ms: totals.connect_time,
        join_time_ms: totals.join_time,
        socketio: meta.socketio.as_ref().map(|s| SocketIoSummary {
            namespace: s.namespace.clone(),
            heartbeats: totals.counters.heartbeats,
            heartbeat_late_ms: totals.heartbeat_late,
            attachments: totals.counters.attachments,
        }),
        fanout: (!meta.config.rooms.deliver.trim().is_empty()).then(|| {
            let f = totals.counters.fanout;
            FanoutSummary {
                fanout_ms: totals.fanout,
                first_member_ms: totals.first_member,
                last_member_ms: totals.last_member,
                messages: f.messages,
                complete: f.complete,
                expected: f.expected,
                delivered: f.delivered,
                lost: f.expected.saturating_sub(f.delivered),
                late: f.late,
                reach: (f.expected > 0).then(|| (f.delivered as f64 / f.expected as f64).min(1.0)),
                duplicates: f.duplicates,
                out_of_order: f.out_of_order,
                unexpected: f.unexpected,
            }
        }),
        gates: Vec::new(),
        verdict: verdict(status, totals),
    }
}

fn run_info(meta: &RunMeta, totals: &RunTotals, status: Status, now: SystemTime) -> RunInfo {
    RunInfo {
        id: meta.id.clone(),
        profile: meta.profile.clone(),
        status,
        model: meta.model,
        target: redact::url(&meta.target),
        demo_target: meta.demo_target,
        started_at: timestamp(meta.started_at),
        updated_at: timestamp(now),
        elapsed_s: secs(totals.elapsed),
        segment: (!meta.segment.is_whole()).then_some(meta.segment),
    }
}

fn probes(meta: &RunMeta, totals: &RunTotals) -> Option<Probes> {
    meta.probes.clone().map(|setup| Probes {
        setup,
        threshold_ms: meta.stall_rule.threshold.as_secs_f64() * 1000.0,
        quorum: meta.stall_rule.quorum,
        rtt_ms: totals.probe,
    })
}

/// `num / den`, or `empty` when nothing was counted.
fn ratio(num: u64, den: u64, empty: f64) -> f64 {
    if den == 0 {
        empty
    } else {
        num as f64 / den as f64
    }
}

/// Errors per attempt (messages sent plus connection attempts), at most 1: a server that
/// closes every connection before a message goes out is at 100 %, not at 0 of 0.
fn error_ratio(errors: u64, attempts: u64) -> Option<f64> {
    (attempts > 0).then(|| (errors as f64 / attempts as f64).min(1.0))
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
        error_ratio: error_ratio(c.error_total(), c.sent + c.connect_attempts),
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

pub(super) fn tester(totals: &RunTotals) -> Tester {
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
            socketio: None,
            correction: None,
            messages: vec![("message".into(), 1, false)],
            probes: None,
            segment: crate::segment::Segment::WHOLE,
            stall_rule: StallRule {
                threshold: Duration::from_millis(50),
                quorum: 0.75,
                bin: Duration::from_millis(100),
            },
        }
    }

    #[test]
    fn the_error_ratio_is_per_attempt_bounded_and_empty_over_nothing() {
        assert_eq!(error_ratio(0, 0), None, "nothing attempted: not a pass");
        // a server that closes each of 5 connections before anything is sent
        assert_eq!(error_ratio(5, 5), Some(1.0));
        assert_eq!(error_ratio(60, 10), Some(1.0), "never above 100 %");
        assert_eq!(error_ratio(0, 10), Some(0.0));
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
        // one error over 10 messages and 4 connection attempts
        assert_eq!(v["totals"]["error_ratio"], 1.0 / 14.0);
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
