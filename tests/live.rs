//! The live view of a run: `/metrics` scraped and parsed by prometheus_client's reference
//! parser, a real Prometheus over two segments, the dashboard in headless Chromium, and
//! hostile bytes at both listeners.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use soak_mocks::demo::DemoConfig;

use crate::clients::python;
use crate::common::{chromium, demo_on_own_thread, run_dir, soak_bin, summary};

/// How long any one wait of these tests may take before it fails instead of hanging.
const WAIT: Duration = Duration::from_secs(25);

/// A child's output, line by line, read on a thread of its own (so a wait can time out).
fn lines(from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A `soak` child process with its live listeners' addresses, as it printed them.
struct LiveRun {
    child: Child,
    dashboard: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    stderr: mpsc::Receiver<String>,
}

impl LiveRun {
    /// Starts `soak` with `args`, and waits for the announced listeners (those asked for).
    fn start(args: &[String]) -> LiveRun {
        let dash = args.iter().any(|a| a == "--dashboard");
        let metrics = args.iter().any(|a| a == "--metrics-listen");
        let mut child = soak_bin()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = lines(child.stderr.take().unwrap());
        let mut run = LiveRun {
            child,
            dashboard: None,
            metrics: None,
            stderr: rx,
        };
        while (dash && run.dashboard.is_none()) || (metrics && run.metrics.is_none()) {
            let line = run
                .stderr
                .recv_timeout(WAIT)
                .expect("soak announces its listeners");
            let addr = |prefix: &str| -> Option<SocketAddr> {
                let rest = line.strip_prefix(prefix)?;
                rest.trim_end_matches("/metrics")
                    .trim_end_matches('/')
                    .parse()
                    .ok()
            };
            run.dashboard = run.dashboard.or(addr("soak: dashboard on http://"));
            run.metrics = run.metrics.or(addr("soak: metrics on http://"));
        }
        run
    }

    /// Everything soak wrote to stderr so far.
    fn stderr(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Ctrl-C (to this child, by its PID), then its exit code.
    fn interrupt(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        self.wait()
    }

    /// Its exit code, waiting at most [`WAIT`] (then it is killed and the test fails).
    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("soak did not exit in {WAIT:?}: {}", self.stderr());
            }
            // Draining stderr is what this waits on between checks.
            if let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(100)) {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A connection with a read timeout, so a stalled server fails the test instead of hanging it.
fn connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp
}

/// Sends raw bytes and returns the whole response (the connection is asked to close).
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = connect(addr);
    tcp.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET path`: the status code, the headers (lower-cased names) and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, HashMap<String, String>, String) {
    let response = raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// The dashboard's server-sent events, read as a browser would (chunked HTTP/1.1).
struct Events {
    reader: BufReader<TcpStream>,
    buffer: String,
}

impl Events {
    fn open(addr: SocketAddr) -> Events {
        let mut tcp = connect(addr);
        tcp.write_all(b"GET /events HTTP/1.1\r\nHost: soak\r\nAccept: text/event-stream\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(tcp);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut chunked = false;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            let l = line.to_ascii_lowercase();
            chunked |= l.starts_with("transfer-encoding:") && l.contains("chunked");
            if l.starts_with("content-type:") {
                assert!(l.contains("text/event-stream"), "{line}");
            }
        }
        assert!(chunked, "an event stream has no length");
        Events {
            reader,
            buffer: String::new(),
        }
    }

    /// The next `page` event's data.
    fn next_page(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let is_page = event.lines().any(|l| l == "event: page");
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                    .collect();
                if is_page {
                    return serde_json::from_str(&data).unwrap();
                }
                continue;
            }
            let mut size = String::new();
            self.reader.read_line(&mut size).expect("the next event");
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            assert!(size > 0, "the event stream ended");
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).unwrap();
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk[..size]).replace("\r\n", "\n"));
        }
    }

    /// Reads pages until one satisfies `done`.
    fn until(&mut self, done: impl Fn(&Value) -> bool) -> Value {
        loop {
            let page = self.next_page();
            if done(&page) {
                return page;
            }
        }
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// A short run against the demo target with both listeners on free loopback ports.
fn short_run(url: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&["--url", url, "--users", "4", "--interval", "1s"]);
    args.extend(strings(&["--dashboard", "127.0.0.1:0"]));
    args.extend(strings(&["--metrics-listen", "127.0.0.1:0", "--quiet"]));
    args.extend(strings(&["--out", out.to_str().unwrap()]));
    args.extend(strings(extra));
    args
}

/// Every family of each scraped text, parsed by prometheus_client's OpenMetrics parser.
fn parse(py: &Path, texts: &[&str]) -> Vec<Vec<Value>> {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let path = dir.path().join(format!("scrape{i}.txt"));
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/parse_openmetrics.py"
    );
    let output = Command::new(py).arg(script).args(&paths).output().unwrap();
    assert!(
        output.status.success(),
        "prometheus_client rejects the text: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Vec<Vec<Value>> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(parsed.len(), texts.len());
    parsed
}

/// Samples keyed by name and sorted labels.
fn samples(families: &[Value], kind: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for family in families.iter().filter(|f| f["type"] == kind) {
        for s in family["samples"].as_array().unwrap() {
            let mut labels: Vec<String> = s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect();
            labels.sort();
            out.insert(
                format!("{}{{{}}}", s["name"].as_str().unwrap(), labels.join(",")),
                s["value"].as_f64().unwrap(),
            );
        }
    }
    out
}

/// One sample's value by name and a label that identifies it.
fn value(families: &[Value], name: &str, label: Option<(&str, &str)>) -> f64 {
    families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .find(|s| {
            s["name"] == name
                && label.is_none_or(|(k, v)| s["labels"][k].as_str() == Some(v))
                && (name.ends_with("_bucket") || s["labels"].get("le").is_none())
        })
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"))
}

/// Every histogram's buckets rise with `le` and end at `+Inf` with its `_count`.
fn assert_cumulative(families: &[Value]) {
    let mut seen = 0;
    for family in families.iter().filter(|f| f["type"] == "histogram") {
        let name = family["name"].as_str().unwrap();
        // Per label set: its (le, value) buckets and its count.
        type Series = (Vec<(f64, f64)>, Option<f64>);
        let mut series: HashMap<String, Series> = HashMap::new();
        for s in family["samples"].as_array().unwrap() {
            let labels = s["labels"].as_object().unwrap();
            let key: Vec<String> = labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let entry = series.entry(key.join(",")).or_default();
            let v = s["value"].as_f64().unwrap();
            if s["name"] == format!("{name}_bucket") {
                let le = labels["le"].as_str().unwrap();
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                entry.0.push((le, v));
            } else if s["name"] == format!("{name}_count") {
                entry.1 = Some(v);
            }
        }
        for (key, (mut buckets, count)) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(buckets.len() > 10, "{name}{{{key}}}: {buckets:?}");
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{name}{{{key}}} buckets are not cumulative: {buckets:?}"
            );
            let last = buckets.last().unwrap();
            assert_eq!(last.0, f64::INFINITY, "{name}{{{key}}} ends at +Inf");
            assert_eq!(
                Some(last.1),
                count,
                "{name}{{{key}}}: +Inf bucket is the count"
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "latency, connect, probe and fan-out histograms at least"
    );
}

/// Scraped twice during a run and once after: prometheus_client parses every text, counters
/// only grow, buckets are cumulative, and the last scrape agrees with `summary.json`.
#[test]
fn metrics_parse_count_up_and_end_as_the_summary_says() {
    let Some(py) = python("prometheus_client") else {
        return;
    };
    let demo = demo_on_own_thread(DemoConfig::default());
    let out = tempfile::tempdir().unwrap();
    let args = short_run(
        &demo.url(),
        out.path(),
        &["--duration", "5s", "--ramp-up", "1s", "--ramp-down", "1s"],
    );
    let mut args = args;
    args.extend(strings(&["--dashboard-linger", "60s"]));
    let run = LiveRun::start(&args);
    let (dash, metrics) = (run.dashboard.unwrap(), run.metrics.unwrap());
    let mut events = Events::open(dash);
    let mut scrape = |intervals: u64| {
        events.until(|p| p["intervals"].as_u64() >= Some(intervals) || p["ended"] == true);
        let (status, headers, body) = get(metrics, "/metrics");
        assert_eq!(status, 200, "{body}");
        assert!(
            headers["content-type"].starts_with("application/openmetrics-text; version=1.0.0"),
            "{headers:?}"
        );
        body
    };
    let early = scrape(1);
    let later = scrape(3);
    events.until(|p| p["ended"] == true);
    let (_, _, last) = get(metrics, "/metrics");
    let parsed = parse(&py, &[&early, &later, &last]);
    let (a, b, c) = (&parsed[0], &parsed[1], &parsed[2]);

    for (before, after) in [(a, b), (b, c)] {
        let (before, after) = (samples(before, "counter"), samples(after, "counter"));
        assert!(before.len() > 20, "{before:?}");
        for (key, v) in &before {
            let now = after.get(key).unwrap_or_else(|| panic!("{key} went away"));
            assert!(now >= v, "counter {key} fell from {v} to {now}");
        }
    }
    let sent = |f: &[Value]| value(f, "soak_messages_sent_total", Some(("message", "message")));
    assert!(
        sent(a) > 0.0 && sent(b) > sent(a),
        "messages are counted as they go"
    );
    for families in &parsed {
        assert_cumulative(families);
    }
    for families in [a, b] {
        assert_eq!(value(families, "soak_phase", Some(("phase", "ended"))), 0.0);
    }
    assert_eq!(value(c, "soak_phase", Some(("phase", "ended"))), 1.0);
    assert!(value(b, "soak_elapsed_seconds", None) > value(a, "soak_elapsed_seconds", None));
    assert_eq!(
        value(a, "soak_active_users", None),
        value(b, "soak_active_users", None)
    );

    let s = summary(out.path());
    let message = &s["messages"][0];
    assert_eq!(message["name"], "message");
    let num = |v: &Value| v.as_f64().unwrap();
    let count = |name: &str| value(c, name, Some(("message", "message")));
    assert_eq!(
        count("soak_latency_seconds_count"),
        num(&message["latency_ms"]["count"])
    );
    assert_eq!(sent(c), num(&message["sent"]));
    assert_eq!(
        count("soak_replies_received_total"),
        num(&message["received"])
    );
    assert_eq!(
        value(c, "soak_connects_total", None),
        num(&s["connects"]["successes"])
    );
    assert_eq!(
        value(c, "soak_connect_seconds_count", None),
        num(&s["connects"]["successes"]),
        "one connect time per connection"
    );
    assert_eq!(
        value(c, "soak_dropped_samples_total", None),
        num(&s["totals"]["dropped_samples"])
    );
    // Every message's latency lies at or under the bucket the summary's max falls in.
    let max_s = num(&message["latency_ms"]["max"]) / 1000.0;
    let at_max = c
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter(|s| {
            s["name"] == "soak_latency_seconds_bucket" && s["labels"]["message"] == "message"
        })
        .filter(|s| {
            s["labels"]["le"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap_or(f64::INFINITY)
                >= max_s
        })
        .map(|s| s["value"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(at_max, count("soak_latency_seconds_count"));
    for s in c.iter().flat_map(|f| f["samples"].as_array().unwrap()) {
        assert_eq!(s["labels"]["profile"], "smoke", "{s}");
        assert_eq!(s["labels"]["segment"], "seg0of1", "{s}");
    }

    assert_eq!(
        run.interrupt(),
        Some(0),
        "Ctrl-C ends the linger; the run passed"
    );
}

/// Bytes that are not HTTP get 400, unknown paths 404, at both listeners, while event
/// streams nobody reads stay open; the run still ends on time with nothing dropped.
#[test]
fn hostile_clients_of_the_listeners_cost_the_run_nothing() {
    let demo = demo_on_own_thread(DemoConfig::default());
    let out = tempfile::tempdir().unwrap();
    let args = short_run(
        &demo.url(),
        out.path(),
        &["--duration", "4s", "--ramp-up", "0s", "--ramp-down", "0s"],
    );
    let mut run = LiveRun::start(&args);
    let (dash, metrics) = (run.dashboard.unwrap(), run.metrics.unwrap());
    let mut events = Events::open(dash);
    events.until(|p| p["intervals"].as_u64() >= Some(1));
    // Slow browsers: subscribed, never reading a byte.
    let idle: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut tcp = connect(dash);
            tcp.write_all(b"GET /events HTTP/1.1\r\nHost: soak\r\n\r\n")
                .unwrap();
            tcp
        })
        .collect();
    // A request that never finishes its headers.
    let mut half = connect(metrics);
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: so")
        .unwrap();
    for addr in [dash, metrics] {
        let garbage = raw(addr, b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n");
        assert!(garbage.starts_with("HTTP/1.1 400"), "{addr}: {garbage:?}");
        let line = raw(
            addr,
            b"GET / HTTP/1.1\r\nHost: soak\r\nContent-Length: x\r\n\r\n",
        );
        assert!(line.starts_with("HTTP/1.1 400"), "{addr}: {line:?}");
        let (status, _, body) = get(addr, "/no/such/page");
        assert_eq!(status, 404, "{addr}: {body}");
    }
    let (status, _, body) = get(dash, "/report");
    assert_eq!(status, 404, "no report before the end: {body}");
    let (status, _, body) = get(metrics, "/");
    assert_eq!(status, 200);
    assert!(body.contains("/metrics"), "{body}");
    let started = Instant::now();
    assert_eq!(run.wait(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the run ended on its schedule"
    );
    drop((idle, half));
    let s = summary(out.path());
    assert_eq!(s["totals"]["dropped_samples"], 0);
    assert_eq!(s["verdict"]["result"], "pass", "{s}");
}

/// A port already in use, at either listener, is exit 2 before any load: the target never
/// sees a connection. A malformed address is exit 2 too.
#[test]
fn a_listener_port_in_use_is_exit_2_before_any_load() {
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let url = format!("ws://{}/", target.local_addr().unwrap());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().map(|a| a.to_string()).unwrap();
    let out = tempfile::tempdir().unwrap();
    for (flag, addr) in [
        ("--dashboard", taken.as_str()),
        ("--metrics-listen", taken.as_str()),
        ("--dashboard", "127.0.0.1:notaport"),
        ("--metrics-listen", "nowhere"),
    ] {
        let output = soak_bin()
            .args([
                "--url",
                &url,
                "--users",
                "2",
                "--duration",
                "2s",
                "--ramp-up",
                "0s",
                "--ramp-down",
                "0s",
                flag,
                addr,
            ])
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {addr}: {err}");
        assert!(err.contains(flag), "the error names the flag: {err}");
        assert!(
            matches!(target.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{flag} {addr}: the target saw a connection"
        );
    }
    assert!(
        std::fs::read_dir(out.path()).unwrap().next().is_none(),
        "no results folder"
    );
}

/// The Chrome DevTools protocol over one WebSocket: commands by id, events skipped.
struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    id: u64,
}

impl Cdp {
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        use futures_util::{SinkExt, StreamExt};
        self.id += 1;
        let mut msg = serde_json::json!({"id": self.id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = Value::from(s);
        }
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::text(
                msg.to_string(),
            ))
            .await
            .unwrap();
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer in {WAIT:?}"))
                .unwrap()
                .unwrap();
            let Ok(text) = frame.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap();
            if v["id"] == self.id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Waits for a page event of the session (after `Page.enable`).
    async fn event(&mut self, name: &str) {
        use futures_util::StreamExt;
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {name} in {WAIT:?}"))
                .unwrap()
                .unwrap();
            let Ok(text) = frame.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap();
            if v["method"] == name {
                return;
            }
        }
    }
}

/// JavaScript that resolves, once `condition` holds for `#live` (checked on every change
/// of its attributes, no timers), to what the page shows.
fn when(condition: &str) -> String {
    format!(
        r#"new Promise(function (resolve) {{
  var live = document.getElementById('live');
  function state() {{
    var charts = Array.prototype.map.call(document.querySelectorAll('#report .chart'), function (c) {{
      var lines = Array.prototype.filter.call(c.querySelectorAll('polyline'), function (p) {{
        var s = p.getAttribute('stroke'); return s !== '#000000' && s !== '#EBEBEB';
      }}).map(function (p) {{ return p.getAttribute('points').trim().split(/\s+/).length; }});
      return {{title: c.dataset.title, points: +c.dataset.points, lines: lines}};
    }});
    var link = document.querySelector('#link a');
    return {{phase: live.dataset.phase, elapsed: +live.dataset.elapsed,
      intervals: +live.dataset.intervals, status: live.dataset.status,
      shownElapsed: document.getElementById('elapsed').textContent,
      verdict: document.getElementById('verdict').textContent,
      label: document.getElementById('vlabel').textContent,
      link: link ? link.getAttribute('href') : null,
      marker: window.soakTestMarker || null, charts: charts}};
  }}
  var observer = new MutationObserver(check);
  function check() {{
    if ({condition}) {{ observer.disconnect(); window.soakTestMarker = 'same page'; resolve(state()); }}
  }}
  observer.observe(live, {{attributes: true}});
  check();
}})"#
    )
}

