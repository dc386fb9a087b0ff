//! Benchmark (not a test): heap allocations per message in steady state.
//!
//! Two in-process runs of the same length and users with everything a real run has on
//! (correlation, HDR, timeseries, the sampler, probes, the lag ticker) at two different
//! rates, against the demo target in its own process (so only soak's allocations are
//! counted). Start-up, shutdown and everything paid per second (interval snapshots, the
//! sampler's readings, probes) are the same in both runs, so the difference in allocations
//! divided by the difference in messages is the marginal cost of one message.
//! Run with `cargo bench --bench alloc_per_message`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use clap::Parser;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const USERS: u32 = 50;
const SECONDS: u32 = 6;

/// The demo target as a child process (with `extra` flags), and the URL it printed.
fn demo_target(extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["mock", "--demo", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the demo target");
    let out = BufReader::new(child.stdout.take().unwrap());
    let url = out
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split_whitespace()
                .find(|w| w.starts_with("ws://"))
                .map(str::to_string)
        })
        .expect("the demo target prints its ws:// URL");
    (child, url)
}

/// Allocations and messages (sent + received) of one run at `rate` messages/s per user.
fn run(url: &str, rate: u32) -> (usize, u64) {
    let summary = soak_once(url, rate, &[]);
    let messages = summary["totals"]["sent"].as_u64().unwrap()
        + summary["totals"]["received"].as_u64().unwrap();
    (summary["_allocations"].as_u64().unwrap() as usize, messages)
}

/// Allocations and room deliveries of one run of 50 users in rooms of 10 (every copy
/// timed, the sender's own included) at `rate` messages/s per user.
fn rooms_run(url: &str, rate: u32) -> (usize, u64) {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("rooms.toml");
    std::fs::write(
        &profile,
        "[rooms]\nsize = 10\ndeliver = \"/message\"\ninclude_sender = true\n",
    )
    .unwrap();
    let url = format!("{url}/room-{{{{room}}}}");
    let extra = [
        "--profile",
        profile.to_str().unwrap(),
        "--message",
        r#"{"message": "hi {{id}} from {{user}}"}"#,
        "--correlate",
        "/message",
    ];
    let summary = soak_once(&url, rate, &extra);
    let deliveries = summary["fanout"]["delivered"].as_u64().unwrap();
    (
        summary["_allocations"].as_u64().unwrap() as usize,
        deliveries,
    )
}

/// One in-process run; its summary, with the run's allocations under `_allocations`.
fn soak_once(url: &str, rate: u32, extra: &[&str]) -> serde_json::Value {
    let out = tempfile::tempdir().unwrap();
    let (users, rate, seconds) = (
        USERS.to_string(),
        format!("{rate}/s"),
        format!("{SECONDS}s"),
    );
    let mut argv = vec![
        "soak",
        "--quiet",
        "--url",
        url,
        "--users",
        &users,
        "--rate",
        &rate,
        "--duration",
        &seconds,
        "--ramp-up",
        "0s",
        "--ramp-down",
        "0s",
        "--out",
        out.path().to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let cli = soak::cli::Cli::try_parse_from(argv).unwrap();
    let runtime = soak::runtime().unwrap();
    let region = Region::new(GLOBAL);
    runtime.block_on(soak::run(cli)).unwrap();
    let allocations = region.change().allocations;
    drop(runtime);
    let dir = std::fs::read_dir(out.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    summary["_allocations"] = serde_json::json!(allocations);
    summary
}

/// The median of three runs of `one` at `rate`, and the spread of their allocation counts.
fn median_of_three(
    one: fn(&str, u32) -> (usize, u64),
    url: &str,
    rate: u32,
) -> ((usize, u64), usize) {
    let mut runs: Vec<(usize, u64)> = (0..3).map(|_| one(url, rate)).collect();
    runs.sort_unstable();
    println!("{USERS} users × {rate}/s for {SECONDS} s: (allocations, count) {runs:?}");
    (runs[1], runs[2].0 - runs[0].0)
}

/// Allocations per 1,000 of what `one` counts, marginal between two rates, with the noise.
fn marginal(one: fn(&str, u32) -> (usize, u64), url: &str) -> (f64, f64) {
    let (low, high) = (10, 100);
    let ((low_allocs, low_n), low_spread) = median_of_three(one, url, low);
    let ((high_allocs, high_n), high_spread) = median_of_three(one, url, high);
    let thousands = (high_n - low_n) as f64 / 1000.0;
    let per_1000 = (high_allocs as f64 - low_allocs as f64) / thousands;
    // Fixed costs (start-up, per-second work) vary a little from run to run; that spread,
    // spread over the extra count, is how far from zero the figure can be by noise alone.
    (per_1000, low_spread.max(high_spread) as f64 / thousands)
}

fn main() {
    let (mut target, url) = demo_target(&[]);
    let (per_1000, noise) = marginal(run, &url);
    let _ = target.kill();
    let _ = target.wait();
    println!(
        "allocations per 1,000 messages (sent + received, marginal, soak only): {per_1000:.1} \
         (run-to-run noise ±{noise:.1})"
    );
    let (mut target, url) = demo_target(&["--demo-rooms"]);
    let (per_1000, noise) = marginal(rooms_run, &url);
    let _ = target.kill();
    let _ = target.wait();
    println!(
        "allocations per 1,000 room deliveries (marginal, soak only): {per_1000:.1} \
         (run-to-run noise ±{noise:.1})"
    );
}
