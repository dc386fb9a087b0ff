//! Profiles: `ProfileSpec`, the serde mirror of a profile TOML, and loading one by name or path.
//!
//! A profile goes through two steps: the raw [`ProfileSpec`] (what the file says, with CLI
//! flags laid over it by [`overrides::apply`]) and the resolved [`resolve::RunConfig`]
//! (validated, units converted, templates compiled), which is all the engine ever sees.

pub mod builtin;
pub mod config;
pub mod overrides;
pub mod process;
pub mod resolve;
pub mod scenario;
pub mod socketio;
pub mod spec;

use std::path::Path;

pub use spec::ProfileSpec;

use crate::error::{SoakError, usage};

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
    if !path.exists() {
        return Err(usage(format!(
            "profile `{wanted}`: no such built-in profile or file; give a file path or one of the built-ins: {}",
            builtin::names().join(", ")
        )));
    }
    let text = crate::files::read_text(path, crate::files::MAX_PROFILE_BYTES)
        .map_err(|err| usage(format!("profile {err}")))?;
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
    parse_toml(text, source)
}

/// Parses any TOML file soak reads (profiles, mock configs) with the same one-line errors.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    source: &str,
) -> Result<T, SoakError> {
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
