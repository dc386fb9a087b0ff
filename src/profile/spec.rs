//! `ProfileSpec`: the serde mirror of a profile TOML, one `///` line per field.
//!
//! Every section and field is optional; missing ones take the defaults below (those of the
//! `smoke` profile). Unknown keys are errors (`deny_unknown_fields`, and no `flatten`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::{Rate, serde_units};

/// A whole profile file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileSpec {
    /// One line saying what the profile is for (shown by `soak profiles`).
    pub description: String,
    /// Where the load goes.
    pub target: TargetSpec,
    /// How many users, and the shape of the run over time.
    pub load: LoadSpec,
    /// What each user does while connected.
    pub session: SessionSpec,
    /// Probe connections that detect event-loop stalls.
    pub probes: ProbesSpec,
    /// The target's process, sampled for memory, CPU, fds and threads.
    pub process: ProcessSpec,
    /// The built-in demo target, used when no target URL is given.
    pub demo: DemoSpec,
    /// Where and how often results are written.
    pub output: OutputSpec,
    /// Pass/fail checks on the results.
    pub gates: GatesSpec,
    /// `[rooms]`: users grouped into chat rooms.
    pub rooms: RoomsSpec,
    /// `[socketio]`: how a Socket.IO target is spoken to (`target.protocol = "socketio"`).
    pub socketio: SocketIoSpec,
    /// Mock third-party APIs started in-process for the run (left out of the effective
    /// config in `summary.json` when none is enabled).
    #[serde(skip_serializing_if = "MocksSpec::is_off")]
    pub mocks: MocksSpec,
}

impl MocksSpec {
    /// Whether no mock is enabled.
    pub fn is_off(&self) -> bool {
        self.enable.is_empty()
    }
}

/// `[mocks]`: which mocks run beside the load (`--mock llm,telegram`), and their settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MocksSpec {
    /// Mocks to start: `llm`, `telegram`.
    pub enable: Vec<String>,
    /// `[mocks.llm]`: the mock LLM's latency, limits and faults.
    pub llm: soak_mocks::llm::config::LlmConfig,
    /// `[mocks.telegram]`: the mock Telegram Bot API's flood limits and faults.
    pub telegram: soak_mocks::telegram::TelegramConfig,
}

/// `[gates]`: checks on the run's results; any failed gate makes the exit code 1.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatesSpec {
    /// Gate expressions, like `"p99 < 250ms"`, `"error_rate < 0.5%"`, `"memory != leak"`,
    /// or `{ gate = "stalls == 0", abort = true }`. Any check given replaces the defaults.
    pub checks: Vec<Check>,
    /// Whether a run with no checks gets the default gates (connect success, error rate
    /// and the profile's `verdicts`); `--no-default-gates` turns them off.
    pub defaults: bool,
    /// The verdict gates the profile exists for (`stalls == 0`, `memory != leak`), part of
    /// its defaults. A default gate on something the run did not measure is left out.
    pub verdicts: Vec<String>,
    /// End the run early (exit 1, results written) once a gate can no longer pass.
    pub abort_on_fail: bool,
    /// No early end before this long after the ramp-up, so a warm-up blip ends nothing.
    #[serde(with = "serde_units::duration")]
    pub abort_grace: Duration,
}

impl Default for GatesSpec {
    fn default() -> Self {
        Self {
            checks: Vec::new(),
            defaults: true,
            verdicts: Vec::new(),
            abort_on_fail: false,
            abort_grace: Duration::from_secs(30),
        }
    }
}

/// One entry of `gates.checks`: an expression, or a table that also says whether failing
/// it ends the run early.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Check {
    /// `"p99 < 250ms"`
    Expr(String),
    /// `{ gate = "stalls == 0", abort = true }`
    Table(CheckTable),
}

/// The table form of a check.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckTable {
    /// The gate expression.
    pub gate: String,
    /// End the run early once this gate can no longer pass.
    #[serde(default)]
    pub abort: bool,
}

impl Check {
    /// The gate expression.
    pub fn expr(&self) -> &str {
        match self {
            Check::Expr(e) => e,
            Check::Table(t) => &t.gate,
        }
    }

