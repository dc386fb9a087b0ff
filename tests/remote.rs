//! A target soak cannot see, judged by its own metrics (`--target-metrics`): a real Python
//! chat server (aiohttp) exposing prometheus_client's default process metrics, leaking by
//! message or not, and an endpoint that goes away mid-run; bad endpoints at the start.

use std::io::{Read, Write};
use std::process::{Child, Command};

use crate::common::{run_dir, soak_bin, summary};

/// The Python server, started; killed (by its PID) when dropped.
struct Server {
    child: Child,
    ws: u16,
    metrics: u16,
}

impl Server {
    /// `None` (skipped, outside CI) without the packages.
    fn start(args: &[&str]) -> Option<Server> {
        let python = crate::clients::python("prometheus_client, aiohttp")?;
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/metrics_server.py"
        );
        let (child, line) = crate::common::spawn_announced(
            Command::new(python)
                .arg(script)
                .arg("--exit-with-stdin")
                .args(args),
        );
        let port = |key: &str| -> u16 {
            let at = line.find(key).unwrap_or_else(|| panic!("{line}")) + key.len();
            line[at..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let (ws, metrics) = (port("ws="), port("metrics="));
        Some(Server { child, ws, metrics })
    }

    /// Runs soak against it: (exit code, stderr, out dir).
    fn soak(&self, extra: &[&str]) -> (i32, String, tempfile::TempDir) {
        let out = tempfile::tempdir().unwrap();
        let args = format!(
            "--url ws://127.0.0.1:{}/ws --target-metrics http://127.0.0.1:{}/metrics --users 10 --rate 10/s \
             --duration 7s --ramp-up 500ms --ramp-down 500ms --baseline 1s --cooldown 1s \
             --sample-interval 100ms --probes 0 --quiet",
            self.ws, self.metrics
        );
        let run = soak_bin()
            .args(args.split_whitespace())
            .args(extra)
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        (run.status.code().unwrap_or(-1), stderr, out)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The target's cells of memory.csv: (rows with a reading, rows without).
fn readings_and_gaps(out: &std::path::Path) -> (usize, usize) {
    let text = std::fs::read_to_string(run_dir(out).join("memory.csv")).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let gaps = rows
        .iter()
        .filter(|l| l.split(',').nth(3) == Some(""))
        .count();
    (rows.len() - gaps, gaps)
}

#[test]
fn a_python_server_leaking_by_message_is_a_leak_by_its_own_metrics() {
    // 20 KB kept per message × 100 messages/s: about 7 GB/h, seen only through
    // process_resident_memory_bytes.
    let Some(server) = Server::start(&["--leak", "20000"]) else {
        return;
    };
    let (code, stderr, out) = server.soak(&[]);
    assert_eq!(code, 0, "{stderr}");
    let m = &summary(out.path())["memory"];
    assert_eq!(m["verdict"], "leak", "{m}");
    assert!(
        m["process"]
            .as_str()
            .unwrap()
            .starts_with("metrics http://127.0.0.1:"),
        "{m}"
    );
    assert_eq!(m["gaps"], 0, "{m}");
    assert_eq!(m["attribution"]["cause"], "message", "{m}");
    let (readings, gaps) = readings_and_gaps(out.path());
    assert!(
        readings > 60 && gaps == 0,
        "{readings} readings, {gaps} gaps"
    );
}

#[test]
fn the_same_server_without_a_leak_is_not_a_leak() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let (code, stderr, out) = server.soak(&[]);
    assert_eq!(code, 0, "{stderr}");
    let m = &summary(out.path())["memory"];
    assert!(m["verdict"] == "none" || m["verdict"] == "plateau", "{m}");
    // Python's resident memory, as the endpoint reports it: tens of MB, not zero.
    assert!(m["peak_mb"].as_f64().unwrap() > 10.0, "{m}");
}

#[test]
fn an_endpoint_going_away_mid_run_is_counted_gaps_and_the_run_still_ends_with_a_verdict() {
    // The metrics port closes after 250 messages (about 2.5 s into the load); the chat
    // goes on. Every scrape after that fails: a gap, never a zero.
    let Some(server) = Server::start(&["--metrics-for", "250"]) else {
        return;
    };
    let (code, stderr, out) = server.soak(&[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary(out.path());
    let m = &s["memory"];
    let gaps = m["gaps"].as_u64().unwrap();
    assert!(gaps > 30, "{m}");
    assert!(
        m["last_gap"]
            .as_str()
            .unwrap()
            .contains("scraping http://127.0.0.1:"),
        "{m}"
    );
    let verdicts = ["leak", "plateau", "none", "insufficient-data"];
    assert!(verdicts.contains(&m["verdict"].as_str().unwrap()), "{m}");
    let (readings, csv_gaps) = readings_and_gaps(out.path());
    assert_eq!(csv_gaps as u64, gaps, "each gap an empty row in memory.csv");
    assert!(
        readings > 10,
        "readings before the endpoint went: {readings}"
    );
    // Nothing measured on the chat side was lost.
    assert!(
        s["totals"]["received"].as_u64().unwrap() > 400,
        "{}",
        s["totals"]
    );
    let reasons = s["verdict"]["reasons"].to_string();
    assert!(reasons.contains("gaps in memory.csv"), "{reasons}");
    let events = std::fs::read_to_string(run_dir(out.path()).join("events.jsonl")).unwrap();
    assert_eq!(
        events.matches("\"target_gap\"").count(),
        1,
        "one event when the gaps began"
    );
}

/// A listener answering one request with `answer`, on its own thread.
fn one_answer(answer: &'static str) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request);
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    (url, thread)
}

fn soak_at_start(metrics: &str) -> (i32, String) {
    let out = tempfile::tempdir().unwrap();
    let run = soak_bin()
        .args([
            "--target-metrics",
            metrics,
            "--duration",
            "2s",
            "--ramp-up",
            "0s",
            "--ramp-down",
            "0s",
            "--quiet",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "no run was started"
    );
    (
        run.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

#[test]
fn an_unreachable_or_garbage_endpoint_is_exit_2_before_any_load() {
    // Refused: a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, stderr) = soak_at_start(&format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--target-metrics") && stderr.contains("scraping http://127.0.0.1:"),
        "{stderr}"
    );

    // An HTML page: no process_resident_memory_bytes in it.
    let (url, served) =
        one_answer("HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n<html>garbage</html>\n");
    let (code, stderr) = soak_at_start(&url);
    served.join().unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("serves no `process_resident_memory_bytes` sample"),
        "{stderr}"
    );

    // Not found.
    let (url, served) = one_answer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    let (code, stderr) = soak_at_start(&url);
    served.join().unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("HTTP 404"), "{stderr}");

    let (code, stderr) = soak_at_start("https://127.0.0.1:1/metrics");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("https is not supported"), "{stderr}");
}
