//! The run's totals from its run data: percentiles of the merged histograms, the stalls,
//! the memory and tester verdicts. A pure function of run data and the run's settings, so
//! a live run, a finished one and a merge of segments are analysed alike.

use std::time::Duration;

use crate::analysis::leak::LeakRule;
use crate::analysis::memory::{self, MemoryReport, Windows};
use crate::analysis::stall::{self, Bin, StallRule};
use crate::metrics::run_data::RunData;
use crate::metrics::snapshot::{LatencyStats, MsgStats, RunTotals, new_histogram};

/// The shortest warm-up before soak's own memory is judged.
pub const TESTER_WARMUP: Duration = Duration::from_secs(60);

/// What the memory reports need.
#[derive(Debug, Clone, Copy)]
pub struct MemorySetup {
    /// Phase windows and warm-up.
    pub windows: Windows,
    /// Verdict thresholds.
    pub rule: LeakRule,
    /// The target's memory limit, MB.
    pub limit_mb: Option<f64>,
    /// Whether a target process is sampled.
    pub target: bool,
}

/// The run's settings the analysis reads.
#[derive(Debug, Clone, Copy)]
pub struct Basis {
    /// Closed model with a think time: the corrected histogram is reported.
    pub corrected: bool,
    /// Stall detection settings.
    pub stall_rule: StallRule,
    /// Memory verdict settings.
    pub memory: MemorySetup,
}

/// The totals of `data` after `elapsed`. `bins` is a buffer kept across calls (the bins
/// are gathered into it: a fresh one each interval, growing with the run, fragmented the
/// heap).
pub fn totals(
    data: &RunData,
    basis: &Basis,
    elapsed: Duration,
    bins: &mut Vec<(usize, Bin)>,
) -> RunTotals {
    let (stalls, tester_bound) = stalls(data, basis.stall_rule, bins);
    let mut all_ttlf = new_histogram();
    let mut all_ttff = new_histogram();
    for m in &data.messages {
        let _ = all_ttlf.add(&m.ttlf);
        let _ = all_ttff.add(&m.ttff);
    }
    RunTotals {
        elapsed,
        counters: data.counters,
        latency_run: LatencyStats::of(&all_ttlf),
        latency_hold: LatencyStats::of(&data.hold),
        latency_corrected: basis
            .corrected
            .then(|| LatencyStats::of(&data.corrected))
            .flatten(),
        ttff_run: LatencyStats::of(&all_ttff),
        ttff_hold: LatencyStats::of(&data.hold_ttff),
        messages: data
            .messages
            .iter()
            .map(|m| MsgStats {
                counters: m.counters,
                latency: LatencyStats::of(&m.ttlf),
                ttff: LatencyStats::of(&m.ttff),
            })
            .collect(),
        close_codes: data.close_codes.clone(),
        probe: LatencyStats::of(&data.probe),
        lag: LatencyStats::of(&data.lag),
        stalls,
        memory: basis
            .memory
            .target
            .then(|| target_memory(data, &basis.memory)),
        tester_memory: (!data.tester_readings.is_empty())
            .then(|| tester_memory(data, &basis.memory)),
        tester_bound,
        connect_time: LatencyStats::of(&data.connect),
        join_time: LatencyStats::of(&data.join),
        fanout: LatencyStats::of(&data.fanout),
        first_member: LatencyStats::of(&data.first_member),
        heartbeat_late: LatencyStats::of(&data.heartbeat_late),
        last_member: LatencyStats::of(&data.last_member),
        dropped_samples: data.dropped_samples,
    }
}

/// The target's memory report.
fn target_memory(data: &RunData, m: &MemorySetup) -> MemoryReport {
    let readings = (&data.target_readings[..], &data.target_work[..]);
    let mut report = memory::report(readings, m.windows, m.rule, m.limit_mb);
    (report.gaps, report.last_gap) = (data.target_gaps.0, data.target_gaps.1.clone());
    report
}

/// soak's own memory report. Its warm-up is at least [`TESTER_WARMUP`]: histograms,
/// buffers and the allocator's arenas grow to the run's working size in the first tens of
/// seconds, which a short run would otherwise read as a leak of soak's (a 30 s run at
/// 94,000 msg/s: "leak, 98 MB/h" before this).
fn tester_memory(data: &RunData, m: &MemorySetup) -> MemoryReport {
    let windows = Windows {
        warmup: m.windows.warmup.max(TESTER_WARMUP),
        ..m.windows
    };
    memory::report((&data.tester_readings, &[]), windows, m.rule, None)
}

/// Stalls in the probe bins, with abnormal closes noted beside them, and how long soak
/// itself was late.
fn stalls(
    data: &RunData,
    rule: StallRule,
    held: &mut Vec<(usize, Bin)>,
) -> (Vec<stall::Stall>, Duration) {
    data.bins.all_into(held);
    let mut stalls = stall::detect(held, rule);
    stall::annotate(&mut stalls, &data.abnormal_closes);
    let tester_bound = stall::tester_bound_time(held, rule);
    (stalls, tester_bound)
}
