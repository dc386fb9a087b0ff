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

/// The demo target as a child process, and the URL it printed.
fn demo_target() -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["mock", "--demo", "--listen", "127.0.0.1:0"])
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
    let out = tempfile::tempdir().unwrap();
    let argv = [
        "soak",
        "--quiet",
        "--url",
        url,
        "--users",
        &USERS.to_string(),
        "--rate",
        &format!("{rate}/s"),
        "--duration",
        &format!("{SECONDS}s"),
        "--ramp-up",
        "0s",
        "--ramp-down",
        "0s",
        "--out",
        out.path().to_str().unwrap(),
    ];
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
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let messages = summary["totals"]["sent"].as_u64().unwrap()
        + summary["totals"]["received"].as_u64().unwrap();
    (allocations, messages)
}

/// The median of three runs at `rate`, and the spread of their allocation counts.
fn median_of_three(url: &str, rate: u32) -> ((usize, u64), usize) {
    let mut runs: Vec<(usize, u64)> = (0..3).map(|_| run(url, rate)).collect();
    runs.sort_unstable();
    println!("{USERS} users × {rate}/s for {SECONDS} s: (allocations, messages) {runs:?}");
    (runs[1], runs[2].0 - runs[0].0)
}

fn main() {
    let (mut target, url) = demo_target();
    let (low, high) = (10, 100);
    let ((low_allocs, low_msgs), low_spread) = median_of_three(&url, low);
    let ((high_allocs, high_msgs), high_spread) = median_of_three(&url, high);
    let _ = target.kill();
    let _ = target.wait();
    let messages = (high_msgs - low_msgs) as f64 / 1000.0;
    let per_1000 = (high_allocs as f64 - low_allocs as f64) / messages;
    // Fixed costs (start-up, per-second work) vary a little from run to run; that spread,
    // spread over the extra messages, is how far from zero the figure can be by noise alone.
    let noise = low_spread.max(high_spread) as f64 / messages;
    println!(
        "allocations per 1,000 messages (sent + received, marginal, soak only): {per_1000:.1} \
         (run-to-run noise ±{noise:.1})"
    );
}
