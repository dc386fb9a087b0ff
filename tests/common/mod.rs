//! Helpers: servers on 127.0.0.1:0, temp results folders, in-process and black-box runs.

use std::future::pending;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use soak::cli::Cli;
use soak::{Outcome, SoakError};
use soak_mocks::demo::DemoConfig;
use tokio::net::TcpListener;

/// Demo target on an ephemeral port. Bound before the spawn, so a client can connect at
/// once: no sleep, no retry.
pub async fn demo_target(config: DemoConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound socket has an address");
    tokio::spawn(soak_mocks::demo::serve(listener, config, pending()));
    addr
}

/// A loopback port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs `soak run` in-process, quietly, with results under `out`.
pub async fn soak(out: &Path, args: &[&str]) -> Result<Outcome, SoakError> {
    let mut argv = vec!["soak", "run", "--quiet", "--out", out.to_str().unwrap()];
    argv.extend_from_slice(args);
    soak::run(Cli::try_parse_from(argv).unwrap()).await
}

/// [`soak`] with the arguments written as one line: split at spaces, except inside single
/// quotes (`--complete '/done == true'`).
pub async fn soak_line(out: &Path, line: &str) -> Result<Outcome, SoakError> {
    let mut args: Vec<&str> = Vec::new();
    for (i, part) in line.split('\'').enumerate() {
        if i % 2 == 1 {
            args.push(part);
        } else {
            args.extend(part.split_whitespace());
        }
    }
    soak(out, &args).await
}

/// The one run folder under `out` (the `latest` symlink beside it is not a folder).
pub fn run_dir(out: &Path) -> PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.path())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "expected one run folder in {}: {dirs:?}",
        out.display()
    );
    dirs.into_iter().next().unwrap()
}

/// The run's `summary.json`, checked against the committed JSON Schema.
pub fn summary(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir(out).join("summary.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_valid(&value);
    value
}

/// Fails with every schema violation listed when `summary` does not match
/// `schema/summary.schema.json`.
pub fn assert_valid(summary: &serde_json::Value) {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = SCHEMA.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/summary.schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    });
    let errors: Vec<String> = validator
        .iter_errors(summary)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "summary.json does not match its schema:\n{}\n{summary:#}",
        errors.join("\n")
    );
}

/// The run's `timeseries.csv` as header → cell maps, one per row.
pub fn timeseries(out: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(run_dir(out).join("timeseries.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(line.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

/// The built binary.
pub fn soak_bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_soak"))
}

/// Demo target on its own thread and single-threaded runtime (as `soak` runs it), for
/// blocking modes that must not block the test's runtime.
pub fn demo_on_own_thread(config: DemoConfig) -> soak::demo_target::DemoTarget {
    soak::demo_target::DemoTarget::start(config).unwrap()
}

/// A WebSocket server on 127.0.0.1:0 that answers every frame's `/id` with `{"id": …}` and
/// hands each received text frame to the test.
pub async fn recording_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    let id = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .map(|v| v["id"].clone());
                    let _ = tx.send(text.to_string());
                    let reply = serde_json::json!({ "id": id });
                    if ws.send(Message::text(reply.to_string())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Total count of every `.ttlf` histogram in a run's `latency.hlog`.
pub fn hlog_ttlf_count(out: &Path) -> u64 {
    hlog_ttlf(out).len()
}

/// Every `.ttlf` value a run's `latency.hlog` holds, in one histogram (µs).
pub fn hlog_ttlf(out: &Path) -> hdrhistogram::Histogram<u64> {
    use base64::Engine as _;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let bytes = std::fs::read(run_dir(out).join("latency.hlog")).unwrap();
    let mut total = soak::metrics::snapshot::new_histogram();
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(ilh) = entry.unwrap() {
            if !ilh.tag().unwrap().as_str().ends_with(".ttlf") {
                continue;
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(ilh.encoded_histogram())
                .unwrap();
            let h: hdrhistogram::Histogram<u64> =
                Deserializer::new().deserialize(&mut &raw[..]).unwrap();
            total.add(&h).unwrap();
        }
    }
    total
}

/// The run's `events.jsonl`, parsed.
pub fn events(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir(out).join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Spawns `cmd` with piped stdin (closing it stops the servers the tests start) and stdout,
/// and returns it with the first line it printed (where it listens).
pub fn spawn_announced(cmd: &mut std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// Headless Chromium, when installed (Debian's `chromium`); in CI it must be.
pub fn chromium() -> Option<std::path::PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "chromium is needed in CI");
        eprintln!(
            "skipped the browser check: chromium is not installed (apt-get install chromium)"
        );
    }
    found
}
