//! Hostile servers: garbage, binary, invalid UTF-8, oversized and fragmented frames, close
//! codes, refused and unfinished upgrades, duplicated and foreign ids, floods of
//! unsolicited frames, a server that stops reading. Each run goes on, counts what happened
//! by kind, exits with the documented code, leaves every result file complete, and soak's
//! own memory stays bounded.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::{run_dir, soak_bin, summary};

/// What a hostile server does on each connection.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// Answers every message with text that is not JSON.
    Garbage,
    /// Answers every message with a binary frame carrying the right JSON.
    Binary,
    /// Answers with a text frame whose payload is not UTF-8.
    InvalidUtf8,
    /// Answers with a 2 MiB text frame (soak's cap is 1 MiB).
    Oversized,
    /// Answers correctly, each reply split into two fragments.
    Fragmented,
    /// Answers three messages, then closes with this code (1006: drops the TCP connection).
    CloseAfterThree(u16),
    /// Answers every message twice, and once more with another user's id.
    Duplicates,
    /// Answers correctly, with the id as a float (`5000000012.0`).
    FloatIds,
    /// Pushes unsolicited frames as fast as it can, answering nothing.
    Flood,
    /// Completes the handshake and never reads again.
    StopsReading,
}

/// The id of a soak message, as the server read it.
fn id_of(text: &str) -> Option<u64> {
    serde_json::from_str::<Value>(text).ok()?["id"].as_u64()
}

/// Writes one raw frame: `first` is FIN/opcode, then an unmasked payload.
async fn raw_frame(tcp: &mut TcpStream, first: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut frame = vec![first];
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n < 65_536 => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    tcp.write_all(&frame).await
}

async fn behave(mut ws: WebSocketStream<TcpStream>, how: Hostile) {
    if let Hostile::StopsReading = how {
        std::future::pending::<()>().await;
    }
    if let Hostile::Flood = how {
        let frame = Message::text(r#"{"type": "presence", "who": "someone else"}"#);
        for _ in 0..200_000 {
            if ws.send(frame.clone()).await.is_err() {
                return;
            }
        }
        return;
    }
    let mut answered = 0;
    while let Some(Ok(Message::Text(text))) = ws.next().await {
        let Some(id) = id_of(&text) else { continue };
        let reply = format!(r#"{{"id": {id}, "reply": "ok"}}"#);
        let sent = match how {
            Hostile::Garbage => ws.send(Message::text("<html>oops</html>")).await,
            Hostile::Binary => ws.send(Message::binary(reply.into_bytes())).await,
            Hostile::InvalidUtf8 => raw_frame(ws.get_mut(), 0x81, b"{\"id\": \xff\xfe}")
                .await
                .map_err(Into::into),
            Hostile::Oversized => ws.send(Message::text("x".repeat(2 * 1024 * 1024))).await,
            Hostile::Fragmented => {
                let (a, b) = reply.as_bytes().split_at(5);
                let tcp = ws.get_mut();
                let first = raw_frame(tcp, 0x01, a).await;
                first.and(raw_frame(tcp, 0x80, b).await).map_err(Into::into)
            }
            Hostile::CloseAfterThree(code) => {
                let sent = ws.send(Message::text(reply)).await;
                answered += 1;
                if answered == 3 {
                    if code == 1006 {
                        return; // dropped: no close frame
                    }
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: "hostile".into(),
                    };
                    let _ = ws.close(Some(frame)).await;
                    return;
                }
                sent
            }
            Hostile::Duplicates => {
                let again = ws.send(Message::text(reply.clone())).await;
                let foreign = format!(r#"{{"id": {}, "reply": "not yours"}}"#, id + 7_000_000_000);
                let _ = ws.send(Message::text(foreign)).await;
                again.and(ws.send(Message::text(reply)).await)
            }
            Hostile::FloatIds => {
                ws.send(Message::text(format!(r#"{{"id": {id}.0, "reply": "ok"}}"#)))
                    .await
            }
            Hostile::Flood | Hostile::StopsReading => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

async fn hostile(how: Hostile) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    behave(ws, how).await;
                }
            });
        }
    });
    addr
}

/// Runs the built soak for 3 s against `addr` (black-box, so soak's own memory is its own).
async fn run(addr: SocketAddr, extra: &[&str]) -> (i32, String, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = format!(
        "--url ws://{addr}/ws --users 3 --duration 3s --ramp-up 0s --ramp-down 0s \
         --reply-timeout 1s --probes 0 --quiet --out {}",
        out.path().display()
    )
    .split_whitespace()
    .map(String::from)
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.contains(&"--rate") {
        args.extend(["--rate".to_string(), "5/s".to_string()]);
    }
    let output = tokio::task::spawn_blocking(move || soak_bin().args(&args).output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr, out)
}

/// Every result file is there and whole; soak finished the run and stayed small.
fn complete(out: &Path) -> Value {
    let s = summary(out); // schema-checked
    assert_eq!(s["run"]["status"], "completed", "{}", s["run"]);
    let dir = run_dir(out);
    for file in [
        "summary.json",
        "timeseries.csv",
        "latency.hlog",
        "events.jsonl",
        "memory.csv",
        "report.html",
        "junit.xml",
    ] {
        let len = std::fs::metadata(dir.join(file))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 0, "{file} is empty or missing");
    }
    let rows = std::fs::read_to_string(dir.join("timeseries.csv")).unwrap();
    assert!(
        rows.lines().count() >= 3,
        "an interval row each second: {rows}"
    );
    let peak = s["tester"]["memory"]["peak_mb"].as_f64().unwrap();
    assert!(peak < 100.0, "soak's own RSS peaked at {peak} MB");
    s
}

