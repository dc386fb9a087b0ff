//! Socket.IO sessions against real Socket.IO servers, each written in its library's own
//! idiom with the same events (`tests/clients/sio_chat.js` on the `socket.io` npm package,
//! `tests/clients/sio_chat.py` on python-socketio under uvicorn; installed by `.ci/run`):
//! an auth middleware, an acked `echo`, an acked `join`, a `chat` broadcast to the room,
//! presence events every second. In CI a missing server fails the test; elsewhere it says
//! what to install and passes without running.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::common::{events, soak_bin, summary};

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

#[derive(Debug, Clone, Copy)]
enum Library {
    /// The `socket.io` npm package.
    Node,
    /// python-socketio, an ASGI app under uvicorn.
    Python,
}

/// A Socket.IO server, started; killed by its PID when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// `None` (skipped, outside CI) when the library is not installed.
    fn start(library: Library, env: &[(&str, &str)]) -> Option<Server> {
        let mut cmd = match library {
            Library::Node => {
                let installed = Path::new(CLIENTS).join("node_modules/socket.io").is_dir()
                    && Command::new("node")
                        .arg("--version")
                        .output()
                        .is_ok_and(|o| o.status.success());
                if !installed {
                    let msg = "node and tests/clients/node_modules/socket.io are needed: run `npm ci` in tests/clients";
                    assert!(std::env::var_os("CI").is_none(), "{msg}");
                    eprintln!("skipped (not in CI): {msg}");
                    return None;
                }
                let mut cmd = Command::new("node");
                cmd.arg(Path::new(CLIENTS).join("sio_chat.js"));
                cmd
            }
            Library::Python => {
                let python = crate::clients::python("socketio, uvicorn")?;
                let mut cmd = Command::new(python);
                cmd.arg(Path::new(CLIENTS).join("sio_chat.py"));
                cmd
            }
        };
        cmd.env("EXIT_WITH_STDIN", "1").envs(env.iter().copied());
        let (child, line) = crate::common::spawn_announced(&mut cmd);
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{library:?}: {line}"));
        Some(Server { child, port })
    }

    /// soak against it with `profile` (its `[target]` added); exit code, summary, folder.
    fn soak(
        &self,
        profile: &str,
        tokens: &[&str],
        args: &[&str],
    ) -> (i32, serde_json::Value, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = write_profile(dir.path(), self.port, profile, tokens);
        let code = soak_bin()
            .args(["--profile"])
            .arg(&path)
            .args(args)
            .args(["--quiet", "--out"])
            .arg(dir.path().join("r"))
            .status()
            .unwrap()
            .code()
            .unwrap_or(-1);
        let s = summary(&dir.path().join("r"));
        (code, s, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A profile for the chat server: the users' tokens in a CSV, the auth payload from it.
fn write_profile(dir: &Path, port: u16, body: &str, tokens: &[&str]) -> PathBuf {
    let csv = dir.join("users.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    writeln!(f, "token").unwrap();
    for t in tokens {
        writeln!(f, "{t}").unwrap();
    }
    let path = dir.join("sio.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[target]
url = "http://127.0.0.1:{port}"
protocol = "socketio"

[socketio]
auth = '{{"token": "{{{{token}}}}"}}'

[session]
data = "{csv}"
message = '{{"id": {{{{id}}}}, "text": "hi from {{{{user}}}}"}}'

{body}
"#,
            csv = csv.display()
        ),
    )
    .unwrap();
    path
}

fn good_tokens(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("good-{i}")).collect()
}

/// `users` users for 3 s, no ramps, no probes (rate and event from the flags).
fn short(users: u32) -> String {
    format!(
        "[load]\nusers = {users}\nduration = \"3s\"\nramp_up = \"0s\"\nramp_down = \"0s\"\n\n[probes]\ncount = 0\n"
    )
}

fn acked_echoes_are_timed_and_presence_events_are_pushes(library: Library) {
    let Some(server) = Server::start(library, &[("PING_INTERVAL", "300")]) else {
        return;
    };
    let tokens = good_tokens(4);
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let (code, s, _dir) = server.soak(&short(4), &tokens, &["--rate", "5/s", "--event", "echo"]);
    assert_eq!(code, 0, "{library:?}: {}", s["gates"]);
    let t = &s["totals"];
    assert!(t["sent"].as_u64().unwrap() >= 40, "{library:?}: {t}");
    assert_eq!(
        t["received"], t["sent"],
        "{library:?}: every echo acked: {t}"
    );
    assert_eq!(t["errors"], 0, "{library:?}: {}", s["errors"]);
    let latency = &s["latency_ms"]["run"];
    assert_eq!(latency["count"], t["received"]);
    assert!(latency["p50"].as_f64().unwrap() < 50.0, "{latency}");
    // Presence events every second to every socket: pushes by event name, not errors.
    assert!(
        s["pushes"]["presence"].as_u64().unwrap() >= 4,
        "{library:?}: {}",
        s["pushes"]
    );
    // The namespace connect is the first connect-time step; the server's pings (every
    // 300 ms here) are answered, and how late they came is recorded.
    assert_eq!(s["join_time_ms"]["count"], 4, "{}", s["join_time_ms"]);
    let sio = &s["socketio"];
    assert_eq!(sio["namespace"], "/");
    assert!(
        sio["heartbeats"].as_u64().unwrap() >= 8,
        "{library:?}: {sio}"
    );
    assert!(
        sio["heartbeat_late_ms"]["count"].as_u64().unwrap() >= 8,
        "{sio}"
    );
    assert_eq!(s["errors"]["heartbeat_timeout"], 0);
    crate::common::assert_valid(&s);
}

#[test]
fn node_acked_echoes_are_timed_and_presence_events_are_pushes() {
    acked_echoes_are_timed_and_presence_events_are_pushes(Library::Node);
}

#[test]
fn python_acked_echoes_are_timed_and_presence_events_are_pushes() {
    acked_echoes_are_timed_and_presence_events_are_pushes(Library::Python);
}

const ROOMS: &str = r#"
[load]
users = 12
duration = "4s"
ramp_up = "300ms"
ramp_down = "0s"

[[session.on_connect]]
name = "join"
event = "join"
message = '"room-{{room}}"'
expect = "/ok == true"

[rooms]
size = 4
deliver = "/id"

[probes]
count = 0
"#;

fn a_chat_reaches_every_member_of_its_room(library: Library) {
    let Some(server) = Server::start(library, &[]) else {
        return;
    };
    let tokens = good_tokens(12);
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let (code, s, _dir) = server.soak(
        ROOMS,
        &tokens,
        &["--event", "chat", "--rate", "2/s", "--gate", "reach > 99%"],
    );
    let f = &s["fanout"];
    assert_eq!(code, 0, "{library:?}: {f} {}", s["gates"]);
    assert_eq!(f["reach"], 1.0, "{library:?}: {f}");
    assert_eq!(f["lost"], 0, "{f}");
    // `socket.to(room)` is everyone but the sender: 3 copies a message.
    let sent = s["totals"]["sent"].as_u64().unwrap();
    let expected = f["expected"].as_u64().unwrap();
    assert!(
        sent >= 60 && expected > sent * 2 && expected <= sent * 3,
        "{sent} {f}"
    );
    assert_eq!(f["complete"], f["messages"], "{f}");
    assert!(f["fanout_ms"]["p50"].as_f64().unwrap() < 50.0, "{f}");
    // The chat is also acked: the sender's latency, every message.
    assert_eq!(s["totals"]["received"], s["totals"]["sent"]);
    assert_eq!(s["totals"]["errors"], 0, "{}", s["errors"]);
    // Connect, then the acked join: both in the join time, for every user.
    assert_eq!(s["join_time_ms"]["count"], 12, "{}", s["join_time_ms"]);
}

#[test]
fn node_a_chat_reaches_every_member_of_its_room() {
    a_chat_reaches_every_member_of_its_room(Library::Node);
}

#[test]
fn python_a_chat_reaches_every_member_of_its_room() {
    a_chat_reaches_every_member_of_its_room(Library::Python);
}

fn a_bad_token_is_join_failed_with_the_servers_message(library: Library) {
    let Some(server) = Server::start(library, &[]) else {
        return;
    };
    let (_code, s, dir) = server.soak(
        &short(2),
        &["good-1", "bad-2"],
        &["--event", "echo", "--rate", "5/s"],
    );
    // The good user chats; the bad one is refused at every reconnect, and the run goes on.
    assert!(
        s["totals"]["received"].as_u64().unwrap() >= 5,
        "{}",
        s["totals"]
    );
    assert!(
        s["errors"]["join_failed"].as_u64().unwrap() >= 2,
        "{}",
        s["errors"]
    );
    let refused: Vec<_> = events(&dir.path().join("r"))
        .into_iter()
        .filter(|e| e["event"] == "join_failed")
        .collect();
    assert!(!refused.is_empty());
    for e in &refused {
        assert_eq!(
            (e["user"].as_u64(), e["step"].as_str(), e["reason"].as_str()),
            (Some(1), Some("connect"), Some("unauthorized")),
            "{library:?}: {e}"
        );
    }
}

#[test]
fn node_a_bad_token_is_join_failed_with_the_servers_message() {
    a_bad_token_is_join_failed_with_the_servers_message(Library::Node);
}

#[test]
fn python_a_bad_token_is_join_failed_with_the_servers_message() {
    a_bad_token_is_join_failed_with_the_servers_message(Library::Python);
}

/// 4 users echoing 5/s and 4 probes emitting an acked `echo` every 100 ms, 5 s.
fn stalls_with(library: Library, env: &[(&str, &str)]) -> Option<serde_json::Value> {
    let server = Server::start(library, env)?;
    let tokens = good_tokens(4);
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let body = r#"
[load]
users = 4
duration = "5s"
ramp_up = "0s"
ramp_down = "0s"

[probes]
count = 4
every = "100ms"
"#;
    let args = ["--event", "echo", "--rate", "5/s", "--probe-event", "echo"];
    let (_code, s, _dir) = server.soak(body, &tokens, &args);
    Some(s)
}

fn a_handler_that_blocks_is_a_stall_and_none_without(library: Library) {
    let Some(blocked) = stalls_with(library, &[("BLOCK_EVERY", "50"), ("BLOCK_MS", "300")]) else {
        return;
    };
    assert_eq!(blocked["probes"]["kind"], "event");
    let st = &blocked["stalls"];
    assert!(st["count"].as_u64().unwrap() >= 2, "{library:?}: {st}");
    let longest = st["longest_ms"].as_f64().unwrap();
    assert!((200.0..450.0).contains(&longest), "{library:?}: {st}");
    let Some(free) = stalls_with(library, &[]) else {
        return;
    };
    assert_eq!(
        free["stalls"]["count"], 0,
        "{library:?}: {}",
        free["stalls"]
    );
    assert!(free["probes"]["rtt_ms"]["count"].as_u64().unwrap() >= 150);
}

#[test]
fn node_a_handler_that_blocks_is_a_stall_and_none_without() {
    a_handler_that_blocks_is_a_stall_and_none_without(Library::Node);
}

#[test]
fn python_a_handler_that_blocks_is_a_stall_and_none_without() {
    a_handler_that_blocks_is_a_stall_and_none_without(Library::Python);
}

#[test]
fn a_kicked_socket_is_its_own_error_and_reconnects() {
    let Some(server) = Server::start(Library::Node, &[("KICK_AFTER", "3")]) else {
        return;
    };
    let (_code, s, _dir) = server.soak(
        &short(2),
        &["good-1", "good-2"],
        &["--event", "chat", "--rate", "10/s"],
    );
    let kicked = s["errors"]["kicked"].as_u64().unwrap();
    assert!(kicked >= 2, "{}", s["errors"]);
    assert!(
        s["connects"]["reconnects"].as_u64().unwrap() >= 2,
        "{}",
        s["connects"]
    );
    assert!(s["totals"]["received"].as_u64().unwrap() >= 6);
}

#[test]
fn the_built_in_socketio_chat_profile_runs_against_the_example_server() {
    let Some(server) = Server::start(Library::Node, &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", server.port);
    let code = soak_bin()
        .args(["--profile", "socketio-chat", "--url", &url])
        .args([
            "--duration",
            "4s",
            "--ramp-up",
            "500ms",
            "--ramp-down",
            "500ms",
        ])
        .args(["--quiet", "--out"])
        .arg(dir.path())
        .status()
        .unwrap()
        .code();
    let s = summary(dir.path());
    assert_eq!(code, Some(0), "{}", s["gates"]);
    let gates: Vec<&str> = s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gate"].as_str().unwrap())
        .collect();
    assert_eq!(
        gates,
        [
            "connect_success > 95%",
            "error_rate < 5%",
            "reach > 99%",
            "stalls == 0"
        ]
    );
    assert_eq!(s["fanout"]["reach"], 1.0, "{}", s["fanout"]);
    assert_eq!(s["probes"]["kind"], "event");
    assert!(s["probes"]["rtt_ms"]["count"].as_u64().unwrap() > 50);
    assert_eq!(s["totals"]["errors"], 0, "{}", s["errors"]);
}

#[test]
fn a_reply_streamed_as_events_is_correlated_inside_their_data() {
    let Some(server) = Server::start(Library::Node, &[]) else {
        return;
    };
    let args = [
        "--event",
        "ask",
        "--reply-event",
        "answer",
        "--complete",
        "/done == true",
        "--rate",
        "4/s",
    ];
    let (code, s, _dir) = server.soak(&short(2), &["good-1", "good-2"], &args);
    assert_eq!(code, 0, "{}", s["gates"]);
    let t = &s["totals"];
    assert!(t["sent"].as_u64().unwrap() >= 16, "{t}");
    assert_eq!(t["received"], t["sent"], "{t}");
    assert_eq!(t["errors"], 0, "{}", s["errors"]);
    // The first `answer` 20 ms after the ask, the last (done) 60 ms after.
    let ttff = s["ttff_ms"]["run"]["p50"].as_f64().unwrap();
    let ttlf = s["latency_ms"]["run"]["p50"].as_f64().unwrap();
    assert!((19.0..45.0).contains(&ttff), "{ttff}");
    assert!((59.0..90.0).contains(&ttlf), "{ttlf}");
    assert!(
        s["pushes"].get("answer").is_none(),
        "replies are not pushes: {}",
        s["pushes"]
    );
}

#[test]
fn binary_events_are_counted_and_a_malformed_packet_is_a_protocol_error() {
    let Some(server) = Server::start(Library::Node, &[]) else {
        return;
    };
    let (code, s, _dir) = server.soak(&short(2), &["good-1", "good-2"], &["--event", "binary"]);
    assert_eq!(code, 0, "{}", s["gates"]);
    let sent = s["totals"]["sent"].as_u64().unwrap();
    assert!(
        sent >= 4 && s["totals"]["received"] == sent,
        "{}",
        s["totals"]
    );
    // Each `file` event: a push by its name, its attachment counted, never an error.
    assert_eq!(s["pushes"]["file"], sent, "{}", s["pushes"]);
    assert_eq!(s["socketio"]["attachments"], sent, "{}", s["socketio"]);
    assert_eq!(s["totals"]["errors"], 0, "{}", s["errors"]);
    // A packet the socket.io client could not decode closes the connection, as that
    // client does: a `protocol` error, then a reconnect; the run goes on.
    let (_code, s, _dir) = server.soak(&short(2), &["good-1", "good-2"], &["--event", "garble"]);
    assert!(
        s["errors"]["protocol"].as_u64().unwrap() >= 2,
        "{}",
        s["errors"]
    );
    assert!(
        s["connects"]["reconnects"].as_u64().unwrap() >= 2,
        "{}",
        s["connects"]
    );
}