    /// Whether failing this gate ends the run early (on its own, without `abort_on_fail`).
    pub fn abort(&self) -> bool {
        matches!(self, Check::Table(t) if t.abort)
    }
}

/// `[target]`: the WebSocket server under test.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetSpec {
    /// `ws://` or `wss://host:port/path`; absent or empty starts the built-in demo target.
    pub url: Option<String>,
    /// Extra handshake headers, each `"Name: value"` (values of secret-looking names are
    /// redacted in every file soak writes).
    pub headers: Vec<String>,
    /// WebSocket subprotocols offered in `Sec-WebSocket-Protocol`, in order of preference.
    pub subprotocols: Vec<String>,
    /// Accept any TLS certificate (self-signed test servers). Never the default.
    pub insecure: bool,
    /// TCP connect + TLS + WebSocket handshake must finish within this.
    #[serde(with = "serde_units::duration")]
    pub handshake_timeout: Duration,
    /// `websocket` (JSON frames) or `socketio` (Engine.IO v4 / Socket.IO v5 over a
    /// WebSocket).
    pub protocol: Protocol,
    /// Source addresses to spread connections over (`127.0.0.2-127.0.0.7`, a list
    /// `a,b,c`, or a CIDR `127.0.0.0/29`); empty: the system picks.
    pub local_ips: String,
}

/// What the target speaks over its WebSocket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Text frames, one JSON message each.
    #[default]
    Websocket,
    /// Socket.IO: events and acks in Engine.IO packets.
    Socketio,
}

/// `[socketio]`: namespace, auth, and how messages become events and replies.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketIoSpec {
    /// The Engine.IO endpoint's path (the server's `path` option).
    pub path: String,
    /// The namespace to connect to; empty: the URL's path, else `/`.
    pub namespace: String,
    /// The namespace connect's auth payload, a JSON object template (`{"token":
    /// "{{token}}"}`); empty: none.
    pub auth: String,
    /// The event each message is emitted as (a message's own `event` overrides it).
    pub event: String,
    /// Messages ask for an ack and are timed to it (by the ack id Socket.IO assigns).
    pub ack: bool,
    /// Without acks: the event the server answers with, correlated inside its first
    /// argument by `correlate` and `complete` like a WebSocket reply.
    pub reply_event: String,
}

impl Default for SocketIoSpec {
    fn default() -> Self {
        SocketIoSpec {
            path: String::from("/socket.io/"),
            namespace: String::new(),
            auth: String::new(),
            event: String::from("message"),
            ack: true,
            reply_event: String::new(),
        }
    }
}

impl Default for TargetSpec {
    fn default() -> Self {
        Self {
            url: None,
            headers: Vec::new(),
            subprotocols: Vec::new(),
            insecure: false,
            handshake_timeout: Duration::from_secs(10),
            protocol: Protocol::Websocket,
            local_ips: String::new(),
        }
    }
}

/// `[load]`: users and the run's shape. `duration` is the whole run, ramps included.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadSpec {
    /// Number of simulated users, each holding one connection.
    pub users: u32,
    /// Length of the whole run, ramps included.
    #[serde(with = "serde_units::duration")]
    pub duration: Duration,
    /// Users start evenly spread over this time.
    #[serde(with = "serde_units::duration")]
    pub ramp_up: Duration,
    /// Users stop evenly spread over this time, ending with the run.
    #[serde(with = "serde_units::duration")]
    pub ramp_down: Duration,
    /// Most connection attempts per second, over all users (reconnects included), so a
    /// 10,000-user ramp or a mass reconnect is not a connect storm unless asked for.
    #[serde(with = "serde_units::rate")]
    pub connect_rate: Rate,
}

impl Default for LoadSpec {
    fn default() -> Self {
        Self {
            users: 10,
            duration: Duration::from_secs(30),
            ramp_up: Duration::from_secs(5),
            ramp_down: Duration::from_secs(5),
            connect_rate: Rate { per_second: 1000.0 },
        }
    }
}

