//! Stall windows: when most probes were late at the same time, and whether the tester was.
//!
//! Time is cut into bins one probe period long. Each probe sends once per period, so each
//! bin holds about one sample per probe. A bin is *stalled* when at least `quorum` of its
//! samples were late (round trip from the intended send above `threshold`). One slow probe
//! is noise; correlated lateness is a stall. A run of consecutive stalled bins is one
//! stall, from the first late send to the last late answer. If soak's own timers were late
//! by at least half the threshold anywhere in that window, the stall is *tester-bound*: the
//! tester could have caused it, so it is not blamed on the target.

use std::time::Duration;

use serde::Serialize;

/// Spans of late probes a bin keeps. Late probes whose spans overlap are kept as their
/// union (the stall detector chains them anyway), so a bin rarely holds more than two or
/// three; beyond this, the latest spans are folded into the last slot (earliest send,
/// latest answer), which can only make that slot's span wider.
pub const LATE_SLOTS: usize = 8;

/// One late probe: its intended send and its answer, ms from the run's start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Late {
    /// Intended send.
    pub send_ms: u32,
    /// Answer (intended send + round trip).
    pub answer_ms: u32,
}

/// One bin of probe results (filled by the aggregator as answers arrive).
///
/// Its late spans are the union of its late probes' spans, sorted, so adding two bins
/// gives the same bin in any order and grouping: run data from several segments adds up
/// to what one process would have held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bin {
    /// Probe samples intended in this bin.
    pub seen: u16,
    /// Of those, late ones.
    pub late: u16,
    /// Slots of `samples` in use.
    used: u8,
    /// The late spans, disjoint and sorted by send (the first `used` slots).
    samples: [Late; LATE_SLOTS],
    /// The tester's worst timer lag in this bin, µs.
    pub lag_max_us: u32,
}

impl Bin {
    /// Adds another run's samples of the same bin: counts add, late spans join, the worst
    /// lag is kept.
    pub fn merge(&mut self, other: &Bin) {
        self.seen = self.seen.saturating_add(other.seen);
        self.late = self.late.saturating_add(other.late);
        for span in other.late_samples() {
            self.join(*span);
        }
        self.lag_max_us = self.lag_max_us.max(other.lag_max_us);
    }

    /// Adds one probe sample intended at `at_ms` with round trip `rtt_us`.
    pub fn add_probe(&mut self, at_ms: u32, rtt_us: u32, threshold: Duration) {
        self.seen = self.seen.saturating_add(1);
        if u128::from(rtt_us) > threshold.as_micros() {
            self.late = self.late.saturating_add(1);
            self.join(Late {
                send_ms: at_ms,
                answer_ms: at_ms.saturating_add(rtt_us / 1000),
            });
        }
    }

    /// Joins one late span to the union held: overlapping spans (one sent before the other
    /// was answered) become one, as the detector would chain them; past `LATE_SLOTS` the
    /// last two are folded into one.
    pub(crate) fn join(&mut self, span: Late) {
        let mut all = [Late::default(); LATE_SLOTS + 1];
        let n = usize::from(self.used);
        all[..n].copy_from_slice(&self.samples[..n]);
        all[n] = Late {
            send_ms: span.send_ms,
            answer_ms: span.answer_ms.max(span.send_ms),
        };
        let all = &mut all[..=n];
        all.sort_unstable_by_key(|l| (l.send_ms, l.answer_ms));
        let mut k = 0;
        for j in 1..all.len() {
            if all[j].send_ms < all[k].answer_ms {
                all[k].answer_ms = all[k].answer_ms.max(all[j].answer_ms);
            } else {
                k += 1;
                all[k] = all[j];
            }
        }
        let mut used = k + 1;
        if used > LATE_SLOTS {
            all[LATE_SLOTS - 1].answer_ms =
                all[LATE_SLOTS - 1].answer_ms.max(all[LATE_SLOTS].answer_ms);
            used = LATE_SLOTS;
        }
        self.samples[..used].copy_from_slice(&all[..used]);
        // Slots past the union are cleared, so equal bins compare equal.
        self.samples[used..].fill(Late::default());
        self.used = used as u8;
    }

    /// The late spans held, sorted by send.
    pub fn late_samples(&self) -> &[Late] {
        &self.samples[..usize::from(self.used)]
    }
}

/// Detection settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StallRule {
    /// A probe answered later than this (from its intended send) is late.
    pub threshold: Duration,
    /// Share of a bin's probes that must be late for the bin to be stalled (0.75).
    pub quorum: f64,
    /// Bin length: the probe period.
    pub bin: Duration,
}

/// One stall.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stall {
    /// Offset of its start (the first late send), s.
    pub start_s: f64,
    /// From the first late send to the last late answer, ms.
    pub length_ms: f64,
    /// Whether soak's own timers were late in the window (then it is not the target's).
    pub tester_bound: bool,
    /// The tester's worst timer lag in the window, ms.
    pub tester_lag_ms: f64,
    /// Connections the server ended with 1011 (server error) or 1006 (no close frame)
    /// within a second of the stall: users the stall cost.
    pub nearby_closes: u32,
}

