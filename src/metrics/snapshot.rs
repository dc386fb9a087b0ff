//! Plain data the aggregator hands out: one `IntervalSnapshot` per interval, and `RunTotals`.

use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::metrics::events::Record;
use crate::metrics::{Disconnect, ErrorKind, Sample};
use crate::plan::Phase;

/// Highest latency a histogram records, µs (1 hour); larger values are clamped to it.
pub const HIST_MAX_MICROS: u64 = 3_600_000_000;

/// Significant digits of every histogram.
pub const HIST_SIGFIG: u8 = 3;

/// A new latency histogram: from 1 µs at 3 significant digits. It starts at 16 KiB and
/// grows (auto-resize) only as far as the largest value recorded needs, at most ≈184 KiB
/// for [`record`]'s 1 h cap: the aggregator holds a dozen, and an idle run or one with
/// millisecond latencies no longer pays 2.5 MB for them (measured with heaptrack,
/// 2026-11-23). Growing happens on a new maximum only, so not per message in steady state.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(HIST_SIGFIG).expect("3 significant digits are a valid histogram precision")
}

/// Records `micros` into `h`, clamped to 1 µs .. 1 h ([`HIST_MAX_MICROS`]).
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    let v = micros.clamp(1, HIST_MAX_MICROS);
    // `record` grows the histogram (`saturating_record` never would); should growing fail,
    // the value is kept at the current top rather than lost.
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Number of recorded values.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl LatencyStats {
    /// The stats of a histogram of microseconds, or `None` when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<LatencyStats> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| round3(us as f64 / 1000.0);
        Some(LatencyStats {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: round3(h.mean() / 1000.0),
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Event counts; intervals add up into the run's totals with `+=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages written.
    pub sent: u64,
    /// Replies matched to their request.
    pub received: u64,
    /// Replies that came after their request had timed out.
    pub late: u64,
    /// Requests unanswered when their user stopped.
    pub abandoned: u64,
    /// Connection attempts.
    pub connect_attempts: u64,
    /// Connections established.
    pub connects: u64,
    /// Connections ended.
    pub disconnects: u64,
    /// Connections opened by users that had been connected before.
    pub reconnects: u64,
    /// Connections closed by soak at the end of their lifetime (churn).
    pub churned: u64,
    /// Users started.
    pub users_started: u64,
    /// Users stopped.
    pub users_stopped: u64,
    /// Errors by kind, indexed by [`ErrorKind::index`].
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Frames that matched each push rule (`session.push`), by the rule's index.
    pub pushes: [u64; MAX_PUSH_RULES],
    /// Room messages: copies expected, delivered in time, late, duplicates, out of order.
    pub fanout: FanoutCounts,
    /// Socket.IO server pings answered.
    pub heartbeats: u64,
    /// Socket.IO binary attachments received.
    pub attachments: u64,
}

/// Room deliveries counted (`[rooms] deliver`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanoutCounts {
    /// Copies expected: the members connected when each message was sent.
    pub expected: u64,
    /// Messages sent with at least one copy expected.
    pub messages: u64,
    /// Of those, messages every expected member got in time.
    pub complete: u64,
    /// First copies that arrived within the reply timeout.
    pub delivered: u64,
    /// First copies later than that (or that could not be timed).
    pub late: u64,
    /// Second copies.
    pub duplicates: u64,
    /// Copies older than one already seen from the same sender.
    pub out_of_order: u64,
    /// Copies to members that connected after their message's room was counted.
    pub unexpected: u64,
}

impl AddAssign for FanoutCounts {
    fn add_assign(&mut self, rhs: FanoutCounts) {
        self.expected += rhs.expected;
        self.messages += rhs.messages;
        self.complete += rhs.complete;
        self.delivered += rhs.delivered;
        self.late += rhs.late;
        self.duplicates += rhs.duplicates;
        self.out_of_order += rhs.out_of_order;
        self.unexpected += rhs.unexpected;
    }
}

/// Most push rules a profile may give.
pub const MAX_PUSH_RULES: usize = 8;

impl Counters {
    /// Counts one sample.
    pub fn count(&mut self, sample: Sample) {
        match sample {
            Sample::UserStarted => self.users_started += 1,
            Sample::UserStopped => self.users_stopped += 1,
            Sample::ConnectAttempt => self.connect_attempts += 1,
            Sample::Connected { reconnect, .. } => {
                self.connects += 1;
                self.reconnects += u64::from(reconnect);
            }
            Sample::Disconnected { cause, .. } => {
                self.disconnects += 1;
                match cause {
                    Disconnect::Stopped => {}
                    Disconnect::Churned => self.churned += 1,
                    Disconnect::Lost(kind) => self.errors[kind.index()] += 1,
                }
            }
            Sample::Sent { .. } => self.sent += 1,
            Sample::FirstFrame { .. } | Sample::Probe { .. } | Sample::Lag { .. } => {}
            Sample::Reply { .. } => self.received += 1,
            Sample::Timeout { .. } => self.errors[ErrorKind::Timeout.index()] += 1,
            Sample::LateReply => self.late += 1,
            Sample::Abandoned { count } => self.abandoned += u64::from(count),
            Sample::Error { kind, .. } => self.errors[kind.index()] += 1,
            Sample::JoinFailed { .. } => self.errors[ErrorKind::JoinFailed.index()] += 1,
            Sample::Joined { .. } => {}
            Sample::FanoutSent { expected } => {
                self.fanout.expected += u64::from(expected);
                self.fanout.messages += u64::from(expected > 0);
            }
            Sample::FanoutLast { .. } => self.fanout.complete += 1,
            Sample::Heartbeat { .. } => self.heartbeats += 1,
            Sample::Attachment => self.attachments += 1,
            Sample::Delivery {
                late,
                duplicate,
                out_of_order,
                unexpected,
                ..
            } => {
                let f = &mut self.fanout;
                if unexpected {
                    f.unexpected += 1;
                } else if duplicate {
                    f.duplicates += 1;
                } else if late {
                    f.late += 1;
                } else {
                    f.delivered += 1;
                }
                f.out_of_order += u64::from(out_of_order);
            }
            Sample::Push { rule } => {
                if let Some(n) = self.pushes.get_mut(usize::from(rule)) {
                    *n += 1;
                }
            }
        }
    }

    /// Frames that matched any push rule.
    pub fn push_total(&self) -> u64 {
        self.pushes.iter().sum()
    }

    /// All errors of every kind.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Users running now: started and not yet stopped.
    pub fn active_users(&self) -> u64 {
        self.users_started.saturating_sub(self.users_stopped)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> u64 {
        self.connects.saturating_sub(self.disconnects)
    }
}

impl AddAssign for Counters {
    fn add_assign(&mut self, rhs: Counters) {
        self.sent += rhs.sent;
        self.received += rhs.received;
        self.late += rhs.late;
        self.abandoned += rhs.abandoned;
        self.connect_attempts += rhs.connect_attempts;
        self.connects += rhs.connects;
        self.disconnects += rhs.disconnects;
        self.reconnects += rhs.reconnects;
        self.churned += rhs.churned;
        self.users_started += rhs.users_started;
        self.users_stopped += rhs.users_stopped;
        for (total, n) in self.errors.iter_mut().zip(rhs.errors) {
            *total += n;
        }
        for (total, n) in self.pushes.iter_mut().zip(rhs.pushes) {
            *total += n;
        }
        self.fanout += rhs.fanout;
        self.heartbeats += rhs.heartbeats;
        self.attachments += rhs.attachments;
    }
}

/// Counts of one scenario message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MsgCounters {
    /// Sent.
    pub sent: u64,
    /// Complete replies.
    pub received: u64,
    /// Replies not complete within the timeout.
    pub timeouts: u64,
}

impl AddAssign for MsgCounters {
    fn add_assign(&mut self, rhs: MsgCounters) {
        self.sent += rhs.sent;
        self.received += rhs.received;
        self.timeouts += rhs.timeouts;
    }
}

/// One scenario message over an interval or the run.
#[derive(Debug, Clone, PartialEq)]
pub struct MsgStats {
    /// Counts.
    pub counters: MsgCounters,
    /// Time to the complete reply.
    pub latency: Option<LatencyStats>,
    /// Time to the first frame (streamed replies only).
    pub ttff: Option<LatencyStats>,
}

/// An interval histogram with its `latency.hlog` tag.
#[derive(Debug, Clone)]
pub struct Tagged {
    /// `<message>.ttlf` or `<message>.ttff`.
    pub tag: String,
    /// Values in µs.
    pub histogram: Histogram<u64>,
}

/// One interval of the run.
#[derive(Debug, Clone)]
pub struct IntervalSnapshot {
    /// Offset of the interval's start from the run's start.
    pub start: Duration,
    /// Offset of its end.
    pub end: Duration,
    /// Wall-clock time at its end.
    pub wall_end: SystemTime,
    /// Phase at the interval's midpoint.
    pub phase: Phase,
    /// Users running at its end.
    pub active_users: u64,
    /// Connections open at its end.
    pub open_connections: u64,
    /// What happened during the interval.
    pub counters: Counters,
    /// Latency of the replies completed during the interval (all messages).
    pub latency: Option<LatencyStats>,
    /// Time to first frame during the interval (streamed replies only).
    pub ttff: Option<LatencyStats>,
    /// Room copies delivered during the interval, from their intended send.
    pub fanout: Option<LatencyStats>,
    /// Room messages that reached their last member during the interval: the time to it.
    pub last_member: Option<LatencyStats>,
    /// Per scenario message, in scenario order.
    pub messages: Vec<MsgStats>,
    /// The interval's histograms for `latency.hlog` (non-empty ones only).
    pub histograms: Vec<Tagged>,
    /// The interval's connect-time (`connect`) and probe (`probe`) histograms, for the
    /// live sinks (`/metrics`); not written to `latency.hlog`. Non-empty ones only.
    pub timing: Vec<Tagged>,
    /// Events to append to `events.jsonl`.
    pub events: Vec<Record>,
    /// Probe round trips answered during the interval.
    pub probe: Option<LatencyStats>,
    /// The tester's worst timer lag during the interval, ms.
    pub lag_max_ms: f64,
    /// The sampler's readings taken during the interval (every one goes to `memory.csv`).
    pub readings: Vec<ProcRow>,
}

/// One sampler reading: when, the target's tree (if watched), and soak itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcRow {
    /// Ms from the run's start.
    pub at_ms: u32,
    /// The target's process tree.
    pub target: Option<crate::sampler::Reading>,
    /// A cgroup target's page cache and charged memory.
    pub charged: Option<crate::sampler::Charged>,
    /// Soak itself.
    pub tester: crate::sampler::Reading,
}

