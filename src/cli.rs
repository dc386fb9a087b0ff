//! Command-line definitions (clap derive); the doc comments below are the `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::profile::spec::{Model, TargetOutput};
use crate::segment::Segment;
use crate::units::{Rate, parse_duration, parse_hours, parse_percent, parse_rate};

/// WebSocket and chat-bot soak tester: ramp simulated users up, hold long-lived sessions,
/// measure round-trip latency honestly, ramp down, and write the results.
///
/// `soak` alone runs the `smoke` profile against a built-in demo chat server.
/// `soak --users 100 --hours 4 --url ws://127.0.0.1:8080/ws` is a 4-hour soak.
#[derive(Debug, Parser)]
#[command(name = "soak", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; without a subcommand, `soak` is `soak run`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the default `run` command.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands. Parsed once per process, so the size difference is not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load/soak profile against a WebSocket target (the default command).
    Run(RunArgs),
    /// Serve the demo chat target until Ctrl-C.
    Mock(MockArgs),
    /// Re-render report.html, junit.xml and summary.json from a run folder's saved data.
    Report {
        /// The run folder (`results/<timestamp>-<profile>/`).
        run_dir: PathBuf,
    },
    /// Merge the run folders of one plan's segments (`--segment I/N`) into one run folder,
    /// by adding their run data; its gates decide the exit code.
    Merge {
        /// The segments' run folders, every index of the plan once.
        #[arg(required = true, value_name = "DIR")]
        segments: Vec<PathBuf>,
        /// Folder under which the merged run folder is created.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Compare two runs' headline numbers; exit 1 on a regression beyond the tolerance.
    Compare {
        /// The reference run: a run folder or its summary.json.
        baseline: PathBuf,
        /// The run to judge: a run folder or its summary.json.
        candidate: PathBuf,
        /// How much worse a metric may get before it is a regression.
        #[arg(long, value_name = "PCT", value_parser = parse_percent, default_value = "10%")]
        tolerance: f64,
    },
    /// Derive gates from a passing run (each headline metric plus a margin) as a profile.
    Lock {
        /// The passing run's folder.
        run_dir: PathBuf,
        /// Headroom added to each metric.
        #[arg(long, value_name = "PCT", value_parser = parse_percent, default_value = "10%")]
        margin: f64,
        /// Lock a run whose verdicts failed (stalls, a leak, errors) at what it had; the
        /// file says so. Without it such a run is refused with exit 1.
        #[arg(long)]
        accept_current: bool,
    },
    /// List the built-in profiles with one line each, or print one to copy and edit.
    Profiles {
        /// `show NAME`: print a built-in profile's TOML.
        #[command(subcommand)]
        action: Option<ProfilesAction>,
    },
    /// Print a shell completion script (`soak completions bash > ~/.local/share/bash-completion/completions/soak`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `soak profiles show NAME`.
#[derive(Debug, Subcommand)]
pub enum ProfilesAction {
    /// Print a built-in profile's TOML (save it, edit it, run it with `--profile FILE`).
    Show {
        /// The built-in profile's name (see `soak profiles`).
        name: String,
    },
}

/// Options of a run. Each also has a profile field and a `SOAK_<FLAG>` environment variable
/// (`SOAK_USERS=3`); a flag given here wins over the variable, and both over the profile.
#[derive(Debug, Default, Clone, Args)]
pub struct RunArgs {
    /// Built-in profile name (see `soak profiles`) or path to a profile TOML file.
    #[arg(long, env = "SOAK_PROFILE", value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// WebSocket URL of the target (ws://…). Without it, the built-in demo target is started.
    #[arg(long, env = "SOAK_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Number of simulated users (one long-lived connection each).
    #[arg(long, env = "SOAK_USERS", value_name = "N")]
    pub users: Option<u32>,
    /// Length of the whole run in hours, ramps included (`4`, `0.5`).
    #[arg(long, env = "SOAK_HOURS", value_name = "H", value_parser = parse_hours, conflicts_with = "duration")]
    pub hours: Option<Duration>,
    /// Length of the whole run, ramps included (`90s`, `30m`, `4h`).
    #[arg(long, env = "SOAK_DURATION", value_name = "DUR", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Time over which users start, evenly spaced (`0s` starts all at once).
    #[arg(long, env = "SOAK_RAMP_UP", value_name = "DUR", value_parser = parse_duration)]
    pub ramp_up: Option<Duration>,
    /// Time over which users stop at the end, evenly spaced.
    #[arg(long, env = "SOAK_RAMP_DOWN", value_name = "DUR", value_parser = parse_duration)]
    pub ramp_down: Option<Duration>,
    /// Most connection attempts per second over all users, reconnects included (`200/s`).
    #[arg(long, env = "SOAK_CONNECT_RATE", value_name = "N/UNIT", value_parser = parse_rate)]
    pub connect_rate: Option<Rate>,
    /// Load model: `open` (fixed schedule) or `closed` (send, await the reply, think).
    #[arg(long, env = "SOAK_MODEL", value_name = "MODEL")]
    pub model: Option<Model>,
    /// Messages per user in the open model (`2/s`, `30/m`; `0/s` holds idle connections).
    #[arg(long, env = "SOAK_RATE", value_name = "N/UNIT", value_parser = parse_rate)]
    pub rate: Option<Rate>,
    /// Pause after each complete reply in the closed model (`0s`: as fast as the server answers).
    #[arg(long, env = "SOAK_THINK", value_name = "DUR", value_parser = parse_duration)]
    pub think: Option<Duration>,
    /// Message template; fills {{user}}, {{seq}}, {{id}}, {{now_ms}}, {{random}} and CSV columns.
    #[arg(long, env = "SOAK_MESSAGE", value_name = "TEMPLATE")]
    pub message: Option<String>,
    /// JSON pointer to the field of a reply that holds its request's {{id}} (default `/id`).
    #[arg(long, env = "SOAK_CORRELATE", value_name = "POINTER")]
    pub correlate: Option<String>,
    /// When a streamed reply is complete: `/done == true`, `/delta missing`, `frames 5`, …
    #[arg(long, env = "SOAK_COMPLETE", value_name = "RULE")]
    pub complete: Option<String>,
    /// How long a reply may take before it counts as a `timeout` error.
    #[arg(long, env = "SOAK_REPLY_TIMEOUT", value_name = "DUR", value_parser = parse_duration)]
    pub reply_timeout: Option<Duration>,
    /// Per-user CSV file: a header row, then one row per user (wrapping around).
    #[arg(long, env = "SOAK_DATA", value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Close and reopen each connection after this long (churn).
    #[arg(long, env = "SOAK_LIFETIME", value_name = "DUR", value_parser = parse_duration)]
    pub lifetime: Option<Duration>,
    /// Alternate all users between talking (sending, connections kept) and churning
    /// (--lifetime reconnects, nothing sent), this long each: separates per-message from
    /// per-connection leaks (the leak-hunt profile).
    #[arg(long, env = "SOAK_ALTERNATE", value_name = "DUR", value_parser = parse_duration)]
    pub alternate: Option<Duration>,
    /// A rule naming frames that are pushes, not replies (`'/type == "presence"'`;
    /// repeatable): counted per rule, never errors.
    #[arg(long = "push", env = "SOAK_PUSH", value_name = "RULE")]
    pub push: Vec<String>,
    /// A message sent when each connection opens, before any other (a subscribe or join;
    /// repeatable, in order). Steps that wait for an answer are `[[session.on_connect]]`.
    #[arg(long = "on-connect", env = "SOAK_ON_CONNECT", value_name = "TEMPLATE")]
    pub on_connect: Vec<String>,
    /// Users per chat room: user U is in room U / N, filled into `{{room}}` in the URL's
    /// path, connect-time steps and messages.
    #[arg(long, env = "SOAK_ROOM_SIZE", value_name = "N")]
    pub room_size: Option<u32>,
    /// Extra handshake header, `'Name: value'` (repeatable).
    #[arg(long = "header", env = "SOAK_HEADER", value_name = "'K: V'")]
    pub headers: Vec<String>,
    /// WebSocket subprotocol to offer (repeatable).
    #[arg(long = "subprotocol", env = "SOAK_SUBPROTOCOL", value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// What the target speaks: `websocket` (JSON text frames) or `socketio` (Engine.IO v4
    /// over a WebSocket; the URL may be http:// or ws://, its path the namespace).
    #[arg(long, env = "SOAK_PROTOCOL", value_name = "PROTOCOL")]
    pub protocol: Option<crate::profile::spec::Protocol>,
    /// Socket.IO: the event messages are emitted as (acked unless --reply-event is given).
    #[arg(long, env = "SOAK_EVENT", value_name = "NAME")]
    pub event: Option<String>,
    /// Socket.IO: messages ask for no ack; the server's reply is this event, correlated
    /// inside its data by --correlate.
    #[arg(long, env = "SOAK_REPLY_EVENT", value_name = "NAME")]
    pub reply_event: Option<String>,
    /// Socket.IO: the namespace to connect to (default: the URL's path, else `/`).
    #[arg(long, env = "SOAK_NAMESPACE", value_name = "NSP")]
    pub namespace: Option<String>,
    /// Socket.IO: the namespace connect's auth payload, a JSON template (`{"token":
    /// "{{token}}"}` with a `token` column in --data).
    #[arg(long, env = "SOAK_AUTH", value_name = "TEMPLATE")]
    pub auth: Option<String>,
    /// Accept self-signed or otherwise unverifiable TLS certificates (never the default).
    #[arg(long, env = "SOAK_INSECURE")]
    pub insecure: bool,
    /// Spread connections over these source addresses (`127.0.0.2-127.0.0.7`, `a,b,c` or
    /// a CIDR), so one machine opens more than ~28,000 connections to one server port.
    #[arg(long, env = "SOAK_LOCAL_IPS", value_name = "IPS")]
    pub local_ips: Option<String>,
    /// Time allowed for TCP connect, TLS and the WebSocket handshake.
    #[arg(long, env = "SOAK_HANDSHAKE_TIMEOUT", value_name = "DUR", value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// Length of one timeseries interval (one row of timeseries.csv, one progress line).
    #[arg(long, env = "SOAK_INTERVAL", value_name = "DUR", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Probe connections that time pings to detect event-loop stalls (0 turns them off).
    #[arg(long, env = "SOAK_PROBES", value_name = "N")]
    pub probes: Option<u32>,
    /// App-level probe message (template) instead of WebSocket pings.
    #[arg(long, env = "SOAK_PROBE_MESSAGE", value_name = "TEMPLATE")]
    pub probe_message: Option<String>,
    /// Socket.IO: probes emit this event with an ack and time the ack (`echo`); the
    /// server must ack it at once from its event loop.
    #[arg(long, env = "SOAK_PROBE_EVENT", value_name = "NAME")]
    pub probe_event: Option<String>,
    /// A probe answered later than this is late (a stall needs most probes late at once).
    #[arg(long, env = "SOAK_STALL_THRESHOLD", value_name = "DUR", value_parser = parse_duration)]
    pub stall_threshold: Option<Duration>,
    /// PID of the target's process, sampled (with its children) for memory, CPU, fds, threads.
    #[arg(long, env = "SOAK_TARGET_PID", value_name = "PID", conflicts_with_all = ["target_name", "target_cmd"])]
    pub target_pid: Option<u32>,
    /// Name of the target's process (exactly one running process, or one process tree).
    #[arg(
        long,
        env = "SOAK_TARGET_NAME",
        value_name = "NAME",
        conflicts_with = "target_cmd"
    )]
    pub target_name: Option<String>,
    /// Shell command that starts the target: soak starts it, waits for --url to accept
    /// connections, samples it, and stops it at the end.
    #[arg(long, env = "SOAK_TARGET_CMD", value_name = "'CMD …'")]
    pub target_cmd: Option<String>,
    /// A cgroup folder to sample as the target (a container's, v2 or v1): the leak verdict
    /// judges its anonymous memory; page cache is reported apart.
    #[arg(long, env = "SOAK_TARGET_CGROUP", value_name = "PATH", conflicts_with_all = ["target_pid", "target_name", "target_cmd"])]
    pub target_cgroup: Option<PathBuf>,
    /// A running Docker or Podman container to sample (its cgroup, found with the
    /// runtime's `inspect`; needs the docker or podman command).
    #[arg(long, env = "SOAK_TARGET_CONTAINER", value_name = "NAME|ID", conflicts_with_all = ["target_pid", "target_name", "target_cmd", "target_cgroup"])]
    pub target_container: Option<String>,
    /// The target's Prometheus / OpenMetrics endpoint (`http://HOST:PORT/metrics`), scraped
    /// each sample interval for resident memory, CPU and open files: a server soak cannot
    /// see (another machine, a pod). A failed scrape is a counted gap.
    #[arg(long, env = "SOAK_TARGET_METRICS", value_name = "URL", conflicts_with_all = ["target_pid", "target_name", "target_cmd", "target_cgroup", "target_container"])]
    pub target_metrics: Option<String>,
    /// Where a --target-cmd's output goes: `log` (target.log in the results folder) or
    /// `console` (also printed above the progress bar).
    #[arg(long, env = "SOAK_TARGET_OUTPUT", value_name = "WHERE")]
    pub target_output: Option<TargetOutput>,
    /// Time between readings of the target (and of soak itself).
    #[arg(long, env = "SOAK_SAMPLE_INTERVAL", value_name = "DUR", value_parser = parse_duration)]
    pub sample_interval: Option<Duration>,
    /// Idle time before the load, for the target's memory baseline.
    #[arg(long, env = "SOAK_BASELINE", value_name = "DUR", value_parser = parse_duration)]
    pub baseline: Option<Duration>,
    /// Time after the load while sampling goes on (does the target give memory back?).
    #[arg(long, env = "SOAK_COOLDOWN", value_name = "DUR", value_parser = parse_duration)]
    pub cooldown: Option<Duration>,
    /// The target's memory limit in MB: a leak's time to reach it is projected.
    #[arg(long, env = "SOAK_MEMORY_LIMIT", value_name = "MB")]
    pub memory_limit: Option<f64>,
    /// Mock APIs to run in-process for the target: `llm` (OpenAI-compatible), `telegram`.
    /// Their URLs reach a --target-cmd in OPENAI_BASE_URL / TELEGRAM_API_URL.
    #[arg(
        long = "mock",
        env = "SOAK_MOCK",
        value_name = "NAMES",
        value_delimiter = ','
    )]
    pub mocks: Vec<String>,
    /// A pass/fail check on the results, like 'p99 < 250ms' or 'memory != leak'
    /// (repeatable). Any gate given replaces the default gates.
    #[arg(long = "gate", env = "SOAK_GATE", value_name = "EXPR")]
    pub gates: Vec<String>,
    /// No default gates (connect success > 95 %, error rate < 5 %, the profile's verdict
    /// gates) when no gate is configured: the run then passes whenever it completes.
    #[arg(long, env = "SOAK_NO_DEFAULT_GATES")]
    pub no_default_gates: bool,
    /// End the run early (exit 1, results written) once a gate can no longer pass.
    #[arg(long, env = "SOAK_ABORT_ON_FAIL")]
    pub abort_on_fail: bool,
    /// With --abort-on-fail: no early end before this long after the ramp-up.
    #[arg(long, env = "SOAK_ABORT_GRACE", value_name = "DUR", value_parser = parse_duration)]
    pub abort_grace: Option<Duration>,
    /// Run slice I of N of the plan (0-based, e.g. 0/4): the N segments together run the
    /// one-process plan exactly.
    #[arg(long, env = "SOAK_SEGMENT", value_name = "I/N", value_parser = Segment::parse, conflicts_with = "segments")]
    pub segment: Option<Segment>,
    /// Run one of N segments, its index from JOB_COMPLETION_INDEX (set by Kubernetes
    /// Indexed Jobs).
    #[arg(long, env = "SOAK_SEGMENTS", value_name = "N")]
    pub segments: Option<u32>,
    /// With segments: the one that samples the target process and gives the memory
    /// verdict (the others do not sample it).
    #[arg(
        long,
        env = "SOAK_SAMPLE_TARGET",
        value_name = "I",
        default_value_t = 0
    )]
    pub sample_target: u32,
    /// Start the plan at this wall-clock time (RFC 3339, or +DUR from now), so that every
    /// segment ramps on the same clock; started later, a segment joins the plan where it is.
    #[arg(long, env = "SOAK_START_AT", value_name = "TIME|+DUR")]
    pub start_at: Option<String>,
    /// Serve a live dashboard of the run in the browser (default 127.0.0.1:5665; give
    /// PORT, localhost:PORT or IP:PORT — only an address written out leaves loopback).
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = "127.0.0.1:5665",
        value_parser = crate::live::listen::parse_listen
    )]
    pub dashboard: Option<SocketAddr>,
    /// Keep soak (and the dashboard and /metrics) up this long after the run ends, so a
    /// person can look; Ctrl-C ends it sooner.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub dashboard_linger: Option<Duration>,
    /// Serve OpenMetrics for Prometheus at http://ADDR/metrics during the run (PORT,
    /// localhost:PORT or IP:PORT; loopback unless an address is written out).
    #[arg(
        long,
        env = "SOAK_METRICS_LISTEN",
        value_name = "ADDR",
        value_parser = crate::live::listen::parse_listen
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// Folder under which the run's results folder is created (default `results/`).
    #[arg(long, env = "SOAK_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print nothing but errors and, as the last line, the results folder.
    #[arg(long, env = "SOAK_QUIET")]
    pub quiet: bool,
}

