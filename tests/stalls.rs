//! The event-loop blocking check: probes find stalls, their count and length, and an
//! app-level probe finds a handler that blocks while pings are answered elsewhere.

use std::time::Duration;

use soak_mocks::demo::DemoConfig;

use soak::analysis::stall;
use soak::metrics::run_data::file;
use soak::metrics::snapshot::{LatencyStats, new_histogram};

use crate::common::{demo_on_own_thread, events, run_dir, soak, summary, timeseries};

/// `--users 5 --rate 5/s` for 5 s with no ramps: a moderate load beside the probes.
fn args(url: &str) -> Vec<String> {
    let line =
        format!("--url {url} --users 5 --rate 5/s --duration 5s --ramp-up 0s --ramp-down 0s");
    line.split_whitespace().map(String::from).collect()
}

async fn run(config: DemoConfig, extra: &[&str]) -> serde_json::Value {
    let demo = demo_on_own_thread(config);
    let out = tempfile::tempdir().unwrap();
    let mut argv = args(&demo.url());
    argv.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    soak(out.path(), &argv).await.unwrap();
    let s = summary(out.path());
    let rows = timeseries(out.path());
    assert!(
        rows.iter().any(|r| !r["probe_p99_ms"].is_empty()),
        "probe column filled"
    );
    let stall_events = events(out.path())
        .iter()
        .filter(|e| e["event"] == "stall")
        .count();
    assert_eq!(
        stall_events,
        s["stalls"]["list"].as_array().unwrap().len(),
        "every stall is in events.jsonl"
    );
    same_from_run_data(out.path(), &s);
    s
}

/// The run's `run-data.json` reads back, and the summary's figures follow from it alone:
/// counts, the latency percentiles of its histograms, the stalls of its probe bins.
fn same_from_run_data(out: &std::path::Path, s: &serde_json::Value) {
    let text = std::fs::read_to_string(run_dir(out).join("run-data.json")).unwrap();
    let data = file::from_json(&text).unwrap();
    assert_eq!(data.counters.sent, s["totals"]["sent"].as_u64().unwrap());
    assert_eq!(
        data.counters.received,
        s["totals"]["received"].as_u64().unwrap()
    );
    let mut all = new_histogram();
    for m in &data.messages {
        all.add(&m.ttlf).unwrap();
    }
    let stats = serde_json::to_value(LatencyStats::of(&all)).unwrap();
    assert_eq!(stats, s["latency_ms"]["run"], "latency from the run data");
    let probe = serde_json::to_value(LatencyStats::of(&data.probe)).unwrap();
    assert_eq!(
        probe["p99"], s["probes"]["rtt_ms"]["p99"],
        "probe p99: {}",
        s["probes"]
    );
    let stalls = stall::detect(&data.bins.all(), data.bins.rule());
    let listed = s["stalls"]["list"].as_array().unwrap();
    assert_eq!(
        stalls.len(),
        listed.len(),
        "stalls from the run data's bins"
    );
    for (from_data, listed) in stalls.iter().zip(listed) {
        assert_eq!(serde_json::json!(from_data.start_s), listed["start_s"]);
        assert_eq!(serde_json::json!(from_data.length_ms), listed["length_ms"]);
    }
}

fn blocking(separate_handler: bool) -> DemoConfig {
    DemoConfig {
        block_for: Duration::from_millis(300),
        block_every: Duration::from_secs(1),
        separate_handler,
        ..DemoConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_loop_gives_one_stall_per_block() {
    let s = run(blocking(false), &[]).await;
    let stalls = &s["stalls"];
    // Blocks at 1, 2, 3, 4 s after the demo started (the run starts a few ms later), and
    // maybe one at the very end: 4, ±1.
    let count = stalls["count"].as_u64().unwrap();
    assert!((3..=5).contains(&count), "stall count {count}: {stalls}");
    // The longest stall runs from the first late probe send to the last late answer: the
    // 300 ms block, less up to one probe spacing (25 ms) at its start. The tolerance
    // (250–380 ms) leaves room for a busy 2-core machine without letting a wrong length by.
    let longest = stalls["longest_ms"].as_f64().unwrap();
    assert!(
        (250.0..=380.0).contains(&longest),
        "longest {longest} ms for 300 ms blocks"
    );
    assert_eq!(
        stalls["tester_bound_count"], 0,
        "soak was not the bottleneck: {s}"
    );
    assert!(s["verdict"]["reasons"].to_string().contains("stalled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_loop_has_no_stalls() {
    let s = run(DemoConfig::default(), &[]).await;
    assert_eq!(s["stalls"]["count"], 0, "{s}");
    assert!(s["probes"]["rtt_ms"]["p99"].as_f64().unwrap() < 50.0);
    assert_eq!(s["tester"]["bottleneck"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_level_probe_catches_a_handler_that_pings_do_not() {
    // Pings are answered on the I/O threads while the message loop blocks: pings look fine.
    let pings = run(blocking(true), &[]).await;
    assert_eq!(
        pings["stalls"]["count"], 0,
        "pings cannot see this stall: {pings}"
    );
    assert_eq!(pings["probes"]["kind"], "ping");
    let app = run(
        blocking(true),
        &["--probe-message", r#"{"id": {{id}}, "text": "probe"}"#],
    )
    .await;
    assert_eq!(app["probes"]["kind"], "message");
    let count = app["stalls"]["count"].as_u64().unwrap();
    assert!(
        (3..=5).contains(&count),
        "app-level probes see the blocks: {}",
        app["stalls"]
    );
}