/// `[session]`: what one simulated user sends and how replies are matched.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSpec {
    /// `open` (send on a fixed schedule, replies or not) or `closed` (send, wait for the
    /// complete reply, think, send again).
    pub model: Model,
    /// Open model: messages per user (`2/s`, `30/m`; `0/s` holds idle connections).
    #[serde(with = "serde_units::rate")]
    pub rate: Rate,
    /// Closed model: pause between a complete reply (or its timeout) and the next send.
    #[serde(with = "serde_units::duration")]
    pub think: Duration,
    /// The message template when no `[[session.messages]]` are given (named `message`).
    pub message: String,
    /// JSON pointer to the reply field carrying the request's `{{id}}`.
    pub correlate: String,
    /// When a reply is complete: empty (its first frame), `/done == true`, `/type != "delta"`,
    /// `/delta missing`, `/final exists`, or `frames 5`.
    pub complete: String,
    /// A reply not complete within this is a `timeout` error.
    #[serde(with = "serde_units::duration")]
    pub reply_timeout: Duration,
    /// Per-user CSV file (header row of column names, one row per user, wrapping around);
    /// its columns fill `{{column}}` in templates. Relative to the working directory.
    pub data: Option<PathBuf>,
    /// Close and reopen each connection after this long (churn); `0s` keeps it open.
    #[serde(with = "serde_units::duration")]
    pub lifetime: Duration,
    /// First wait before reconnecting after a lost connection; doubled per failure.
    #[serde(with = "serde_units::duration")]
    pub reconnect_min: Duration,
    /// Longest wait between reconnect attempts.
    #[serde(with = "serde_units::duration")]
    pub reconnect_max: Duration,
    /// A scenario: several named messages picked by weight. Replaces `message` when given.
    pub messages: Vec<MessageSpec>,
    /// Alternate every user in step between talking (sending at `rate`, connections kept)
    /// and churning (connections closed after `lifetime` and reopened, nothing sent), this
    /// long each, from the start of the load: what the leak's attribution needs to tell
    /// per-message from per-connection leaks. `0s`: both at once, always.
    #[serde(with = "serde_units::duration")]
    pub alternate: Duration,
    /// Rules naming frames that are not replies (presence, typing, read receipts), e.g.
    /// `/type == "presence"`: counted per rule, never errors. Without one, a frame with no
    /// id is `unparsable`, so an error frame is never hidden.
    pub push: Vec<String>,
    /// Connect-time steps, in order (`[[session.on_connect]]`): an auth message, a join…
    /// A user is connected, and starts its schedule, once every step has passed.
    pub on_connect: Vec<StepSpec>,
}

/// `[rooms]`: users grouped into chat rooms by number (`{{room}}` in the URL, steps and
/// messages).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsSpec {
    /// Users per room: user `u` is in room `u / size` (0: no rooms, `{{room}}` is 0).
    pub size: u32,
    /// Where another member's message shows up in a received frame (`/message`): set, and
    /// each message is expected at every other member connected when it was sent, and
    /// its delivery latency, reach and losses are measured. Empty: not measured.
    pub deliver: String,
    /// Whether the sender gets its own broadcast too (counted as a delivery).
    pub include_sender: bool,
}

/// One connect-time step: a message, then (optionally) a frame it must see.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepSpec {
    /// Its name in `join_failed` events (default `step1`, `step2`, …).
    pub name: String,
    /// The message template (every template field, CSV columns like `{{token}}`).
    pub message: String,
    /// A rule a frame must meet for the step to pass (`/type == "auth_ok"`); empty: the
    /// step passes once sent.
    pub expect: String,
    /// A rule that fails the step when a frame meets it (`/type == "error"`).
    pub fail: String,
    /// How long the step may wait for its `expect` frame.
    #[serde(with = "serde_units::duration")]
    pub timeout: Duration,
    /// Socket.IO: the event the step emits (`join`), `message` being its data.
    pub event: String,
    /// Socket.IO: the step asks for an ack and passes when it comes (its rules read the
    /// ack's first argument); without, its rules read the events that arrive.
    pub ack: bool,
}

impl Default for StepSpec {
    fn default() -> Self {
        StepSpec {
            name: String::new(),
            message: String::new(),
            expect: String::new(),
            fail: String::new(),
            timeout: Duration::from_secs(10),
            event: String::new(),
            ack: true,
        }
    }
}

