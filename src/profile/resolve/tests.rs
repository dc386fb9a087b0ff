//! Tests of `resolve.rs`.

use super::*;
use crate::engine::complete::Complete;
use crate::engine::fields::MAX_FIELDS;
use crate::profile::spec::MessageSpec;
use crate::units::Rate;

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
    assert_eq!(config.messages.len(), 1);
    assert_eq!(config.messages[0].name, "message");
    assert!(!config.streams());
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
    assert!(err(|s| s.session.complete = "done".into()).contains("session.complete"));
    assert!(err(|s| s.output.interval = Duration::from_millis(1)).contains("output.interval"));
    assert!(err(|s| s.target.headers = vec!["no colon".into()]).contains("--header"));
    assert!(err(|s| s.load.connect_rate = Rate { per_second: 0.0 }).contains("--connect-rate"));
}

#[test]
fn header_errors_do_not_echo_secrets() {
    let e = err(|s| s.target.headers = vec!["Authorization Bearer s3cret".into()]);
    assert!(!e.contains("s3cret"), "{e}");
}

#[test]
fn urls_must_be_websocket_urls() {
    for url in ["http://x/", "ws://", "localhost:80"] {
        let e = err(|s| s.target.url = Some(url.into()));
        assert!(e.contains("target.url"), "{url}: {e}");
    }
    for url in ["ws://127.0.0.1:9/chat", "wss://example.test/ws"] {
        let mut spec = ProfileSpec::default();
        spec.target.url = Some(url.into());
        assert!(matches!(
            resolve(&loaded(spec)).unwrap().target,
            Target::Url(_)
        ));
    }
}

