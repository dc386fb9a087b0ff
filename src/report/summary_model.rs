//! The shape of `summary.json` (schema in `schema/summary.schema.json`) and what a run
//! knows before it starts; `summary.rs` fills it in.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::analysis::gates::{Gate, GateResult};
use crate::analysis::memory::MemoryReport;
use crate::analysis::stall::{Stall, StallRule};
use crate::metrics::snapshot::{LatencyStats, MsgCounters};
use crate::plan::PhaseSpan;
use crate::profile::ProfileSpec;
use crate::profile::spec::Model;
use crate::report::summary::Status;

/// What is known about a run before it starts.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// Name of the results folder.
    pub id: String,
    /// Profile name.
    pub profile: String,
    /// The URL the load goes to (redacted when written).
    pub target: String,
    /// Whether the target is the built-in demo.
    pub demo_target: bool,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// The profile after CLI overrides.
    pub config: ProfileSpec,
    /// The plan's phases.
    pub phases: Vec<PhaseSpan>,
    /// Open or closed model.
    pub model: Model,
    /// Closed model: the expected interval the corrected histogram assumes, if any.
    pub correction: Option<Duration>,
    /// Scenario messages: name, weight, whether its replies stream.
    pub messages: Vec<(String, u32, bool)>,
    /// Probe settings; `None` when probes are off.
    pub probes: Option<ProbeInfo>,
    /// Stall detection settings.
    pub stall_rule: StallRule,
    /// The slice of the plan this process ran.
    pub segment: crate::segment::Segment,
    /// The sampled target process (`pid 123`, `name gunicorn`, `cmd …`), if any.
    pub process: Option<String>,
    /// The run's gates.
    pub gates: Vec<Gate>,
    /// The in-process mock LLM and its base URL, if the run started one.
    pub llm: Option<(std::sync::Arc<soak_mocks::llm::Llm>, String)>,
    /// The in-process mock Telegram Bot API and its base URL, if the run started one.
    pub telegram: Option<(std::sync::Arc<soak_mocks::telegram::Telegram>, String)>,
    /// A Socket.IO run's shared state (the names its pushes are counted under).
    pub socketio: Option<std::sync::Arc<crate::engine::transport::socketio::SocketIo>>,
}

/// How the probes were set up.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeInfo {
    /// Probe connections.
    pub count: u32,
    /// Each probe's send period, ms.
    pub every_ms: f64,
    /// `ping` (WebSocket ping frames), `message` (an app-level message) or `event` (an
    /// acked Socket.IO event).
    pub kind: &'static str,
}

/// The whole `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Shape version, see [`crate::report::summary::SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The tool that wrote it.
    pub tool: Tool,
    /// Identity and timing of the run.
    pub run: RunInfo,
    /// Effective configuration (profile + flags), secrets redacted.
    pub config: ProfileSpec,
    /// The planned phases, with offsets and wall-clock starts.
    pub phases: Vec<PhaseInfo>,
    /// What was sent and received.
    pub totals: Totals,
    /// Errors by kind (every kind listed, zeros included).
    pub errors: BTreeMap<&'static str, u64>,
    /// Connection attempts and their outcome.
    pub connects: Connects,
    /// Time from the intended send to the complete reply, in ms (all messages).
    pub latency_ms: Latency,
    /// Time from the intended send to the first frame of a streamed reply, in ms.
    pub ttff_ms: Option<Latency>,
    /// The breakdown per scenario message.
    pub messages: Vec<MessageSummary>,
    /// Close codes the server sent (1006: the connection ended without a close frame).
    pub close_codes: BTreeMap<String, u64>,
    /// Frames counted under each push rule (`session.push`), by the rule; absent without
    /// push rules.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pushes: BTreeMap<String, u64>,
    /// Probe settings and round trips; `None` when probes are off.
    pub probes: Option<Probes>,
    /// Event-loop stalls of the target, as the probes saw them; `None` without probes.
    pub stalls: Option<Stalls>,
    /// How the tester itself kept up.
    pub tester: Tester,
    /// The target process's memory, CPU, fds and threads: the leak verdict with its
    /// numbers; `None` when no target process is sampled.
    pub memory: Option<MemorySummary>,
    /// Counters of the mocks the run started (`llm`: requests by endpoint and status,
    /// SDK retries, faults, tokens, in-flight); absent without mocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mocks: Option<Value>,
    /// TCP connect + WebSocket handshake time, in ms.
    pub connect_time_ms: Option<LatencyStats>,
    /// A Socket.IO run: the namespace and the server's heartbeats; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socketio: Option<SocketIoSummary>,
    /// Room messages and their copies at the members (`[rooms] deliver`); absent when
    /// fan-out is not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout: Option<FanoutSummary>,
    /// Handshake end → every connect-time step passed (`session.on_connect`); absent
    /// without steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_time_ms: Option<LatencyStats>,
    /// Every gate with its threshold, the actual value and pass/fail (evaluated when the
    /// run ends; empty in checkpoints).
    pub gates: Vec<GateResult>,
    /// The overall verdict.
    pub verdict: Verdict,
}

