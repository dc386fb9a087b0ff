//! Profiles: `ProfileSpec`, the serde mirror of a profile TOML, and loading one by name or path.
//!
//! A profile goes through two steps: the raw [`ProfileSpec`] (what the file says, with CLI
//! flags laid over it by [`overrides::apply`]) and the resolved [`resolve::RunConfig`]
//! (validated, units converted, templates compiled), which is all the engine ever sees.

pub mod builtin;
pub mod overrides;
pub mod resolve;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{SoakError, usage};
use crate::units::{Rate, serde_units};

/// A whole profile file. Every section and field is optional; missing ones take the
/// defaults below, which are those of the `smoke` profile. Unknown keys are errors.
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
    /// The built-in demo target, used when no target URL is given.
    pub demo: DemoSpec,
    /// Where and how often results are written.
    pub output: OutputSpec,
}

/// `[target]`: the WebSocket server under test.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetSpec {
    /// `ws://host:port/path`; absent or empty starts the built-in demo target.
    pub url: Option<String>,
}

/// `[load]`: users and the run's shape. `duration` is the whole run, ramps included.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadSpec {
    /// Number of simulated users, each holding one connection.
    pub users: u32,
    /// Length of the whole run, ramps included.
    #[serde(
        deserialize_with = "serde_units::duration",
        serialize_with = "serde_units::ser_duration"
    )]
    pub duration: Duration,
    /// Users start evenly spread over this time.
    #[serde(
        deserialize_with = "serde_units::duration",
        serialize_with = "serde_units::ser_duration"
    )]
    pub ramp_up: Duration,
    /// Users stop evenly spread over this time, ending with the run.
    #[serde(
        deserialize_with = "serde_units::duration",
        serialize_with = "serde_units::ser_duration"
    )]
    pub ramp_down: Duration,
}

impl Default for LoadSpec {
    fn default() -> Self {
        Self {
            users: 10,
            duration: Duration::from_secs(30),
            ramp_up: Duration::from_secs(5),
            ramp_down: Duration::from_secs(5),
        }
    }
}

/// `[session]`: what one simulated user sends and how replies are matched.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSpec {
    /// Messages per user, on a fixed schedule (open model): `2/s`, `30/m`, `0/s`.
    #[serde(
        deserialize_with = "serde_units::rate",
        serialize_with = "serde_units::ser_rate"
    )]
    pub rate: Rate,
    /// Message template: `{{user}}`, `{{seq}}`, `{{id}}` are filled per message.
    pub message: String,
    /// JSON pointer to the reply field that carries the request's `{{id}}`.
    pub correlate: String,
    /// A reply later than this counts as a `timeout` error.
    #[serde(
        deserialize_with = "serde_units::duration",
        serialize_with = "serde_units::ser_duration"
    )]
    pub reply_timeout: Duration,
}

impl Default for SessionSpec {
    fn default() -> Self {
        Self {
            rate: Rate { per_second: 1.0 },
            message: String::from(
                r#"{"id": {{id}}, "text": "hello from user {{user}}, message {{seq}}"}"#,
            ),
            correlate: String::from("/id"),
            reply_timeout: Duration::from_secs(30),
        }
    }
}

/// `[demo]`: the built-in demo target's behaviour (used only without a target URL).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSpec {
    /// How long the demo waits before each reply.
    #[serde(
        deserialize_with = "serde_units::duration",
        serialize_with = "serde_units::ser_duration"
    )]
    pub reply_delay: Duration,
}

/// `[output]`: the results folder and the timeseries interval.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSpec {
    /// Folder in which each run creates `<UTC timestamp>-<profile>/`.
    pub dir: PathBuf,
    /// One timeseries row, one progress line and one flush per interval.
    #[serde(
        deserialize_with = "serde_units::duration",
        serialize_with = "serde_units::ser_duration"
    )]
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

/// A profile as loaded: its name (for the results folder), where it came from, and its spec.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Short name: the built-in name, or the file stem.
    pub name: String,
    /// Where it came from, for error messages (`profiles/x.toml`, `built-in profile smoke`).
    pub source: String,
    /// The parsed profile.
    pub spec: ProfileSpec,
}

/// Loads a built-in profile by name, or a profile file by path; `None` is `smoke`.
pub fn load(name_or_path: Option<&str>) -> Result<Loaded, SoakError> {
    let wanted = name_or_path.unwrap_or(builtin::DEFAULT);
    if let Some(text) = builtin::get(wanted) {
        let source = format!("built-in profile {wanted}");
        return Ok(Loaded {
            name: wanted.to_string(),
            spec: parse(text, &source)?,
            source,
        });
    }
    let path = Path::new(wanted);
    let text = std::fs::read_to_string(path).map_err(|err| {
        usage(format!(
            "profile `{wanted}`: {err}; give a file path or one of the built-ins: {}",
            builtin::names().join(", ")
        ))
    })?;
    let source = path.display().to_string();
    Ok(Loaded {
        name: file_stem(path),
        spec: parse(&text, &source)?,
        source,
    })
}

fn file_stem(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let stem: String = stem
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() {
        String::from("profile")
    } else {
        stem
    }
}

/// Parses profile text; an error is one line: `source:line:column: message`.
pub fn parse(text: &str, source: &str) -> Result<ProfileSpec, SoakError> {
    toml::from_str(text).map_err(|err| {
        let message = err.message().replace('\n', " ");
        match err.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                usage(format!("{source}:{line}:{column}: {}", message.trim()))
            }
            None => usage(format!("{source}: {}", message.trim())),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_resolves() {
        for name in builtin::names() {
            let loaded = load(Some(name)).unwrap();
            assert!(
                !loaded.spec.description.is_empty(),
                "{name} has no description"
            );
            resolve::resolve(&loaded).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn unknown_key_names_line_column_and_valid_keys() {
        let text = "[load]\nusers = 3\nuserz = 4\n";
        let err = parse(text, "p.toml").unwrap_err().to_string();
        assert!(err.starts_with("p.toml:3:1: "), "{err}");
        assert!(err.contains("userz"), "{err}");
        assert!(err.contains("ramp_up"), "lists the valid keys: {err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn bad_duration_points_at_the_value() {
        let err = parse("[load]\nduration = \"3x\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.toml:2:12: "), "{err}");
        assert!(err.contains("90s"), "{err}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let err = parse("[lod]\nusers = 3\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lod"), "{err}");
    }

    #[test]
    fn missing_file_lists_builtins() {
        let err = load(Some("no/such/profile.toml")).unwrap_err().to_string();
        assert!(err.contains("smoke"), "{err}");
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(
            line_column("é=1", 3),
            (1, 3),
            "é is two bytes, one character"
        );
    }
}
