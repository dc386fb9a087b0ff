//! `ProfileSpec` → `RunConfig`: validate, convert units, compile templates, rules and data.
//!
//! Every error is one line naming the profile, the field (and its flag) and what is valid.

use std::time::Duration;

use soak_mocks::demo::DemoConfig;

use crate::analysis::gates;
use crate::analysis::stall::StallRule;
use crate::data::{self, UserData};
use crate::error::{SoakError, usage};
use crate::profile::Loaded;
pub use crate::profile::config::{
    ConnectionConfig, MessageConfig, ProbeConfig, ProcessConfig, RunConfig, Target, TargetProcess,
};
use crate::profile::process::process;
use crate::profile::scenario::{check_pointer, messages};
use crate::profile::spec::{GatesSpec, ProfileSpec, Protocol};
use crate::template::Template;
use crate::units::format_duration;

/// Shortest timeseries interval: below this, rows are noise and flushing costs more than it tells.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// Most users one run may ask for: well above what one process can hold (the open-file
/// limit), so a typo like `--users 1000000000` is caught before anything starts.
const MAX_USERS: u32 = 1_000_000;

/// Validates a loaded profile (with overrides already applied).
pub fn resolve(loaded: &Loaded) -> Result<RunConfig, SoakError> {
    let spec = &loaded.spec;
    let bad = |field: &str, msg: String| usage(format!("{}: {field}: {msg}", loaded.source));
    let (target, namespace) = match spec.target.protocol {
        Protocol::Websocket => (
            target(spec).map_err(|m| bad("target.url (--url)", m))?,
            None,
        ),
        Protocol::Socketio => socketio_target(spec).map_err(|m| bad("target.url (--url)", m))?,
    };
    let connection = connection(spec, &bad)?;
    check_load(spec, &bad)?;
    let data = match &spec.session.data {
        Some(path) => data::load(path).map_err(|m| bad("session.data (--data)", m))?,
        None => UserData::default(),
    };
    let messages = messages(spec, &data.columns, &bad)?;
    let session = &spec.session;
    check_timing(spec, &bad)?;
    let (mut probes, stall_rule) = probes(spec, &data.columns, namespace.as_deref(), &bad)?;
    if matches!(target, Target::Telegram) {
        probes = None; // Telegram users have no connection to probe
    }
    let process = process(spec, &target, &bad)?;
    let alternate = alternate(spec, &target, &bad)?;
    let room_size = rooms(spec, &data.columns, &bad)?;
    let fanout = fanout(spec, &target, &bad)?;
    let pushes = crate::profile::scenario::pushes(spec, &messages, &bad)?;
    let on_connect = crate::profile::scenario::steps(spec, &data.columns, &target, &bad)?;
    let (messages, on_connect, socketio) = match namespace {
        Some(namespace) => {
            if !pushes.is_empty() {
                return Err(bad(
                    "session.push (--push)",
                    "applies to WebSocket frames: a Socket.IO event that is neither an ack nor a reply is a push, counted by its name".into(),
                ));
            }
            let r = crate::profile::socketio::resolve(
                spec,
                namespace,
                (messages, on_connect),
                &data.columns,
                &bad,
            )?;
            (r.messages, r.steps, Some(r.shared))
        }
        None => (messages, on_connect, None),
    };
    let gates = gates(spec, &bad)?;
    let (llm, telegram) = mocks(spec, &bad)?;
    let watched = !matches!(process.target, TargetProcess::None);
    // The idle baseline and the cool-down exist for the target's memory verdict: with no
    // target process they would only idle, so they are skipped (the runner says so).
    let margin = |d: Option<Duration>, default: u64| {
        if watched {
            d.unwrap_or(Duration::from_secs(default))
        } else {
            Duration::ZERO
        }
    };
    let baseline = margin(spec.process.baseline, 10);
    let cooldown = margin(spec.process.cooldown, 30);
    Ok(RunConfig {
        profile: loaded.name.clone(),
        target,
        connection,
        users: spec.load.users,
        segment: crate::segment::Segment::WHOLE,
        duration: spec.load.duration,
        ramp_up: spec.load.ramp_up,
        ramp_down: spec.load.ramp_down,
        connect_rate: spec.load.connect_rate,
        model: session.model,
        period: session.rate.period(),
        think: session.think,
        messages,
        reply_timeout: session.reply_timeout,
        data,
        lifetime: (!session.lifetime.is_zero()).then_some(session.lifetime),
        alternate,
        pushes,
        on_connect,
        room_size,
        fanout,
        reconnect_min: session.reconnect_min,
        reconnect_max: session.reconnect_max,
        probes,
        stall_rule,
        gates,
        abort_grace: spec.gates.abort_grace,
        socketio,
        llm,
        telegram,
        process,
        baseline,
        cooldown,
        interval: spec.output.interval,
        out_dir: spec.output.dir.clone(),
        effective: spec.clone(),
    })
}

