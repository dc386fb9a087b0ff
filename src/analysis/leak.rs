//! The memory verdict: is the target leaking, did it step up to a plateau, or neither?
//!
//! Method (all pure functions over `(seconds, MB)` readings):
//! 1. Take the hold phase after warm-up and cut it into blocks (about 30, each at least
//!    [`MIN_SAMPLES_PER_BLOCK`] readings and at most 5 minutes). Each block is reduced to its
//!    minimum, which follows the trough after each garbage collection rather than the
//!    sawtooth above it.
//! 2. Fit a **Theil–Sen** slope (median of pairwise slopes; robust to outliers) in MB/hour,
//!    with Sen's 95 % confidence band.
//! 3. Test the trend with **Mann–Kendall** on the block minima. Memory readings are strongly
//!    autocorrelated, and plain Mann–Kendall then finds "trends" in a random walk, so the
//!    variance of S is inflated for the significant autocorrelations of the detrended
//!    series (Hamed & Rao, 1998).
//! 4. A random walk wanders far enough to fool both, so the block-to-block steps must also
//!    grow on average (a t-test on first differences: zero mean under a drift-free walk).
//! 5. Call it a **leak** only if the trend is significant, the slope and its lower bound are
//!    positive, the slope clears both effect floors (MB/h and % of baseline per hour), and
//!    the growth is steady through the hold (each third of it grows at least a third as
//!    fast as the whole: a random walk that happened to end high does not). Growth that stopped, or a level well above the idle baseline with no trend,
//!    is a **plateau** (allocator retention, caches, pools: explicitly not a leak).

use serde::Serialize;

mod stats;
use stats::median;
pub use stats::{growth_of_steps_p, mann_kendall, theil_sen};

/// Fewest readings a block may hold.
pub const MIN_SAMPLES_PER_BLOCK: usize = 2;
/// Fewest blocks for a verdict.
pub const MIN_BLOCKS: usize = 8;
/// Blocks aimed for.
const TARGET_BLOCKS: usize = 30;
/// Longest block, s: a 4-hour hold uses minute-scale blocks, never coarser than this.
const MAX_BLOCK_S: f64 = 300.0;

/// Thresholds of the verdict.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LeakRule {
    /// Significance level of the trend test.
    pub alpha: f64,
    /// A leak grows at least this many MB per hour.
    pub min_mb_per_hour: f64,
    /// …and at least this percentage of the baseline per hour.
    pub min_pct_per_hour: f64,
    /// A level this far above the idle baseline (MB, and %) with no leak is a plateau.
    pub plateau_mb: f64,
    /// The same, as a percentage of the baseline.
    pub plateau_pct: f64,
}

impl Default for LeakRule {
    fn default() -> Self {
        LeakRule {
            alpha: 0.01,
            min_mb_per_hour: 1.0,
            min_pct_per_hour: 1.0,
            plateau_mb: 5.0,
            plateau_pct: 10.0,
        }
    }
}

/// The series a verdict is made from, each `(seconds from the run's start, value)`.
#[derive(Debug, Clone, Default)]
pub struct MemorySeries<'a> {
    /// RSS (MB) during the idle baseline before any load.
    pub baseline: &'a [(f64, f64)],
    /// RSS (MB) during the hold, after warm-up.
    pub hold: &'a [(f64, f64)],
    /// RSS (MB) during the cool-down after the last user left.
    pub cooldown: &'a [(f64, f64)],
    /// Every RSS reading (MB), for the peak.
    pub all: &'a [(f64, f64)],
}

/// The verdict with its numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeakVerdict {
    /// `leak`, `plateau`, `none` or `insufficient-data`.
    pub verdict: &'static str,
    /// Theil–Sen slope over the hold after warm-up, MB/hour.
    pub slope_mb_per_hour: Option<f64>,
    /// Sen's 95 % confidence band of the slope, MB/hour.
    pub slope_ci_mb_per_hour: Option<[f64; 2]>,
    /// Two-sided p-value of the (autocorrelation-corrected) Mann–Kendall test.
    pub p_value: Option<f64>,
    /// Blocks the hold was cut into, and their length in seconds.
    pub blocks: usize,
    /// Block length, s.
    pub block_s: f64,
    /// Median RSS of the idle baseline, MB.
    pub baseline_mb: Option<f64>,
    /// Highest RSS reading, MB.
    pub peak_mb: Option<f64>,
    /// Median RSS at the end of the cool-down minus the baseline, MB.
    pub retained_mb: Option<f64>,
    /// Why, in a sentence.
    pub reason: String,
}

