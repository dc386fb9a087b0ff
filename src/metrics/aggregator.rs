//! The one task that owns the histograms and counters and closes each interval.
//!
//! Sessions `try_send` samples; this task drains them in batches and records latencies into
//! per-message interval histograms (and the hold histograms during the hold). On each tick
//! it merges the intervals into the run's histograms with `add` (percentiles are never
//! averaged) and hands out a snapshot. When `done` fires or every recorder is gone, it
//! closes the last, partial interval and returns the totals.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at};
use tokio_util::sync::CancellationToken;

use crate::analysis::attribution::Work;
use crate::analysis::stall::{Bin, StallRule};
use crate::metrics::events::{Event, EventLog, Record};
use crate::metrics::snapshot::{
    Counters, HIST_MAX_MICROS, IntervalSnapshot, MsgCounters, ProcRow, RunTotals, new_histogram,
    record,
};
use crate::metrics::{Disconnect, Sample};
use crate::plan::{Phase, Plan};
use crate::sampler::ProcMsg;

/// Most samples taken off the channel per wake-up (`recv_many`): under load — the lab's D
/// scenario sends about 190,000 samples a second — one wake-up drains many at once, and no
/// sample was dropped in any lab scenario (2026-11-23).
const BATCH: usize = 1024;

/// Where the aggregator hands its snapshots (one of its list of sinks): called once per
/// interval, on the aggregator's task, so it must only queue the data (the writer and the
/// progress threads do the I/O).
pub type Sink = Box<dyn FnMut(&IntervalSnapshot, &RunTotals) + Send>;

/// What the aggregator needs to know about the run.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The plan, for the phase of each instant.
    pub plan: Plan,
    /// When the run started.
    pub started: Instant,
    /// Interval length.
    pub every: Duration,
    /// Scenario message names, in order, and whether each one's replies stream.
    pub messages: Vec<(String, bool)>,
    /// Closed model: the expected interval between one user's sends, µs, for corrected
    /// recording; `None` in the open model (its schedule already is the truth).
    pub correct_micros: Option<u64>,
    /// The connect-time steps' names, in order (for `join_failed` events).
    pub steps: Vec<String>,
    /// A Socket.IO run's shared state: the `connect_error` messages by index.
    pub socketio: Option<std::sync::Arc<crate::engine::transport::socketio::SocketIo>>,
    /// Stall detection settings (its bin is the probe period).
    pub stall_rule: StallRule,
    /// Phase windows, verdict thresholds and memory limit for the memory reports.
    pub memory: MemorySetup,
}

pub use crate::analysis::totals::MemorySetup;
use crate::metrics::run_data::{MAX_ABNORMAL_CLOSES, MAX_READINGS, RunData};

/// Highest stall bin index: a day of 100 ms bins (only the last 15 minutes and the
/// eventful ones are held, see `stall::Bins`).
const MAX_BINS: usize = 864_000;

/// Histograms and counts of one scenario message.
struct PerMsg {
    name: String,
    streams: bool,
    interval: MsgCounters,
    ttlf: Histogram<u64>,
    ttff: Histogram<u64>,
}

struct State {
    setup: Setup,
    interval_start: Duration,
    interval: Counters,
    /// Everything the closed intervals measured that adds (analysis reads only this).
    run: RunData,
    msgs: Vec<PerMsg>,
    interval_fanout: Histogram<u64>,
    interval_first_member: Histogram<u64>,
    interval_last_member: Histogram<u64>,
    scratch: Histogram<u64>,
    events: EventLog,
    dropped: Arc<AtomicU64>,
    /// Reused by `analysis::totals` every interval.
    bin_scratch: Vec<(usize, Bin)>,
    probe: Histogram<u64>,
    interval_connect: Histogram<u64>,
    interval_lag_max_us: u32,
    interval_readings: Vec<ProcRow>,
    /// A gap in the target's readings is under way (its event written once).
    gap_under_way: bool,
}

impl State {
    fn new(setup: Setup, dropped: Arc<AtomicU64>) -> State {
        let msgs = setup
            .messages
            .iter()
            .map(|(name, streams)| PerMsg {
                name: name.clone(),
                streams: *streams,
                interval: MsgCounters::default(),
                ttlf: new_histogram(),
                ttff: new_histogram(),
            })
            .collect();
        let names: Vec<String> = setup.messages.iter().map(|(n, _)| n.clone()).collect();
        let run = RunData::new(&names, setup.stall_rule);
        State {
            setup,
            interval_start: Duration::ZERO,
            interval: Counters::default(),
            run,
            msgs,
            interval_fanout: new_histogram(),
            interval_first_member: new_histogram(),
            interval_last_member: new_histogram(),
            scratch: new_histogram(),
            events: EventLog::default(),
            dropped,
            bin_scratch: Vec::new(),
            probe: new_histogram(),
            interval_connect: new_histogram(),
            interval_lag_max_us: 0,
            interval_readings: Vec::new(),
            gap_under_way: false,
        }
    }