/// `[rooms] size`: at most the users (one room of everyone at most).
fn rooms(
    spec: &ProfileSpec,
    columns: &[String],
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<u32, SoakError> {
    let size = spec.rooms.size;
    if size > 0 && columns.iter().any(|c| c == "room") {
        return Err(bad(
            "rooms.size (--room-size)",
            "the data file has a `room` column, which also fills {{room}}: rename the column or drop rooms.size".into(),
        ));
    }
    if size > spec.load.users {
        return Err(bad(
            "rooms.size (--room-size)",
            format!(
                "{size} users a room, but the run has {} users",
                spec.load.users
            ),
        ));
    }
    Ok(size)
}

/// `[rooms] deliver`: fan-out measured at this pointer, with or without the sender.
fn fanout(
    spec: &ProfileSpec,
    target: &Target,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<Option<(String, bool)>, SoakError> {
    let r = &spec.rooms;
    if r.deliver.trim().is_empty() {
        return Ok(None);
    }
    if matches!(target, Target::Telegram) {
        return Err(bad(
            "rooms.deliver",
            "applies to WebSocket rooms; Telegram group chats are measured by the mock (telegram.group_size)".into(),
        ));
    }
    if r.size == 0 {
        return Err(bad(
            "rooms.deliver",
            "needs rooms.size (--room-size): deliveries are expected at a room's members".into(),
        ));
    }
    crate::profile::scenario::check_pointer(&r.deliver).map_err(|m| bad("rooms.deliver", m))?;
    Ok(Some((r.deliver.clone(), r.include_sender)))
}

/// `session.alternate`: talking and churning in turn needs both to happen.
fn alternate(
    spec: &ProfileSpec,
    target: &Target,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<Option<Duration>, SoakError> {
    let s = &spec.session;
    if s.alternate.is_zero() {
        return Ok(None);
    }
    let why = if s.lifetime.is_zero() {
        Some("needs session.lifetime (--lifetime): churn windows close connections after it")
    } else if s.model == crate::profile::spec::Model::Open && s.rate.period().is_none() {
        Some("needs a rate above 0/s: talk windows send at it")
    } else if s.alternate < s.lifetime * 2 {
        Some("must be at least twice session.lifetime, so each churn window closes connections")
    } else if matches!(target, Target::Telegram) {
        Some("applies to WebSocket users; Telegram users hold no connection")
    } else {
        None
    };
    match why {
        Some(why) => Err(bad("session.alternate (--alternate)", why.into())),
        None => Ok(Some(s.alternate)),
    }
}

/// The pass/fail checks, parsed.
fn gates(
    spec: &ProfileSpec,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<Vec<gates::Gate>, SoakError> {
    gates_of(&spec.gates).map_err(|(field, e)| bad(field, e.to_string()))
}

/// The gates a run is judged by: the configured checks, or — when there are none and
/// defaults are on — [`gates::DEFAULTS`] and the profile's `verdicts`, marked as defaults.
/// `soak report` calls it on a saved summary's config, so both judge alike.
pub fn gates_of(spec: &GatesSpec) -> Result<Vec<gates::Gate>, (&'static str, gates::GateError)> {
    if !spec.checks.is_empty() {
        return spec
            .checks
            .iter()
            .map(|check| {
                let mut gate =
                    gates::parse(check.expr()).map_err(|e| ("gates.checks (--gate)", e))?;
                gate.abort = spec.abort_on_fail || check.abort();
                Ok(gate)
            })
            .collect();
    }
    let verdicts = spec
        .verdicts
        .iter()
        .map(|expr| gates::parse(expr).map_err(|e| ("gates.verdicts", e)))
        .collect::<Result<Vec<_>, _>>()?;
    if !spec.defaults {
        return Ok(Vec::new());
    }
    let generic = gates::DEFAULTS
        .iter()
        .map(|expr| gates::parse(expr).map_err(|e| ("gates.defaults", e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(generic
        .into_iter()
        .chain(verdicts)
        .map(|mut gate| {
            gate.default = true;
            gate.abort = spec.abort_on_fail;
            gate
        })
        .collect())
}

/// The session's timeouts and back-off, and the output interval.
fn check_timing(
    spec: &ProfileSpec,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<(), SoakError> {
    let session = &spec.session;
    let positive = |d: Duration, field: &str| {
        if d.is_zero() {
            Err(bad(field, "must be longer than 0s".into()))
        } else {
            Ok(())
        }
    };
    positive(
        session.reply_timeout,
        "session.reply_timeout (--reply-timeout)",
    )?;
    positive(session.reconnect_min, "session.reconnect_min")?;
    if session.reconnect_max < session.reconnect_min {
        return Err(bad(
            "session.reconnect_max",
            "must not be shorter than reconnect_min".into(),
        ));
    }
    if spec.output.interval < MIN_INTERVAL {
        return Err(bad(
            "output.interval (--interval)",
            format!("must be at least {}ms", MIN_INTERVAL.as_millis()),
        ));
    }
    Ok(())
}

fn mocks(
    spec: &ProfileSpec,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<
    (
        Option<soak_mocks::llm::config::LlmConfig>,
        Option<soak_mocks::telegram::TelegramConfig>,
    ),
    SoakError,
> {
    let mut llm = None;
    let mut telegram = None;
    for name in &spec.mocks.enable {
        match name.trim() {
            "llm" => {
                spec.mocks.llm.check().map_err(|m| bad("mocks.llm", m))?;
                llm = Some(spec.mocks.llm.clone());
            }
            "telegram" => {
                let t = &spec.mocks.telegram;
                if !(0.0..=1.0).contains(&t.fault_probability) {
                    return Err(bad(
                        "mocks.telegram.fault_probability",
                        "expected 0 to 1".into(),
                    ));
                }
                telegram = Some(t.clone());
            }
            other => {
                return Err(bad(
                    "mocks.enable (--mock)",
                    format!("unknown mock `{other}`: expected llm or telegram"),
                ));
            }
        }
    }
    Ok((llm, telegram))
}

fn probes(
    spec: &ProfileSpec,
    columns: &[String],
    namespace: Option<&str>,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<(Option<ProbeConfig>, StallRule), SoakError> {
    let p = &spec.probes;
    let event = match (namespace, p.event.trim()) {
        (_, "") => None,
        (None, _) => {
            return Err(bad(
                "probes.event (--probe-event)",
                "applies to Socket.IO targets (--protocol socketio); a WebSocket probe is a ping or probes.message".into(),
            ));
        }
        (Some(nsp), event) => Some(
            crate::profile::socketio::probe(
                &crate::profile::socketio::prefix(nsp),
                event,
                if p.message.trim().is_empty() {
                    crate::profile::socketio::PROBE_DATA
                } else {
                    &p.message
                },
                columns,
            )
            .map_err(|m| bad("probes.event (--probe-event)", m))?,
        ),
    };
    if p.count > 64 {
        return Err(bad(
            "probes.count (--probes)",
            format!("{} probes: expected 0 to 64", p.count),
        ));
    }
    if p.every < Duration::from_millis(10) {
        return Err(bad("probes.every", "must be at least 10ms".into()));
    }
    if p.threshold.is_zero() {
        return Err(bad(
            "probes.threshold (--stall-threshold)",
            "must be longer than 0s".into(),
        ));
    }
    if !(p.quorum > 0.0 && p.quorum <= 1.0) {
        return Err(bad(
            "probes.quorum",
            format!(
                "{}: expected a share above 0 and at most 1, like 0.75",
                p.quorum
            ),
        ));
    }
    let message = if p.message.trim().is_empty() || event.is_some() {
        None
    } else {
        check_pointer(&p.correlate).map_err(|m| bad("probes.correlate", m))?;
        let template = Template::compile(&p.message, columns)
            .map_err(|m| bad("probes.message (--probe-message)", m))?;
        if !template.has_id() {
            return Err(bad(
                "probes.message (--probe-message)",
                "must contain {{id}}, or its replies cannot be timed".into(),
            ));
        }
        Some((template, p.correlate.clone()))
    };
    let rule = StallRule {
        threshold: p.threshold,
        quorum: p.quorum,
        bin: if p.count > 0 {
            p.every
        } else {
            Duration::from_millis(100)
        },
    };
    let config = (p.count > 0).then_some(ProbeConfig {
        count: p.count,
        every: p.every,
        message,
        on_connect: p.on_connect,
        event,
    });
    Ok((config, rule))
}

fn check_load(
    spec: &ProfileSpec,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<(), SoakError> {
    let load = &spec.load;
    if load.users == 0 || load.users > MAX_USERS {
        return Err(bad(
            "load.users (--users)",
            format!("{} is out of range: expected 1 to {MAX_USERS}", load.users),
        ));
    }
    if load.duration.is_zero() {
        return Err(bad(
            "load.duration (--duration/--hours)",
            "must be longer than 0s".into(),
        ));
    }
    if load.ramp_up + load.ramp_down > load.duration {
        return Err(bad(
            "load.ramp_up + load.ramp_down (--ramp-up, --ramp-down)",
            format!(
                "{} + {} is longer than the whole run ({}); the duration includes both ramps",
                format_duration(load.ramp_up),
                format_duration(load.ramp_down),
                format_duration(load.duration),
            ),
        ));
    }
    if load.connect_rate.per_second <= 0.0 {
        return Err(bad(
            "load.connect_rate (--connect-rate)",
            "must be above 0/s, like 200/s".into(),
        ));
    }
    Ok(())
}

fn connection(
    spec: &ProfileSpec,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<ConnectionConfig, SoakError> {
    let t = &spec.target;
    let mut headers = Vec::new();
    for h in &t.headers {
        let parsed = h.split_once(':').map(|(k, v)| (k.trim(), v.trim()));
        match parsed {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_graphic()) => {
                headers.push((k.to_string(), v.to_string()));
            }
            _ => {
                let shown = crate::redact::header(h);
                return Err(bad(
                    "target.headers (--header)",
                    format!("`{shown}`: expected 'Name: value'"),
                ));
            }
        }
    }
    for p in &t.subprotocols {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_graphic() && c != ',') {
            return Err(bad(
                "target.subprotocols (--subprotocol)",
                format!("`{p}` is not a protocol token"),
            ));
        }
    }
    if t.handshake_timeout.is_zero() {
        return Err(bad(
            "target.handshake_timeout (--handshake-timeout)",
            "must be longer than 0s".into(),
        ));
    }
    let local_ips = crate::engine::local_ips::parse(&t.local_ips)
        .map_err(|m| bad("target.local_ips (--local-ips)", m))?;
    Ok(ConnectionConfig {
        headers,
        subprotocols: t.subprotocols.clone(),
        insecure: t.insecure,
        handshake_timeout: t.handshake_timeout,
        local_ips,
    })
}

/// A Socket.IO target: its Engine.IO endpoint's WebSocket URL, and the namespace.
fn socketio_target(spec: &ProfileSpec) -> Result<(Target, Option<String>), String> {
    let url = url(spec);
    if url.is_empty() {
        return Err(
            "--protocol socketio needs the server's URL (--url http://host:port): the demo target speaks plain WebSocket"
                .into(),
        );
    }
    let (ws, namespace) = crate::profile::socketio::endpoint(url, &spec.socketio)?;
    Ok((Target::Url(ws), Some(namespace)))
}

/// The target URL as given, trimmed; empty when none.
fn url(spec: &ProfileSpec) -> &str {
    spec.target
        .url
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
}

fn target(spec: &ProfileSpec) -> Result<Target, String> {
    let url = url(spec);
    if url.is_empty() && spec.mocks.enable.iter().any(|m| m.trim() == "telegram") {
        return Ok(Target::Telegram);
    }
    if url.is_empty() {
        let d = &spec.demo;
        return Ok(Target::Demo(DemoConfig {
            reply_delay: d.reply_delay,
            stream_frames: d.stream_frames,
            frame_gap: d.frame_gap,
            block_for: d.block_for,
            block_every: d.block_every,
            block_per_message: d.block_per_message,
            separate_handler: d.separate_handler,
            leak_per_message: d.leak_per_message,
            leak_per_close: d.leak_per_close,
            rooms: d.rooms,
            room_drop_every: d.room_drop_every,
            ..DemoConfig::default()
        }));
    }
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| {
            format!(
                "`{}` is not a WebSocket URL: expected ws://host:port/path or wss://…",
                crate::redact::url(url)
            )
        })?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!(
            "`{}` has no host: expected ws://host:port/path",
            crate::redact::url(url)
        ));
    }
    Ok(Target::Url(url.to_string()))
}

#[cfg(test)]
mod tests;
