//! The load shape as pure data: when each user starts and stops, and the phase of any instant.
//!
//! Users start evenly over the ramp-up (user `i` of `n` at `ramp_up · i / n`, so the first
//! starts at once), all hold, and stop evenly over the ramp-down, the last started first
//! (as k6 ramps down), so the first user leaves exactly when the load ends. When a target
//! process is sampled, an idle baseline comes before the load and a cool-down after it.

use std::time::Duration;

use serde::Serialize;

use crate::profile::resolve::RunConfig;
use crate::segment::Segment;

/// A part of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Before any load: the target's idle memory.
    Baseline,
    /// Users are starting.
    RampUp,
    /// All users are running.
    Hold,
    /// Users are stopping.
    RampDown,
    /// After the last user left: does the target give memory back?
    CoolDown,
    /// The plan is over (only the last flush happens here).
    Done,
}

impl Phase {
    /// The name used in files and on screen.
    pub fn label(self) -> &'static str {
        match self {
            Phase::RampUp => "ramp-up",
            Phase::Hold => "hold",
            Phase::RampDown => "ramp-down",
            Phase::Baseline => "baseline",
            Phase::CoolDown => "cool-down",
            Phase::Done => "done",
        }
    }
}

/// One phase and its offsets from the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseSpan {
    /// Which phase.
    pub phase: Phase,
    /// Offset at which it begins.
    pub start: Duration,
    /// Offset at which it ends (exclusive).
    pub end: Duration,
}

/// When every user starts and stops. Small and `Copy`: offsets are computed, not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    users: u32,
    baseline: Duration,
    ramp_up: Duration,
    hold: Duration,
    ramp_down: Duration,
    cooldown: Duration,
    /// The slice of the users this process runs, and the room size whole rooms of which
    /// are dealt out (1: users one by one).
    segment: Segment,
    room: u32,
}

impl Plan {
    /// The plan for a validated config (ramps fit in the duration; checked by `resolve`).
    pub fn build(config: &RunConfig) -> Plan {
        Plan::new(
            config.users,
            config.duration,
            config.ramp_up,
            config.ramp_down,
        )
        .with_margins(config.baseline, config.cooldown)
        .sliced(
            config.segment,
            if config.fanout.is_some() {
                config.room_size
            } else {
                1
            },
        )
    }

    /// Only segment `segment`'s users of the same plan (whole rooms of `room` users when
    /// rooms see fan-out); offsets stay those of the whole plan.
    pub fn sliced(self, segment: Segment, room: u32) -> Plan {
        Plan {
            segment,
            room: room.max(1),
            ..self
        }
    }

    /// The slice of the plan this process runs.
    pub fn segment(&self) -> Segment {
        self.segment
    }

    /// Whether user `i` of the whole plan runs in this process.
    pub fn owns(&self, i: u32) -> bool {
        self.segment.owns_user(i, self.room)
    }

    /// The users this process runs, in order.
    pub fn own_users(&self) -> Vec<u32> {
        (0..self.users).filter(|&i| self.owns(i)).collect()
    }

    /// The same plan with an idle baseline before the load and a cool-down after it.
    pub fn with_margins(self, baseline: Duration, cooldown: Duration) -> Plan {
        Plan {
            baseline,
            cooldown,
            ..self
        }
    }

    /// The plan for `users` over `total`, ramps included. Ramps longer than the run are
    /// clipped to it (the profile resolver refuses them before this point).
    pub fn new(users: u32, total: Duration, ramp_up: Duration, ramp_down: Duration) -> Plan {
        let ramp_up = ramp_up.min(total);
        let ramp_down = ramp_down.min(total - ramp_up);
        Plan {
            users,
            ramp_up,
            baseline: Duration::ZERO,
            hold: total - ramp_up - ramp_down,
            ramp_down,
            cooldown: Duration::ZERO,
            segment: Segment::WHOLE,
            room: 1,
        }
    }

    /// Number of users in the whole plan (see [`Plan::own_users`] for this process's).
    pub fn users(&self) -> u32 {
        self.users
    }

    /// Length of the whole run, baseline and cool-down included.
    pub fn total(&self) -> Duration {
        self.load_end() + self.cooldown
    }

    /// Offset at which the load ends (the last user stops).
    pub fn load_end(&self) -> Duration {
        self.baseline + self.ramp_up + self.hold + self.ramp_down
    }

    /// Offset at which the hold begins.
    pub fn hold_start(&self) -> Duration {
        self.baseline + self.ramp_up
    }

    /// Length of the hold.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// Offset at which user `i` (0-based) starts.
    pub fn start_offset(&self, i: u32) -> Duration {
        self.baseline + fraction(self.ramp_up, i, self.users)
    }

    /// Offset at which user `i` stops: the last started stops first.
    pub fn stop_offset(&self, i: u32) -> Duration {
        let ramp_down_start = self.hold_start() + self.hold;
        ramp_down_start + fraction(self.ramp_down, self.users.saturating_sub(i), self.users)
    }

    /// The phase an offset falls in.
    pub fn phase_at(&self, t: Duration) -> Phase {
        if t < self.baseline {
            Phase::Baseline
        } else if t < self.hold_start() {
            Phase::RampUp
        } else if t < self.hold_start() + self.hold {
            Phase::Hold
        } else if t < self.load_end() {
            Phase::RampDown
        } else if t < self.total() {
            Phase::CoolDown
        } else {
            Phase::Done
        }
    }

