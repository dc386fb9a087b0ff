//! Fan-out against a real Django Channels room chat (the tutorial's consumer, served by
//! daphne with the in-memory channel layer; packages from `.ci/run` into `.venv`): every
//! member gets every message; with the layer's capacity at 2 and a slow consumer, Channels
//! drops group messages for full channels, as documented, and soak reports them lost.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::common::{soak_bin, summary};

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// daphne serving `channels_chat.py`; killed by its PID when dropped.
struct Daphne {
    child: Child,
    port: u16,
}

impl Daphne {
    fn start(env: &[(&str, &str)]) -> Option<Daphne> {
        let python = crate::clients::python("channels, daphne")?;
        let mut child = Command::new(python)
            .args([
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                "0",
                "channels_chat:application",
            ])
            .current_dir(CLIENTS)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("daphne said where it listens").unwrap();
            if let Some(at) = line.find("Listening on TCP address ") {
                let addr = &line[at + "Listening on TCP address ".len()..];
                break addr.rsplit(':').next().unwrap().trim().parse().unwrap();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Some(Daphne { child, port })
    }

    /// soak against it: 12 users in 3 rooms of 4 at `rate`, 4 s.
    fn soak(&self, rate: &str) -> (i32, serde_json::Value) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("ws://127.0.0.1:{}/ws/chat/room{{{{room}}}}/", self.port);
        let code = soak_bin()
            .args([
                "--url",
                &url,
                "--users",
                "12",
                "--room-size",
                "4",
                "--rate",
                rate,
            ])
            .args([
                "--duration",
                "4s",
                "--ramp-up",
                "500ms",
                "--ramp-down",
                "0s",
            ])
            .args(["--message", r#"{"message": "hi {{id}} from {{user}}"}"#])
            .args([
                "--correlate",
                "/message",
                "--reply-timeout",
                "2s",
                "--probes",
                "0",
            ])
            .args(["--gate", "reach > 99%", "--quiet", "--out"])
            .arg(dir.path())
            .args(["--profile"])
            .arg(profile(dir.path()))
            .status()
            .unwrap()
            .code()
            .unwrap_or(-1);
        (code, summary(dir.path()))
    }
}

impl Drop for Daphne {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rooms section (no flag sets `deliver`): where members find the message.
fn profile(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("rooms.toml");
    std::fs::write(
        &path,
        "[rooms]\ndeliver = \"/message\"\ninclude_sender = true\n",
    )
    .unwrap();
    path
}

#[test]
fn every_member_of_a_channels_room_gets_every_message() {
    let Some(server) = Daphne::start(&[]) else {
        return;
    };
    let (code, s) = server.soak("2/s");
    let f = &s["fanout"];
    assert_eq!(code, 0, "{f} {}", s["gates"]);
    assert_eq!(f["reach"], 1.0, "{f}");
    assert_eq!(f["lost"], 0, "{f}");
    // 12 users × 2/s × ~3.5 s, each to the 4 members of its room.
    assert!(f["expected"].as_u64().unwrap() > 250, "{f}");
    assert!(f["fanout_ms"]["p50"].as_f64().unwrap() < 50.0, "{f}");
    // Each message's first and last member: every message reached all of its room.
    assert_eq!(f["complete"], f["messages"], "{f}");
    assert_eq!(f["last_member_ms"]["count"], f["messages"], "{f}");
    assert!(f["last_member_ms"]["p50"].as_f64() >= f["first_member_ms"]["p50"].as_f64());
    assert_eq!(s["totals"]["errors"], 0, "{}", s["errors"]);
}

#[test]
fn a_full_channel_layer_drops_group_messages_and_they_are_lost() {
    // Capacity 2 and members that take 50 ms over each message, fed 4 × 10 messages a
    // second: each member's channel fills and Channels drops what does not fit.
    let Some(server) = Daphne::start(&[
        ("SOAK_CHANNELS_CAPACITY", "2"),
        ("SOAK_CHANNELS_SLOW_MS", "50"),
    ]) else {
        return;
    };
    let (code, s) = server.soak("10/s");
    let f = &s["fanout"];
    assert_eq!(code, 1, "the reach gate fails: {f}");
    assert!(f["lost"].as_u64().unwrap() > 0, "{f}");
    assert!(f["reach"].as_f64().unwrap() < 0.99, "{f}");
    assert_eq!(
        f["fanout_ms"]["count"], f["delivered"],
        "lost copies are never latencies"
    );
    let complete = f["complete"].as_u64().unwrap();
    assert!(complete < f["messages"].as_u64().unwrap(), "{f}");
    assert_eq!(f["last_member_ms"]["count"], complete, "{f}");
}
