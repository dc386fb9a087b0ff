//! The load engine: runs the plan's sessions on a `TaskTracker` and waits for them to end.

pub mod backoff;
pub mod complete;
pub mod connect;
pub mod correlate;
pub mod fanout;
pub mod fields;
pub mod lag;
pub mod local_ips;
pub mod pacing;
pub mod probe;
pub mod scheduler;
pub mod session;
pub mod steps;
pub mod tls;
pub mod transport;
pub mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::engine::session::SessionConfig;
use crate::plan::Plan;
use crate::profile::resolve::ProbeConfig;
use crate::signals::Root;

/// How long stopped sessions get to receive their replies in flight and close their
/// connections before the run ends without them: the drain plus time to close.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// Runs `plan` from `started` until its end or until `root` is cancelled (each task
/// guarded: a panic in one stops the run for it), with the probes and
/// the lag ticker beside the users for the whole run; then stops every task and waits for
/// them (bounded by [`STOP_GRACE`]).
pub async fn run(
    plan: Plan,
    started: Instant,
    config: Arc<SessionConfig>,
    probes: Option<ProbeConfig>,
    root: &Root,
) {
    let tracker = TaskTracker::new();
    let users = root.cancel.child_token();
    tracker.spawn(root.guard(lag::run(started, config.recorder.clone(), users.clone())));
    if let Some(probes) = probes {
        let probes = Arc::new(probes);
        // A segment runs its share of the probes, each at its place in the whole plan's.
        for k in (0..probes.count).filter(|&k| plan.segment().owns_probe(k)) {
            tracker.spawn(root.guard(probe::run(
                k,
                Arc::clone(&probes),
                Arc::clone(&config),
                (started, started + plan.load_end()),
                users.clone(),
            )));
        }
    }
    scheduler::run(plan, started, &config, (&tracker, root), &users).await;
    users.cancel();
    tracker.close();
    drop(config);
    let _ = tokio::time::timeout(STOP_GRACE, tracker.wait()).await;
}