    /// The phases that have a length, in order.
    pub fn phases(&self) -> Vec<PhaseSpan> {
        let b = self.baseline;
        let spans = [
            (Phase::Baseline, Duration::ZERO, b),
            (Phase::RampUp, b, self.hold_start()),
            (
                Phase::Hold,
                self.hold_start(),
                self.hold_start() + self.hold,
            ),
            (
                Phase::RampDown,
                self.hold_start() + self.hold,
                self.load_end(),
            ),
            (Phase::CoolDown, self.load_end(), self.total()),
        ];
        spans
            .into_iter()
            .filter(|(_, start, end)| end > start)
            .map(|(phase, start, end)| PhaseSpan { phase, start, end })
            .collect()
    }

    /// How many of this process's users the plan has running at offset `t`.
    pub fn active_at(&self, t: Duration) -> u32 {
        let started = (0..self.users).filter(|&i| self.owns(i) && self.start_offset(i) <= t);
        started.filter(|&i| self.stop_offset(i) > t).count() as u32
    }
}

/// `d · num / den`, exact in nanoseconds.
fn fraction(d: Duration, num: u32, den: u32) -> Duration {
    if den == 0 {
        return Duration::ZERO;
    }
    let nanos = d.as_nanos() * u128::from(num) / u128::from(den);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn users_start_evenly_and_stop_last_in_first_out() {
        let plan = Plan::new(4, s(20), s(4), s(8));
        let starts: Vec<_> = (0..4).map(|i| plan.start_offset(i)).collect();
        assert_eq!(starts, [s(0), s(1), s(2), s(3)]);
        let stops: Vec<_> = (0..4).map(|i| plan.stop_offset(i)).collect();
        assert_eq!(stops, [s(20), s(18), s(16), s(14)]);
    }

    #[test]
    fn phases_cover_the_run_in_order() {
        let plan = Plan::new(10, s(60), s(10), s(20));
        assert_eq!(plan.phase_at(s(0)), Phase::RampUp);
        assert_eq!(plan.phase_at(s(9)), Phase::RampUp);
        assert_eq!(plan.phase_at(s(10)), Phase::Hold);
        assert_eq!(plan.phase_at(s(39)), Phase::Hold);
        assert_eq!(plan.phase_at(s(40)), Phase::RampDown);
        assert_eq!(plan.phase_at(s(60)), Phase::Done);
        let phases = plan.phases();
        assert_eq!(phases.len(), 3);
        assert_eq!(phases[1].start, s(10));
        assert_eq!(phases[1].end, s(40));
        assert_eq!(phases[2].end, plan.total());
    }

    #[test]
    fn active_users_rise_hold_and_fall() {
        let plan = Plan::new(10, s(30), s(10), s(10));
        assert_eq!(plan.active_at(s(0)), 1);
        assert_eq!(plan.active_at(s(5)), 6);
        assert_eq!(plan.active_at(s(15)), 10);
        assert_eq!(plan.active_at(s(25)), 5);
        assert_eq!(plan.active_at(s(30)), 0);
    }

    #[test]
    fn zero_ramps_start_all_at_once_and_stop_at_the_end() {
        let plan = Plan::new(5, s(10), s(0), s(0));
        assert!((0..5).all(|i| plan.start_offset(i).is_zero()));
        assert!((0..5).all(|i| plan.stop_offset(i) == s(10)));
        assert_eq!(plan.phases().len(), 1);
        assert_eq!(plan.phase_at(s(0)), Phase::Hold);
    }

    #[test]
    fn one_user() {
        let plan = Plan::new(1, s(10), s(2), s(2));
        assert_eq!(plan.start_offset(0), s(0));
        assert_eq!(plan.stop_offset(0), s(10));
        assert_eq!(plan.active_at(s(9)), 1);
    }

    #[test]
    fn ramps_filling_the_run_leave_no_hold() {
        let plan = Plan::new(2, s(10), s(5), s(5));
        let phases: Vec<_> = plan.phases().iter().map(|p| p.phase).collect();
        assert_eq!(phases, [Phase::RampUp, Phase::RampDown]);
    }

    #[test]
    fn baseline_and_cooldown_surround_the_load() {
        let plan = Plan::new(2, s(10), s(2), s(2)).with_margins(s(5), s(3));
        assert_eq!(plan.start_offset(0), s(5));
        assert_eq!(plan.stop_offset(0), s(15));
        assert_eq!(plan.total(), s(18));
        assert_eq!(plan.phase_at(s(1)), Phase::Baseline);
        assert_eq!(plan.phase_at(s(8)), Phase::Hold);
        assert_eq!(plan.phase_at(s(16)), Phase::CoolDown);
        let names: Vec<_> = plan.phases().iter().map(|p| p.phase.label()).collect();
        assert_eq!(
            names,
            ["baseline", "ramp-up", "hold", "ramp-down", "cool-down"]
        );
        assert_eq!(plan.active_at(s(2)), 0, "nobody runs during the baseline");
    }

    #[test]
    fn ramps_longer_than_the_run_are_clipped() {
        let plan = Plan::new(2, s(10), s(30), s(30));
        assert_eq!(plan.total(), s(10));
        assert!(plan.stop_offset(0) <= s(10));
    }

    #[test]
    fn every_user_runs_for_a_positive_time_when_there_is_a_hold() {
        let plan = Plan::new(1000, s(100), s(30), s(30));
        assert!((0..1000).all(|i| plan.stop_offset(i) > plan.start_offset(i)));
    }
}
