//! Chat conversations as a real server speaks them: a Node `ws` chat server (from
//! `tests/clients/`, installed by `.ci/run` with `npm ci`) that wants an auth message with
//! a per-user token and a join before it chats, acks the sender by id, broadcasts to the
//! room without one, and pushes presence frames. In CI a missing `node` or `ws` fails the
//! test; elsewhere it says what to install and passes without running.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command};

use crate::common::{events, soak_bin, summary, timeseries};

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// The chat server, started; killed by its PID when dropped. `None` (skipped, outside CI)
/// without node and `ws`.
struct ChatServer {
    child: Child,
    port: u16,
}

impl ChatServer {
    fn start() -> Option<ChatServer> {
        let installed = Path::new(CLIENTS).join("node_modules/ws").is_dir()
            && Command::new("node")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
        if !installed {
            let msg =
                "node and tests/clients/node_modules/ws are needed: run `npm ci` in tests/clients";
            assert!(std::env::var_os("CI").is_none(), "{msg}");
            eprintln!("skipped (not in CI): {msg}");
            return None;
        }
        let (child, line) = crate::common::spawn_announced(
            Command::new("node")
                .arg(Path::new(CLIENTS).join("chat_server.js"))
                .env("EXIT_WITH_STDIN", "1"),
        );
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        Some(ChatServer { child, port })
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A profile for the chat server: auth with the user's token, join, chat; presence and
/// room messages are pushes.
fn profile(dir: &Path, port: u16, tokens: &[&str]) -> std::path::PathBuf {
    let csv = dir.join("users.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    writeln!(f, "token").unwrap();
    for t in tokens {
        writeln!(f, "{t}").unwrap();
    }
    let path = dir.join("chat.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[target]
url = "ws://127.0.0.1:{port}/"

[load]
users = {users}
duration = "3s"
ramp_up = "0s"
ramp_down = "0s"

[session]
rate = "5/s"
message = '{{"type": "chat", "id": {{{{id}}}}, "text": "hi {{{{id}}}} from {{{{user}}}}"}}'
correlate = "/id"
data = "{csv}"
push = ['/type == "presence"', '/type == "message"']
reconnect_min = "200ms"

[[session.on_connect]]
name = "auth"
message = '{{"type": "auth", "token": "{{{{token}}}}"}}'
expect = '/type == "auth_ok"'
fail = '/type == "error"'
timeout = "2s"

[[session.on_connect]]
name = "join"
message = '{{"type": "join", "room": "lobby"}}'
expect = '/type == "joined"'

[rooms]
size = {users}
deliver = "/text"

[probes]
count = 0
"#,
            users = tokens.len(),
            csv = csv.display()
        ),
    )
    .unwrap();
    path
}

fn run(profile: &Path, out: &Path, gates: &[&str]) -> i32 {
    let mut cmd = soak_bin();
    for gate in gates {
        cmd.args(["--gate", gate]);
    }
    cmd.args(["--profile"])
        .arg(profile)
        .args(["--quiet", "--out"])
        .arg(out)
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

#[test]
fn auth_and_join_steps_pass_presence_is_pushes_and_acks_and_fan_out_are_timed() {
    let Some(server) = ChatServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = ["good-a", "good-b", "good-c", "good-d"];
    let gates = ["join_p99 < 2s", "join_failed == 0", "errors == 0"];
    let code = run(
        &profile(dir.path(), server.port, &tokens),
        &dir.path().join("r"),
        &gates,
    );
    let out = dir.path().join("r");
    let s = summary(&out);
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["totals"]["errors"], 0, "{s}");
    assert_eq!(s["connects"]["successes"], 4, "{}", s["connects"]);
    // Join time: handshake end → both steps passed, for each of the 4 connections.
    assert_eq!(s["join_time_ms"]["count"], 4, "{}", s["join_time_ms"]);
    // Acks by id are the replies; 4 users × 5/s × 3 s.
    let received = s["totals"]["received"].as_u64().unwrap();
    assert!((50..=60).contains(&received), "{received}");
    // Presence every 500 ms to each of 4 members (about 24): pushes, never errors.
    let pushes = &s["pushes"];
    let presence = pushes[r#"/type == "presence""#].as_u64().unwrap();
    assert!(presence >= 12, "{pushes}");
    // Each chat message to the 3 other members of the lobby, without an id of its own but
    // the request's id in its text: fan-out, measured before any push rule (the one naming
    // room messages counts none), every copy delivered.
    assert_eq!(pushes[r#"/type == "message""#], 0, "{pushes}");
    let f = &s["fanout"];
    assert_eq!(
        (f["reach"].as_f64(), f["lost"].as_u64()),
        (Some(1.0), Some(0)),
        "{f}"
    );
    let expected = f["expected"].as_u64().unwrap();
    assert!(
        expected >= received * 3 * 9 / 10 && expected <= received * 3,
        "{f}"
    );
    assert!(f["fanout_ms"]["p50"].as_f64().unwrap() < 50.0, "{f}");
    let rows = timeseries(&out);
    assert!(
        rows.iter()
            .any(|r| r["pushes_per_s"].parse::<f64>().unwrap_or(0.0) > 0.0)
    );
    let gates = s["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 3);
    assert!(gates.iter().all(|g| g["passed"] == true), "{gates:?}");
    let page = std::fs::read_to_string(crate::common::run_dir(&out).join("report.html")).unwrap();
    assert!(page.contains("join (connect-time steps)") && page.contains("Pushes by rule"));
}

#[test]
fn a_bad_token_is_join_failed_with_the_servers_4401_and_the_run_goes_on() {
    let Some(server) = ChatServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = ["good-a", "bad-b", "good-c"];
    let code = run(
        &profile(dir.path(), server.port, &tokens),
        &dir.path().join("r"),
        &["join_failed == 0"],
    );
    assert_eq!(code, 1, "the join_failed gate fails the run");
    let out = dir.path().join("r");
    let s = summary(&out);
    let failed = s["errors"]["join_failed"].as_u64().unwrap();
    assert!(failed >= 2, "user 1 retried with back-off: {}", s["errors"]);
    let records: Vec<serde_json::Value> = events(&out)
        .into_iter()
        .filter(|e| e["event"] == "join_failed")
        .collect();
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|e| e["user"] == 1 && e["step"] == "auth" && e["code"] == 4401),
        "{records:?}"
    );
    // The two good users chatted the whole run.
    assert_eq!(s["connects"]["successes"], 2, "{}", s["connects"]);
    assert!(
        s["totals"]["received"].as_u64().unwrap() >= 25,
        "{}",
        s["totals"]
    );
}

#[test]
fn a_step_nobody_answers_is_join_failed_after_its_timeout_and_every_file_is_written() {
    // The demo target echoes the auth message back; it never says `auth_ok`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        r#"
[load]
users = 3
duration = "2s"
ramp_up = "0s"
ramp_down = "0s"

[session]
reconnect_min = "100ms"

[[session.on_connect]]
name = "auth"
message = '{"type": "auth"}'
expect = '/type == "auth_ok"'
timeout = "300ms"
"#,
    )
    .unwrap();
    let out = dir.path().join("r");
    let code = run(&path, &out, &[]);
    assert_eq!(code, 1, "the default gates fail: nobody connected");
    let s = summary(&out);
    let failed = s["errors"]["join_failed"].as_u64().unwrap();
    // 3 users, each failing every 300 ms plus its back-off, for 2 s.
    assert!(failed >= 6, "{}", s["errors"]);
    assert_eq!(s["totals"]["sent"], 0, "no user started its schedule");
    assert_eq!(s["connects"]["successes"], 0);
    let folder = crate::common::run_dir(&out);
    for file in [
        "summary.json",
        "timeseries.csv",
        "events.jsonl",
        "latency.hlog",
        "report.html",
        "junit.xml",
    ] {
        assert!(folder.join(file).is_file(), "{file}");
    }
}

/// A rooms profile against the demo's room mode: 12 users in rooms of 4 at 5 msg/s for
/// 3 s, every `drop_every`-th copy left out by the server (0: none).
fn rooms_run(drop_every: u32) -> (i32, serde_json::Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rooms.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[load]
users = 12
duration = "3s"
ramp_up = "0s"
ramp_down = "0s"

[session]
rate = "5/s"
message = '{{"message": "hi {{{{id}}}} from {{{{user}}}}"}}'
correlate = "/message"
reply_timeout = "1s"

[rooms]
size = 4
deliver = "/message"
include_sender = true

[demo]
rooms = true
room_drop_every = {drop_every}
"#
        ),
    )
    .unwrap();
    let out = dir.path().join("r");
    let code = run(
        &path,
        &out,
        &["reach > 99%", "fanout_p99 < 1s", "lost == 0"],
    );
    (code, summary(&out), dir)
}

#[test]
fn every_member_gets_every_room_message_and_the_fan_out_is_timed() {
    let (code, s, dir) = rooms_run(0);
    assert_eq!(code, 0, "{}", s["gates"]);
    let f = &s["fanout"];
    let sent = s["totals"]["sent"].as_u64().unwrap();
    // Each message goes to the 4 members of its room, the sender included.
    let expected = f["expected"].as_u64().unwrap();
    assert!(expected > sent * 4 * 9 / 10 && expected <= sent * 4, "{f}");
    assert_eq!(f["delivered"], f["expected"], "{f}");
    assert_eq!(
        (f["lost"].as_u64(), f["reach"].as_f64()),
        (Some(0), Some(1.0)),
        "{f}"
    );
    assert_eq!(
        (f["duplicates"].as_u64(), f["out_of_order"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(f["fanout_ms"]["count"], f["delivered"]);
    assert!(f["fanout_ms"]["p50"].as_f64().unwrap() < 50.0, "{f}");
    // Every message reached its every member: one first and one last member time each.
    let messages = f["messages"].as_u64().unwrap();
    assert!(messages > 0 && messages <= sent, "{f}");
    assert_eq!(f["complete"], messages, "{f}");
    assert_eq!(f["first_member_ms"]["count"], messages, "{f}");
    assert_eq!(f["last_member_ms"]["count"], messages, "{f}");
    let p = |k: &str, q: &str| f[k][q].as_f64().unwrap();
    assert!(
        p("first_member_ms", "p50") <= p("fanout_ms", "p50") + 0.01,
        "{f}"
    );
    assert!(
        p("last_member_ms", "max") >= p("fanout_ms", "max") * 0.99,
        "{f}"
    );
    assert!(
        p("last_member_ms", "p50") >= p("first_member_ms", "p50"),
        "{f}"
    );
    // The sender's own copy is also its reply: no other member's copy is an error.
    assert_eq!(s["totals"]["errors"], 0, "{}", s["errors"]);
    assert_eq!(s["totals"]["received"], s["totals"]["sent"]);
    // Over time: fan-out columns, the fanout histograms in latency.hlog, the report's charts.
    let out = dir.path().join("r");
    let rows = timeseries(&out);
    assert!(
        rows.iter()
            .any(|r| !r["fanout_p50_ms"].is_empty() && r["reach"] == "1.0000"),
        "{rows:?}"
    );
    let folder = crate::common::run_dir(&out);
    let hlog = std::fs::read_to_string(folder.join("latency.hlog")).unwrap();
    assert!(hlog.contains("Tag=fanout,"), "a fanout tag in latency.hlog");
    assert!(hlog.contains("Tag=fanout.first,") && hlog.contains("Tag=fanout.last,"));
    assert!(rows.iter().any(|r| !r["last_member_p99_ms"].is_empty()));
    let junit = std::fs::read_to_string(folder.join("junit.xml")).unwrap();
    assert!(!junit.contains("room fan-out"), "gated by reach: {junit}");
    let page = std::fs::read_to_string(folder.join("report.html")).unwrap();
    assert!(page.contains("Fan-out: a room message to each member") && page.contains("Reach ("));
}

#[test]
fn copies_the_server_drops_are_lost_reach_falls_and_the_reach_gate_fails() {
    let (code, s, _dir) = rooms_run(10);
    assert_eq!(code, 1, "{}", s["gates"]);
    let f = &s["fanout"];
    let (expected, lost) = (f["expected"].as_u64().unwrap(), f["lost"].as_u64().unwrap());
    // Every 10th copy: about 10 % lost, never recorded as a latency.
    assert!(
        lost * 100 >= expected * 8 && lost * 100 <= expected * 12,
        "{f}"
    );
    let reach = f["reach"].as_f64().unwrap();
    assert!((0.88..0.92).contains(&reach), "{f}");
    assert_eq!(f["fanout_ms"]["count"], f["delivered"]);
    // A message with a lost copy has no last member.
    let (messages, complete) = (
        f["messages"].as_u64().unwrap(),
        f["complete"].as_u64().unwrap(),
    );
    assert!(complete < messages, "{f}");
    assert_eq!(f["last_member_ms"]["count"], complete, "{f}");
    let failed: Vec<&serde_json::Value> = s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["passed"] == false)
        .collect();
    let metrics: Vec<&str> = failed
        .iter()
        .map(|g| g["metric"].as_str().unwrap())
        .collect();
    assert_eq!(metrics, ["reach", "lost"], "{failed:?}");
}