/// Counts, for each stall, the abnormal closes (offsets in ms) within a second of it.
pub fn annotate(stalls: &mut [Stall], abnormal_closes_ms: &[u32]) {
    for stall in stalls {
        let from = stall.start_s * 1000.0 - 1000.0;
        let to = stall.start_s * 1000.0 + stall.length_ms + 1000.0;
        stall.nearby_closes = abnormal_closes_ms
            .iter()
            .filter(|&&t| f64::from(t) >= from && f64::from(t) <= to)
            .count() as u32;
    }
}

/// The stalls in `bins`: `(i, bin)` pairs sorted by `i`, bin `i` covering
/// `[i·bin, (i+1)·bin)`; a missing bin is a quiet one (see [`Bins`]).
///
/// Stalled bins say *when* most probes were late; the late probes themselves say where
/// one stall ends and the next begins. A block rarely starts or ends on a bin boundary, so
/// the late probes of the bins on either side of a run of stalled bins are candidates too.
/// The candidates, in order of their sends, form one stall for as long as each was sent
/// before everything sent earlier had been answered; a probe sent after that is the start
/// of the next stall (the loop was free in between). So two blocks 60 ms apart are two
/// stalls, stalls never overlap, each spans exactly its own probes' first late send to
/// their last late answer, and their total never exceeds the probed time.
pub fn detect(bins: &[(usize, Bin)], rule: StallRule) -> Vec<Stall> {
    let stalled = |b: &Bin| b.seen > 0 && f64::from(b.late) >= rule.quorum * f64::from(b.seen);
    let bin_ms = rule.bin.as_millis().max(1) as u64;
    let lag_limit_us = rule.threshold.as_micros() / 2;
    // Candidate late samples, each marked whether it is in a stalled bin.
    let mut candidates: Vec<(Late, bool)> = Vec::new();
    for (k, (i, bin)) in bins.iter().enumerate() {
        let core = stalled(bin);
        let beside =
            |j: Option<&(usize, Bin)>| j.is_some_and(|(n, b)| n.abs_diff(*i) == 1 && stalled(b));
        if core || beside(k.checked_sub(1).and_then(|p| bins.get(p))) || beside(bins.get(k + 1)) {
            candidates.extend(bin.late_samples().iter().map(|l| (*l, core)));
        }
    }
    candidates.sort_by_key(|(l, _)| (l.send_ms, l.answer_ms));
    // The bins with an index in `lo..=hi`.
    let range = |lo: usize, hi: usize| {
        let from = bins.partition_point(|(i, _)| *i < lo);
        let to = bins.partition_point(|(i, _)| *i <= hi);
        bins[from..to].iter().map(|(_, b)| b)
    };
    let mut stalls = Vec::new();
    let mut close = |start_ms: u32, end_ms: u32| {
        // The window the tester must have been on time in: every bin from the first late
        // send to the last late answer.
        let (lo, hi) = (
            (u64::from(start_ms) / bin_ms) as usize,
            (u64::from(end_ms) / bin_ms) as usize,
        );
        let lag_us = range(lo, hi).map(|b| b.lag_max_us).max().unwrap_or(0);
        stalls.push(Stall {
            start_s: f64::from(start_ms) / 1000.0,
            length_ms: f64::from(end_ms - start_ms),
            tester_bound: u128::from(lag_us) >= lag_limit_us,
            tester_lag_ms: f64::from(lag_us) / 1000.0,
            nearby_closes: 0,
        });
    };
    // The stall being gathered: first send, last answer, and whether a stalled bin has
    // a sample in it (neighbours alone are not a stall).
    let mut open: Option<(u32, u32, bool)> = None;
    for (late, core) in candidates {
        open = match open {
            Some((start, end, has_core)) if late.send_ms < end => {
                Some((start, end.max(late.answer_ms), has_core || core))
            }
            previous => {
                if let Some((start, end, true)) = previous {
                    close(start, end);
                }
                Some((late.send_ms, late.answer_ms.max(late.send_ms), core))
            }
        };
    }
    if let Some((start, end, true)) = open {
        close(start, end);
    }
    stalls
}

/// How long soak itself was late by at least half the threshold (bins × bin length).
pub fn tester_bound_time(bins: &[(usize, Bin)], rule: StallRule) -> Duration {
    let limit = rule.threshold.as_micros() / 2;
    let n = bins
        .iter()
        .filter(|(_, b)| u128::from(b.lag_max_us) >= limit)
        .count();
    rule.bin * n as u32
}

/// The probe bins of a run, in memory that does not grow with quiet time. The bins a probe
/// answer can still reach ([`Bins::window`]) are kept whole; older ones only when something
/// happened in them (a late probe, or soak's own lag at half the threshold), because a quiet
/// bin is to detection what no bin is. Kept dense, 100 ms bins cost 0.58 MB an hour — most
/// of soak's own memory growth in a 1-hour run (1.27 MB/h, judged a leak by its own
/// analysis, 2026-11-23). A 15-minute window was tried first: filling it grew soak by
/// 0.7 MB over the first half hour of every run; the window is 2 minutes at 100 ms bins.
#[derive(Debug, Clone)]
pub struct Bins {
    rule: StallRule,
    /// Index of `recent[0]`.
    base: usize,
    recent: Vec<Bin>,
    /// Older bins worth keeping, by index.
    kept: Vec<(usize, Bin)>,
}

