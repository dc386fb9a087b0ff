//! Per-user randomness without a shared generator: xorshift64 for message picks and
//! `{{random}}`, and the jittered reconnect back-off built on it.

use std::time::Duration;

/// xorshift64: a tiny per-user generator for message picks, `{{random}}` and jitter
/// (no shared RNG, so no lock and no contention between sessions).
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(user: u32) -> XorShift {
        XorShift(
            u64::from(user)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                | 1,
        )
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Exponential back-off with ±50 % jitter, so a server restart is not answered by every
/// user reconnecting in the same millisecond.
pub(crate) struct Backoff {
    attempt: u32,
    min: Duration,
    max: Duration,
    rng: XorShift,
}

impl Backoff {
    pub(crate) fn new(user: u32, (min, max): (Duration, Duration)) -> Backoff {
        Backoff {
            attempt: 0,
            min,
            max,
            rng: XorShift::new(user ^ 0x5EED),
        }
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self
            .min
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = 0.5 + (self.rng.next() % 1000) as f64 / 1000.0;
        base.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new(7, (MIN, MAX));
        let delays: Vec<_> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= MIN / 2 && delays[0] <= MIN * 3 / 2);
        assert!(delays[3] > delays[0]);
        assert!(delays.iter().all(|d| *d <= MAX * 3 / 2));
        assert!(delays[11] >= MAX / 2);
        b.reset();
        assert!(b.next_delay() <= MIN * 3 / 2);
    }
}