/// The live page in headless Chromium: after two intervals the charts hold a point for
/// each, phase and elapsed time moved on without a reload, and after the run it shows the
/// final verdict and links the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser_follows_the_run_to_its_verdict() {
    let Some(browser) = chromium() else { return };
    let profile = tempfile::tempdir().unwrap();
    let mut chrome = tokio::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .args([
            "--disable-background-networking",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ws_url = {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(chrome.stderr.take().unwrap()).lines();
        let found = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(at) = line.find("ws://") {
                    return line[at..].trim().to_owned();
                }
            }
            panic!("chromium exited without a DevTools address");
        });
        let url = found.await.expect("chromium announces DevTools");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        url
    };
    let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap();
    let mut cdp = Cdp { ws, id: 0 };

    let demo = demo_on_own_thread(DemoConfig::default());
    let out = tempfile::tempdir().unwrap();
    let mut args = short_run(
        &demo.url(),
        out.path(),
        &["--duration", "6s", "--ramp-up", "2s", "--ramp-down", "2s"],
    );
    args.extend(strings(&["--dashboard-linger", "60s"]));
    let run = LiveRun::start(&args);
    let page_url = format!("http://{}/", run.dashboard.unwrap());

    let target = cdp
        .call(
            None,
            "Target.createTarget",
            serde_json::json!({"url": "about:blank"}),
        )
        .await;
    let attached = cdp
        .call(
            None,
            "Target.attachToTarget",
            serde_json::json!({"targetId": target["targetId"], "flatten": true}),
        )
        .await;
    let session = attached["sessionId"].as_str().unwrap().to_owned();
    let s = Some(session.as_str());
    cdp.call(s, "Page.enable", serde_json::json!({})).await;
    cdp.call(s, "Page.navigate", serde_json::json!({"url": page_url}))
        .await;
    cdp.event("Page.loadEventFired").await;
    let mut state = async |condition: &str| -> Value {
        let params = serde_json::json!({
            "expression": when(condition), "awaitPromise": true, "returnByValue": true
        });
        let r = cdp.call(s, "Runtime.evaluate", params).await;
        assert!(r.get("exceptionDetails").is_none(), "{r}");
        r["result"]["value"].clone()
    };

    let first = state("+live.dataset.intervals >= 1").await;
    let second = state(&format!(
        "+live.dataset.intervals >= {} && live.dataset.phase !== '{}'",
        first["intervals"].as_u64().unwrap() + 2,
        first["phase"].as_str().unwrap()
    ))
    .await;
    assert_eq!(
        second["marker"], "same page",
        "updated in place, not reloaded"
    );
    assert!(
        second["elapsed"].as_f64() > first["elapsed"].as_f64(),
        "{first} → {second}"
    );
    assert_ne!(second["shownElapsed"], first["shownElapsed"]);
    assert_eq!(second["status"], "running");
    assert_eq!(second["label"], "verdict so far");
    let intervals = second["intervals"].as_u64().unwrap();
    let charts = second["charts"].as_array().unwrap();
    assert!(charts.len() >= 5, "{second}");
    for wanted in ["Active users", "Latency", "Errors", "Probe", "Tester lag"] {
        let chart = charts
            .iter()
            .find(|c| c["title"].as_str().unwrap().starts_with(wanted))
            .unwrap_or_else(|| panic!("no {wanted} chart: {second}"));
        assert!(
            chart["points"].as_u64() >= Some(intervals),
            "{wanted}: a point per interval: {chart}"
        );
        let drawn = chart["lines"].as_array().unwrap();
        assert!(
            drawn.iter().any(|n| n.as_u64() >= Some(intervals)),
            "{wanted}: the drawn line has a vertex per interval: {chart}"
        );
    }

    let last = state("live.dataset.status === 'ended'").await;
    assert_eq!(last["verdict"], "pass", "{last}");
    assert_eq!(last["label"], "final verdict");
    assert_eq!(last["link"], "report");
    assert_eq!(last["marker"], "same page");
    let (status, _, report) = get(run.dashboard.unwrap(), "/report");
    assert_eq!(status, 200);
    let on_disk = std::fs::read_to_string(run_dir(out.path()).join("report.html")).unwrap();
    assert_eq!(report, on_disk, "the link serves the run's report.html");
    assert_eq!(run.interrupt(), Some(0));
    let _ = chrome.kill().await;
}