impl IntervalSnapshot {
    /// A quiet interval ending at `end` (one second long), in the hold, with one message.
    #[cfg(test)]
    pub(crate) fn empty(end: Duration) -> IntervalSnapshot {
        IntervalSnapshot {
            start: end.saturating_sub(Duration::from_secs(1)),
            end,
            wall_end: SystemTime::UNIX_EPOCH,
            phase: Phase::Hold,
            active_users: 0,
            open_connections: 0,
            counters: Counters::default(),
            latency: None,
            ttff: None,
            fanout: None,
            last_member: None,
            messages: vec![MsgStats {
                counters: MsgCounters::default(),
                latency: None,
                ttff: None,
            }],
            histograms: Vec::new(),
            timing: Vec::new(),
            events: Vec::new(),
            probe: None,
            lag_max_ms: 0.0,
            readings: Vec::new(),
        }
    }

    /// Length of the interval in seconds (the last one may be short).
    pub fn seconds(&self) -> f64 {
        (self.end - self.start).as_secs_f64().max(1e-9)
    }
}

/// The run so far: counts and percentiles of merged histograms (never averaged).
#[derive(Debug, Clone, Default)]
pub struct RunTotals {
    /// Time since the run's start.
    pub elapsed: Duration,
    /// Everything counted.
    pub counters: Counters,
    /// Latency over the whole run.
    pub latency_run: Option<LatencyStats>,
    /// Latency of replies received during the hold phase.
    pub latency_hold: Option<LatencyStats>,
    /// Closed model: the run's latency corrected for the expected interval (HdrHistogram's
    /// corrected recording); `None` in the open model.
    pub latency_corrected: Option<LatencyStats>,
    /// Time to first frame over the run (streamed replies only).
    pub ttff_run: Option<LatencyStats>,
    /// Time to first frame during the hold.
    pub ttff_hold: Option<LatencyStats>,
    /// Per scenario message, in scenario order.
    pub messages: Vec<MsgStats>,
    /// Close codes the server sent, with how often.
    pub close_codes: BTreeMap<u16, u64>,
    /// Probe round trips from their intended sends.
    pub probe: Option<LatencyStats>,
    /// The tester's own timer lag.
    pub lag: Option<LatencyStats>,
    /// Stalls found so far.
    pub stalls: Vec<crate::analysis::stall::Stall>,
    /// How long the tester itself was late (timer lag at least half the stall threshold).
    pub tester_bound: Duration,
    /// The target's memory report, when a target process is sampled.
    pub memory: Option<crate::analysis::memory::MemoryReport>,
    /// The same report for soak itself.
    pub tester_memory: Option<crate::analysis::memory::MemoryReport>,
    /// TCP connect + WebSocket handshake time.
    pub connect_time: Option<LatencyStats>,
    /// Handshake end → every connect-time step passed (`session.on_connect`).
    pub join_time: Option<LatencyStats>,
    /// Room messages: intended send → each member's copy (`[rooms] deliver`).
    pub fanout: Option<LatencyStats>,
    /// Socket.IO: how late the server's pings came against its `pingInterval`.
    pub heartbeat_late: Option<LatencyStats>,
    /// Room messages: intended send → the first member's copy.
    pub first_member: Option<LatencyStats>,
    /// Room messages every expected member got: intended send → the last member's copy.
    pub last_member: Option<LatencyStats>,
    /// Samples the aggregator never saw because its channel was full.
    pub dropped_samples: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_start_small_grow_to_the_largest_value_and_cap_at_an_hour() {
        let bounded = Histogram::<u64>::new_with_bounds(1, HIST_MAX_MICROS, HIST_SIGFIG).unwrap();
        let mut h = new_histogram();
        let empty = h.distinct_values();
        assert!(empty * 8 <= bounded.distinct_values(), "{empty}");
        record(&mut h, 0);
        record(&mut h, 2_500);
        assert_eq!(h.min(), 1, "zero is recorded as 1 µs");
        let small = h.distinct_values();
        record(&mut h, 10 * HIST_MAX_MICROS);
        assert!(h.distinct_values() > small, "grew for a larger value");
        assert!(h.distinct_values() <= bounded.distinct_values());
        assert!(
            h.equivalent(h.max(), HIST_MAX_MICROS),
            "clamped to 1 h: {}",
            h.max()
        );
        let mut same = bounded.clone();
        for v in [1, 2_500, HIST_MAX_MICROS] {
            same.saturating_record(v);
        }
        for q in [0.5, 0.9, 0.99] {
            assert_eq!(h.value_at_quantile(q), same.value_at_quantile(q), "{q}");
        }
    }
}