impl Default for SessionSpec {
    fn default() -> Self {
        Self {
            model: Model::Open,
            rate: Rate { per_second: 1.0 },
            think: Duration::from_secs(1),
            message: String::from(
                r#"{"id": {{id}}, "text": "hello from user {{user}}, message {{seq}}"}"#,
            ),
            correlate: String::from("/id"),
            complete: String::new(),
            reply_timeout: Duration::from_secs(30),
            data: None,
            lifetime: Duration::ZERO,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            messages: Vec::new(),
            alternate: Duration::ZERO,
            push: Vec::new(),
            on_connect: Vec::new(),
        }
    }
}

/// The load model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// Each user sends on a fixed schedule whether or not replies are outstanding.
    #[default]
    Open,
    /// Each user sends, waits for the complete reply, thinks, and sends again.
    Closed,
}

/// `[[session.messages]]`: one named message of a scenario.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// Name used in the per-message breakdown (letters, digits, `-`, `_`).
    pub name: String,
    /// Relative weight: `chat` 80 and `history` 20 send chat four times as often.
    #[serde(default = "one")]
    pub weight: u32,
    /// The template.
    pub message: String,
    /// JSON pointer to the reply's id; default: `session.correlate`.
    #[serde(default)]
    pub correlate: Option<String>,
    /// Completion rule; default: `session.complete`.
    #[serde(default)]
    pub complete: Option<String>,
    /// Socket.IO: the event it is emitted as; default: `socketio.event`.
    #[serde(default)]
    pub event: Option<String>,
    /// Socket.IO: whether it asks for an ack; default: `socketio.ack`.
    #[serde(default)]
    pub ack: Option<bool>,
}

fn one() -> u32 {
    1
}

/// `[probes]`: a few connections apart from the users that time a ping (or an app-level
/// message) on a fixed schedule, to catch the target's event loop stalling.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbesSpec {
    /// Probe connections (0 turns probes off).
    pub count: u32,
    /// Each probe sends once per this period.
    #[serde(with = "serde_units::duration")]
    pub every: Duration,
    /// A probe answered later than this after its intended send is late.
    #[serde(with = "serde_units::duration")]
    pub threshold: Duration,
    /// Share of probes that must be late at the same time for a stall (0 to 1).
    pub quorum: f64,
    /// App-level probe template (filled like messages); empty sends WebSocket pings, which
    /// some servers answer off their event loop.
    pub message: String,
    /// JSON pointer to the app-level probe reply's id.
    pub correlate: String,
    /// Probe connections run `session.on_connect` first (for servers that close
    /// unauthenticated sockets).
    pub on_connect: bool,
    /// Socket.IO: probes emit this event with an ack (`echo`), `message` being its data;
    /// the probe is timed to the ack.
    pub event: String,
}

impl Default for ProbesSpec {
    fn default() -> Self {
        Self {
            count: 4,
            every: Duration::from_millis(100),
            threshold: Duration::from_millis(50),
            quorum: 0.75,
            message: String::new(),
            correlate: String::from("/id"),
            on_connect: false,
            event: String::new(),
        }
    }
}

