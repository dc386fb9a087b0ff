//! The memory report of one sampled process: its readings split by phase, the leak verdict,
//! fd and thread growth, and the projection to a memory limit.

use std::time::Duration;

use serde::Serialize;

use crate::analysis::attribution::{self, Attribution, Work};
use crate::analysis::leak::{self, LeakRule, LeakVerdict, MemorySeries};
use crate::plan::{Phase, Plan};
use crate::sampler::Reading;

/// Where the phases lie, for splitting readings.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// The plan.
    pub plan: Plan,
    /// Start of the hold excluded from the verdict.
    pub warmup: Duration,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryReport {
    /// The verdict and its numbers.
    #[serde(flatten)]
    pub verdict: LeakVerdict,
    /// Warm-up excluded from the verdict, s.
    pub warmup_s: f64,
    /// Readings taken.
    pub samples: usize,
    /// Open file descriptors at the end minus the idle baseline.
    pub fd_growth: Option<i64>,
    /// Threads at the end minus the idle baseline.
    pub thread_growth: Option<i64>,
    /// Most file descriptors seen.
    pub fd_peak: Option<u32>,
    /// Most threads seen.
    pub thread_peak: Option<u32>,
    /// At the fitted slope, hours until the memory limit (when a limit is given and it grows).
    pub hours_to_limit: Option<f64>,
    /// CPU while users ran (ramps and hold), mean, % of one core.
    pub cpu_pct_mean: Option<f64>,
    /// CPU while users ran, highest reading, % of one core.
    pub cpu_pct_max: Option<f64>,
    /// What a leak is made of (per message, per closed connection, or no single cause);
    /// `None` unless the verdict is `leak`.
    pub attribution: Option<Attribution>,
    /// KiB the target kept per message: the claimed per-message figure, 0 when there is
    /// no leak or it is put down to another cause, the message line's slope when no single
    /// cause is claimed (as if all were per message); `None` without a verdict.
    pub leak_per_message_kb: Option<f64>,
    /// The same per closed connection.
    pub leak_per_connection_kb: Option<f64>,
    /// Readings of the target that failed (a metrics endpoint that timed out or went
    /// away): gaps in `memory.csv`, left out of the verdict.
    pub gaps: u64,
    /// Why the last failed reading failed.
    pub last_gap: Option<String>,
}

/// The report for `readings` (ms from the run's start, reading) and the run's cumulative
/// `work` at each (empty: no attribution).
pub fn report(
    (readings, work): (&[(u32, Reading)], &[Work]),
    windows: Windows,
    rule: LeakRule,
    limit_mb: Option<f64>,
) -> MemoryReport {
    let plan = windows.plan;
    let phase = |at_ms: u32| plan.phase_at(Duration::from_millis(u64::from(at_ms)));
    let series = Series::split(readings, work, windows);
    let verdict = leak::verdict(&series.as_memory(), rule);
    let attribution = (verdict.verdict == "leak" && !work.is_empty())
        .then(|| attribution::attribute(&series.hold, &series.hold_work));
    let per = |cause: &str| match (&attribution, verdict.verdict) {
        (_, "insufficient-data") => None,
        _ if work.is_empty() => None,
        (Some(a), _) => Some(a.kib_per(cause)),
        (None, _) => Some(0.0),
    };
    let (leak_per_message_kb, leak_per_connection_kb) = (per("message"), per("closed_connection"));
    let at_baseline = readings
        .iter()
        .filter(|(at, _)| phase(*at) == Phase::Baseline);
    let last = readings.last().map(|(_, r)| *r);
    let growth = |f: fn(&Reading) -> Option<u32>| {
        let base = at_baseline.clone().filter_map(|(_, r)| f(r)).min();
        base.zip(last.as_ref().and_then(f))
            .map(|(b, l)| i64::from(l) - i64::from(b))
    };
    let hours_to_limit = match (limit_mb, verdict.slope_mb_per_hour, series.hold.last()) {
        (Some(limit), Some(slope), Some(&(_, now))) if verdict.verdict == "leak" => {
            leak::hours_to_limit(now, slope, limit)
        }
        _ => None,
    };
    let loaded = readings
        .iter()
        .filter(|(at, _)| matches!(phase(*at), Phase::RampUp | Phase::Hold | Phase::RampDown))
        .map(|(_, r)| f64::from(r.cpu_pct));
    let (cpu_pct_mean, cpu_pct_max) = mean_and_max(loaded);
    MemoryReport {
        cpu_pct_mean,
        cpu_pct_max,
        warmup_s: windows.warmup.as_secs_f64(),
        samples: readings.len(),
        fd_growth: growth(|r| Some(r.fds)),
        thread_growth: growth(|r| r.threads),
        fd_peak: readings.iter().map(|(_, r)| r.fds).max(),
        thread_peak: readings.iter().filter_map(|(_, r)| r.threads).max(),
        hours_to_limit,
        verdict,
        attribution,
        leak_per_message_kb,
        leak_per_connection_kb,
        gaps: 0,
        last_gap: None,
    }
}

/// RSS readings (s, MB) by the part of the run they fall in.
struct Series {
    baseline: Vec<(f64, f64)>,
    /// The hold after its warm-up: what the verdict is made from.
    hold: Vec<(f64, f64)>,
    /// The run's work at each `hold` reading (empty without work).
    hold_work: Vec<Work>,
    cooldown: Vec<(f64, f64)>,
    all: Vec<(f64, f64)>,
}

