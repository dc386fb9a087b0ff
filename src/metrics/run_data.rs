//! Run data: what a run measured, as values that add — counters, histograms, close codes,
//! stall bins, readings — kept apart from the analysis that reads them (percentiles,
//! stalls, verdicts: `analysis::totals`). Two runs' data add with `+=`, so segments of one
//! plan add up to the data of the one big run.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use hdrhistogram::Histogram;

use crate::analysis::attribution::Work;
use crate::analysis::stall::{Bins, StallRule};
use crate::metrics::snapshot::{Counters, MsgCounters, new_histogram};
use crate::sampler::Reading;

pub mod file;

/// Most abnormal closes remembered for noting beside stalls (offsets, 4 bytes each).
pub const MAX_ABNORMAL_CLOSES: usize = 100_000;

/// Most target or tester readings kept: 4 hours at 20 Hz (32 bytes each).
pub const MAX_READINGS: usize = 300_000;

/// One scenario message's data.
#[derive(Debug, Clone)]
pub struct MsgData {
    /// Its name.
    pub name: String,
    /// Sent, received, timed out.
    pub counters: MsgCounters,
    /// Time to the complete reply, µs.
    pub ttlf: Histogram<u64>,
    /// Time to the first frame, µs.
    pub ttff: Histogram<u64>,
}

/// Everything a run measured that adds. Histograms are in µs.
#[derive(Debug, Clone)]
pub struct RunData {
    /// Everything counted.
    pub counters: Counters,
    /// Per scenario message, in scenario order.
    pub messages: Vec<MsgData>,
    /// Replies received during the hold.
    pub hold: Histogram<u64>,
    /// First frames during the hold.
    pub hold_ttff: Histogram<u64>,
    /// Closed model: replies recorded with HdrHistogram's correction.
    pub corrected: Histogram<u64>,
    /// TCP connect + handshake.
    pub connect: Histogram<u64>,
    /// Handshake end → every connect-time step passed.
    pub join: Histogram<u64>,
    /// Room copies, from their message's intended send.
    pub fanout: Histogram<u64>,
    /// Per room message, to its first member.
    pub first_member: Histogram<u64>,
    /// Per room message every member got, to its last.
    pub last_member: Histogram<u64>,
    /// Socket.IO pings' lateness against `pingInterval`.
    pub heartbeat_late: Histogram<u64>,
    /// Probe round trips from their intended sends.
    pub probe: Histogram<u64>,
    /// The tester's own timer lag.
    pub lag: Histogram<u64>,
    /// Close codes the server sent, with how often.
    pub close_codes: BTreeMap<u16, u64>,
    /// When connections closed abnormally (1006, 1011), ms from the start, sorted.
    pub abnormal_closes: Vec<u32>,
    /// The probe bins the stall analysis reads.
    pub bins: Bins,
    /// The target's readings, ms from the start.
    pub target_readings: Vec<(u32, Reading)>,
    /// The run's cumulative work at each target reading (the leak's attribution).
    pub target_work: Vec<Work>,
    /// Target readings that failed, and why the last did.
    pub target_gaps: (u64, Option<String>),
    /// soak's own readings.
    pub tester_readings: Vec<(u32, Reading)>,
    /// Samples the aggregator never saw (its channel was full).
    pub dropped_samples: u64,
}

impl RunData {
    /// Nothing measured yet, for these scenario messages and this stall rule.
    pub fn new(messages: &[String], stall_rule: StallRule) -> RunData {
        RunData {
            counters: Counters::default(),
            messages: messages
                .iter()
                .map(|name| MsgData {
                    name: name.clone(),
                    counters: MsgCounters::default(),
                    ttlf: new_histogram(),
                    ttff: new_histogram(),
                })
                .collect(),
            hold: new_histogram(),
            hold_ttff: new_histogram(),
            corrected: new_histogram(),
            connect: new_histogram(),
            join: new_histogram(),
            fanout: new_histogram(),
            first_member: new_histogram(),
            last_member: new_histogram(),
            heartbeat_late: new_histogram(),
            probe: new_histogram(),
            lag: new_histogram(),
            close_codes: BTreeMap::new(),
            abnormal_closes: Vec::new(),
            bins: Bins::new(stall_rule),
            target_readings: Vec::new(),
            target_work: Vec::new(),
            target_gaps: (0, None),
            tester_readings: Vec::new(),
            dropped_samples: 0,
        }
    }