/// Makes the verdict.
pub fn verdict(series: &MemorySeries<'_>, rule: LeakRule) -> LeakVerdict {
    let baseline = median(series.baseline.iter().map(|p| p.1));
    let peak = series
        .all
        .iter()
        .map(|p| p.1)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let tail = &series.cooldown[series.cooldown.len() - series.cooldown.len().min(5)..];
    let retained = median(tail.iter().map(|p| p.1))
        .zip(baseline)
        .map(|(c, b)| round(c - b));
    let (blocks, block_s) = block_minima(series.hold);
    let mut out = LeakVerdict {
        verdict: "insufficient-data",
        slope_mb_per_hour: None,
        slope_ci_mb_per_hour: None,
        p_value: None,
        blocks: blocks.len(),
        block_s: round(block_s),
        baseline_mb: baseline.map(round),
        peak_mb: peak.map(round),
        retained_mb: retained,
        reason: String::new(),
    };
    if blocks.len() < MIN_BLOCKS {
        out.reason = format!(
            "the hold after warm-up gave {} blocks of readings; {MIN_BLOCKS} are needed (a longer hold or a shorter sample interval)",
            blocks.len()
        );
        return out;
    }
    let hours: Vec<(f64, f64)> = blocks.iter().map(|&(t, v)| (t / 3600.0, v)).collect();
    let trend = Trend::of(&hours);
    out.slope_mb_per_hour = Some(round(trend.slope));
    out.slope_ci_mb_per_hour = Some([round(trend.lo), round(trend.hi)]);
    out.p_value = Some((trend.p * 1e6).round() / 1e6);
    let base = baseline
        .unwrap_or_else(|| blocks[0].1)
        .max(f64::MIN_POSITIVE);
    let level = median(blocks.iter().map(|b| b.1)).unwrap_or(base);
    (out.verdict, out.reason) = trend.judge(base, level - base, baseline.is_some(), rule);
    out
}

/// The trend of the hold's block minima (hours, MB).
struct Trend {
    /// Theil–Sen slope, MB/h, and its band widened for autocorrelation.
    slope: f64,
    lo: f64,
    hi: f64,
    /// Mann–Kendall p-value (Hamed–Rao corrected).
    p: f64,
    /// Whether the block-to-block steps grow on average (a random walk's do not).
    step_p: f64,
    /// The slope of each third of the hold.
    thirds: [f64; 3],
}

impl Trend {
    fn of(hours: &[(f64, f64)]) -> Trend {
        let (slope, _, _) = theil_sen(hours, 1.0);
        let (p, inflation) = mann_kendall(hours, slope);
        // The band widens with the same autocorrelation correction as the test.
        let (_, lo, hi) = theil_sen(hours, inflation);
        let third = hours.len() / 3;
        let thirds = [
            &hours[..third],
            &hours[third..2 * third],
            &hours[2 * third..],
        ]
        .map(|part| theil_sen(part, 1.0).0);
        Trend {
            slope,
            lo,
            hi,
            p,
            step_p: growth_of_steps_p(hours),
            thirds,
        }
    }

