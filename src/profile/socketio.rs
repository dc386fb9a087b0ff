//! A Socket.IO profile, resolved: the Engine.IO endpoint from the URL, the namespace, and
//! each message, step and probe wrapped into the Socket.IO packet it is sent as, so the
//! engine renders a packet with one template and no copy.

use std::sync::Arc;

use crate::engine::transport::socketio::{EventNames, SocketIo};
use crate::error::SoakError;
use crate::profile::config::{MessageConfig, StepConfig};
use crate::profile::spec::{ProfileSpec, SocketIoSpec};
use crate::template::Template;

/// A probe event's data unless `probes.message` gives one (handlers expect an argument
/// before the ack callback).
pub const PROBE_DATA: &str = r#"{"probe": {{id}}}"#;

/// The ack id connect-time steps ask for (a message's ack id is its seq, from 1).
pub const STEP_ACK_ID: &str = "0";

/// The WebSocket URL of a Socket.IO server's Engine.IO endpoint, and the namespace: from
/// `http(s)://` or `ws(s)://host:port[/namespace][?query]`, as the socket.io client reads
/// its URL (the path is the namespace; `[socketio] path` is the endpoint).
pub fn endpoint(url: &str, spec: &SocketIoSpec) -> Result<(String, String), String> {
    let (scheme, rest) = [
        ("http://", "ws://"),
        ("https://", "wss://"),
        ("ws://", "ws://"),
        ("wss://", "wss://"),
    ]
    .iter()
    .find_map(|(from, to)| url.strip_prefix(from).map(|rest| (*to, rest)))
    .ok_or_else(|| {
        format!(
            "`{}` is not a Socket.IO URL: expected http://host:port[/namespace] (or https://, ws://, wss://)",
            crate::redact::url(url)
        )
    })?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() {
        return Err(format!(
            "`{}` has no host: expected http://host:port",
            crate::redact::url(url)
        ));
    }
    let namespace = match (spec.namespace.trim(), path.trim_end_matches('/')) {
        ("", "") => String::from("/"),
        ("", p) => format!("/{p}"),
        (n, _) if n.starts_with('/') => n.to_string(),
        (n, _) => format!("/{n}"),
    };
    if namespace.contains([',', '?', '"', ' ']) {
        return Err(format!(
            "namespace `{namespace}`: a namespace is a path like /chat"
        ));
    }
    let endpoint = spec.path.trim();
    if !endpoint.starts_with('/') || endpoint.contains(['?', ' ']) {
        return Err(format!(
            "socketio.path `{endpoint}`: expected a path like /socket.io/"
        ));
    }
    let extra = if query.is_empty() {
        String::new()
    } else {
        format!("&{query}")
    };
    Ok((
        format!("{scheme}{host}{endpoint}?EIO=4&transport=websocket{extra}"),
        namespace,
    ))
}

/// The prefix of every packet on `namespace`: none on `/`, else `/name,`.
pub fn prefix(namespace: &str) -> String {
    if namespace == "/" {
        String::new()
    } else {
        format!("{namespace},")
    }
}

/// The template text of an event packet: `42[/nsp,][ack]["event",data]`.
pub fn emit(prefix: &str, event: &str, ack: Option<&str>, data: &str) -> String {
    let name = serde_json::to_string(event).unwrap_or_default();
    let ack = ack.unwrap_or_default();
    if data.trim().is_empty() {
        format!("42{prefix}{ack}[{name}]")
    } else {
        format!("42{prefix}{ack}[{name},{data}]")
    }
}

/// An event name fit to send: not empty, and no template braces.
fn check_event(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(String::from("empty: name the event, like `chat`"));
    }
    if name.contains("{{") {
        return Err(format!("`{name}`: an event name is not a template"));
    }
    Ok(())
}

/// What resolving a Socket.IO profile gives the run.
pub struct Resolved {
    /// Shared by every user.
    pub shared: Arc<SocketIo>,
    /// The messages, wrapped into their event packets.
    pub messages: Vec<MessageConfig>,
    /// The connect-time steps, wrapped likewise.
    pub steps: Vec<StepConfig>,
}

