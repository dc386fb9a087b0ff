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

/// One bin of probe results (filled by the aggregator as answers arrive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bin {
    /// Probe samples intended in this bin.
    pub seen: u16,
    /// Of those, late ones.
    pub late: u16,
    /// Earliest intended send among the late ones, ms from the run's start.
    pub first_late_ms: u32,
    /// Latest answer (intended + round trip) among the late ones, ms from the run's start.
    pub last_answer_ms: u32,
    /// The tester's worst timer lag in this bin, µs.
    pub lag_max_us: u32,
}

impl Bin {
    /// Adds one probe sample intended at `at_ms` with round trip `rtt_us`.
    pub fn add_probe(&mut self, at_ms: u32, rtt_us: u32, threshold: Duration) {
        self.seen = self.seen.saturating_add(1);
        if u128::from(rtt_us) > threshold.as_micros() {
            self.first_late_ms = if self.late == 0 {
                at_ms
            } else {
                self.first_late_ms.min(at_ms)
            };
            self.late = self.late.saturating_add(1);
            self.last_answer_ms = self.last_answer_ms.max(at_ms.saturating_add(rtt_us / 1000));
        }
    }
}

/// Detection settings.
#[derive(Debug, Clone, Copy)]
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

/// The stalls in `bins` (bin `i` covers `[i·bin, (i+1)·bin)`).
pub fn detect(bins: &[Bin], rule: StallRule) -> Vec<Stall> {
    let stalled = |b: &Bin| b.seen > 0 && f64::from(b.late) >= rule.quorum * f64::from(b.seen);
    let bin_ms = rule.bin.as_millis().max(1) as u64;
    let lag_limit_us = rule.threshold.as_micros() / 2;
    let mut stalls = Vec::new();
    let mut i = 0;
    while i < bins.len() {
        if !stalled(&bins[i]) {
            i += 1;
            continue;
        }
        let first = i;
        while i < bins.len() && stalled(&bins[i]) {
            i += 1;
        }
        // A block rarely starts on a bin boundary: the late probes in the bins on either
        // side belong to the same stall even when too few of them were late to count alone.
        let lo = first.saturating_sub(1);
        let hi = (i + 1).min(bins.len());
        let late = bins[lo..hi].iter().filter(|b| b.late > 0);
        let start_ms = late.clone().map(|b| b.first_late_ms).min().unwrap_or(0);
        let end_ms = late
            .map(|b| b.last_answer_ms)
            .max()
            .unwrap_or(start_ms)
            .max(start_ms);
        // The window the tester must have been on time in: the stall's bins and any bin its
        // late answers reach into.
        let last_bin = ((u64::from(end_ms) / bin_ms) as usize).clamp(i - 1, bins.len() - 1);
        let lag_us = bins[first..=last_bin]
            .iter()
            .map(|b| b.lag_max_us)
            .max()
            .unwrap_or(0);
        stalls.push(Stall {
            start_s: f64::from(start_ms) / 1000.0,
            length_ms: f64::from(end_ms - start_ms),
            tester_bound: u128::from(lag_us) >= lag_limit_us,
            tester_lag_ms: f64::from(lag_us) / 1000.0,
            nearby_closes: 0,
        });
    }
    stalls
}

