//! Benchmark (not a test): heap allocations per message in steady state.
//!
//! Two in-process runs against the demo target (its own thread, same process) with the
//! same users and rate but different lengths; the difference in allocations divided by the
//! difference in messages is the marginal cost per message, with start-up and shutdown
//! cancelled out. Run with `cargo bench --bench alloc_per_message`. The demo target's own
//! allocations (it answers every message) are included, so the figure is an upper bound
//! for soak's side.
#![allow(missing_docs, clippy::unwrap_used)]

use std::alloc::System;

use clap::Parser;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn run(seconds: u32) -> (usize, u64) {
    let out = tempfile::tempdir().unwrap();
    let argv = [
        "soak",
        "--quiet",
        "--users",
        "50",
        "--rate",
        "20/s",
        "--duration",
        &format!("{seconds}s"),
        "--ramp-up",
        "0s",
        "--ramp-down",
        "0s",
        "--probes",
        "0",
        "--out",
        out.path().to_str().unwrap(),
    ];
    let cli = soak::cli::Cli::try_parse_from(argv).unwrap();
    let runtime = soak::runtime().unwrap();
    let region = Region::new(GLOBAL);
    runtime.block_on(soak::run(cli)).unwrap();
    let allocations = region.change().allocations;
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

fn main() {
    let (short_allocs, short_msgs) = run(3);
    let (long_allocs, long_msgs) = run(8);
    let per_1000 = (long_allocs - short_allocs) as f64 / (long_msgs - short_msgs) as f64 * 1000.0;
    println!(
        "runs: 3 s → {short_allocs} allocations for {short_msgs} messages sent+received; 8 s → {long_allocs} for {long_msgs}"
    );
    println!(
        "allocations per 1,000 messages (sent + received, steady state, demo target included): {per_1000:.0}"
    );
}