    /// Takes one message from the sampler.
    fn sampled(&mut self, msg: ProcMsg) {
        match msg {
            ProcMsg::Reading {
                at_ms,
                target,
                charged,
                tester,
            } => {
                self.interval_readings.push(ProcRow {
                    at_ms,
                    target,
                    charged,
                    tester,
                });
                let run = &mut self.run;
                if run.tester_readings.len() < MAX_READINGS {
                    run.tester_readings.push((at_ms, tester));
                    if let Some(t) = target {
                        self.gap_under_way = false;
                        run.target_readings.push((at_ms, t));
                        // The run so far: the closed intervals and the open one.
                        let (done, now) = (&run.counters, &self.interval);
                        run.target_work.push(Work {
                            messages: done.sent + now.sent,
                            opened: done.connects + now.connects,
                            closed: done.disconnects + now.disconnects,
                        });
                    }
                }
            }
            ProcMsg::Gap(why) => {
                let (count, last) = &mut self.run.target_gaps;
                *count += 1;
                if !self.gap_under_way {
                    self.gap_under_way = true;
                    self.events.out.push(Record {
                        at: self.setup.started.elapsed(),
                        event: Event::TargetGap { why: why.clone() },
                    });
                }
                *last = Some(why);
            }
            ProcMsg::TargetExited(how) => {
                let at = self.setup.started.elapsed();
                self.events.out.push(Record {
                    at,
                    event: Event::TargetExit { how },
                });
            }
        }
    }

    /// The index of the stall bin holding offset `at_ms` (bounded by [`MAX_BINS`]).
    fn bin(&self, at_ms: u32) -> Option<usize> {
        let bin_ms = self.setup.stall_rule.bin.as_millis().max(1);
        usize::try_from(u128::from(at_ms) / bin_ms)
            .ok()
            .filter(|i| *i < MAX_BINS)
    }

    fn apply(&mut self, sample: Sample, phase: Phase, at: Duration) {
        self.interval.count(sample);
        let hold = phase == Phase::Hold;
        match sample {
            Sample::Sent { msg } => self.msg(msg, |m| m.interval.sent += 1),
            Sample::Reply { msg, micros } => self.reply(msg, micros.max(1), hold),
            Sample::FirstFrame { msg, micros } => {
                let v = micros.max(1);
                self.msg(msg, |m| record(&mut m.ttff, v));
                if hold {
                    record(&mut self.run.hold_ttff, v);
                }
            }
            Sample::Timeout { msg } => self.timeout(msg, at),
            Sample::Connected {
                user,
                micros,
                reconnect,
            } => {
                record(&mut self.interval_connect, micros.max(1));
                let what = if reconnect { "reconnect" } else { "connect" };
                let event = || Event::Connect {
                    user,
                    connect_ms: micros as f64 / 1000.0,
                    reconnect,
                };
                self.events.push(at, (what, "", 0), event);
            }
            Sample::Joined { micros } => record(&mut self.run.join, micros.max(1)),
            Sample::Heartbeat { late_us } => {
                record(&mut self.run.heartbeat_late, u64::from(late_us).max(1));
            }
            Sample::Delivery {
                micros,
                late: false,
                duplicate: false,
                unexpected: false,
                first,
                ..
            } => {
                record(&mut self.interval_fanout, micros.max(1));
                if first {
                    record(&mut self.interval_first_member, micros.max(1));
                }
            }
            Sample::FanoutLast { micros } => record(&mut self.interval_last_member, micros.max(1)),
            Sample::JoinFailed {
                user,
                step,
                code,
                reason,
            } => {
                let name = if step == crate::engine::steps::CONNECT_STEP {
                    Some(String::from("connect"))
                } else {
                    self.setup.steps.get(usize::from(step)).cloned()
                };
                let reason = (reason > 0)
                    .then_some(self.setup.socketio.as_ref())
                    .flatten()
                    .and_then(|s| s.refusals.names().get(usize::from(reason) - 1).cloned());
                let event = || Event::JoinFailed {
                    user,
                    step: name.unwrap_or_default(),
                    code: (code != 0).then_some(code),
                    reason,
                };
                self.events.push(at, ("join_failed", "", code), event);
            }
            Sample::Probe { at_ms, rtt_us } => self.probe(at_ms, rtt_us),
            Sample::Lag { at_ms, lag_us } => self.lag(at_ms, lag_us),
            Sample::Disconnected { user, cause, code } => self.disconnected(user, cause, code, at),
            Sample::Error { kind, user } => {
                let event = || Event::Error {
                    kind: kind.label(),
                    user: Some(user),
                    message: None,
                };
                self.events.push(at, ("error", kind.label(), 0), event);
            }
            Sample::UserStarted
            | Sample::Push { .. }
            | Sample::FanoutSent { .. }
            | Sample::Delivery { .. }
            | Sample::Attachment
            | Sample::UserStopped
            | Sample::ConnectAttempt
            | Sample::LateReply
            | Sample::Abandoned { .. } => {}
        }
    }