/// Probe periods an answer can come after its send: a probe writes off its oldest
/// unanswered send beyond this many (`probe.rs`), and the rest when its connection ends.
pub const LATEST_PERIODS: usize = 600;

/// Margin beyond [`LATEST_PERIODS`] before a bin is retired.
pub const RETIRE_MARGIN: Duration = Duration::from_secs(60);

impl Bins {
    /// The rule the bins are cut and judged by.
    pub fn rule(&self) -> StallRule {
        self.rule
    }

    /// No bins yet.
    pub fn new(rule: StallRule) -> Bins {
        Bins {
            rule,
            base: 0,
            recent: Vec::new(),
            kept: Vec::new(),
        }
    }

    /// Adds a probe intended at `at_ms` with round trip `rtt_us` to bin `i`.
    pub fn add_probe(&mut self, i: usize, at_ms: u32, rtt_us: u32) {
        let late = u128::from(rtt_us) > self.rule.threshold.as_micros();
        let threshold = self.rule.threshold;
        if let Some(bin) = self.get(i, late) {
            bin.add_probe(at_ms, rtt_us, threshold);
        }
    }

    /// Notes soak's own timer lag `lag_us` in bin `i`.
    pub fn add_lag(&mut self, i: usize, lag_us: u32) {
        let eventful = u128::from(lag_us) >= self.rule.threshold.as_micros() / 2;
        if let Some(bin) = self.get(i, eventful) {
            bin.lag_max_us = bin.lag_max_us.max(lag_us);
        }
    }

    /// Every bin held, sorted by index (recent quiet ones included).
    pub fn all(&self) -> Vec<(usize, Bin)> {
        let mut all = Vec::new();
        self.all_into(&mut all);
        all
    }

    /// The same into `out` (cleared first), so a caller can reuse one buffer every interval
    /// instead of allocating a growing one each time.
    pub fn all_into(&self, out: &mut Vec<(usize, Bin)>) {
        out.clear();
        out.extend_from_slice(&self.kept);
        out.extend(
            self.recent
                .iter()
                .enumerate()
                .map(|(k, b)| (self.base + k, *b))
                .filter(|(_, b)| *b != Bin::default()),
        );
    }

    /// Bin `i`; an old one only if it is kept or `eventful` (else `None`: it stays quiet).
    fn get(&mut self, i: usize, eventful: bool) -> Option<&mut Bin> {
        if i < self.base {
            let at = self.kept.partition_point(|(k, _)| *k < i);
            if self.kept.get(at).is_none_or(|(k, _)| *k != i) {
                if !eventful {
                    return None;
                }
                self.kept.insert(at, (i, Bin::default()));
            }
            return Some(&mut self.kept[at].1);
        }
        let window = self.window();
        if i - self.base >= 2 * window {
            self.retire(i + 1 - window);
        }
        let j = i - self.base;
        if j >= self.recent.capacity() {
            // Doubling, but never past the window's two halves: capacity stays ≤ 2 × window.
            let want = (self.recent.capacity() * 2).clamp(j + 1, (2 * window).max(j + 1));
            self.recent.reserve_exact(want - self.recent.len());
        }
        if j >= self.recent.len() {
            self.recent.resize(j + 1, Bin::default());
        }
        Some(&mut self.recent[j])
    }

    /// Bin `i` as another run's data holds it (merging): created whatever it holds.
    pub fn merge_bin(&mut self, i: usize, other: &Bin) {
        if let Some(bin) = self.get(i, true) {
            bin.merge(other);
        }
    }

    /// Bins kept whole: every bin a late answer can still reach, plus a margin.
    pub fn window(&self) -> usize {
        let margin = (RETIRE_MARGIN.as_millis() / self.rule.bin.as_millis().max(1)) as usize;
        LATEST_PERIODS + margin.max(1)
    }

    /// Moves the bins before index `until` out of the window, keeping the eventful ones.
    fn retire(&mut self, until: usize) {
        let n = (until - self.base).min(self.recent.len());
        let limit = self.rule.threshold.as_micros() / 2;
        let base = self.base;
        let eventful = |b: &Bin| b.late > 0 || u128::from(b.lag_max_us) >= limit;
        self.kept.extend(
            self.recent
                .drain(..n)
                .enumerate()
                .filter(|(_, b)| eventful(b))
                .map(|(k, b)| (base + k, b)),
        );
        self.base = until;
    }
}

/// Adds another run's bins (by index): the stalls of the sum are those of all the
/// probes together.
impl std::ops::AddAssign<&Bins> for Bins {
    fn add_assign(&mut self, rhs: &Bins) {
        for (i, bin) in rhs.all() {
            self.merge_bin(i, &bin);
        }
    }
}

#[cfg(test)]
mod tests;
