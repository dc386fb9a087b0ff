//! Rolling up: the interval's snapshot at each tick, and the run's totals with the stall,
//! memory and tester verdicts made from what the aggregator kept.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::{PerMsg, State, TESTER_WARMUP};
use crate::analysis::memory::{self, MemoryReport, Windows};
use crate::analysis::stall;
use crate::metrics::events::{Event, Record};
use crate::metrics::snapshot::{
    IntervalSnapshot, LatencyStats, MsgCounters, MsgStats, RunTotals, Tagged, new_histogram,
};

impl PerMsg {
    /// Ends this message's interval: its figures, its histograms added to the interval's
    /// (`all_*`) and the run's, tagged copies for `latency.hlog`; then starts the next one.
    pub(super) fn roll(
        &mut self,
        all_ttlf: &mut Histogram<u64>,
        all_ttff: &mut Histogram<u64>,
        hlog: &mut Vec<Tagged>,
    ) -> MsgStats {
        let stats = MsgStats {
            counters: self.interval,
            latency: LatencyStats::of(&self.ttlf),
            ttff: LatencyStats::of(&self.ttff),
        };
        // Same precision everywhere (and auto-resizing), so adding cannot fail.
        let _ = all_ttlf.add(&self.ttlf);
        let _ = all_ttff.add(&self.ttff);
        let _ = self.run_ttlf.add(&self.ttlf);
        let _ = self.run_ttff.add(&self.ttff);
        if !self.ttlf.is_empty() {
            hlog.push(Tagged {
                tag: format!("{}.ttlf", self.name),
                histogram: self.ttlf.clone(),
            });
        }
        if self.streams && !self.ttff.is_empty() {
            hlog.push(Tagged {
                tag: format!("{}.ttff", self.name),
                histogram: self.ttff.clone(),
            });
        }
        self.ttlf.reset();
        self.ttff.reset();
        self.total += self.interval;
        self.interval = MsgCounters::default();
        stats
    }
}

impl State {
    /// Closes the interval ending at offset `end`.
    pub(super) fn rotate(&mut self, end: Duration, last: bool) -> (IntervalSnapshot, RunTotals) {
        if last {
            for stall in self.stalls().0 {
                let at = Duration::from_secs_f64(stall.start_s);
                self.events.out.push(Record {
                    at,
                    event: Event::Stall(stall),
                });
            }
        }
        self.events.flush_repeats(end, last);
        let probe = LatencyStats::of(&self.probe);
        let _ = self.run_probe.add(&self.probe);
        self.probe.reset();
        let lag_max_ms = f64::from(std::mem::take(&mut self.interval_lag_max_us)) / 1000.0;
        let mut histograms = Vec::new();
        let fanout = LatencyStats::of(&self.interval_fanout);
        let last_member = LatencyStats::of(&self.interval_last_member);
        for (tag, interval, run) in [
            ("fanout", &mut self.interval_fanout, &mut self.fanout),
            (
                "fanout.first",
                &mut self.interval_first_member,
                &mut self.first_member,
            ),
            (
                "fanout.last",
                &mut self.interval_last_member,
                &mut self.last_member,
            ),
        ] {
            if !interval.is_empty() {
                let _ = run.add(&*interval);
                histograms.push(Tagged {
                    tag: String::from(tag),
                    histogram: interval.clone(),
                });
                interval.reset();
            }
        }
        self.scratch.reset();
        let mut scratch_ttff = new_histogram();
        let messages = self
            .msgs
            .iter_mut()
            .map(|m| m.roll(&mut self.scratch, &mut scratch_ttff, &mut histograms))
            .collect();
        self.totals += self.interval;
        let start = self.interval_start;
        let snapshot = IntervalSnapshot {
            start,
            end,
            wall_end: SystemTime::now(),
            phase: self
                .setup
                .plan
                .phase_at(start + end.saturating_sub(start) / 2),
            active_users: self.totals.active_users(),
            open_connections: self.totals.open_connections(),
            counters: std::mem::take(&mut self.interval),
            latency: LatencyStats::of(&self.scratch),
            ttff: LatencyStats::of(&scratch_ttff),
            fanout,
            last_member,
            messages,
            histograms,
            events: std::mem::take(&mut self.events.out),
            probe,
            lag_max_ms,
            readings: std::mem::take(&mut self.interval_readings),
        };
        self.interval_start = end;
        (snapshot, self.totals(end))
    }