    /// The verdict and its reason, for a `base` level (MB, the idle baseline when there is
    /// one) and how far `above` it the hold's median settled.
    fn judge(
        &self,
        base: f64,
        above: f64,
        has_baseline: bool,
        rule: LeakRule,
    ) -> (&'static str, String) {
        let Trend {
            slope, p, step_p, ..
        } = *self;
        let pct_per_hour = slope / base * 100.0;
        let significant = p < rule.alpha && self.lo > 0.0 && step_p < rule.alpha;
        let big = slope >= rule.min_mb_per_hour && pct_per_hour >= rule.min_pct_per_hour;
        // Steady growth goes up in every third of the hold; a wandering series does not.
        let steady = self.thirds.iter().all(|&s| s >= slope / 3.0);
        let stepped =
            has_baseline && above > rule.plateau_mb && above / base * 100.0 > rule.plateau_pct;
        if significant && big && steady {
            let reason = format!(
                "RSS grew {slope:.1} MB/h ({pct_per_hour:.1} %/h of the baseline) through the hold, p = {}",
                show_p(p)
            );
            ("leak", reason)
        } else if significant && big || stepped {
            let late = self.thirds[2];
            let reason = format!(
                "RSS settled {above:.1} MB above the idle baseline and did not keep growing (last third's slope {late:.1} MB/h): retention, caches or pools, not a leak"
            );
            ("plateau", reason)
        } else if p < rule.alpha && self.lo > 0.0 {
            let reason = format!(
                "RSS drifted {slope:.1} MB/h overall but not steadily: the block-to-block steps do not grow on average (p = {}), as a wandering or settling series does",
                show_p(step_p)
            );
            ("none", reason)
        } else if p < rule.alpha {
            let reason = format!(
                "no clear growth: slope {slope:.1} MB/h, but its 95 % band reaches {:.1} MB/h, so it may be zero (trend p = {})",
                self.lo,
                show_p(p)
            );
            ("none", reason)
        } else {
            let reason = format!(
                "no significant growth: slope {slope:.1} MB/h, p = {} (a leak needs p < {})",
                show_p(p),
                rule.alpha
            );
            ("none", reason)
        }
    }
}

/// A p-value as people read it: two significant digits (`0.0025`, `0.31`), and
/// `< 0.0001` below that, so a small p never prints as `0.00`.
pub fn show_p(p: f64) -> String {
    if p < 0.0001 {
        return String::from("< 0.0001");
    }
    let decimals = (1.0 - p.log10().floor()).max(2.0) as usize;
    format!("{p:.decimals$}")
}

/// Hours until `limit_mb` at `slope` from `now_mb`, if it is growing.
pub fn hours_to_limit(now_mb: f64, slope_mb_per_hour: f64, limit_mb: f64) -> Option<f64> {
    (slope_mb_per_hour > 0.0 && limit_mb > now_mb)
        .then(|| round((limit_mb - now_mb) / slope_mb_per_hour))
}

/// The series cut into blocks, each reduced to (mid time, minimum); and the block length.
pub fn block_minima(series: &[(f64, f64)]) -> (Vec<(f64, f64)>, f64) {
    let (blocks, block_s) = block_minima_at(series);
    (
        blocks.into_iter().map(|(t, v, _)| (t, v)).collect(),
        block_s,
    )
}

/// [`block_minima`] with the index in `series` of each block's minimum (so what else was
/// known at that reading, like the run's counts, can be read beside it).
pub fn block_minima_at(series: &[(f64, f64)]) -> (Vec<(f64, f64, usize)>, f64) {
    if series.len() < 2 {
        return (Vec::new(), 0.0);
    }
    let span = series[series.len() - 1].0 - series[0].0;
    let step = span / (series.len() - 1) as f64;
    let block_s = (span / TARGET_BLOCKS as f64)
        .max(step * MIN_SAMPLES_PER_BLOCK as f64)
        .min(MAX_BLOCK_S.max(step * MIN_SAMPLES_PER_BLOCK as f64));
    let start = series[0].0;
    // (mid time, minimum, index of the minimum, readings)
    let mut blocks: Vec<(f64, f64, usize, usize)> = Vec::new();
    for (i, &(t, v)) in series.iter().enumerate() {
        let k = ((t - start) / block_s).floor() as usize;
        match blocks.get_mut(k) {
            Some(b) => {
                if v < b.1 {
                    (b.1, b.2) = (v, i);
                }
                b.3 += 1;
            }
            None => {
                while blocks.len() < k {
                    blocks.push((f64::NAN, f64::NAN, 0, 0));
                }
                blocks.push((start + (k as f64 + 0.5) * block_s, v, i, 1));
            }
        }
    }
    let full = blocks
        .into_iter()
        .filter(|b| b.3 >= MIN_SAMPLES_PER_BLOCK)
        .map(|b| (b.0, b.1, b.2))
        .collect();
    (full, block_s)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests;