/// The Prometheus server, when installed (Debian's `prometheus`); in CI it must be.
fn prometheus() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus is needed in CI"
        );
        eprintln!("skipped: prometheus is not installed (apt-get install prometheus)");
    }
    found
}

/// A PromQL instant query's vector, each sample as (labels, value).
fn promql(at: SocketAddr, query: &str) -> Vec<(Value, f64)> {
    let mut encoded = String::new();
    for b in query.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let (status, _, body) = get(at, &format!("/api/v1/query?query={encoded}"));
    assert_eq!(status, 200, "{query}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{query}: {body}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let value = s["value"][1].as_str().unwrap().parse().unwrap();
            (s["metric"].clone(), value)
        })
        .collect()
}

/// Two segments of one run, each with its own `/metrics`, scraped every second by a real
/// Prometheus: `histogram_quantile` over the buckets of both agrees with `soak merge`'s p99
/// to the bucket, the counters add up to the merged totals, and the sampling segment
/// reports the target's memory.
#[test]
fn prometheus_aggregates_two_segments_into_the_merged_run() {
    let Some(prometheus) = prometheus() else {
        return;
    };
    let (mut target, line) =
        crate::common::spawn_announced(soak_bin().args(["mock", "--demo", "--demo-delay", "3ms"]));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    let out = tempfile::tempdir().unwrap();
    let segments = out.path().join("segments");
    let mut runs = Vec::new();
    for i in 0..2 {
        let mut args = strings(&["--url", &url, "--users", "6", "--interval", "1s"]);
        args.extend(strings(&[
            "--duration",
            "6s",
            "--ramp-up",
            "1s",
            "--ramp-down",
            "1s",
        ]));
        args.extend(strings(&[
            "--segment",
            &format!("{i}/2"),
            "--start-at",
            "+6s",
        ]));
        args.extend(strings(&["--target-pid", &target.id().to_string()]));
        args.extend(strings(&["--baseline", "0s", "--cooldown", "0s"]));
        args.extend(strings(&["--metrics-listen", "127.0.0.1:0", "--quiet"]));
        args.extend(strings(&["--dashboard-linger", "60s", "--out"]));
        args.push(segments.to_str().unwrap().to_owned());
        runs.push(LiveRun::start(&args));
    }
    let scrape_targets: Vec<String> = runs
        .iter()
        .map(|r| format!("'{}'", r.metrics.unwrap()))
        .collect();
    let config = out.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: soak\n    static_configs:\n      - targets: [{}]\n",
            scrape_targets.join(", ")
        ),
    )
    .unwrap();
    let mut server = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            out.path().join("tsdb").display()
        ))
        .args(["--web.listen-address=127.0.0.1:0", "--log.level=info"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines(server.stderr.take().unwrap());
    let mut api: Option<SocketAddr> = None;
    loop {
        let line = rx.recv_timeout(WAIT).expect("prometheus starts");
        if line.contains("msg=\"Listening on\"") {
            api = line
                .rsplit("address=")
                .next()
                .and_then(|a| a.trim().parse().ok());
        }
        if line.contains("Server is ready to receive web requests") {
            break;
        }
    }
    let api = api.expect("prometheus says where it listens");

    // Prometheus has nothing but its own scrapes to wait on: ask until both segments'
    // ended phase has been scraped (bounded).
    let deadline = Instant::now() + Duration::from_secs(40);
    while promql(api, r#"soak_phase{phase="ended"} == 1"#).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "both segments ended in Prometheus"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let p99 = promql(
        api,
        "histogram_quantile(0.99, sum by (le) (rate(soak_latency_seconds_bucket[5m])))",
    );
    let sent = promql(api, "sum(soak_messages_sent_total)");
    let rss = promql(api, "soak_target_resident_memory_bytes");
    let _ = server.kill();
    let _ = server.wait();
    for run in runs {
        assert_eq!(run.interrupt(), Some(0));
    }
    let _ = target.kill();
    let _ = target.wait();

    let folders: Vec<_> = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.ends_with("latest"))
        .collect();
    assert_eq!(folders.len(), 2, "{folders:?}");
    let merged = out.path().join("merged");
    let output = soak_bin()
        .arg("merge")
        .args(&folders)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let s = summary(&merged);
    let merged_p99 = s["latency_ms"]["run"]["p99"].as_f64().unwrap() / 1000.0;
    let promql_p99 = p99[0].1;
    eprintln!("p99: PromQL over both segments {promql_p99} s, soak merge {merged_p99} s");
    // The bucket the merged p99 falls in: Prometheus interpolates inside it.
    let bounds = soak::live::openmetrics::BOUNDS;
    let upper = bounds.iter().copied().find(|b| *b >= merged_p99).unwrap();
    let lower = bounds
        .iter()
        .copied()
        .filter(|b| *b < upper)
        .fold(0.0, f64::max);
    assert!(
        promql_p99 >= lower && promql_p99 <= upper,
        "PromQL p99 {promql_p99} s, merged p99 {merged_p99} s: not in the same bucket ({lower}, {upper}]"
    );
    assert_eq!(sent[0].1, s["totals"]["sent"].as_f64().unwrap());
    assert_eq!(
        rss.len(),
        1,
        "only the sampling segment reports the target: {rss:?}"
    );
    assert_eq!(rss[0].0["segment"], "seg0of2");
    assert!(rss[0].1 > 1e6, "{rss:?}");
}
