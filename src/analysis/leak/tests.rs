//! Tests of `leak.rs`.

use super::stats::normal_cdf;
use super::*;

/// A small seeded generator for synthetic noise (uniform in [-1, 1)).
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 2_000_000) as f64 / 1_000_000.0 - 1.0
    }
}

/// One reading per second for `secs`, from `f(t)`.
fn series(secs: usize, mut f: impl FnMut(f64) -> f64) -> Vec<(f64, f64)> {
    (0..secs).map(|i| (i as f64, f(i as f64))).collect()
}

fn judge(hold: &[(f64, f64)], baseline_mb: f64) -> LeakVerdict {
    let baseline = series(10, |_| baseline_mb);
    verdict(
        &MemorySeries {
            baseline: &baseline,
            hold,
            cooldown: &[],
            all: hold,
        },
        LeakRule::default(),
    )
}

#[test]
fn linear_growth_with_noise_and_gc_sawtooth_is_a_leak_with_its_slope() {
    let mut noise = Noise(7);
    // 100 MB + 36 MB/h (0.01 MB/s) over an hour, a 60 s GC sawtooth of 8 MB, ±1 MB noise.
    let hold = series(3600, |t| {
        100.0 + 0.01 * t + 8.0 * ((t % 60.0) / 60.0) + noise.next()
    });
    let v = judge(&hold, 100.0);
    assert_eq!(v.verdict, "leak", "{v:?}");
    let slope = v.slope_mb_per_hour.unwrap();
    assert!(
        (slope - 36.0).abs() < 36.0 * 0.1,
        "slope {slope} MB/h within 10 % of 36"
    );
    let [lo, hi] = v.slope_ci_mb_per_hour.unwrap();
    assert!(
        lo <= 36.0 && 36.0 <= hi,
        "band {lo}..{hi} holds the true slope"
    );
    assert!(v.p_value.unwrap() < 0.01);
}

#[test]
fn a_short_hold_at_a_high_leak_rate_still_gets_a_verdict() {
    let mut noise = Noise(3);
    let hold = series(120, |t| 50.0 + 0.5 * t + noise.next());
    let v = judge(&hold, 50.0);
    assert_eq!(v.verdict, "leak", "{v:?}");
    assert!((v.slope_mb_per_hour.unwrap() - 1800.0).abs() < 180.0);
}

#[test]
fn a_step_then_flat_is_a_plateau() {
    let mut noise = Noise(11);
    let hold = series(
        3600,
        |t| if t < 600.0 { 100.0 + t * 0.05 } else { 130.0 } + noise.next(),
    );
    let v = judge(&hold, 100.0);
    assert_eq!(v.verdict, "plateau", "{v:?}");
}

#[test]
fn flat_with_noise_is_none() {
    let mut noise = Noise(5);
    let hold = series(3600, |_| 100.0 + 2.0 * noise.next());
    assert_eq!(judge(&hold, 100.0).verdict, "none");
}

#[test]
fn a_random_walk_without_drift_is_rarely_a_leak() {
    // Strongly autocorrelated, no drift: 1 Hz steps of up to ±0.5 MB for an hour (it wanders tens of MB). Plain
    // Mann–Kendall calls a good share of these trends; the corrected test must not.
    let mut leaks = 0;
    for seed in 1..=40u64 {
        let mut noise = Noise(seed * 7919);
        let mut level = 200.0;
        let hold = series(3600, |_| {
            level += 0.5 * noise.next();
            level
        });
        if judge(&hold, 200.0).verdict == "leak" {
            leaks += 1;
        }
    }
    assert!(
        leaks <= 1,
        "{leaks} of 40 drift-free random walks called a leak"
    );
}

#[test]
fn short_series_are_insufficient_data() {
    let hold = series(10, |t| 100.0 + t);
    let v = judge(&hold, 100.0);
    assert_eq!(v.verdict, "insufficient-data");
    assert!(v.reason.contains("blocks"));
}

#[test]
fn small_growth_below_the_floors_is_not_a_leak() {
    // 0.5 MB/h on 1 GB: significant but below both floors.
    let hold = series(3600, |t| 1000.0 + 0.5 * t / 3600.0);
    assert_ne!(judge(&hold, 1000.0).verdict, "leak");
}

#[test]
fn retained_memory_and_the_projection() {
    let baseline = series(10, |_| 100.0);
    let cooldown = series(30, |_| 140.0);
    let hold = series(600, |t| 100.0 + t * 0.1);
    let v = verdict(
        &MemorySeries {
            baseline: &baseline,
            hold: &hold,
            cooldown: &cooldown,
            all: &hold,
        },
        LeakRule::default(),
    );
    assert_eq!(v.retained_mb, Some(40.0));
    assert_eq!(v.baseline_mb, Some(100.0));
    assert_eq!(hours_to_limit(160.0, 360.0, 520.0), Some(1.0));
    assert_eq!(hours_to_limit(160.0, 0.0, 520.0), None);
}

#[test]
fn normal_cdf_matches_known_values() {
    assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
    assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
    assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
}

#[test]
fn p_values_never_print_as_zero() {
    assert_eq!(show_p(0.0025), "0.0025");
    assert_eq!(show_p(0.31), "0.31");
    assert_eq!(show_p(0.049), "0.049");
    assert_eq!(show_p(1.0), "1.00");
    assert_eq!(show_p(0.00001), "< 0.0001");
}
