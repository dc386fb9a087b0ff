//! Tests of `stall.rs`: detection on simulated probe bins, and what `Bins` keeps.

use super::*;

const RULE: StallRule = StallRule {
    threshold: Duration::from_millis(50),
    quorum: 0.75,
    bin: Duration::from_millis(100),
};

/// Numbers every bin, as if all were kept.
fn dense(bins: &[Bin]) -> Vec<(usize, Bin)> {
    bins.iter().copied().enumerate().collect()
}

/// Feeds `simulate`'s probes and lag into [`Bins`], as the aggregator does.
fn held(bins: &[Bin]) -> Bins {
    let mut held = Bins::new(RULE);
    for (i, b) in bins.iter().enumerate() {
        let t = (i * 100) as u32;
        for _ in 0..b.seen.saturating_sub(b.late) {
            held.add_probe(i, t, 1000);
        }
        // One late probe per span held, then repeats of the first (a union of the same
        // span) until the late count is the bin's.
        let spans = b.late_samples();
        for k in 0..usize::from(b.late) {
            let l = spans.get(k).unwrap_or(&spans[0]);
            held.add_probe(i, l.send_ms, (l.answer_ms - l.send_ms) * 1000);
        }
        if b.lag_max_us > 0 {
            held.add_lag(i, b.lag_max_us);
        }
    }
    held
}

#[test]
fn bins_keep_the_answerable_window_whole_and_older_ones_only_when_eventful() {
    // Two hours of 100 ms bins with a 300 ms block at 10 minutes and soak late at 20.
    let secs = 2 * 3600;
    let bins = simulate(
        secs,
        &[(600_000, 600_300)],
        Some((1_200_000, 1_200_400, 120_000)),
    );
    let held = held(&bins);
    let all = held.all();
    let window = Bins::new(RULE).window();
    assert!(all.len() <= 2 * window + 10, "{} bins held", all.len());
    assert!(held.recent.capacity() <= 2 * window + 1);
    // The same stalls and tester-bound time as from every bin.
    assert_eq!(detect(&all, RULE), detect(&dense(&bins), RULE));
    assert_eq!(detect(&all, RULE).len(), 1);
    assert_eq!(
        tester_bound_time(&all, RULE),
        tester_bound_time(&dense(&bins), RULE)
    );
}

#[test]
fn a_late_answer_for_a_retired_bin_is_kept_a_prompt_one_is_not() {
    let mut held = Bins::new(RULE);
    let window = Bins::new(RULE).window();
    held.add_lag(3 * window, 500); // far enough on that bin 5 is retired
    held.add_probe(5, 500, 1000);
    assert!(held.all().iter().all(|(i, _)| *i != 5), "quiet: not held");
    held.add_probe(5, 500, 900_000);
    let kept: Vec<_> = held.all().into_iter().filter(|(i, _)| *i == 5).collect();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].1.seen, kept[0].1.late), (1, 1));
}

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
    let stalls = detect(&dense(&bins), RULE);
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
    let stalls = detect(&dense(&simulate(5, &[(2950, 3150)], None)), RULE);
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    assert!((2.94..=2.96).contains(&stalls[0].start_s), "{stalls:?}");
    assert!((190.0..=200.0).contains(&stalls[0].length_ms), "{stalls:?}");
}

#[test]
fn one_late_probe_is_noise() {
    let mut bins = simulate(5, &[], None);
    bins[20].add_probe(2010, 400_000, RULE.threshold); // one probe very late
    assert!(detect(&dense(&bins), RULE).is_empty());
}

#[test]
fn a_healthy_run_has_no_stalls() {
    assert!(detect(&dense(&simulate(30, &[], None)), RULE).is_empty());
}

#[test]
fn tester_lag_in_the_window_makes_it_tester_bound() {
    let bins = simulate(5, &[(1000, 1300)], Some((1000, 1400, 120_000)));
    let stalls = detect(&dense(&bins), RULE);
    assert_eq!(stalls.len(), 1);
    assert!(stalls[0].tester_bound, "{stalls:?}");
    assert_eq!(stalls[0].tester_lag_ms, 120.0);
    assert_eq!(
        tester_bound_time(&dense(&bins), RULE),
        Duration::from_millis(400)
    );
}

#[test]
fn tester_lag_elsewhere_does_not_excuse_the_target() {
    let bins = simulate(5, &[(1000, 1300)], Some((3000, 3500, 120_000)));
    let stalls = detect(&dense(&bins), RULE);
    assert_eq!(stalls.len(), 1);
    assert!(!stalls[0].tester_bound);
}

#[test]
fn abnormal_closes_are_noted_beside_the_stall_they_meet() {
    let mut stalls = detect(
        &dense(&simulate(10, &[(2000, 2300), (6000, 6300)], None)),
        RULE,
    );
    annotate(&mut stalls, &[1500, 2400, 2450, 9000]);
    assert_eq!(stalls[0].nearby_closes, 3);
    assert_eq!(stalls[1].nearby_closes, 0);
}

/// Like [`simulate`], but a probe sent while the loop is free is answered when the loop
/// next gets to it: at once, unless the next block starts first (then at its end) — the
/// FastAPI and demo-target shape of blocks closer together than a probe period.
fn simulate_back_to_back(secs: u32, block_ms: u32, every_ms: u32) -> Vec<Bin> {
    let mut bins = vec![Bin::default(); (secs * 10) as usize];
    let blocks: Vec<(u32, u32)> = (1..)
        .map(|k| (k * every_ms, k * every_ms + block_ms))
        .take_while(|(s, _)| *s < secs * 1000)
        .collect();
    for t in (0..secs * 1000).step_by(25) {
        let answered = match blocks.iter().find(|(_, e)| t < *e) {
            Some((s, e)) if t >= *s || t + 1 >= *s => *e,
            _ => t + 1,
        };
        bins[(t / 100) as usize].add_probe(t, (answered - t) * 1000, RULE.threshold);
    }
    bins
}

#[test]
fn blocks_closer_than_a_period_are_separate_stalls_that_never_overlap() {
    // 500 ms blocks every 560 ms for 12 s: the run (22 stalls, longest 1,175 ms,
    // total 13.3 s in 12 s before the fix).
    let stalls = detect(&dense(&simulate_back_to_back(12, 500, 560)), RULE);
    assert!(
        (19..=21).contains(&stalls.len()),
        "{} stalls: {stalls:?}",
        stalls.len()
    );
    for pair in stalls.windows(2) {
        let end = pair[0].start_s * 1000.0 + pair[0].length_ms;
        assert!(end <= pair[1].start_s * 1000.0 + 1e-9, "overlap: {pair:?}");
    }
    let longest = stalls.iter().map(|s| s.length_ms).fold(0.0, f64::max);
    assert!(longest <= 560.0, "longest {longest} ms for 500 ms blocks");
    let total: f64 = stalls.iter().map(|s| s.length_ms).sum();
    assert!(total <= 12_000.0, "total {total} ms in a 12 s run");
}

#[test]
fn a_long_block_is_one_stall() {
    let stalls = detect(&dense(&simulate(5, &[(1000, 2500)], None)), RULE);
    assert_eq!(stalls.len(), 1);
    assert!(
        (1450.0..=1500.0).contains(&stalls[0].length_ms),
        "{stalls:?}"
    );
}
