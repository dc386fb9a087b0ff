//! Runs against the demo target, in-process: counts, latency, the ramp, timeouts.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use soak::Outcome;
use soak::plan::Plan;
use soak_mocks::demo::DemoConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{demo_target, soak_line, summary, timeseries};

fn delay(ms: u64) -> DemoConfig {
    DemoConfig {
        reply_delay: Duration::from_millis(ms),
        ..DemoConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramped_run_counts_messages_measures_latency_and_shows_the_ramp() {
    let addr = demo_target(delay(50)).await;
    let out = tempfile::tempdir().unwrap();
    let url = format!("ws://{addr}/ws");
    let outcome = soak_line(out.path(), &format!("--url {url} --users 5 --rate 10/s --duration 4s --ramp-up 1s --ramp-down 1s --interval 250ms"))
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Passed);

    let s = summary(out.path());
    assert_eq!(s["run"]["status"], "completed");
    assert_eq!(s["run"]["model"], "open");
    // Expected messages: each user's planned time on line × rate. Each user may lose up to
    // one message to its connect time and the start-offset that spreads users over a
    // period, so the tolerance is one message per user plus 10 %.
    let expected = planned_sends(5, 4, 1, 10.0);
    let sent = s["totals"]["sent"].as_f64().unwrap();
    assert!(
        (sent - expected).abs() <= 5.0 + expected * 0.1,
        "sent {sent}, expected {expected:.0}"
    );
    let received = s["totals"]["received"].as_f64().unwrap();
    let abandoned = s["totals"]["abandoned"].as_f64().unwrap();
    assert_eq!(
        received + abandoned,
        sent,
        "every message answered or cut off by its user's stop"
    );
    assert_eq!(s["totals"]["errors"], 0);
    assert_eq!(s["totals"]["dropped_samples"], 0);
    assert_eq!(s["connects"]["successes"], 5);

    let p50 = s["latency_ms"]["run"]["p50"].as_f64().unwrap();
    assert!(
        (50.0..150.0).contains(&p50),
        "p50 {p50} ms for a 50 ms reply delay"
    );
    let hold = &s["latency_ms"]["hold"];
    assert!(hold["count"].as_u64().unwrap() > 0 && hold["p50"].as_f64().unwrap() >= 50.0);
    let phases: Vec<_> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(phases, ["ramp-up", "hold", "ramp-down"]);
    assert_ramp_in_timeseries(out.path(), 5);
}

/// Messages the plan has `users` send at `rate`/s over `secs` with `ramp_s` ramps.
fn planned_sends(users: u32, secs: u64, ramp_s: u64, rate: f64) -> f64 {
    let ramp = Duration::from_secs(ramp_s);
    let plan = Plan::new(users, Duration::from_secs(secs), ramp, ramp);
    (0..users)
        .map(|i| (plan.stop_offset(i) - plan.start_offset(i)).as_secs_f64() * rate)
        .sum()
}

/// `timeseries.csv` shows active users climbing, holding at `users`, and falling, with
/// every interval's p50 at or above the demo's 50 ms reply delay.
fn assert_ramp_in_timeseries(out: &std::path::Path, users: u32) {
    let rows = timeseries(out);
    let active =
        |r: &std::collections::HashMap<String, String>| r["active_users"].parse::<u32>().unwrap();
    let in_phase = |name: &str| {
        rows.iter()
            .filter(|r| r["phase"] == name)
            .map(active)
            .collect::<Vec<_>>()
    };
    let (up, hold, down) = (in_phase("ramp-up"), in_phase("hold"), in_phase("ramp-down"));
    assert!(
        up.first().unwrap() < &users && up.windows(2).all(|w| w[0] <= w[1]),
        "ramp-up {up:?}"
    );
    assert!(
        !hold.is_empty() && hold.iter().all(|&n| n == users),
        "hold {hold:?}"
    );
    assert!(
        down.windows(2).all(|w| w[0] >= w[1]) && down.last().unwrap() < &users,
        "ramp-down {down:?}"
    );
    let p50_cells: Vec<f64> = rows
        .iter()
        .filter_map(|r| r["p50_ms"].parse().ok())
        .collect();
    assert!(
        p50_cells.len() >= 8 && p50_cells.iter().all(|&p| p >= 50.0),
        "{p50_cells:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tester_reports_its_own_cpu_and_memory() {
    let addr = demo_target(DemoConfig::default()).await;
    let out = tempfile::tempdir().unwrap();
    let url = format!("ws://{addr}/ws");
    let flags = format!(
        "--url {url} --users 5 --rate 20/s --duration 2s --ramp-up 0s --ramp-down 0s --sample-interval 200ms"
    );
    soak_line(out.path(), &flags).await.unwrap();
    let s = summary(out.path());
    let me = &s["tester"]["memory"];
    assert!(me["samples"].as_u64().unwrap() >= 5, "{me}");
    assert!(
        me["cpu_pct_mean"].as_f64().is_some()
            && me["cpu_pct_max"].as_f64().unwrap() >= me["cpu_pct_mean"].as_f64().unwrap()
    );
    assert!(s["tester"]["cores"].as_u64().unwrap() >= 1);
    let reasons = s["verdict"]["reasons"].to_string();
    assert!(reasons.contains("CPU while users ran: soak"), "{reasons}");
    let rows = timeseries(out.path());
    assert!(
        rows.iter().any(|r| !r["tester_rss_mb"].is_empty()),
        "soak's RSS per interval"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_slower_than_the_timeout_are_timeout_errors() {
    let addr = demo_target(delay(600)).await;
    let out = tempfile::tempdir().unwrap();
    let url = format!("ws://{addr}/ws");
    soak_line(out.path(), &format!("--url {url} --users 2 --rate 5/s --duration 2s --ramp-up 0s --ramp-down 0s --reply-timeout 200ms"))
    .await
    .unwrap();
    let s = summary(out.path());
    let timeouts = s["errors"]["timeout"].as_u64().unwrap();
    assert!(timeouts >= 8, "timeouts {timeouts}: {s}");
    assert_eq!(s["totals"]["received"], 0, "no reply was in time");
    assert!(s["totals"]["late_replies"].as_u64().unwrap() > 0);
    assert!(s["latency_ms"]["run"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_users_hold_connections_and_send_nothing() {
    let addr = demo_target(DemoConfig::default()).await;
    let out = tempfile::tempdir().unwrap();
    let url = format!("ws://{addr}/ws");
    soak_line(
        out.path(),
        &format!("--url {url} --users 20 --rate 0/s --duration 1s --ramp-up 0s --ramp-down 0s"),
    )
    .await
    .unwrap();
    let s = summary(out.path());
    assert_eq!(s["totals"]["sent"], 0);
    assert_eq!(s["connects"]["successes"], 20);
    assert_eq!(s["connects"]["success_ratio"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_url_the_built_in_demo_target_is_soaked() {
    let out = tempfile::tempdir().unwrap();
    soak_line(
        out.path(),
        "--users 2 --duration 1s --ramp-up 0s --ramp-down 0s --rate 10/s",
    )
    .await
    .unwrap();
    let s = summary(out.path());
    assert_eq!(s["run"]["demo_target"], true);
    assert!(s["totals"]["received"].as_u64().unwrap() > 5, "{s}");
    assert!(
        s["run"]["target"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_answers_pings_and_chat_frames() {
    let addr = demo_target(DemoConfig::default()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    ws.send(Message::Ping("p1".into())).await.unwrap();
    ws.send(Message::text(r#"{"id": 9, "text": "hi"}"#))
        .await
        .unwrap();
    let mut got_pong = false;
    let mut got_reply = false;
    while !(got_pong && got_reply) {
        match ws.next().await.unwrap().unwrap() {
            Message::Pong(p) => got_pong = &p[..] == b"p1",
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                got_reply = v["id"] == 9 && v["reply"] == "echo: hi";
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_in_flight_when_users_stop_are_still_measured() {
    // 400 ms replies, 10 messages/s: when the plan stops each user, about four requests
    // are in flight. They are waited for (up to the reply timeout, at most 10 s) and
    // measured, not dropped: a stall at the end of a run cannot hide either.
    let addr = demo_target(delay(400)).await;
    let out = tempfile::tempdir().unwrap();
    let url = format!("ws://{addr}/ws");
    soak_line(
        out.path(),
        &format!("--url {url} --users 3 --rate 10/s --duration 1500ms --ramp-up 0s --ramp-down 0s"),
    )
    .await
    .unwrap();
    let s = summary(out.path());
    assert_eq!(s["totals"]["abandoned"], 0, "{}", s["totals"]);
    assert_eq!(s["totals"]["received"], s["totals"]["sent"]);
    assert!(s["latency_ms"]["run"]["p50"].as_f64().unwrap() >= 400.0);
}