    fn memory(&self) -> MemoryReport {
        let m = self.setup.memory;
        let readings = (&self.target_readings[..], &self.target_work[..]);
        let mut report = memory::report(readings, m.windows, m.rule, m.limit_mb);
        (report.gaps, report.last_gap) = (self.target_gaps.0, self.target_gaps.1.clone());
        report
    }

    /// soak's own memory report. Its warm-up is at least [`TESTER_WARMUP`]: histograms,
    /// buffers and the allocator's arenas grow to the run's working size in the first tens
    /// of seconds, which a short run would otherwise read as a leak of soak's (a 30 s run
    /// at 94,000 msg/s: "leak, 98 MB/h" before this).
    fn tester_memory(&self) -> MemoryReport {
        let m = self.setup.memory;
        let windows = Windows {
            warmup: m.windows.warmup.max(TESTER_WARMUP),
            ..m.windows
        };
        memory::report((&self.tester_readings, &[]), windows, m.rule, None)
    }

    /// Stalls in the probe bins so far, with abnormal closes noted beside them, and how
    /// long soak itself was late. The bins are gathered into one buffer kept across
    /// intervals: a fresh one each second, growing with the run, fragmented the heap.
    fn stalls(&mut self) -> (Vec<stall::Stall>, Duration) {
        let mut held = std::mem::take(&mut self.bin_scratch);
        self.bins.all_into(&mut held);
        let rule = self.setup.stall_rule;
        let mut stalls = stall::detect(&held, rule);
        stall::annotate(&mut stalls, &self.abnormal_closes);
        let tester_bound = stall::tester_bound_time(&held, rule);
        self.bin_scratch = held;
        (stalls, tester_bound)
    }

    pub(super) fn totals(&mut self, elapsed: Duration) -> RunTotals {
        let (stalls, tester_bound) = self.stalls();
        self.scratch.reset();
        let mut all_ttff = new_histogram();
        for m in &self.msgs {
            let _ = self.scratch.add(&m.run_ttlf);
            let _ = all_ttff.add(&m.run_ttff);
        }
        RunTotals {
            elapsed,
            counters: self.totals,
            latency_run: LatencyStats::of(&self.scratch),
            latency_hold: LatencyStats::of(&self.hold),
            latency_corrected: self
                .setup
                .correct_micros
                .and_then(|_| LatencyStats::of(&self.corrected)),
            ttff_run: LatencyStats::of(&all_ttff),
            ttff_hold: LatencyStats::of(&self.hold_ttff),
            messages: self
                .msgs
                .iter()
                .map(|m| MsgStats {
                    counters: m.total,
                    latency: LatencyStats::of(&m.run_ttlf),
                    ttff: LatencyStats::of(&m.run_ttff),
                })
                .collect(),
            close_codes: self.close_codes.clone(),
            probe: LatencyStats::of(&self.run_probe),
            lag: LatencyStats::of(&self.lag),
            stalls,
            memory: self.setup.memory.target.then(|| self.memory()),
            tester_memory: (!self.tester_readings.is_empty()).then(|| self.tester_memory()),
            tester_bound,
            connect_time: LatencyStats::of(&self.connect),
            join_time: LatencyStats::of(&self.join),
            fanout: LatencyStats::of(&self.fanout),
            first_member: LatencyStats::of(&self.first_member),
            heartbeat_late: LatencyStats::of(&self.heartbeat_late),
            last_member: LatencyStats::of(&self.last_member),
            dropped_samples: self.dropped.load(Ordering::Relaxed),
        }
    }
}
