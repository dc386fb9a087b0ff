//! Walks the plan on tokio time: starts each user at its offset and stops it at its own.

use std::sync::Arc;

use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::session::{self, SessionConfig};
use crate::plan::Plan;
use crate::signals::Root;

/// What the scheduler does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start(u32),
    Stop(u32),
}

/// Starts and stops every user of `plan` this process runs (its segment's), measured from
/// `started`; returns when the last user has been told to stop, or at once when `cancel`
/// fires.
pub async fn run(
    plan: Plan,
    started: Instant,
    config: &Arc<SessionConfig>,
    (tracker, root): (&TaskTracker, &Root),
    cancel: &CancellationToken,
) {
    let own = plan.own_users();
    let mut tokens: Vec<Option<CancellationToken>> = vec![None; plan.users() as usize];
    let mut next_start = 0;
    let mut stops_done = 0;
    while let Some((at, step)) = next_step(&plan, &own, next_start, stops_done) {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = sleep_until(started + at) => {}
        }
        match step {
            Step::Start(user) => {
                let token = cancel.child_token();
                tracker.spawn(root.guard(session::run(user, Arc::clone(config), token.clone())));
                tokens[user as usize] = Some(token);
                next_start += 1;
            }
            Step::Stop(user) => {
                if let Some(token) = tokens[user as usize].take() {
                    token.cancel();
                }
                stops_done += 1;
            }
        }
    }
    // The cool-down: no users, the sampler keeps watching the target.
    tokio::select! {
        biased;
        () = cancel.cancelled() => {}
        () = sleep_until(started + plan.total()) => {}
    }
}

/// The earlier of the next start and the next stop among the users `own` (a start wins a
/// tie). Users stop last started first, so the `k`-th stop is the `k`-th from the end.
fn next_step(
    plan: &Plan,
    own: &[u32],
    next_start: usize,
    stops_done: usize,
) -> Option<(std::time::Duration, Step)> {
    let start = own
        .get(next_start)
        .map(|&user| (plan.start_offset(user), Step::Start(user)));
    let stop = (stops_done < own.len()).then(|| {
        let user = own[own.len() - 1 - stops_done];
        (plan.stop_offset(user), Step::Stop(user))
    });
    match (start, stop) {
        (Some(s), Some(t)) => Some(if s.0 <= t.0 { s } else { t }),
        (s, t) => s.or(t),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn steps_come_in_time_order_and_every_user_starts_before_it_stops() {
        let plan = Plan::new(
            3,
            Duration::from_secs(10),
            Duration::from_secs(3),
            Duration::from_secs(3),
        );
        let own = plan.own_users();
        let (mut next_start, mut stops) = (0, 0);
        let mut seen = Vec::new();
        while let Some((at, step)) = next_step(&plan, &own, next_start, stops) {
            match step {
                Step::Start(_) => next_start += 1,
                Step::Stop(_) => stops += 1,
            }
            seen.push((at.as_secs(), step));
        }
        assert_eq!(
            seen,
            [
                (0, Step::Start(0)),
                (1, Step::Start(1)),
                (2, Step::Start(2)),
                (8, Step::Stop(2)),
                (9, Step::Stop(1)),
                (10, Step::Stop(0)),
            ]
        );
    }

    /// Every step of a plan, in order.
    fn steps(plan: &Plan) -> Vec<(Duration, Step)> {
        let own = plan.own_users();
        let (mut next_start, mut stops) = (0, 0);
        let mut seen = Vec::new();
        while let Some((at, step)) = next_step(plan, &own, next_start, stops) {
            match step {
                Step::Start(_) => next_start += 1,
                Step::Stop(_) => stops += 1,
            }
            seen.push((at, step));
        }
        seen
    }

    #[test]
    fn the_segments_steps_together_are_the_whole_plans_at_the_same_offsets() {
        use crate::segment::Segment;
        let plan = Plan::new(
            23,
            Duration::from_secs(30),
            Duration::from_secs(7),
            Duration::from_secs(5),
        );
        let mut whole = steps(&plan);
        for n in [2, 3, 4, 16] {
            for room in [1, 4] {
                let mut together: Vec<_> = (0..n)
                    .flat_map(|i| steps(&plan.sliced(Segment::new(i, n).unwrap(), room)))
                    .collect();
                together.sort_by_key(|&(at, step)| {
                    (at, matches!(step, Step::Stop(_)), step_user(step))
                });
                whole.sort_by_key(|&(at, step)| {
                    (at, matches!(step, Step::Stop(_)), step_user(step))
                });
                assert_eq!(together, whole, "{n} segments, rooms of {room}");
            }
        }
    }

    fn step_user(step: Step) -> u32 {
        match step {
            Step::Start(u) | Step::Stop(u) => u,
        }
    }
}