#[test]
fn scenarios_compile_each_message_with_inherited_rules() {
    let mut spec = ProfileSpec::default();
    spec.session.complete = "/done == true".into();
    let msg = |name: &str, weight| MessageSpec {
        name: name.into(),
        weight,
        message: "{{id}}".into(),
        correlate: None,
        complete: None,
        event: None,
        ack: None,
    };
    spec.session.messages = vec![
        msg("chat", 80),
        MessageSpec {
            complete: Some("frames 2".into()),
            ..msg("history", 20)
        },
    ];
    let config = resolve(&loaded(spec.clone())).unwrap();
    assert_eq!(
        config.messages[0].complete,
        Complete::parse("/done == true").unwrap()
    );
    assert_eq!(config.messages[1].complete, Complete::Frames(2));
    assert!(config.streams());
    spec.session.messages.push(msg("chat", 1));
    assert!(
        resolve(&loaded(spec.clone()))
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
    spec.session.messages = vec![msg("bad name", 1)];
    assert!(
        resolve(&loaded(spec))
            .unwrap_err()
            .to_string()
            .contains("messages[0].name")
    );
}

#[test]
fn too_many_distinct_pointers_are_refused_shared_ones_are_not() {
    let msg = |i: usize, correlate: &str| MessageSpec {
        name: format!("m{i}"),
        weight: 1,
        message: "{{id}}".into(),
        correlate: Some(correlate.into()),
        complete: Some(format!("/done{i} exists")),
        event: None,
        ack: None,
    };
    let mut spec = ProfileSpec::default();
    spec.session.messages = (0..MAX_FIELDS - 1).map(|i| msg(i, "/id")).collect();
    assert!(
        resolve(&loaded(spec.clone())).is_ok(),
        "one id pointer + 15 rules"
    );
    spec.session.messages.push(msg(MAX_FIELDS, "/id"));
    let e = resolve(&loaded(spec)).unwrap_err().to_string();
    assert!(
        e.contains("session.messages") && e.contains("distinct JSON pointers"),
        "{e}"
    );
}

#[test]
fn a_room_larger_than_the_run_is_refused() {
    let e = err(|p| {
        p.load.users = 10;
        p.rooms.size = 11;
    });
    assert!(
        e.contains("rooms.size (--room-size)") && e.contains("10 users"),
        "{e}"
    );
}

#[test]
fn alternating_needs_churn_and_messages_to_alternate() {
    let s = Duration::from_secs;
    let e = err(|p| p.session.alternate = s(60));
    assert!(
        e.contains("session.alternate (--alternate)") && e.contains("lifetime"),
        "{e}"
    );
    let e = err(|p| {
        p.session.alternate = s(60);
        p.session.lifetime = s(5);
        p.session.rate = Rate { per_second: 0.0 };
    });
    assert!(e.contains("rate above 0/s"), "{e}");
    let e = err(|p| {
        p.session.alternate = s(6);
        p.session.lifetime = s(5);
    });
    assert!(e.contains("twice session.lifetime"), "{e}");
    let mut spec = ProfileSpec::default();
    spec.session.alternate = s(60);
    spec.session.lifetime = s(5);
    assert_eq!(resolve(&loaded(spec)).unwrap().alternate, Some(s(60)));
}

#[test]
fn push_rules_need_a_field_and_fit_the_field_budget() {
    let e = err(|p| p.session.push = vec!["frames 2".into()]);
    assert!(
        e.contains("session.push[0] (--push)") && e.contains("looks at a field"),
        "{e}"
    );
    let e = err(|p| p.session.push = vec!["/type ~ 3".into()]);
    assert!(e.contains("session.push[0]"), "{e}");
    let e = err(|p| p.session.push = (0..9).map(|i| format!("/t{i} exists")).collect());
    assert!(e.contains("at most 8 rules"), "{e}");
    // 9 messages correlated at their own pointers and 8 push rules: 17 fields, one too many.
    let e = err(|p| {
        p.session.messages = (0..9)
            .map(|i| MessageSpec {
                name: format!("m{i}"),
                weight: 1,
                message: "{{id}}".into(),
                correlate: Some(format!("/c{i}")),
                complete: None,
                event: None,
                ack: None,
            })
            .collect();
        p.session.push = (0..8).map(|i| format!("/t{i} exists")).collect();
    });
    assert!(
        e.contains("`correlate`, `complete` and `push` together"),
        "{e}"
    );
    let mut spec = ProfileSpec::default();
    spec.session.push = vec![r#"/type == "presence""#.into()];
    assert_eq!(resolve(&loaded(spec)).unwrap().pushes.len(), 1);
}

#[test]
fn socketio_settings_that_cannot_work_name_their_field() {
    use crate::profile::spec::{Protocol, StepSpec};
    let sio = |p: &mut ProfileSpec| {
        p.target.protocol = Protocol::Socketio;
        p.target.url = Some("http://127.0.0.1:3000".into());
    };
    let e = err(|p| p.target.protocol = Protocol::Socketio);
    assert!(e.contains("target.url") && e.contains("demo target"), "{e}");
    let e = err(|p| {
        sio(p);
        p.target.url = Some("ftp://x".into());
    });
    assert!(e.contains("not a Socket.IO URL"), "{e}");
    let e = err(|p| {
        sio(p);
        p.socketio.ack = false;
    });
    assert!(
        e.contains("socketio.ack") && e.contains("reply_event"),
        "{e}"
    );
    let e = err(|p| {
        sio(p);
        p.socketio.event = String::new();
    });
    assert!(e.contains("socketio.event"), "{e}");
    let e = err(|p| {
        sio(p);
        p.socketio.auth = "token=1".into();
    });
    assert!(
        e.contains("socketio.auth (--auth)") && e.contains("JSON object"),
        "{e}"
    );
    let e = err(|p| {
        sio(p);
        p.session.push = vec![r#"/type == "presence""#.into()];
    });
    assert!(
        e.contains("session.push") && e.contains("by its name"),
        "{e}"
    );
    let e = err(|p| {
        sio(p);
        p.session.on_connect = vec![StepSpec::default()];
    });
    assert!(e.contains("session.on_connect[0].event"), "{e}");
    let e = err(|p| p.probes.event = "echo".into());
    assert!(
        e.contains("probes.event (--probe-event)") && e.contains("Socket.IO"),
        "{e}"
    );
    let e = err(|p| {
        p.session.on_connect = vec![StepSpec {
            message: "x".into(),
            event: "join".into(),
            ..StepSpec::default()
        }];
    });
    assert!(
        e.contains("session.on_connect[0].event") && e.contains("Socket.IO"),
        "{e}"
    );
    // What works: the URL's path is the namespace, messages and steps become packets.
    let mut spec = ProfileSpec::default();
    sio(&mut spec);
    spec.target.url = Some("http://127.0.0.1:3000/chat".into());
    spec.session.on_connect = vec![StepSpec {
        event: "join".into(),
        message: r#""r1""#.into(),
        ..StepSpec::default()
    }];
    spec.probes.event = "echo".into();
    let c = resolve(&loaded(spec)).unwrap();
    let sio = c.socketio.as_ref().unwrap();
    assert_eq!(
        (sio.namespace.as_str(), sio.nsp_prefix.as_str()),
        ("/chat", "/chat,")
    );
    assert!(
        matches!(&c.target, Target::Url(u) if u == "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket")
    );
    assert!(c.on_connect[0].ack);
    assert!(c.probes.unwrap().event.is_some());
}