    /// The histograms, each with its name (for saving and for adding).
    fn histograms_mut(&mut self) -> [(&'static str, &mut Histogram<u64>); 11] {
        [
            ("hold", &mut self.hold),
            ("hold_ttff", &mut self.hold_ttff),
            ("corrected", &mut self.corrected),
            ("connect", &mut self.connect),
            ("join", &mut self.join),
            ("fanout", &mut self.fanout),
            ("first_member", &mut self.first_member),
            ("last_member", &mut self.last_member),
            ("heartbeat_late", &mut self.heartbeat_late),
            ("probe", &mut self.probe),
            ("lag", &mut self.lag),
        ]
    }

    /// The histograms, each with its name.
    pub fn histograms(&self) -> [(&'static str, &Histogram<u64>); 11] {
        [
            ("hold", &self.hold),
            ("hold_ttff", &self.hold_ttff),
            ("corrected", &self.corrected),
            ("connect", &self.connect),
            ("join", &self.join),
            ("fanout", &self.fanout),
            ("first_member", &self.first_member),
            ("last_member", &self.last_member),
            ("heartbeat_late", &self.heartbeat_late),
            ("probe", &self.probe),
            ("lag", &self.lag),
        ]
    }
}

/// Adds another run's data (a segment of the same plan, or the next interval): counts and
/// histograms add (same precision everywhere and auto-resizing, so adding cannot fail),
/// messages by name, bins by index, readings and closes merge in time order.
impl AddAssign<&RunData> for RunData {
    fn add_assign(&mut self, rhs: &RunData) {
        self.counters += rhs.counters;
        for m in &rhs.messages {
            match self.messages.iter_mut().find(|o| o.name == m.name) {
                Some(o) => {
                    o.counters += m.counters;
                    let _ = o.ttlf.add(&m.ttlf);
                    let _ = o.ttff.add(&m.ttff);
                }
                None => self.messages.push(m.clone()),
            }
        }
        for ((_, mine), (_, theirs)) in self.histograms_mut().into_iter().zip(rhs.histograms()) {
            let _ = mine.add(theirs);
        }
        for (code, n) in &rhs.close_codes {
            *self.close_codes.entry(*code).or_default() += n;
        }
        merge_sorted(
            &mut self.abnormal_closes,
            &rhs.abnormal_closes,
            |t| *t,
            MAX_ABNORMAL_CLOSES,
        );
        self.bins += &rhs.bins;
        // Readings come from one sampling process: the other side's, when this has none.
        if self.target_readings.is_empty() {
            self.target_readings.clone_from(&rhs.target_readings);
            self.target_work.clone_from(&rhs.target_work);
        }
        merge_sorted(
            &mut self.tester_readings,
            &rhs.tester_readings,
            |(t, _)| *t,
            MAX_READINGS,
        );
        self.target_gaps.0 += rhs.target_gaps.0;
        if rhs.target_gaps.1.is_some() {
            self.target_gaps.1.clone_from(&rhs.target_gaps.1);
        }
        self.dropped_samples += rhs.dropped_samples;
    }
}

/// Merges `theirs` into `mine`, both sorted by `key`, keeping at most `max`.
fn merge_sorted<T: Clone>(mine: &mut Vec<T>, theirs: &[T], key: impl Fn(&T) -> u32, max: usize) {
    if theirs.is_empty() {
        return;
    }
    let mut out = Vec::with_capacity((mine.len() + theirs.len()).min(max));
    let (mut a, mut b) = (mine.iter().peekable(), theirs.iter().peekable());
    while out.len() < max {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if key(x) <= key(y) => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => break,
        };
        out.extend(next.cloned());
    }
    *mine = out;
}

#[cfg(test)]
mod tests;
