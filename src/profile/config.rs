//! The resolved configuration of a run: validated, units converted, templates compiled.
//! `resolve` builds it from a profile; the engine, the sampler and the reports read it.

use std::path::PathBuf;
use std::time::Duration;

use soak_mocks::demo::DemoConfig;

use crate::analysis::gates::Gate;
use crate::analysis::leak::LeakRule;
use crate::analysis::stall::StallRule;
use crate::data::UserData;
use crate::engine::complete::Complete;
use crate::profile::spec::{Model, ProfileSpec};
use crate::template::Template;
use crate::units::Rate;

/// Everything a run needs, validated. The engine reads only this.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Profile name, used in the results folder's name.
    pub profile: String,
    /// What the load goes to.
    pub target: Target,
    /// How connections are opened.
    pub connection: ConnectionConfig,
    /// Number of simulated users.
    pub users: u32,
    /// The slice of the plan this process runs (`--segment`; the whole plan by default).
    pub segment: crate::segment::Segment,
    /// Whole run, ramps included.
    pub duration: Duration,
    /// Time over which users start.
    pub ramp_up: Duration,
    /// Time over which users stop.
    pub ramp_down: Duration,
    /// Most connection attempts per second over all users.
    pub connect_rate: Rate,
    /// Open or closed model.
    pub model: Model,
    /// Open model: time between two sends of one user; `None` holds the connection idle.
    pub period: Option<Duration>,
    /// Closed model: pause after each complete reply.
    pub think: Duration,
    /// The messages of the scenario (one, named `message`, without a scenario).
    pub messages: Vec<MessageConfig>,
    /// A reply not complete within this is a `timeout` error.
    pub reply_timeout: Duration,
    /// Per-user CSV data (empty without a data file).
    pub data: UserData,
    /// The sampled target process and the memory verdict's settings.
    pub process: ProcessConfig,
    /// Idle time before the load (0 without a target process).
    pub baseline: Duration,
    /// Time after the load while sampling goes on (0 without a target process).
    pub cooldown: Duration,
    /// Close and reopen connections after this long; `None`: keep them.
    pub lifetime: Option<Duration>,
    /// Talk, then churn, this long each (`session.alternate`); `None`: both always.
    pub alternate: Option<Duration>,
    /// Rules naming pushes (`session.push`), in order.
    pub pushes: Vec<Complete>,
    /// Connect-time steps (`session.on_connect`), in order.
    pub on_connect: Vec<StepConfig>,
    /// Users per room (`[rooms] size`); 0: no rooms.
    pub room_size: u32,
    /// Fan-out measured: the delivery pointer and whether the sender gets its own copy.
    pub fanout: Option<(String, bool)>,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Probe connections, if any.
    pub probes: Option<ProbeConfig>,
    /// Stall detection settings (the bin is the probe period, 100 ms without probes).
    pub stall_rule: StallRule,
    /// Checks on the results.
    pub gates: Vec<Gate>,
    /// With gates marked `abort`: no early end before this long after the ramp-up.
    pub abort_grace: Duration,
    /// A Socket.IO target: the namespace, the reply event, the names counted (`None`:
    /// plain WebSocket).
    pub socketio: Option<std::sync::Arc<crate::engine::transport::socketio::SocketIo>>,
    /// The mock LLM to start in-process, if asked for.
    pub llm: Option<soak_mocks::llm::config::LlmConfig>,
    /// The mock Telegram Bot API to start, if asked for (then users are Telegram users).
    pub telegram: Option<soak_mocks::telegram::TelegramConfig>,
    /// One timeseries row per interval.
    pub interval: Duration,
    /// Folder under which the run's folder is created.
    pub out_dir: PathBuf,
    /// The profile after CLI overrides, as written to `summary.json`.
    pub effective: ProfileSpec,
}

/// One named message of the scenario, compiled.
#[derive(Debug, Clone)]
pub struct MessageConfig {
    /// Name in the per-message breakdown.
    pub name: String,
    /// Relative weight.
    pub weight: u32,
    /// The compiled template.
    pub template: Template,
    /// JSON pointer to the reply's id.
    pub correlate: String,
    /// When its reply is complete.
    pub complete: Complete,
}

/// One connect-time step, compiled.
#[derive(Debug, Clone)]
pub struct StepConfig {
    /// Name in `join_failed` events.
    pub name: String,
    /// The message.
    pub template: Template,
    /// The frame that passes the step; `None`: it passes once sent.
    pub expect: Option<Complete>,
    /// The frame that fails it.
    pub fail: Option<Complete>,
    /// How long it may wait for its `expect` frame.
    pub timeout: Duration,
    /// Socket.IO: the step waits for its ack.
    pub ack: bool,
}

/// The probe connections.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// How many.
    pub count: u32,
    /// Send period of each.
    pub every: Duration,
    /// App-level probe: template and reply id pointer; `None` sends WebSocket pings.
    pub message: Option<(Template, String)>,
    /// Whether probe connections run the connect-time steps first.
    pub on_connect: bool,
    /// Socket.IO: the acked event packet probes emit (`probes.event`), timed to its ack.
    pub event: Option<Template>,
}

/// How each connection is opened.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Extra handshake headers.
    pub headers: Vec<(String, String)>,
    /// Offered subprotocols.
    pub subprotocols: Vec<String>,
    /// Accept any certificate.
    pub insecure: bool,
    /// Limit for TCP + TLS + WebSocket handshake.
    pub handshake_timeout: Duration,
    /// Source addresses connections are spread over, round-robin (empty: the system's).
    pub local_ips: Vec<std::net::IpAddr>,
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// The built-in demo target, started in-process on 127.0.0.1.
    Demo(DemoConfig),
    /// A WebSocket URL given by the user (`ws://…` or `wss://…`).
    Url(String),
    /// A Telegram bot, reached through the mock Bot API by simulated Telegram users.
    Telegram,
}

impl RunConfig {
    /// Whether any message's replies stream (so time to first frame is reported apart).
    pub fn streams(&self) -> bool {
        self.messages.iter().any(|m| m.complete.streams())
    }
}

/// Which process the sampler watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetProcess {
    /// None: only soak itself is sampled.
    None,
    /// A running process by PID.
    Pid(u32),
    /// The one running process (tree) with this name.
    Name(String),
    /// A shell command soak starts and stops.
    Cmd(String),
    /// A cgroup (a container's): its anonymous memory, CPU, processes.
    Cgroup(std::path::PathBuf),
    /// A Prometheus / OpenMetrics endpoint the server exposes: its resident memory.
    Metrics {
        /// The `http://` URL.
        url: String,
        /// The metric names read.
        names: crate::sampler::scrape::MetricNames,
    },
}

/// The sampler and the memory verdict.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// Which process.
    pub target: TargetProcess,
    /// Time between readings.
    pub interval: Duration,
    /// Excluded start of the hold (`None`: the default rule).
    pub warmup: Option<Duration>,
    /// How long a started target may take to accept connections.
    pub startup_timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// Memory limit for the projection, MB.
    pub memory_limit_mb: Option<f64>,
    /// Verdict thresholds.
    pub rule: LeakRule,
}

impl ProcessConfig {
    /// The warm-up excluded from the verdict for a hold of `hold`: as configured, or 10 %
    /// of the hold, at least a minute when the hold is 20 minutes or more.
    pub fn warmup_for(&self, hold: Duration) -> Duration {
        self.warmup.unwrap_or_else(|| {
            let tenth = hold / 10;
            if hold >= Duration::from_secs(20 * 60) {
                tenth.max(Duration::from_secs(60))
            } else {
                tenth
            }
        })
    }
}