/// `socketio`: how the Socket.IO sessions went.
#[derive(Debug, Clone, Serialize)]
pub struct SocketIoSummary {
    /// The namespace connected to.
    pub namespace: String,
    /// Server pings answered.
    pub heartbeats: u64,
    /// How late the server's pings came against its `pingInterval`, ms (a late heartbeat
    /// is the server's event loop, or the network).
    pub heartbeat_late_ms: Option<LatencyStats>,
    /// Binary attachments received (counted, not read).
    pub attachments: u64,
}

/// `fanout`: what the room's members got.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutSummary {
    /// Intended send → each member's first copy within the reply timeout, ms.
    pub fanout_ms: Option<LatencyStats>,
    /// Per message: intended send → the first member's copy, ms.
    pub first_member_ms: Option<LatencyStats>,
    /// Per message every expected member got in time: intended send → the last member's
    /// copy, ms (a message with a lost copy has no last member; it is in `lost`).
    pub last_member_ms: Option<LatencyStats>,
    /// Messages sent with at least one copy expected.
    pub messages: u64,
    /// Of those, messages every expected member got within the reply timeout.
    pub complete: u64,
    /// Copies expected: the members connected when each message was sent.
    pub expected: u64,
    /// Copies that arrived within the reply timeout.
    pub delivered: u64,
    /// Expected copies not delivered within the reply timeout (late or never).
    pub lost: u64,
    /// Of those, copies that came later (or could not be timed).
    pub late: u64,
    /// delivered / expected; null when nothing was expected.
    pub reach: Option<f64>,
    /// Second copies of a message a member already had.
    pub duplicates: u64,
    /// Copies older than one a member already had from the same sender.
    pub out_of_order: u64,
    /// Copies to members that connected after the sender counted its room (not in
    /// `expected`, not in `delivered`).
    pub unexpected: u64,
}

/// `tool`
#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    /// Always `soak`.
    pub name: &'static str,
    /// The crate version.
    pub version: &'static str,
}

/// `run`
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// Results folder name.
    pub id: String,
    /// Profile name.
    pub profile: String,
    /// Where it stands.
    pub status: Status,
    /// Load model: `open` (each user sends on a fixed schedule, replies or not) or
    /// `closed` (send, wait for the complete reply, think, send).
    pub model: Model,
    /// Target URL, secrets redacted.
    pub target: String,
    /// Whether the target was the built-in demo.
    pub demo_target: bool,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// Time of this summary (the end once the run is over), RFC 3339 UTC.
    pub updated_at: String,
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// The slice of the plan this run was (`index` of `count`); absent for a whole plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<crate::segment::Segment>,
}

/// One phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseInfo {
    /// `ramp-up`, `hold`, `ramp-down`.
    pub name: &'static str,
    /// Offset of its start, s.
    pub start_s: f64,
    /// Offset of its end, s.
    pub end_s: f64,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
}

