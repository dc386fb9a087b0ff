//! Telegram's flood limits: about 1 message a second per chat, 20 a minute per group, 30 a
//! second overall; over them a `sendMessage` gets 429 with `retry_after`.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};

type PerKey<C> =
    RateLimiter<i64, DefaultKeyedStateStore<i64>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Overall<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The three limits, on one clock (the real one, or a fake one in tests).
#[derive(Debug)]
pub struct Flood<C: Clock + Clone = DefaultClock> {
    per_chat: PerKey<C>,
    per_group: PerKey<C>,
    overall: Overall<C>,
    clock: C,
}

impl Default for Flood {
    fn default() -> Self {
        Flood::new()
    }
}

impl Flood {
    /// The limits on the real clock.
    pub fn new() -> Flood {
        Flood::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> Flood<C> {
    /// About 1 message a second per chat (bursts of 3), 20 a minute per group (negative chat
    /// ids, on top of the per-chat limit), 30 a second overall.
    pub fn with_clock(clock: C) -> Flood<C> {
        let n = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let keyed =
            |quota| RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock.clone());
        Flood {
            per_chat: keyed(Quota::per_second(NonZeroU32::MIN).allow_burst(n(3))),
            per_group: keyed(Quota::per_minute(n(20))),
            overall: RateLimiter::new(
                Quota::per_second(n(30)),
                InMemoryState::default(),
                clock.clone(),
            ),
            clock,
        }
    }

    /// `Ok` when a message to `chat` may go now, else the seconds to wait (at least 1).
    pub fn check(&self, chat: i64) -> Result<(), u64> {
        let wait = |nu: NotUntil<C::Instant>| nu.wait_time_from(self.clock.now()).as_secs().max(1);
        self.per_chat.check_key(&chat).map_err(wait)?;
        if chat < 0 {
            self.per_group.check_key(&chat).map_err(wait)?;
        }
        self.overall.check().map_err(wait)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    /// Sends `count` messages to `chat`, one a second; the 429s' `retry_after`, in order.
    fn one_a_second(chat: i64, count: u32) -> Vec<Option<u64>> {
        let clock = FakeRelativeClock::default();
        let flood = Flood::with_clock(clock.clone());
        (0..count)
            .map(|_| {
                clock.advance(Duration::from_secs(1));
                flood.check(chat).err()
            })
            .collect()
    }

    #[test]
    fn a_private_chat_may_get_a_message_every_second() {
        assert!(one_a_second(42, 120).iter().all(Option::is_none));
    }

    #[test]
    fn a_group_gets_20_a_minute_then_429_with_the_wait() {
        let answers = one_a_second(-42, 60);
        let first = answers.iter().position(Option::is_some).expect("some 429");
        assert!(
            (20..=30).contains(&first),
            "the first 429 at message {}",
            first + 1
        );
        let allowed = answers.iter().filter(|a| a.is_none()).count();
        assert!(
            (20..=21 + 60 / 3).contains(&allowed),
            "{allowed} in a minute"
        );
        assert!(
            answers
                .iter()
                .flatten()
                .all(|&wait| (1..=3).contains(&wait))
        );
    }

    #[test]
    fn a_burst_to_one_chat_gets_three_then_waits() {
        let flood = Flood::with_clock(FakeRelativeClock::default());
        let answers: Vec<_> = (0..5).map(|_| flood.check(7)).collect();
        assert_eq!(answers, [Ok(()), Ok(()), Ok(()), Err(1), Err(1)]);
    }
}
