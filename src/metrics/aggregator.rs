//! The one task that owns the histograms and counters and closes each interval.
//!
//! Sessions `try_send` samples; this task drains them in batches, records latencies into
//! the interval histogram (and the hold histogram during the hold), and on each tick merges
//! the interval into the run histogram with `add` and hands out a snapshot. When every
//! recorder is gone, it closes the last, partial interval and returns the totals.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at};
use tokio_util::sync::CancellationToken;

use crate::metrics::Sample;
use crate::metrics::snapshot::{
    Counters, IntervalSnapshot, LatencyStats, RunTotals, new_histogram,
};
use crate::plan::{Phase, Plan};

/// Samples taken off the channel per wake-up.
const BATCH: usize = 1024;

/// Where the aggregator hands its snapshots: called once per interval, on the aggregator's
/// task, so it must only queue the data (the writer thread does the I/O).
pub type Sink = Box<dyn FnMut(&IntervalSnapshot, &RunTotals) + Send>;

struct State {
    plan: Plan,
    started: Instant,
    interval_start: Duration,
    interval: Counters,
    totals: Counters,
    interval_hist: Histogram<u64>,
    run_hist: Histogram<u64>,
    hold_hist: Histogram<u64>,
    connect_hist: Histogram<u64>,
    dropped: Arc<AtomicU64>,
}

impl State {
    fn apply(&mut self, sample: Sample, phase: Phase) {
        self.interval.count(sample);
        match sample {
            Sample::Reply { micros } => {
                self.interval_hist.saturating_record(micros.max(1));
                if phase == Phase::Hold {
                    self.hold_hist.saturating_record(micros.max(1));
                }
            }
            Sample::Connected { micros } => self.connect_hist.saturating_record(micros.max(1)),
            _ => {}
        }
    }

    /// Closes the interval ending at offset `end`.
    fn rotate(&mut self, end: Duration) -> (IntervalSnapshot, RunTotals) {
        let latency = LatencyStats::of(&self.interval_hist);
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.run_hist.add(&self.interval_hist);
        self.interval_hist.reset();
        self.totals += self.interval;
        let start = self.interval_start;
        let snapshot = IntervalSnapshot {
            start,
            end,
            wall_end: SystemTime::now(),
            phase: self.plan.phase_at(start + (end.saturating_sub(start)) / 2),
            active_users: self.totals.active_users(),
            open_connections: self.totals.open_connections(),
            counters: std::mem::take(&mut self.interval),
            latency,
        };
        self.interval_start = end;
        (snapshot, self.totals(end))
    }

    fn totals(&self, elapsed: Duration) -> RunTotals {
        RunTotals {
            elapsed,
            counters: self.totals,
            latency_run: LatencyStats::of(&self.run_hist),
            latency_hold: LatencyStats::of(&self.hold_hist),
            connect_time: LatencyStats::of(&self.connect_hist),
            dropped_samples: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Runs until every recorder is dropped or `done` fires (then it takes what is already
/// queued); returns the run's totals.
pub async fn run(
    mut rx: mpsc::Receiver<Sample>,
    done: CancellationToken,
    dropped: Arc<AtomicU64>,
    plan: Plan,
    started: Instant,
    every: Duration,
    mut sink: Sink,
) -> RunTotals {
    let mut state = State {
        plan,
        started,
        interval_start: Duration::ZERO,
        interval: Counters::default(),
        totals: Counters::default(),
        interval_hist: new_histogram(),
        run_hist: new_histogram(),
        hold_hist: new_histogram(),
        connect_hist: new_histogram(),
        dropped,
    };
    let mut ticker = interval_at(started + every, every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            () = done.cancelled() => {
                let phase = plan.phase_at(started.elapsed());
                while let Ok(sample) = rx.try_recv() {
                    state.apply(sample, phase);
                }
                break;
            }
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                let phase = plan.phase_at(started.elapsed());
                for sample in batch.drain(..) {
                    state.apply(sample, phase);
                }
            }
            tick = ticker.tick() => {
                let end = tick.saturating_duration_since(state.started);
                let (snapshot, totals) = state.rotate(end);
                sink(&snapshot, &totals);
            }
        }
    }
    let end = state.started.elapsed();
    let (snapshot, totals) = state.rotate(end);
    if snapshot.end > snapshot.start {
        sink(&snapshot, &totals);
    }
    totals
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::metrics::{ErrorKind, Recorder};

    type Seen = Arc<Mutex<Vec<(IntervalSnapshot, RunTotals)>>>;

    fn collecting() -> (Seen, Sink) {
        let seen: Seen = Arc::default();
        let into = Arc::clone(&seen);
        let sink: Sink = Box::new(move |s: &IntervalSnapshot, t: &RunTotals| {
            into.lock().unwrap().push((s.clone(), t.clone()));
        });
        (seen, sink)
    }

    #[tokio::test(start_paused = true)]
    async fn intervals_merge_into_run_totals() {
        let plan = Plan::new(1, Duration::from_secs(3), Duration::ZERO, Duration::ZERO);
        let (recorder, rx, dropped) = Recorder::channel();
        let (seen, sink) = collecting();
        let started = Instant::now();
        let agg = tokio::spawn(run(
            rx,
            CancellationToken::new(),
            dropped,
            plan,
            started,
            Duration::from_secs(1),
            sink,
        ));

        recorder.record(Sample::UserStarted);
        for micros in [10_000, 20_000, 30_000] {
            recorder.record(Sample::Sent);
            recorder.record(Sample::Reply { micros });
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        recorder.record(Sample::Sent);
        recorder.record(Sample::Reply { micros: 1_000_000 });
        recorder.record(Sample::Error(ErrorKind::Timeout));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        recorder.record(Sample::UserStopped);
        drop(recorder);
        let totals = agg.await.unwrap();

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "two full intervals and the partial last one");
        assert_eq!(seen[0].0.counters.sent, 3);
        assert_eq!(seen[0].0.active_users, 1);
        let first_max = seen[0].0.latency.unwrap().max;
        assert!(
            (30.0..30.1).contains(&first_max),
            "max of the first interval only: {first_max}"
        );
        assert_eq!(seen[1].0.counters.received, 1);
        assert_eq!(seen[1].0.counters.errors[ErrorKind::Timeout.index()], 1);
        assert_eq!(seen[2].0.active_users, 0);
        assert_eq!(totals.counters.sent, 4);
        assert_eq!(totals.counters.error_total(), 1);
        let run = totals.latency_run.unwrap();
        assert_eq!(run.count, 4);
        assert!((run.max - 1000.0).abs() < 1.0, "{run:?}");
        assert_eq!(totals.latency_hold.unwrap().count, 4, "all during the hold");
        assert_eq!(totals.dropped_samples, 0);
    }
}