fn errors(s: &Value, kind: &str) -> u64 {
    s["errors"][kind].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_binary_and_invalid_frames_are_counted_by_kind() {
    for (how, kind) in [
        (Hostile::Garbage, "unparsable"),
        (Hostile::Binary, "binary"),
        (Hostile::InvalidUtf8, "protocol"),
        (Hostile::Oversized, "protocol"),
    ] {
        let (code, stderr, out) = run(hostile(how).await, &[]).await;
        assert_eq!(
            code, 1,
            "{how:?}: the default error-rate gate fails: {stderr}"
        );
        let s = complete(out.path());
        assert!(errors(&s, kind) > 0, "{how:?} → {kind}: {}", s["errors"]);
        assert_eq!(s["totals"]["received"], 0, "{how:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_and_float_id_replies_are_ordinary_replies() {
    for how in [Hostile::Fragmented, Hostile::FloatIds] {
        let (code, stderr, out) = run(hostile(how).await, &[]).await;
        assert_eq!(code, 0, "{how:?}: {stderr}");
        let s = complete(out.path());
        assert_eq!(s["totals"]["errors"], 0, "{how:?}: {}", s["errors"]);
        assert_eq!(s["totals"]["received"], s["totals"]["sent"], "{how:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_after_a_few_messages_are_counted_and_users_reconnect() {
    for code in [1006u16, 1011, 4000] {
        let (exit, stderr, out) = run(hostile(Hostile::CloseAfterThree(code)).await, &[]).await;
        assert!(exit == 0 || exit == 1, "{code}: {stderr}");
        let s = complete(out.path());
        assert!(
            s["close_codes"][code.to_string()].as_u64().unwrap_or(0) > 0,
            "{code}: {}",
            s["close_codes"]
        );
        assert!(errors(&s, "closed") > 0, "{code}: {}", s["errors"]);
        assert_eq!(
            errors(&s, "protocol"),
            0,
            "a close is not a protocol error: {}",
            s["errors"]
        );
        assert!(s["connects"]["reconnects"].as_u64().unwrap() > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_foreign_ids_are_counted_not_matched() {
    let (code, stderr, out) = run(hostile(Hostile::Duplicates).await, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    let s = complete(out.path());
    let sent = s["totals"]["sent"].as_u64().unwrap();
    assert_eq!(
        s["totals"]["received"], sent,
        "the first reply of each counts"
    );
    // Every message's second and foreign replies are counted — but a user stopped with its
    // last message in flight leaves as soon as that one's first reply is in, so the extra
    // frames right behind it may arrive after it left (one message per user, 3 users, at
    // most).
    for kind in ["duplicate", "unmatched"] {
        let n = errors(&s, kind);
        assert!(
            n <= sent && n + 3 >= sent,
            "{kind}: {n} of {sent}: {}",
            s["errors"]
        );
    }
    assert_eq!(
        s["totals"]["late_replies"], 0,
        "a second reply is not a late one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unsolicited_frames_is_counted_and_soak_stays_small() {
    let (code, stderr, out) = run(hostile(Hostile::Flood).await, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    let s = complete(out.path());
    assert!(errors(&s, "unparsable") > 10_000, "{}", s["errors"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_is_send_timeout_and_the_run_ends_on_time() {
    let addr = hostile(Hostile::StopsReading).await;
    // 500 KB messages (from a CSV column: too long for a command line) at 10/s fill the
    // loopback buffers in well under a second.
    let data = tempfile::tempdir().unwrap();
    let csv = data.path().join("pad.csv");
    std::fs::write(&csv, format!("pad\n{}\n", "x".repeat(500_000))).unwrap();
    let csv = csv.display().to_string();
    let big = r#"{"id": {{id}}, "pad": "{{pad}}"}"#;
    let started = std::time::Instant::now();
    let (code, stderr, out) =
        run(addr, &["--rate", "10/s", "--data", &csv, "--message", big]).await;
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(code, 1, "{stderr}");
    let s = complete(out.path());
    assert!(errors(&s, "send_timeout") > 0, "{}", s["errors"]);
    let t = &s["totals"];
    let accounted = t["received"].as_u64().unwrap()
        + s["errors"]["timeout"].as_u64().unwrap()
        + t["abandoned"].as_u64().unwrap();
    assert!(
        accounted >= t["sent"].as_u64().unwrap(),
        "every sent message is accounted for: {t}"
    );
}

/// A TCP server that reads the upgrade request and answers `response` (or nothing).
async fn refusing(response: Option<&'static str>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                match response {
                    Some(r) => {
                        let _ = tcp.write_all(r.as_bytes()).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_unfinished_upgrades_are_exit_3_with_the_reason() {
    let cases = [
        (
            Some("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
            "500 Internal Server Error",
        ),
        (
            Some(
                "HTTP/1.1 301 Moved Permanently\r\nLocation: ws://127.0.0.1:1/new\r\nContent-Length: 0\r\n\r\n",
            ),
            "Location: ws://127.0.0.1:1/new",
        ),
        (None, "handshake timeout"),
    ];
    for (response, says) in cases {
        let addr = refusing(response).await;
        let (code, stderr, out) = run(addr, &["--handshake-timeout", "1s"]).await;
        assert_eq!(code, 3, "{says}: {stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            0,
            "nothing was run"
        );
    }
}