/// `totals`
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Messages sent.
    pub sent: u64,
    /// Replies matched to their request.
    pub received: u64,
    /// All errors.
    pub errors: u64,
    /// Replies after their request had timed out (the timeout is the error).
    pub late_replies: u64,
    /// Requests unanswered when their connection ended (user stopped or connection lost).
    pub abandoned: u64,
    /// Samples lost between sessions and the aggregator (0 in a healthy run).
    pub dropped_samples: u64,
    /// Users started.
    pub users_started: u64,
    /// Errors per attempt — every error over messages sent plus connection attempts — at
    /// most 1; `None` when nothing was attempted (a rate over nothing is not a pass).
    pub error_ratio: Option<f64>,
}

/// `connects`
#[derive(Debug, Clone, Serialize)]
pub struct Connects {
    /// Attempts, reconnects included.
    pub attempts: u64,
    /// Attempts that opened a WebSocket (and passed its connect-time steps).
    pub successes: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// successes / attempts (1 when there were none).
    pub success_ratio: f64,
    /// Connections opened by users that had been connected before.
    pub reconnects: u64,
    /// Connections closed by soak at the end of their lifetime (churn).
    pub churned: u64,
}

/// One scenario message.
#[derive(Debug, Clone, Serialize)]
pub struct MessageSummary {
    /// Its name.
    pub name: String,
    /// Its weight.
    pub weight: u32,
    /// Sent, received, timeouts.
    #[serde(flatten)]
    pub counts: MsgCounters,
    /// Time to the complete reply.
    pub latency_ms: Option<LatencyStats>,
    /// Time to the first frame (streamed replies only).
    pub ttff_ms: Option<LatencyStats>,
}

/// `latency_ms`
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Whole run.
    pub run: Option<LatencyStats>,
    /// Replies received during the hold phase.
    pub hold: Option<LatencyStats>,
    /// Closed model only: the whole run corrected for the expected interval between sends
    /// (HdrHistogram's corrected recording), so stalls count the sends they held back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrected: Option<LatencyStats>,
    /// Closed model only: the expected interval used for the correction, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrected_interval_ms: Option<f64>,
}

/// `probes`
#[derive(Debug, Clone, Serialize)]
pub struct Probes {
    /// How they were set up.
    #[serde(flatten)]
    pub setup: ProbeInfo,
    /// A probe later than this is late, ms.
    pub threshold_ms: f64,
    /// Share of probes late at once that makes a stall.
    pub quorum: f64,
    /// Round trips from the intended send, ms.
    pub rtt_ms: Option<LatencyStats>,
}

/// `stalls`
#[derive(Debug, Clone, Serialize)]
pub struct Stalls {
    /// Stalls blamed on the target (not tester-bound).
    pub count: usize,
    /// Longest of those, ms.
    pub longest_ms: f64,
    /// Their total length, ms.
    pub total_ms: f64,
    /// Stalls during which soak itself was late (not blamed on the target).
    pub tester_bound_count: usize,
    /// Every stall: start (s from the run's start, and UTC), length, tester-bound or not.
    pub list: Vec<StallInfo>,
}

/// One stall in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct StallInfo {
    /// Wall-clock start, RFC 3339 UTC.
    pub at: String,
    /// The stall's figures.
    #[serde(flatten)]
    pub stall: Stall,
}

/// `tester`
#[derive(Debug, Clone, Serialize)]
pub struct Tester {
    /// How late soak's own timers fired, ms.
    pub lag_ms: Option<LatencyStats>,
    /// Time during which soak's timers were at least half the stall threshold late, s.
    pub tester_bound_s: f64,
    /// That time as a share of the run.
    pub tester_bound_ratio: f64,
    /// Whether soak itself was a bottleneck (late for more than 1 % of the run).
    pub bottleneck: bool,
    /// Soak's own memory over the run, judged the same way as the target's.
    pub memory: Option<MemoryReport>,
    /// Cores soak could use (its CPU figures are % of one core).
    pub cores: usize,
}

/// `memory`
#[derive(Debug, Clone, Serialize)]
pub struct MemorySummary {
    /// Which process (`pid 123`, `name gunicorn`, `cmd …`).
    pub process: String,
    /// The report.
    #[serde(flatten)]
    pub report: MemoryReport,
}

/// `verdict`
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `pass`, `incomplete` (still running) or `interrupted`.
    pub result: &'static str,
    /// Why, in a sentence per point.
    pub reasons: Vec<String>,
}