    /// A request timed out: counted for its message, and an event.
    fn timeout(&mut self, msg: u16, at: Duration) {
        self.msg(msg, |m| m.interval.timeouts += 1);
        let name = self.msgs.get(usize::from(msg)).map(|m| m.name.clone());
        let event = || Event::Error {
            kind: "timeout",
            user: None,
            message: name,
        };
        self.events.push(at, ("error", "timeout", 0), event);
    }

    /// A probe's round trip, into the probe histogram and its stall bin.
    fn probe(&mut self, at_ms: u32, rtt_us: u32) {
        record(&mut self.probe, u64::from(rtt_us).max(1));
        if let Some(i) = self.bin(at_ms) {
            self.run.bins.add_probe(i, at_ms, rtt_us);
        }
    }

    /// How late soak's own ticker fired, into the lag histogram and its stall bin.
    fn lag(&mut self, at_ms: u32, lag_us: u32) {
        record(&mut self.run.lag, u64::from(lag_us).max(1));
        self.interval_lag_max_us = self.interval_lag_max_us.max(lag_us);
        if let Some(i) = self.bin(at_ms) {
            self.run.bins.add_lag(i, lag_us);
        }
    }

    /// A complete reply: its message's histogram, the hold's, and the corrected one.
    fn reply(&mut self, msg: u16, v: u64, hold: bool) {
        self.msg(msg, |m| {
            m.interval.received += 1;
            record(&mut m.ttlf, v);
        });
        if hold {
            record(&mut self.run.hold, v);
        }
        if let Some(interval) = self.setup.correct_micros {
            // Clamped like `record`, so the corrected histogram keeps the same 1 h cap.
            let _ = self
                .run
                .corrected
                .record_correct(v.clamp(1, HIST_MAX_MICROS), interval);
        }
    }

    /// A connection ended: its close code, abnormal closes for the stall notes, the event.
    fn disconnected(&mut self, user: u32, cause: Disconnect, code: u16, at: Duration) {
        if code != 0 {
            *self.run.close_codes.entry(code).or_default() += 1;
        }
        if matches!(code, 1006 | 1011) && self.run.abnormal_closes.len() < MAX_ABNORMAL_CLOSES {
            self.run
                .abnormal_closes
                .push(u32::try_from(at.as_millis()).unwrap_or(u32::MAX));
        }
        let reason = match cause {
            Disconnect::Stopped => "stopped",
            Disconnect::Churned => "churned",
            Disconnect::Lost(kind) => kind.label(),
        };
        let event = || Event::Disconnect {
            user,
            reason,
            code: (code != 0).then_some(code),
        };
        self.events.push(at, ("disconnect", reason, code), event);
    }

    fn msg(&mut self, msg: u16, f: impl FnOnce(&mut PerMsg)) {
        if let Some(m) = self.msgs.get_mut(usize::from(msg)) {
            f(m);
        }
    }
}

/// Runs until every recorder is dropped or `done` fires (then it takes what is already
/// queued), handing each interval to every sink in turn (the results folder, the
/// progress display); returns the run's totals and its run data.
pub async fn run(
    mut rx: mpsc::Receiver<Sample>,
    mut procs: mpsc::Receiver<ProcMsg>,
    done: CancellationToken,
    dropped: Arc<AtomicU64>,
    setup: Setup,
    mut sinks: Vec<Sink>,
) -> (RunTotals, RunData) {
    let (started, every, plan) = (setup.started, setup.every, setup.plan);
    let mut state = State::new(setup, dropped);
    let mut ticker = interval_at(started + every, every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            () = done.cancelled() => {
                let at = started.elapsed();
                let phase = plan.phase_at(at);
                while let Ok(sample) = rx.try_recv() {
                    state.apply(sample, phase, at);
                }
                break;
            }
            Some(msg) = procs.recv() => state.sampled(msg),
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                let at = started.elapsed();
                let phase = plan.phase_at(at);
                for sample in batch.drain(..) {
                    state.apply(sample, phase, at);
                }
            }
            tick = ticker.tick() => {
                let (snapshot, totals) = state.rotate(tick.saturating_duration_since(started), false);
                for sink in &mut sinks {
                    sink(&snapshot, &totals);
                }
            }
        }
    }
    // Whichever way the loop ended, what the sampler already sent (a target's exit
    // above all) belongs in the last interval.
    while let Ok(msg) = procs.try_recv() {
        state.sampled(msg);
    }
    let (snapshot, totals) = state.rotate(started.elapsed(), true);
    if snapshot.end > snapshot.start || !snapshot.events.is_empty() {
        for sink in &mut sinks {
            sink(&snapshot, &totals);
        }
    }
    (totals, state.run)
}

mod rollup;

#[cfg(test)]
mod tests;
