//! When a user's next message is due: the open model's fixed schedule, the closed model's
//! reply-then-think, or never (`--rate 0/s`). The session loop is the same for all three.

use std::future::pending;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, sleep_until};

use crate::engine::session::SessionConfig;
use crate::profile::spec::Model;

/// When the next message is due. The open and closed models differ only here.
pub(crate) enum Pacing {
    /// A fixed schedule. Missed ticks burst (tokio's `Burst`): each send keeps its own
    /// intended instant, so a late tester or a stalled socket shows up as latency, never as
    /// fewer measurements.
    Open(Interval),
    /// `--rate 0/s`: never send.
    Idle,
    /// Send when the previous reply is complete (or timed out) plus the think time; the
    /// intended instant is that deadline.
    Closed {
        think: Duration,
        next: Option<Instant>,
    },
}

impl Pacing {
    /// Open model: users that start together are spread over one period by a golden-ratio
    /// fraction per user, so they do not all send in the same millisecond.
    pub(crate) fn new(config: &SessionConfig, user: u32) -> Pacing {
        let spread = (f64::from(user) * 0.618_033_988_749_895).fract();
        match (config.model, config.period) {
            (Model::Closed, _) => Pacing::Closed {
                think: config.think,
                next: Some(Instant::now()),
            },
            (Model::Open, None) => Pacing::Idle,
            (Model::Open, Some(period)) => {
                let mut interval = interval_at(Instant::now() + period.mul_f64(spread), period);
                interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
                Pacing::Open(interval)
            }
        }
    }

    /// The next intended send instant.
    pub(crate) async fn next_send(&mut self) -> Instant {
        match self {
            Pacing::Open(interval) => interval.tick().await,
            Pacing::Idle | Pacing::Closed { next: None, .. } => pending().await,
            Pacing::Closed { next: Some(at), .. } => {
                sleep_until(*at).await;
                *at
            }
        }
    }

    /// A message went out: the closed model now waits for its reply.
    pub(crate) fn sent(&mut self) {
        if let Pacing::Closed { next, .. } = self {
            *next = None;
        }
    }

    /// A reply completed (or timed out) at `now`: the closed model thinks, then sends.
    pub(crate) fn reply_done(&mut self, now: Instant) {
        if let Pacing::Closed { think, next } = self {
            *next = Some(now + *think);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::timeout;

    use super::*;

    fn open(period: Duration) -> Pacing {
        let mut interval = interval_at(Instant::now(), period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
        Pacing::Open(interval)
    }

    #[tokio::test(start_paused = true)]
    async fn open_pacing_keeps_intended_instants_when_late() {
        let period = Duration::from_millis(100);
        let mut p = open(period);
        let first = p.next_send().await;
        tokio::time::sleep(Duration::from_millis(350)).await; // the tester falls behind
        let burst = [
            p.next_send().await,
            p.next_send().await,
            p.next_send().await,
        ];
        assert_eq!(burst[0] - first, period);
        assert_eq!(burst[2] - first, period * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_pacing_never_sends() {
        let sent = timeout(Duration::from_secs(3600), Pacing::Idle.next_send()).await;
        assert!(sent.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn closed_pacing_waits_for_the_reply_then_thinks() {
        let think = Duration::from_millis(200);
        let mut p = Pacing::Closed {
            think,
            next: Some(Instant::now()),
        };
        let first = p.next_send().await;
        p.sent();
        assert!(
            timeout(Duration::from_secs(60), p.next_send())
                .await
                .is_err(),
            "no reply, no send"
        );
        let replied = Instant::now();
        p.reply_done(replied);
        assert_eq!(p.next_send().await, replied + think);
        assert!(replied > first);
    }
}
