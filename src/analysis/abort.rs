//! `--abort-on-fail`: whether a running soak should end early because a gate can no longer
//! pass, judged on each interval's checkpoint summary after a grace period.
//!
//! k6's `abortOnFail` ends a run the first time a threshold fails after `delayAbortEval`.
//! A soak is hours long and a warm-up blip must not end it, so soak is stricter about
//! what "can no longer pass" means:
//! - a figure that only grows (errors, timeouts, stalls, the maximum) past an upper bound
//!   can never pass again: the run ends at the first checkpoint after the grace period;
//! - a memory gate fails for good only when the leak, projected at its fitted slope, reaches
//!   `--memory-limit` before the run would end;
//! - anything else (rates, percentiles, ratios) must have failed at every checkpoint for a
//!   whole grace period before it ends the run.

use std::time::Duration;

use serde_json::Value;

use crate::analysis::gates::{self, Gate};

/// The abort watch over a run's gates.
#[derive(Debug)]
pub struct Abort {
    gates: Vec<Gate>,
    /// No decision before this offset (the ramp-up's end plus the grace).
    from: Duration,
    grace: Duration,
    /// The run's planned length.
    total: Duration,
    /// Per gate: since when it has failed without a break.
    failing_since: Vec<Option<Duration>>,
}

impl Abort {
    /// A watch over the gates marked `abort`; `None` when there are none.
    pub fn new(
        gates: &[Gate],
        ramp_up_end: Duration,
        grace: Duration,
        total: Duration,
    ) -> Option<Abort> {
        let gates: Vec<Gate> = gates.iter().filter(|g| g.abort).cloned().collect();
        (!gates.is_empty()).then(|| Abort {
            failing_since: vec![None; gates.len()],
            gates,
            from: ramp_up_end.saturating_add(grace),
            grace,
            total,
        })
    }

    /// Judges one checkpoint (`summary` at `elapsed`): the reason to end the run now, if any.
    pub fn check(&mut self, summary: &Value, elapsed: Duration) -> Option<String> {
        let results = gates::evaluate(&self.gates, summary);
        let mut reason = None;
        for ((gate, result), since) in self.gates.iter().zip(&results).zip(&mut self.failing_since)
        {
            if result.passed || result.actual.is_null() {
                *since = None;
                continue;
            }
            let since = *since.get_or_insert(elapsed);
            if elapsed < self.from || reason.is_some() {
                continue;
            }
            let memory = matches!(
                result.metric,
                "memory" | "leak" | "slope_mb_h" | "leak_per_message_kb" | "leak_per_connection_kb"
            );
            let remaining_h = self.total.saturating_sub(elapsed).as_secs_f64() / 3600.0;
            let why = if gate.failed_for_good(result) {
                Some("it can no longer pass")
            } else if memory {
                let hours = summary
                    .pointer("/memory/hours_to_limit")
                    .and_then(Value::as_f64);
                hours
                    .filter(|h| *h <= remaining_h)
                    .map(|_| "the leak is projected to reach --memory-limit before the run ends")
            } else if elapsed.saturating_sub(since) >= self.grace {
                Some("it has failed at every checkpoint for the whole grace period")
            } else {
                None
            };
            reason = why.map(|why| {
                format!(
                    "gate `{}` failed ({}) at +{:.1} s and {why}",
                    gate.expr,
                    result.message,
                    elapsed.as_secs_f64()
                )
            });
        }
        reason
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn watch(exprs: &[&str], grace_s: u64) -> Abort {
        let gates: Vec<Gate> = exprs
            .iter()
            .map(|e| {
                let mut g = gates::parse(e).unwrap();
                g.abort = true;
                g
            })
            .collect();
        Abort::new(
            &gates,
            Duration::from_secs(5),
            Duration::from_secs(grace_s),
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn only_gates_marked_abort_are_watched() {
        let g = gates::parse("errors == 0").unwrap();
        assert!(Abort::new(&[g], at(0), at(1), at(10)).is_none());
    }

    #[test]
    fn a_count_past_its_bound_ends_the_run_after_the_grace_only() {
        let mut w = watch(&["errors < 10"], 10);
        let bad = json!({"totals": {"errors": 12}});
        assert_eq!(w.check(&bad, at(3)), None, "during the ramp-up");
        assert_eq!(w.check(&bad, at(14)), None, "inside the grace after it");
        let why = w.check(&bad, at(15)).expect("past the grace");
        assert!(why.contains("can no longer pass"), "{why}");
    }

    #[test]
    fn a_rate_must_fail_for_a_whole_grace_period() {
        let mut w = watch(&["error_rate < 5%"], 10);
        let bad = json!({"totals": {"error_ratio": 0.5}});
        let good = json!({"totals": {"error_ratio": 0.01}});
        assert_eq!(w.check(&bad, at(16)), None);
        assert_eq!(
            w.check(&good, at(20)),
            None,
            "it recovered: the clock restarts"
        );
        assert_eq!(w.check(&bad, at(22)), None);
        assert_eq!(w.check(&bad, at(31)), None);
        assert!(w.check(&bad, at(32)).is_some(), "10 s of failing in a row");
    }

    #[test]
    fn a_leak_ends_the_run_only_when_it_reaches_the_limit_in_time() {
        let mut w = watch(&["memory != leak"], 0);
        let far = json!({"memory": {"verdict": "leak", "hours_to_limit": 5.0}});
        let near = json!({"memory": {"verdict": "leak", "hours_to_limit": 0.5}});
        let none = json!({"memory": {"verdict": "leak"}});
        assert_eq!(
            w.check(&none, at(600)),
            None,
            "no limit given: it may still turn"
        );
        assert_eq!(w.check(&far, at(600)), None, "the run ends first");
        assert!(w.check(&near, at(600)).is_some());
    }

    #[test]
    fn what_was_not_measured_never_ends_a_run() {
        let mut w = watch(&["stalls == 0"], 0);
        assert_eq!(w.check(&json!({}), at(100)), None);
    }
}