impl Series {
    fn split(readings: &[(u32, Reading)], work: &[Work], windows: Windows) -> Series {
        let plan = windows.plan;
        let verdict_from = plan.hold_start() + windows.warmup;
        let hold_end = plan.hold_start() + plan.hold();
        let mut series = Series {
            baseline: Vec::new(),
            hold: Vec::new(),
            hold_work: Vec::new(),
            cooldown: Vec::new(),
            all: Vec::with_capacity(readings.len()),
        };
        for (i, &(at_ms, r)) in readings.iter().enumerate() {
            let t = Duration::from_millis(u64::from(at_ms));
            let point = (t.as_secs_f64(), r.rss_mb());
            series.all.push(point);
            match plan.phase_at(t) {
                Phase::Baseline => series.baseline.push(point),
                Phase::Hold if t >= verdict_from && t < hold_end => {
                    series.hold.push(point);
                    if let Some(w) = work.get(i) {
                        series.hold_work.push(*w);
                    }
                }
                Phase::CoolDown | Phase::Done => series.cooldown.push(point),
                _ => {}
            }
        }
        series
    }

    fn as_memory(&self) -> MemorySeries<'_> {
        MemorySeries {
            baseline: &self.baseline,
            hold: &self.hold,
            cooldown: &self.cooldown,
            all: &self.all,
        }
    }
}

/// Mean and highest of `values`, to one decimal; `None` without values.
fn mean_and_max(values: impl Iterator<Item = f64>) -> (Option<f64>, Option<f64>) {
    let round1 = |x: f64| (x * 10.0).round() / 10.0;
    let (mut n, mut sum, mut max) = (0usize, 0.0, f64::MIN);
    for v in values {
        n += 1;
        sum += v;
        max = max.max(v);
    }
    if n == 0 {
        return (None, None);
    }
    (Some(round1(sum / n as f64)), Some(round1(max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(mb: f64, fds: u32) -> Reading {
        Reading {
            rss_bytes: (mb * 1e6) as u64,
            cpu_pct: 1.0,
            fds,
            threads: Some(4),
            procs: 1,
        }
    }

    /// 10 s baseline at 50 MB, a 100 s hold, 10 s cool-down; `mb(t)` during the hold, and
    /// 100 messages a second.
    fn run_of(mb: impl Fn(u32) -> f64) -> MemoryReport {
        let s = Duration::from_secs;
        let plan = Plan::new(1, s(100), s(0), s(0)).with_margins(s(10), s(10));
        let readings: Vec<(u32, Reading)> = (0..120u32)
            .map(|t| {
                let at = if t < 10 { 50.0 } else { mb(t.min(110) - 10) };
                (t * 1000, reading(at, 10))
            })
            .collect();
        let work: Vec<Work> = (0..120u64)
            .map(|t| Work {
                messages: t.saturating_sub(10).min(100) * 100,
                opened: 1,
                closed: 0,
            })
            .collect();
        let windows = Windows {
            plan,
            warmup: s(10),
        };
        report((&readings, &work), windows, LeakRule::default(), None)
    }

    #[test]
    fn a_leak_is_attributed_and_a_plateau_is_not() {
        // 1 MB a second with 100 messages a second: 10 KB (9.8 KiB) a message.
        let leak = run_of(|t| 50.0 + f64::from(t));
        assert_eq!(leak.verdict.verdict, "leak");
        let a = leak.attribution.as_ref().unwrap();
        assert_eq!(a.cause, Some("message"), "{a:?}");
        assert!((a.kib_per_unit.unwrap() - 9.766).abs() < 0.1, "{a:?}");
        assert_eq!(leak.leak_per_message_kb, a.kib_per_unit);
        // Up 30 MB in the first 20 s, then flat: a plateau, nothing attributed.
        let plateau = run_of(|t| 50.0 + f64::from(t.min(20)) * 1.5);
        assert_eq!(plateau.verdict.verdict, "plateau", "{plateau:?}");
        assert!(plateau.attribution.is_none());
        assert_eq!(plateau.leak_per_message_kb, Some(0.0));
    }

    #[test]
    fn phases_split_the_readings_and_growth_is_measured_from_the_baseline() {
        // 10 s baseline, 100 s hold, 10 s cool-down; 1 MB/s during the hold, fds leak too.
        let s = Duration::from_secs;
        let plan = Plan::new(1, s(100), s(0), s(0)).with_margins(s(10), s(10));
        let readings: Vec<(u32, Reading)> = (0..120u32)
            .map(|t| {
                let mb = if t < 10 {
                    50.0
                } else {
                    50.0 + f64::from(t.min(110) - 10)
                };
                (t * 1000, reading(mb, 10 + t / 10))
            })
            .collect();
        let r = report(
            (&readings, &[]),
            Windows {
                plan,
                warmup: s(10),
            },
            LeakRule::default(),
            Some(1000.0),
        );
        assert_eq!(r.verdict.verdict, "leak", "{r:?}");
        assert!((r.verdict.slope_mb_per_hour.unwrap() - 3600.0).abs() < 360.0);
        assert_eq!(r.verdict.baseline_mb, Some(50.0));
        assert_eq!(r.verdict.retained_mb, Some(100.0));
        assert_eq!(r.fd_growth, Some(11));
        assert_eq!(r.thread_growth, Some(0));
        assert!(
            r.hours_to_limit.unwrap() > 0.2 && r.hours_to_limit.unwrap() < 0.3,
            "{r:?}"
        );
    }
}
