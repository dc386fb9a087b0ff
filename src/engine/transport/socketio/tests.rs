use super::*;

/// Frames the real socket.io-client 4.8.1 and a socket.io 4.8.1 server exchanged
/// (recorded by tests/clients/record_sio_frames.js): `> ` client to server, `< ` server
/// to client, `<b `/`>b ` binary (hex).
const RECORDED: &str = include_str!("../../../../tests/fixtures/socketio-frames.txt");

fn frames(dir: &str) -> Vec<&'static str> {
    RECORDED
        .lines()
        .filter_map(|l| l.strip_prefix(dir))
        .collect()
}

/// The server's Socket.IO packets (Engine.IO messages), decoded.
fn server_packets() -> Vec<Packet<'static>> {
    frames("< ")
        .into_iter()
        .filter_map(|f| match engine(f) {
            Some(Engine::Message(p)) => Some(packet(p).unwrap_or_else(|| panic!("{f}"))),
            _ => None,
        })
        .collect()
}

#[test]
fn the_open_packet_gives_the_heartbeat_and_pings_are_engine_packets() {
    let server = frames("< ");
    let Some(Engine::Open(json)) = engine(server[0]) else {
        panic!("{}", server[0]);
    };
    assert_eq!(
        heartbeat(json),
        Some(Heartbeat {
            interval: Duration::from_millis(300),
            timeout: Duration::from_millis(2000)
        })
    );
    assert!(server.iter().any(|f| engine(f) == Some(Engine::Ping)));
    assert!(frames("> ").iter().any(|f| engine(f) == Some(Engine::Pong)));
    assert_eq!(heartbeat("{}"), None, "an open packet without a heartbeat");
}

#[test]
fn every_recorded_server_packet_decodes_as_the_client_read_it() {
    let p = server_packets();
    assert!(p.len() >= 18, "{p:?}");
    assert_eq!((p[0].kind, p[0].nsp, p[0].id), (Kind::Connect, "/", None));
    // An event: its name and first argument.
    let presence = p.iter().find(|p| p.kind == Kind::Event).unwrap();
    assert_eq!(
        event(presence.data).map(|(n, r)| (n, &presence.data[r])),
        Some(("presence", r#"{"online":1}"#))
    );
    // Acks with one- and two-digit ids, their first argument with escaped quotes.
    let acks: Vec<_> = p.iter().filter(|p| p.kind == Kind::Ack).collect();
    assert_eq!(
        acks.iter().map(|a| a.id.unwrap()).collect::<Vec<_>>(),
        (0..=12).collect::<Vec<u64>>()
    );
    let last = acks.last().unwrap();
    assert_eq!(
        &last.data[ack_data(last.data).unwrap()],
        r#"{"n":11,"text":"hi \"there\""}"#
    );
    // The broadcast copy, where the fan-out reads its id.
    let chat = p
        .iter()
        .find(|p| p.kind == Kind::Event && event(p.data).unwrap().0 == "chat")
        .unwrap();
    let (_, arg) = event(chat.data).unwrap();
    assert_eq!(
        &chat.data[arg],
        r#"{"id":5000000012,"text":"hi 5000000012 from 4"}"#
    );
    // Binary: an ack and an event on a namespace, each announcing one attachment.
    let bin_ack = p.iter().find(|p| p.kind == Kind::BinaryAck).unwrap();
    assert_eq!((bin_ack.attachments, bin_ack.id), (1, Some(13)));
    let bin = p.iter().find(|p| p.kind == Kind::BinaryEvent).unwrap();
    assert_eq!((bin.attachments, bin.nsp), (1, "/chat"));
    assert_eq!(event(bin.data).unwrap().0, "welcome");
    assert_eq!(
        RECORDED.lines().filter(|l| l.starts_with("<b ")).count(),
        2,
        "each attachment its own binary frame"
    );
    // The kick: a disconnect from each namespace.
    let kicks: Vec<_> = p.iter().filter(|p| p.kind == Kind::Disconnect).collect();
    assert_eq!(
        kicks.iter().map(|k| k.nsp).collect::<Vec<_>>(),
        ["/", "/chat"]
    );
}

#[test]
fn soak_sends_what_the_real_client_sends() {
    use crate::profile::socketio::{emit, prefix};
    let client = frames("> ");
    assert!(client.contains(&r#"40{"token":"good-1"}"#));
    assert!(client.contains(&format!(r#"40{}{{"token":"good-1"}}"#, prefix("/chat")).as_str()));
    assert!(client.contains(&emit("", "join", Some("0"), r#""r1""#).as_str()));
    let data = r#"{"n":11,"text":"hi \"there\""}"#;
    assert!(client.contains(&emit("", "echo", Some("12"), data).as_str()));
    let chat = r#"{"id":5000000012,"text":"hi 5000000012 from 4"}"#;
    assert!(client.contains(&emit("", "chat", None, chat).as_str()));
    assert!(client.contains(&emit("", "file", Some("13"), "").as_str()));
}

#[test]
fn malformed_packets_are_refused_never_a_panic() {
    for bad in [
        "",
        "9",
        "2",
        "2{\"a\":1}",
        "2[",
        "2[1,2]",
        "2[\"unterminated",
        "3[1]",
        "3x[1]",
        "5[\"a\"]",
        "5x-[\"a\"]",
        "599999999999999999999-[\"a\"]",
        "399999999999999999999[1]",
        "1{\"a\":1}",
        "0[1]",
        "4",
        "2/chat",
        "2/chat,[",
        "\u{1F600}",
    ] {
        assert_eq!(packet(bad), None, "{bad:?}");
    }
    assert_eq!(engine(""), None);
    assert_eq!(engine("9"), None);
    assert_eq!(engine("4"), Some(Engine::Message("")));
    // Spans stay inside the text however the JSON after the name ends.
    for odd in [
        r#"["a",]"#,
        r#"["a" 1]"#,
        r#"["a",{"b":"]"}]"#,
        r#"["a","\\"]"#,
    ] {
        let _ = event(odd).map(|(_, r)| &odd[r]);
    }
    assert_eq!(event(r#"["a",{"b":"]"}]"#), Some(("a", 5..14)));
    assert_eq!(event(r#"["only"]"#), Some(("only", 7..7)));
    assert_eq!(ack_data("[]"), Some(1..1));
}

#[test]
fn event_names_are_counted_apart_up_to_a_bound() {
    let names = EventNames::default();
    assert_eq!(names.index("presence"), 0);
    assert_eq!(names.index("typing"), 1);
    assert_eq!(names.index("presence"), 0);
    for i in 0..20 {
        names.index(&format!("n{i}"));
    }
    assert_eq!(usize::from(names.index("late")), MAX_EVENT_NAMES - 1);
    let all = names.names();
    assert_eq!(all.len(), MAX_EVENT_NAMES);
    assert_eq!(all[MAX_EVENT_NAMES - 1], "(other events)");
}

#[test]
fn a_refusal_gives_the_servers_message() {
    assert_eq!(refusal(r#"{"message":"unauthorized"}"#), "unauthorized");
    assert_eq!(refusal(r#""Not authorized""#), "Not authorized");
    assert_eq!(refusal(r#"{"message":"x","data":{"a":1}}"#), "x");
}
