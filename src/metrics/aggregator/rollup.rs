//! Rolling up: the interval's snapshot at each tick, its data added to the run's, and the
//! run's totals analysed from that run data (`analysis::totals`).

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::{PerMsg, State};
use crate::analysis::totals::{self, Basis};
use crate::metrics::events::{Event, Record};
use crate::metrics::run_data::MsgData;
use crate::metrics::snapshot::{
    IntervalSnapshot, LatencyStats, MsgCounters, MsgStats, RunTotals, Tagged, new_histogram,
};

impl PerMsg {
    /// Ends this message's interval: its figures, its histograms added to the interval's
    /// (`all_*`) and the run's, tagged copies for `latency.hlog`; then starts the next one.
    pub(super) fn roll(
        &mut self,
        run: &mut MsgData,
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
        let _ = run.ttlf.add(&self.ttlf);
        let _ = run.ttff.add(&self.ttff);
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
        run.counters += self.interval;
        self.interval = MsgCounters::default();
        stats
    }
}

impl State {
    /// Closes the interval ending at offset `end`.
    pub(super) fn rotate(&mut self, end: Duration, last: bool) -> (IntervalSnapshot, RunTotals) {
        self.events.flush_repeats(end, last);
        let probe = LatencyStats::of(&self.probe);
        let _ = self.run.probe.add(&self.probe);
        let _ = self.run.connect.add(&self.interval_connect);
        let mut timing = Vec::new();
        for (tag, h) in [
            ("connect", &mut self.interval_connect),
            ("probe", &mut self.probe),
        ] {
            if !h.is_empty() {
                timing.push(Tagged {
                    tag: String::from(tag),
                    histogram: h.clone(),
                });
                h.reset();
            }
        }
        let lag_max_ms = f64::from(std::mem::take(&mut self.interval_lag_max_us)) / 1000.0;
        let mut histograms = Vec::new();
        let fanout = LatencyStats::of(&self.interval_fanout);
        let last_member = LatencyStats::of(&self.interval_last_member);
        let run = &mut self.run;
        for (tag, interval, total) in [
            ("fanout", &mut self.interval_fanout, &mut run.fanout),
            (
                "fanout.first",
                &mut self.interval_first_member,
                &mut run.first_member,
            ),
            (
                "fanout.last",
                &mut self.interval_last_member,
                &mut run.last_member,
            ),
        ] {
            if !interval.is_empty() {
                let _ = total.add(&*interval);
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
            .zip(run.messages.iter_mut())
            .map(|(m, r)| m.roll(r, &mut self.scratch, &mut scratch_ttff, &mut histograms))
            .collect();
        run.counters += self.interval;
        run.dropped_samples = self.dropped.load(Ordering::Relaxed);
        let totals = self.totals(end);
        if last {
            for stall in &totals.stalls {
                self.events.out.push(Record {
                    at: Duration::from_secs_f64(stall.start_s),
                    event: Event::Stall(stall.clone()),
                });
            }
        }
        let start = self.interval_start;
        let snapshot = IntervalSnapshot {
            start,
            end,
            wall_end: SystemTime::now(),
            phase: self
                .setup
                .plan
                .phase_at(start + end.saturating_sub(start) / 2),
            active_users: self.run.counters.active_users(),
            open_connections: self.run.counters.open_connections(),
            counters: std::mem::take(&mut self.interval),
            latency: LatencyStats::of(&self.scratch),
            ttff: LatencyStats::of(&scratch_ttff),
            fanout,
            last_member,
            messages,
            histograms,
            timing,
            events: std::mem::take(&mut self.events.out),
            probe,
            lag_max_ms,
            readings: std::mem::take(&mut self.interval_readings),
        };
        self.interval_start = end;
        (snapshot, totals)
    }

    /// The run's totals so far, analysed from its run data.
    pub(super) fn totals(&mut self, elapsed: Duration) -> RunTotals {
        let basis = Basis {
            corrected: self.setup.correct_micros.is_some(),
            stall_rule: self.setup.stall_rule,
            memory: self.setup.memory,
        };
        totals::totals(&self.run, &basis, elapsed, &mut self.bin_scratch)
    }
}