/// Wraps the profile's compiled messages and steps into Socket.IO packets, and builds the
/// namespace connect; each error names its field.
pub fn resolve(
    spec: &ProfileSpec,
    namespace: String,
    (messages, steps): (Vec<MessageConfig>, Vec<StepConfig>),
    columns: &[String],
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<Resolved, SoakError> {
    let sio = &spec.socketio;
    let prefix = prefix(&namespace);
    let auth = sio.auth.trim();
    if !auth.is_empty() && !auth.starts_with('{') {
        return Err(bad(
            "socketio.auth (--auth)",
            format!(
                "`{auth}`: the auth payload is a JSON object, like {{\"token\": \"{{{{token}}}}\"}}"
            ),
        ));
    }
    let connect = Template::compile(&format!("40{prefix}{auth}"), columns)
        .map_err(|m| bad("socketio.auth (--auth)", m))?;
    let reply_event = sio.reply_event.trim();
    if !reply_event.is_empty() {
        check_event(reply_event).map_err(|m| bad("socketio.reply_event (--reply-event)", m))?;
    }
    let texts: Vec<(&str, Option<&str>, Option<bool>)> = if spec.session.messages.is_empty() {
        vec![(spec.session.message.as_str(), None, None)]
    } else {
        spec.session
            .messages
            .iter()
            .map(|m| (m.message.as_str(), m.event.as_deref(), m.ack))
            .collect()
    };
    let mut wrapped = Vec::new();
    for (i, (m, (text, event, ack))) in messages.into_iter().zip(texts).enumerate() {
        let field = |f: &str| {
            if spec.session.messages.is_empty() {
                format!("socketio.{f}")
            } else {
                format!("session.messages[{i}].{f}")
            }
        };
        let event = event.unwrap_or(&sio.event);
        check_event(event).map_err(|e| bad(&field("event"), e))?;
        let ack = ack.unwrap_or(sio.ack);
        if !ack && reply_event.is_empty() && spec.session.rate.per_second > 0.0 {
            return Err(bad(
                &field("ack"),
                "without an ack nothing answers a message: set socketio.reply_event (--reply-event), or ack = true".into(),
            ));
        }
        let text = emit(&prefix, event, ack.then_some("{{seq}}"), text);
        let template = Template::compile(&text, columns).map_err(|e| bad(&field("event"), e))?;
        wrapped.push(MessageConfig { template, ..m });
    }
    let mut out_steps = Vec::new();
    for (i, (step, s)) in steps.into_iter().zip(&spec.session.on_connect).enumerate() {
        let field = format!("session.on_connect[{i}].event");
        check_event(&s.event).map_err(|e| bad(&field, e))?;
        let text = emit(&prefix, &s.event, s.ack.then_some(STEP_ACK_ID), &s.message);
        let template = Template::compile(&text, columns).map_err(|e| bad(&field, e))?;
        out_steps.push(StepConfig {
            template,
            ack: s.ack,
            ..step
        });
    }
    Ok(Resolved {
        shared: Arc::new(SocketIo {
            nsp_prefix: prefix,
            namespace,
            reply_event: (!reply_event.is_empty()).then(|| reply_event.to_string()),
            names: EventNames::default(),
            refusals: EventNames::default(),
            connect,
        }),
        messages: wrapped,
        steps: out_steps,
    })
}

/// The probe's acked event packet, with `data` (a template, may be empty).
pub fn probe(
    prefix: &str,
    event: &str,
    data: &str,
    columns: &[String],
) -> Result<Template, String> {
    check_event(event)?;
    Template::compile(&emit(prefix, event, Some("{{seq}}"), data), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_gives_the_endpoint_and_its_path_the_namespace() {
        let spec = SocketIoSpec::default();
        assert_eq!(
            endpoint("http://127.0.0.1:3000", &spec).unwrap(),
            (
                "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket".into(),
                "/".into()
            )
        );
        assert_eq!(
            endpoint("https://h:1/chat/?x=1", &spec).unwrap(),
            (
                "wss://h:1/socket.io/?EIO=4&transport=websocket&x=1".into(),
                "/chat".into()
            )
        );
        let custom = SocketIoSpec {
            path: "/rt/".into(),
            namespace: "admin".into(),
            ..SocketIoSpec::default()
        };
        assert_eq!(
            endpoint("ws://h:2/ignored", &custom).unwrap(),
            (
                "ws://h:2/rt/?EIO=4&transport=websocket".into(),
                "/admin".into()
            )
        );
        assert!(endpoint("ftp://h", &spec).is_err());
        assert!(endpoint("http:///x", &spec).is_err());
    }

    #[test]
    fn events_are_wrapped_into_their_packets() {
        assert_eq!(
            emit("", "chat", Some("{{seq}}"), r#"{"id": {{id}}}"#),
            r#"42{{seq}}["chat",{"id": {{id}}}]"#
        );
        assert_eq!(
            emit("/chat,", "join", Some("0"), ""),
            r#"42/chat,0["join"]"#
        );
        assert_eq!(emit("", "say \"hi\"", None, "1"), r#"42["say \"hi\"",1]"#);
        assert_eq!(prefix("/"), "");
        assert_eq!(prefix("/chat"), "/chat,");
        assert!(check_event("").is_err() && check_event("a{{id}}").is_err());
    }
}