/// How long the tester itself was late (timer lag at least half the threshold), summed
/// over bins.
pub fn tester_bound_time(bins: &[Bin], rule: StallRule) -> Duration {
    let limit = rule.threshold.as_micros() / 2;
    let n = bins
        .iter()
        .filter(|b| u128::from(b.lag_max_us) >= limit)
        .count();
    rule.bin * n as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: StallRule = StallRule {
        threshold: Duration::from_millis(50),
        quorum: 0.75,
        bin: Duration::from_millis(100),
    };

    /// Four probes, 25 ms apart, every 100 ms for `secs`; the server is blocked over
    /// `[block_start, block_end)` ms (a send inside waits for the end) and otherwise answers
    /// in 1 ms. `lag` adds tester lag to the bins it covers.
    fn simulate(secs: u32, blocks: &[(u32, u32)], lag: Option<(u32, u32, u32)>) -> Vec<Bin> {
        let mut bins = vec![Bin::default(); (secs * 10) as usize];
        for t in (0..secs * 1000).step_by(25) {
            let answered = blocks
                .iter()
                .find(|(s, e)| t >= *s && t < *e)
                .map_or(t + 1, |(_, e)| *e);
            bins[(t / 100) as usize].add_probe(t, (answered - t) * 1000, RULE.threshold);
        }
        if let Some((from, to, us)) = lag {
            for b in &mut bins[(from / 100) as usize..(to / 100) as usize] {
                b.lag_max_us = us;
            }
        }
        bins
    }

    #[test]
    fn correlated_lateness_is_a_stall_with_its_start_and_length() {
        let bins = simulate(10, &[(2000, 2300), (6000, 6300)], None);
        let stalls = detect(&bins, RULE);
        assert_eq!(stalls.len(), 2, "{stalls:?}");
        for (stall, start) in stalls.iter().zip([2.0, 6.0]) {
            assert!((stall.start_s - start).abs() < 0.03, "{stall:?}");
            assert!((250.0..=300.0).contains(&stall.length_ms), "{stall:?}");
            assert!(!stall.tester_bound);
        }
    }

    #[test]
    fn a_stall_off_the_bin_grid_keeps_its_full_length() {
        // 200 ms from 2950 ms: only half of bin 29's probes are late, all of bin 30's.
        let stalls = detect(&simulate(5, &[(2950, 3150)], None), RULE);
        assert_eq!(stalls.len(), 1, "{stalls:?}");
        assert!((2.94..=2.96).contains(&stalls[0].start_s), "{stalls:?}");
        assert!((190.0..=200.0).contains(&stalls[0].length_ms), "{stalls:?}");
    }

    #[test]
    fn one_late_probe_is_noise() {
        let mut bins = simulate(5, &[], None);
        bins[20].add_probe(2010, 400_000, RULE.threshold); // one probe very late
        assert!(detect(&bins, RULE).is_empty());
    }

    #[test]
    fn a_healthy_run_has_no_stalls() {
        assert!(detect(&simulate(30, &[], None), RULE).is_empty());
    }

    #[test]
    fn tester_lag_in_the_window_makes_it_tester_bound() {
        let bins = simulate(5, &[(1000, 1300)], Some((1000, 1400, 120_000)));
        let stalls = detect(&bins, RULE);
        assert_eq!(stalls.len(), 1);
        assert!(stalls[0].tester_bound, "{stalls:?}");
        assert_eq!(stalls[0].tester_lag_ms, 120.0);
        assert_eq!(tester_bound_time(&bins, RULE), Duration::from_millis(400));
    }

    #[test]
    fn tester_lag_elsewhere_does_not_excuse_the_target() {
        let bins = simulate(5, &[(1000, 1300)], Some((3000, 3500, 120_000)));
        let stalls = detect(&bins, RULE);
        assert_eq!(stalls.len(), 1);
        assert!(!stalls[0].tester_bound);
    }

    #[test]
    fn abnormal_closes_are_noted_beside_the_stall_they_meet() {
        let mut stalls = detect(&simulate(10, &[(2000, 2300), (6000, 6300)], None), RULE);
        annotate(&mut stalls, &[1500, 2400, 2450, 9000]);
        assert_eq!(stalls[0].nearby_closes, 3);
        assert_eq!(stalls[1].nearby_closes, 0);
    }

    #[test]
    fn a_long_block_is_one_stall() {
        let stalls = detect(&simulate(5, &[(1000, 2500)], None), RULE);
        assert_eq!(stalls.len(), 1);
        assert!(
            (1450.0..=1500.0).contains(&stalls[0].length_ms),
            "{stalls:?}"
        );
    }
}
