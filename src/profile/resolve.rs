//! `ProfileSpec` → `RunConfig`: validate, convert units, compile the template and pointer.
//!
//! Every error is one line naming the profile, the field (and its flag) and what is valid.

use std::path::PathBuf;
use std::time::Duration;

use soak_mocks::demo::DemoConfig;

use crate::error::{SoakError, usage};
use crate::profile::{Loaded, ProfileSpec};
use crate::template::Template;

/// Shortest timeseries interval: below this, rows are noise and flushing costs more than it tells.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// Most users one run may ask for: well above what one process can hold (the open-file
/// limit), so a typo like `--users 1000000000` is caught before anything starts.
const MAX_USERS: u32 = 1_000_000;

/// Everything a run needs, validated. The engine reads only this.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Profile name, used in the results folder's name.
    pub profile: String,
    /// What the load goes to.
    pub target: Target,
    /// Number of simulated users.
    pub users: u32,
    /// Whole run, ramps included.
    pub duration: Duration,
    /// Time over which users start.
    pub ramp_up: Duration,
    /// Time over which users stop.
    pub ramp_down: Duration,
    /// Time between two sends of one user; `None` holds the connection idle.
    pub period: Option<Duration>,
    /// The compiled message template.
    pub template: Template,
    /// JSON pointer to the reply field holding the request id.
    pub correlate: String,
    /// A reply later than this counts as a `timeout` error.
    pub reply_timeout: Duration,
    /// One timeseries row per interval.
    pub interval: Duration,
    /// Folder under which the run's folder is created.
    pub out_dir: PathBuf,
    /// The profile after CLI overrides, as written to `summary.json`.
    pub effective: ProfileSpec,
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// The built-in demo target, started in-process on 127.0.0.1.
    Demo(DemoConfig),
    /// A WebSocket URL given by the user (`ws://…`).
    Url(String),
}

/// Validates a loaded profile (with overrides already applied).
pub fn resolve(loaded: &Loaded) -> Result<RunConfig, SoakError> {
    let spec = &loaded.spec;
    let bad = |field: &str, msg: String| usage(format!("{}: {field}: {msg}", loaded.source));
    let target = target(spec).map_err(|m| bad("target.url (--url)", m))?;
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
                crate::units::format_duration(load.ramp_up),
                crate::units::format_duration(load.ramp_down),
                crate::units::format_duration(load.duration),
            ),
        ));
    }
    let session = &spec.session;
    let template =
        Template::compile(&session.message).map_err(|m| bad("session.message (--message)", m))?;
    check_pointer(&session.correlate).map_err(|m| bad("session.correlate (--correlate)", m))?;
    if session.reply_timeout.is_zero() {
        return Err(bad(
            "session.reply_timeout (--reply-timeout)",
            "must be longer than 0s".into(),
        ));
    }
    if spec.output.interval < MIN_INTERVAL {
        return Err(bad(
            "output.interval (--interval)",
            format!("must be at least {}ms", MIN_INTERVAL.as_millis()),
        ));
    }
    Ok(RunConfig {
        profile: loaded.name.clone(),
        target,
        users: load.users,
        duration: load.duration,
        ramp_up: load.ramp_up,
        ramp_down: load.ramp_down,
        period: session.rate.period(),
        template,
        correlate: session.correlate.clone(),
        reply_timeout: session.reply_timeout,
        interval: spec.output.interval,
        out_dir: spec.output.dir.clone(),
        effective: spec.clone(),
    })
}

fn target(spec: &ProfileSpec) -> Result<Target, String> {
    let url = spec
        .target
        .url
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    if url.is_empty() {
        return Ok(Target::Demo(DemoConfig {
            reply_delay: spec.demo.reply_delay,
        }));
    }
    if url.starts_with("wss://") {
        return Err(format!(
            "`{url}`: wss:// (TLS) is not supported by this build yet; use a ws:// URL"
        ));
    }
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("`{url}` is not a WebSocket URL: expected ws://host:port/path"))?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("`{url}` has no host: expected ws://host:port/path"));
    }
    Ok(Target::Url(url.to_string()))
}

/// A JSON pointer is empty (the whole reply) or starts with `/` (RFC 6901).
fn check_pointer(pointer: &str) -> Result<(), String> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "`{pointer}` is not a JSON pointer: expected one starting with `/`, like /id or /meta/request_id"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(spec: ProfileSpec) -> Loaded {
        Loaded {
            name: "t".into(),
            source: "t.toml".into(),
            spec,
        }
    }

    fn err(edit: impl FnOnce(&mut ProfileSpec)) -> String {
        let mut spec = ProfileSpec::default();
        edit(&mut spec);
        resolve(&loaded(spec)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_resolve_to_the_demo_target() {
        let config = resolve(&loaded(ProfileSpec::default())).unwrap();
        assert!(matches!(config.target, Target::Demo(_)));
        assert_eq!(config.period, Some(Duration::from_secs(1)));
    }

    #[test]
    fn ramps_longer_than_the_run_are_refused() {
        let e = err(|s| {
            s.load.duration = Duration::from_secs(10);
            s.load.ramp_up = Duration::from_secs(8);
            s.load.ramp_down = Duration::from_secs(3);
        });
        assert!(
            e.contains("--ramp-up") && e.contains("longer than the whole run"),
            "{e}"
        );
    }

    #[test]
    fn ramps_filling_the_whole_run_are_fine() {
        let mut spec = ProfileSpec::default();
        spec.load.duration = Duration::from_secs(10);
        spec.load.ramp_up = Duration::from_secs(5);
        spec.load.ramp_down = Duration::from_secs(5);
        assert!(resolve(&loaded(spec)).is_ok());
    }

    #[test]
    fn field_errors_name_field_and_flag() {
        assert!(err(|s| s.load.users = 0).contains("load.users (--users)"));
        assert!(err(|s| s.load.duration = Duration::ZERO).contains("load.duration"));
        let e = err(|s| s.session.message = "{{who}}".into());
        assert!(
            e.contains("session.message") && e.contains("{{who}}"),
            "{e}"
        );
        assert!(err(|s| s.session.correlate = "id".into()).contains("JSON pointer"));
        assert!(err(|s| s.output.interval = Duration::from_millis(1)).contains("output.interval"));
    }

    #[test]
    fn urls_must_be_websocket_urls() {
        for url in ["http://x/", "ws://", "localhost:80", "wss://x/"] {
            let e = err(|s| s.target.url = Some(url.into()));
            assert!(e.contains("target.url"), "{url}: {e}");
        }
        let mut spec = ProfileSpec::default();
        spec.target.url = Some("ws://127.0.0.1:9/chat".into());
        assert!(matches!(
            resolve(&loaded(spec)).unwrap().target,
            Target::Url(_)
        ));
    }
}