/// `[process]`: which process is the target, how it is sampled, and the memory verdict's
/// thresholds. Give at most one of `pid`, `name`, `cmd`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessSpec {
    /// Sample the running process with this PID (and its children).
    pub pid: Option<u32>,
    /// Sample the one running process with this name (a forking server's root process).
    pub name: Option<String>,
    /// Start this shell command as the target, sample it, and stop it at the end.
    pub cmd: Option<String>,
    /// Sample this cgroup (v2 or v1 folder, e.g. a container's) instead of a process.
    pub cgroup: Option<PathBuf>,
    /// Sample this running Docker or Podman container (its cgroup, found through the CLI).
    pub container: Option<String>,
    /// Sample the target through the Prometheus / OpenMetrics endpoint it exposes
    /// (`http://HOST:PORT/metrics`): a server soak cannot see, in a pod on another machine.
    pub metrics: Option<String>,
    /// The metric names read from `metrics`.
    pub metric_names: crate::sampler::scrape::MetricNames,
    /// Time between readings.
    #[serde(with = "serde_units::duration")]
    pub interval: Duration,
    /// Idle time before any load, for the baseline (default 10s with a target process).
    #[serde(default, with = "serde_units::opt_duration")]
    pub baseline: Option<Duration>,
    /// Time after the last user leaves while sampling goes on (default 30s with a target).
    #[serde(default, with = "serde_units::opt_duration")]
    pub cooldown: Option<Duration>,
    /// Start of the hold excluded from the verdict (default 10 % of the hold, at least
    /// 1 minute when the hold is 20 minutes or more).
    #[serde(default, with = "serde_units::opt_duration")]
    pub warmup: Option<Duration>,
    /// How long a started target may take to accept connections.
    #[serde(with = "serde_units::duration")]
    pub startup_timeout: Duration,
    /// Between SIGTERM and SIGKILL when stopping a started target.
    #[serde(with = "serde_units::duration")]
    pub stop_grace: Duration,
    /// The target's memory limit, MB: the verdict projects when a leak would reach it.
    pub memory_limit_mb: Option<f64>,
    /// A leak grows at least this many MB per hour.
    pub leak_min_mb_per_hour: f64,
    /// …and at least this percentage of the baseline per hour.
    pub leak_min_pct_per_hour: f64,
    /// Significance level of the trend test.
    pub leak_alpha: f64,
    /// Where a started target's output goes: `log` (`target.log` in the results folder)
    /// or `console` (also printed above the progress bar).
    pub output: TargetOutput,
}

/// Where a started target's stdout and stderr go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TargetOutput {
    /// `target.log` in the results folder only.
    #[default]
    Log,
    /// `target.log`, and the console too (above the progress bar, never through it).
    Console,
}

impl Default for ProcessSpec {
    fn default() -> Self {
        Self {
            pid: None,
            name: None,
            cmd: None,
            cgroup: None,
            container: None,
            metrics: None,
            metric_names: crate::sampler::scrape::MetricNames::default(),
            interval: Duration::from_secs(1),
            baseline: None,
            cooldown: None,
            warmup: None,
            startup_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(5),
            memory_limit_mb: None,
            leak_min_mb_per_hour: 1.0,
            leak_min_pct_per_hour: 1.0,
            output: TargetOutput::Log,
            leak_alpha: 0.01,
        }
    }
}

/// `[demo]`: the built-in demo target's behaviour (used only without a target URL).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSpec {
    /// How long the demo waits before each reply (its first frame when streaming).
    #[serde(with = "serde_units::duration")]
    pub reply_delay: Duration,
    /// Frames per reply; more than 1 streams `{"delta"}` frames ending with `{"done": true}`.
    pub stream_frames: u32,
    /// Time between the frames of a streamed reply.
    #[serde(with = "serde_units::duration")]
    pub frame_gap: Duration,
    /// Block the demo's event loop this long every `block_every` (`0s`: never).
    #[serde(with = "serde_units::duration")]
    pub block_for: Duration,
    /// Period of the blocks.
    #[serde(with = "serde_units::duration")]
    pub block_every: Duration,
    /// Block the demo's event loop this long on every message (`0s`: never).
    #[serde(with = "serde_units::duration")]
    pub block_per_message: Duration,
    /// Handle messages on a separate event loop while pings are answered on the I/O
    /// threads (so pings look healthy when the message loop blocks).
    pub separate_handler: bool,
    /// Keep this many bytes per message received, forever (a leak to find).
    pub leak_per_message: u64,
    /// Keep this many bytes per connection closed, forever (a leak to find under churn).
    pub leak_per_close: u64,
    /// Room mode: a connection joins the room of its URL path and each `{"message"}` is
    /// broadcast to the room (sender included) without an id.
    pub rooms: bool,
    /// Room mode: leave out every N-th copy of a broadcast (0: none).
    pub room_drop_every: u32,
}

/// `[output]`: the results folder and the timeseries interval.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSpec {
    /// Folder in which each run creates `<UTC timestamp>-<profile>/`.
    pub dir: PathBuf,
    /// One timeseries row, one progress line and one flush per interval.
    #[serde(with = "serde_units::duration")]
    pub interval: Duration,
}

impl Default for OutputSpec {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("results"),
            interval: Duration::from_secs(1),
        }
    }
}
