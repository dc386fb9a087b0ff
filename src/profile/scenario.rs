//! A profile's session messages, compiled: templates, correlation pointers and completion
//! rules, with every error naming the field it is about.

use crate::engine::complete::Complete;
use crate::engine::fields::{Fields, MAX_FIELDS};
use crate::error::SoakError;
use crate::profile::config::MessageConfig;
use crate::profile::spec::{ProfileSpec, SessionSpec};
use crate::template::Template;

/// Most messages in a scenario.
const MAX_MESSAGES: usize = 32;

/// The session's messages: its `[[session.messages]]`, or the one `message`.
pub(crate) fn messages(
    spec: &ProfileSpec,
    columns: &[String],
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<Vec<MessageConfig>, SoakError> {
    let session = &spec.session;
    let default_rule =
        Complete::parse(default_rule(spec)).map_err(|m| bad("session.complete (--complete)", m))?;
    check_pointer(&session.correlate).map_err(|m| bad("session.correlate (--correlate)", m))?;
    if session.messages.is_empty() {
        let template = Template::compile(single_message(spec), columns)
            .map_err(|m| bad("session.message (--message)", m))?;
        return Ok(vec![MessageConfig {
            name: String::from("message"),
            weight: 1,
            template,
            correlate: session.correlate.clone(),
            complete: default_rule,
        }]);
    }
    if session.messages.len() > MAX_MESSAGES {
        return Err(bad(
            "session.messages",
            format!("at most {MAX_MESSAGES} messages"),
        ));
    }
    let mut out: Vec<MessageConfig> = Vec::new();
    for (i, m) in session.messages.iter().enumerate() {
        let field = |f: &str| format!("session.messages[{i}].{f}");
        if out.iter().any(|o| o.name == m.name) {
            return Err(bad(&field("name"), format!("`{}` is used twice", m.name)));
        }
        if spec.target.protocol == crate::profile::spec::Protocol::Websocket
            && (m.event.is_some() || m.ack.is_some())
        {
            return Err(bad(
                &field("event"),
                "`event` and `ack` apply to Socket.IO targets (--protocol socketio)".into(),
            ));
        }
        let compiled = scenario_message(m, &session.correlate, &default_rule, columns)
            .map_err(|(f, why)| bad(&field(f), why))?;
        out.push(compiled);
    }
    check_fields(&out).map_err(|m| bad("session.messages", m))?;
    Ok(out)
}

/// Whether the run uses a built-in mock (`llm`, `telegram`) in place of a target URL.
fn mock_target(spec: &ProfileSpec, mock: &str) -> bool {
    spec.target
        .url
        .as_deref()
        .is_none_or(|u| u.trim().is_empty())
        && spec.mocks.enable.iter().any(|m| m.trim() == mock)
}

/// The completion rule messages inherit: as given, or `/done == true` for the demo target
/// backed by the mock LLM, which streams its replies.
fn default_rule(spec: &ProfileSpec) -> &str {
    if spec.session.complete.is_empty() && mock_target(spec, "llm") {
        "/done == true"
    } else {
        spec.session.complete.as_str()
    }
}

/// The template of a session without a scenario. Telegram users type text: the default
/// JSON chat frame would read oddly to a bot.
fn single_message(spec: &ProfileSpec) -> &str {
    let default = spec.session.message == SessionSpec::default().message;
    if default && mock_target(spec, "telegram") {
        "hello bot, this is user {{user}}, message {{seq}}"
    } else {
        spec.session.message.as_str()
    }
}

/// The push rules (`session.push`), compiled: each needs a pointer (`/type == "presence"`,
/// `/presence exists`), and their pointers count with the messages' toward the fields one
/// frame is read for.
pub(crate) fn pushes(
    spec: &ProfileSpec,
    messages: &[MessageConfig],
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<Vec<Complete>, SoakError> {
    let rules = &spec.session.push;
    let max = crate::metrics::snapshot::MAX_PUSH_RULES;
    if rules.len() > max {
        return Err(bad("session.push (--push)", format!("at most {max} rules")));
    }
    let mut out = Vec::new();
    for (i, text) in rules.iter().enumerate() {
        let field = format!("session.push[{i}] (--push)");
        let rule = Complete::parse(text).map_err(|m| bad(&field, m))?;
        if rule.pointer().is_none() {
            return Err(bad(
                &field,
                format!(
                    "`{text}`: a push rule looks at a field, like `/type == \"presence\"` or `/typing exists`"
                ),
            ));
        }
        out.push(rule);
    }
    let mut fields = Fields::default();
    let pointers = messages
        .iter()
        .flat_map(|m| std::iter::once(m.correlate.as_str()).chain(m.complete.pointer()))
        .chain(out.iter().filter_map(Complete::pointer))
        .chain(Some(spec.rooms.deliver.as_str()).filter(|d| !d.trim().is_empty()));
    for pointer in pointers {
        if fields.add(pointer).is_none() {
            return Err(bad(
                "session.push (--push)",
                format!(
                    "at most {MAX_FIELDS} distinct JSON pointers in `correlate`, `complete` and `push` together"
                ),
            ));
        }
    }
    Ok(out)
}

/// Most connect-time steps.
const MAX_STEPS: usize = 16;

/// The connect-time steps (`session.on_connect`), compiled; each error names the step's
/// field. Steps speak over a connection, so a Telegram run has none.
pub(crate) fn steps(
    spec: &ProfileSpec,
    columns: &[String],
    target: &crate::profile::config::Target,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<Vec<crate::profile::config::StepConfig>, SoakError> {
    let steps = &spec.session.on_connect;
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    if matches!(target, crate::profile::config::Target::Telegram) {
        return Err(bad(
            "session.on_connect (--on-connect)",
            "applies to WebSocket users; Telegram users hold no connection".into(),
        ));
    }
    if steps.len() > MAX_STEPS {
        return Err(bad(
            "session.on_connect (--on-connect)",
            format!("at most {MAX_STEPS} steps"),
        ));
    }
    let mut fields = Fields::default();
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let field = |f: &str| format!("session.on_connect[{i}].{f}");
        let mut rule = |text: &str, f: &str| -> Result<Option<Complete>, SoakError> {
            if text.trim().is_empty() {
                return Ok(None);
            }
            let rule = Complete::parse(text).map_err(|m| bad(&field(f), m))?;
            let Some(pointer) = rule.pointer() else {
                return Err(bad(
                    &field(f),
                    format!(
                        "`{text}`: a step's rule looks at a field, like `/type == \"auth_ok\"`"
                    ),
                ));
            };
            if fields.add(pointer).is_none() {
                return Err(bad(
                    &field(f),
                    format!("at most {MAX_FIELDS} distinct JSON pointers in the steps' rules"),
                ));
            }
            Ok(Some(rule))
        };
        let expect = rule(&s.expect, "expect")?;
        let fail = rule(&s.fail, "fail")?;
        if fail.is_some() && expect.is_none() {
            return Err(bad(
                &field("fail"),
                "needs an `expect` rule too: the step waits for the frame that passes it, failing on this one meanwhile".into(),
            ));
        }
        let socketio = spec.target.protocol == crate::profile::spec::Protocol::Socketio;
        if !socketio && !s.event.is_empty() {
            return Err(bad(
                &field("event"),
                "applies to Socket.IO targets (--protocol socketio)".into(),
            ));
        }
        if s.message.trim().is_empty() && !socketio {
            return Err(bad(
                &field("message"),
                "empty: a step sends a message".into(),
            ));
        }
        let template =
            Template::compile(&s.message, columns).map_err(|m| bad(&field("message"), m))?;
        if s.timeout.is_zero() {
            return Err(bad(&field("timeout"), "must be longer than 0s".into()));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if !s.name.chars().all(valid) {
            return Err(bad(
                &field("name"),
                format!("`{}`: use letters, digits, `-` and `_`", s.name),
            ));
        }
        out.push(crate::profile::config::StepConfig {
            name: if s.name.is_empty() {
                format!("step{}", i + 1)
            } else {
                s.name.clone()
            },
            template,
            expect,
            fail,
            timeout: s.timeout,
            ack: false,
        });
    }
    Ok(out)
}

/// Each reply is read for these fields in one pass, into a fixed array (engine/fields.rs):
/// at most [`MAX_FIELDS`] distinct pointers.
fn check_fields(messages: &[MessageConfig]) -> Result<(), String> {
    let mut fields = Fields::default();
    let pointers = messages
        .iter()
        .flat_map(|m| std::iter::once(m.correlate.as_str()).chain(m.complete.pointer()));
    for pointer in pointers {
        if fields.add(pointer).is_none() {
            return Err(format!(
                "at most {MAX_FIELDS} distinct JSON pointers in `correlate` and `complete` together"
            ));
        }
    }
    Ok(())
}

/// One `[[session.messages]]` entry, compiled; the error names the entry's field.
fn scenario_message(
    m: &crate::profile::spec::MessageSpec,
    default_correlate: &str,
    default_rule: &Complete,
    columns: &[String],
) -> Result<MessageConfig, (&'static str, String)> {
    let valid_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if m.name.is_empty() || !m.name.chars().all(valid_name) {
        return Err((
            "name",
            format!("`{}`: use letters, digits, `-` and `_`", m.name),
        ));
    }
    if m.weight == 0 {
        return Err(("weight", "must be at least 1".into()));
    }
    let correlate = m
        .correlate
        .clone()
        .unwrap_or_else(|| default_correlate.to_string());
    check_pointer(&correlate).map_err(|e| ("correlate", e))?;
    let complete = match &m.complete {
        Some(rule) => Complete::parse(rule).map_err(|e| ("complete", e))?,
        None => default_rule.clone(),
    };
    let template = Template::compile(&m.message, columns).map_err(|e| ("message", e))?;
    Ok(MessageConfig {
        name: m.name.clone(),
        weight: m.weight,
        template,
        correlate,
        complete,
    })
}

/// A JSON pointer is empty (the whole reply) or starts with `/` (RFC 6901).
pub(crate) fn check_pointer(pointer: &str) -> Result<(), String> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "`{pointer}` is not a JSON pointer: expected one starting with `/`, like /id or /meta/request_id"
        ))
    }
}
