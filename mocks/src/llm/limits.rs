//! Per-API-key token buckets (governor): requests per minute and tokens per minute, and the
//! `x-ratelimit-*` headers every response carries.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};

use crate::llm::error::ApiError;

type Keyed = RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// The limiters of one mock.
pub struct Limits {
    requests: Option<(u32, Keyed)>,
    tokens: Option<(u32, Keyed)>,
    retry_after_ms: u64,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("requests_per_minute", &self.requests.as_ref().map(|r| r.0))
            .field("tokens_per_minute", &self.tokens.as_ref().map(|r| r.0))
            .finish()
    }
}

fn keyed(per_minute: u32) -> Option<(u32, Keyed)> {
    let n = NonZeroU32::new(per_minute)?;
    Some((
        per_minute,
        RateLimiter::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>(),
    ))
}

/// What a request was allowed: the header values to send.
#[derive(Debug, Default)]
pub struct Admitted {
    headers: Vec<(&'static str, String)>,
}

impl Admitted {
    /// Adds the `x-ratelimit-*` headers to a response's headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(*name, v);
            }
        }
    }
}

impl Limits {
    /// Limits from the config (0 means unlimited).
    pub fn new(requests_per_minute: u32, tokens_per_minute: u32, retry_after_ms: u64) -> Limits {
        Limits {
            requests: keyed(requests_per_minute),
            tokens: keyed(tokens_per_minute),
            retry_after_ms,
        }
    }

    /// Admits one request of `tokens` for `key`, or answers 429 with how long to wait.
    pub fn admit(&self, key: &str, tokens: u32) -> Result<Admitted, (ApiError, Admitted)> {
        let mut admitted = Admitted::default();
        for (what, limit) in [("requests", &self.requests), ("tokens", &self.tokens)] {
            let Some((per_minute, limiter)) = limit else {
                continue;
            };
            let n = if what == "requests" { 1 } else { tokens.max(1) };
            let clock = DefaultClock::default();
            let outcome = NonZeroU32::new(n).map(|n| limiter.check_key_n(&key.to_string(), n));
            let (remaining, reset) = match outcome {
                Some(Ok(Ok(snapshot))) => (
                    snapshot.remaining_burst_capacity(),
                    Duration::from_secs(60) / (*per_minute).max(1),
                ),
                Some(Ok(Err(not_until))) => {
                    let wait = not_until
                        .wait_time_from(clock.now())
                        .max(Duration::from_millis(self.retry_after_ms));
                    admitted.push(what, *per_minute, 0, wait);
                    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                    return Err((
                        ApiError::rate_limited(&format!("{what} per minute ({per_minute})"), ms),
                        admitted,
                    ));
                }
                // More tokens than a whole minute allows: it can never pass.
                Some(Err(_)) | None => {
                    let err = ApiError::invalid(
                        format!(
                            "Request too large for tokens per min: limit {per_minute}, requested {n}."
                        ),
                        None,
                    );
                    return Err((err, admitted));
                }
            };
            admitted.push(what, *per_minute, remaining, reset);
        }
        Ok(admitted)
    }
}

impl Admitted {
    fn push(&mut self, what: &'static str, limit: u32, remaining: u32, reset: Duration) {
        let (l, r, t) = match what {
            "requests" => (
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ),
            _ => (
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ),
        };
        self.headers.push((l, limit.to_string()));
        self.headers.push((r, remaining.to_string()));
        self.headers.push((t, format!("{}ms", reset.as_millis())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_beyond_the_limit_get_429_per_key() {
        let limits = Limits::new(2, 0, 50);
        assert!(limits.admit("a", 10).is_ok());
        assert!(limits.admit("a", 10).is_ok());
        let (err, headers) = limits.admit("a", 10).unwrap_err();
        assert_eq!(err.status.as_u16(), 429);
        assert!(err.retry_after_ms.unwrap() >= 50);
        let mut map = HeaderMap::new();
        headers.apply(&mut map);
        assert_eq!(map["x-ratelimit-remaining-requests"], "0");
        assert!(
            limits.admit("b", 10).is_ok(),
            "another key has its own bucket"
        );
    }

    #[test]
    fn tokens_are_limited_and_counted_down() {
        let limits = Limits::new(0, 100, 50);
        let ok = limits.admit("k", 60).unwrap();
        let mut map = HeaderMap::new();
        ok.apply(&mut map);
        assert_eq!(map["x-ratelimit-limit-tokens"], "100");
        assert_eq!(map["x-ratelimit-remaining-tokens"], "40");
        assert!(limits.admit("k", 60).is_err());
        assert_eq!(
            limits.admit("k", 500).unwrap_err().0.status.as_u16(),
            400,
            "larger than the whole bucket"
        );
    }
}