/// Options of `soak mock`.
#[derive(Debug, Clone, Args)]
pub struct MockArgs {
    /// Serve the demo chat target (the default when no other mock is named).
    #[arg(long)]
    pub demo: bool,
    /// Serve the mock OpenAI-compatible LLM API.
    #[arg(long)]
    pub llm: bool,
    /// Serve the mock Telegram Bot API (prints its base URL and a bot token to use).
    #[arg(long)]
    pub telegram: bool,
    /// TOML file with `[llm]` settings (latency, limits, faults); unknown keys are errors.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seed for the mock LLM's random draws (repeatable runs).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Address to listen on; port 0 picks a free port. Loopback unless told otherwise.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Share the port with other `soak mock --reuse-port` processes (SO_REUSEPORT): the
    /// kernel spreads connections over them (a target for more connections than one
    /// process's open-file limit).
    #[arg(long)]
    pub reuse_port: bool,
    /// Delay before the demo target answers each message (`20ms`).
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "0s")]
    pub demo_delay: Duration,
    /// Frames per demo reply; above 1, replies stream as `{"delta"}` frames then `{"done": true}`.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub demo_stream: u32,
    /// Time between the frames of a streamed demo reply.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "0s")]
    pub demo_gap: Duration,
    /// Block the demo's event loop this long every `--demo-block-every` (imitates a sync call).
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "0s", requires = "demo_block_every")]
    pub demo_block_for: Duration,
    /// Period of the demo's event-loop blocks.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "0s")]
    pub demo_block_every: Duration,
    /// Bytes the demo keeps forever per message received (a leak for soak to find).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub demo_leak_per_message: u64,
    /// Bytes the demo keeps forever per connection that closed (a leak found under churn).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub demo_leak_per_close: u64,
    /// Room mode: a connection joins the room of its URL path, and each `{"message"}` goes
    /// to every member as `{"message"}` with no id (the Django Channels tutorial's chat).
    #[arg(long)]
    pub demo_rooms: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bare_flags_mean_run() {
        let cli = Cli::try_parse_from(["soak", "--users", "100", "--hours", "4"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.users, Some(100));
        assert_eq!(cli.run.hours, Some(Duration::from_secs(4 * 3600)));
    }

    #[test]
    fn run_subcommand_takes_the_same_flags() {
        let cli = Cli::try_parse_from(["soak", "run", "--rate", "30/m"]).unwrap();
        let Some(Command::Run(args)) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(args.rate.map(|r| r.per_second), Some(0.5));
    }

    #[test]
    fn hours_and_duration_conflict() {
        assert!(Cli::try_parse_from(["soak", "--hours", "1", "--duration", "5m"]).is_err());
    }

    #[test]
    fn bad_values_are_rejected_by_the_parser() {
        assert!(Cli::try_parse_from(["soak", "--users", "many"]).is_err());
        assert!(Cli::try_parse_from(["soak", "--rate", "fast"]).is_err());
        assert!(Cli::try_parse_from(["soak", "--duration", "3x"]).is_err());
    }
}
