//! The mock LLM's settings: latency and length distributions, rate limits, faults.
//! Read from TOML (`soak mock --llm --config mock.toml`); unknown keys are errors.

use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};

/// How a random quantity is drawn.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum Dist {
    /// Always `value`.
    Fixed {
        /// The value.
        value: f64,
    },
    /// Uniform between `min` and `max`.
    Uniform {
        /// Smallest.
        min: f64,
        /// Largest.
        max: f64,
    },
    /// Log-normal with this median and shape (`sigma` 0.3–0.8 looks like real APIs).
    LogNormal {
        /// Median.
        median: f64,
        /// Shape.
        sigma: f64,
    },
}

impl Dist {
    /// One draw (never negative).
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        let v = match *self {
            Dist::Fixed { value } => value,
            Dist::Uniform { min, max } if max > min => rng.random_range(min..max),
            Dist::Uniform { min, .. } => min,
            Dist::LogNormal { median, sigma } => {
                LogNormal::new(median.max(f64::MIN_POSITIVE).ln(), sigma.max(0.0))
                    .map_or(median, |d| d.sample(rng))
            }
        };
        v.max(0.0)
    }

    /// Checks the parameters; the error names what is wrong.
    pub fn check(&self, field: &str) -> Result<(), String> {
        let ok = match *self {
            Dist::Fixed { value } => value.is_finite() && value >= 0.0,
            Dist::Uniform { min, max } => {
                min.is_finite() && max.is_finite() && 0.0 <= min && min <= max
            }
            Dist::LogNormal { median, sigma } => {
                median > 0.0 && median.is_finite() && (0.0..10.0).contains(&sigma)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{field}: {self:?} is not a valid distribution (values must be finite and not negative)"
            ))
        }
    }
}

/// A fault the mock injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 rate limited, with `retry-after`.
    #[serde(rename = "429")]
    RateLimited,
    /// 500 internal error.
    #[serde(rename = "500")]
    Internal,
    /// 503 overloaded.
    #[serde(rename = "503")]
    Unavailable,
    /// A streamed reply sends an error chunk after `after_chunks` chunks.
    ErrorChunk,
    /// The connection is cut after `after_chunks` chunks.
    Cut,
    /// Headers are sent, then nothing.
    Stall,
    /// Tokens drip ten times slower than the inter-token latency.
    Drip,
}

impl FaultKind {
    /// The name used in counters and the `x-soak-fault` header.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::RateLimited => "429",
            FaultKind::Internal => "500",
            FaultKind::Unavailable => "503",
            FaultKind::ErrorChunk => "error_chunk",
            FaultKind::Cut => "cut",
            FaultKind::Stall => "stall",
            FaultKind::Drip => "drip",
        }
    }

    /// The kind a header value or a `mock-…` model name asks for.
    pub fn from_label(label: &str) -> Option<FaultKind> {
        [
            FaultKind::RateLimited,
            FaultKind::Internal,
            FaultKind::Unavailable,
            FaultKind::ErrorChunk,
            FaultKind::Cut,
            FaultKind::Stall,
            FaultKind::Drip,
        ]
        .into_iter()
        .find(|k| k.label() == label)
    }
}

/// `[[llm.faults]]`: when to inject a fault.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// What.
    pub kind: FaultKind,
    /// On each request with this probability (0 to 1)…
    #[serde(default)]
    pub probability: f64,
    /// …or on every N-th request (counted over the whole mock).
    #[serde(default)]
    pub every: u64,
    /// Only for these models (empty: all).
    #[serde(default)]
    pub models: Vec<String>,
    /// For `cut` and `error_chunk`: chunks sent before the fault.
    #[serde(default = "three")]
    pub after_chunks: u32,
}

fn three() -> u32 {
    3
}

/// The whole mock LLM configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Seed of every random draw, for repeatable runs.
    pub seed: u64,
    /// Time to first token, ms.
    pub ttft_ms: Dist,
    /// Time between tokens, ms.
    pub itl_ms: Dist,
    /// Reply length, tokens (capped by the request's `max_tokens`).
    pub reply_tokens: Dist,
    /// Latency grows by this share per request already in flight (0.02 = +2 % each).
    pub slowdown_per_inflight: f64,
    /// Requests per minute per API key (0: unlimited).
    pub requests_per_minute: u32,
    /// Tokens (prompt + completion) per minute per API key (0: unlimited).
    pub tokens_per_minute: u32,
    /// `retry-after` sent with a 429, ms.
    pub retry_after_ms: u64,
    /// Length of embedding vectors (when the request gives no `dimensions`).
    pub embedding_dimensions: usize,
    /// Models listed by `GET /v1/models` (any model name is accepted for completions).
    pub models: Vec<String>,
    /// Injected faults.
    pub faults: Vec<FaultRule>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            seed: 1,
            ttft_ms: Dist::LogNormal {
                median: 200.0,
                sigma: 0.3,
            },
            itl_ms: Dist::Fixed { value: 15.0 },
            reply_tokens: Dist::Uniform {
                min: 20.0,
                max: 60.0,
            },
            slowdown_per_inflight: 0.0,
            requests_per_minute: 0,
            tokens_per_minute: 0,
            retry_after_ms: 100,
            embedding_dimensions: 1536,
            models: [
                "gpt-4o-mini",
                "gpt-4o",
                "text-embedding-3-small",
                "mock-429",
                "mock-500",
                "mock-503",
            ]
            .map(String::from)
            .to_vec(),
            faults: Vec::new(),
        }
    }
}

impl LlmConfig {
    /// A fast config for tests and demos: fixed, short latencies.
    pub fn fast() -> LlmConfig {
        LlmConfig {
            ttft_ms: Dist::Fixed { value: 5.0 },
            itl_ms: Dist::Fixed { value: 1.0 },
            reply_tokens: Dist::Fixed { value: 8.0 },
            retry_after_ms: 20,
            ..LlmConfig::default()
        }
    }

    /// Checks every field; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        self.ttft_ms.check("ttft_ms")?;
        self.itl_ms.check("itl_ms")?;
        self.reply_tokens.check("reply_tokens")?;
        if !(0.0..=10.0).contains(&self.slowdown_per_inflight) {
            return Err(String::from("slowdown_per_inflight: expected 0 to 10"));
        }
        if self.embedding_dimensions == 0 || self.embedding_dimensions > 16_384 {
            return Err(String::from("embedding_dimensions: expected 1 to 16384"));
        }
        for (i, f) in self.faults.iter().enumerate() {
            if !(0.0..=1.0).contains(&f.probability) {
                return Err(format!("faults[{i}].probability: expected 0 to 1"));
            }
            if f.probability == 0.0 && f.every == 0 {
                return Err(format!("faults[{i}]: give a probability or `every`"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn distributions_are_seeded_and_in_range() {
        let mut a = SmallRng::seed_from_u64(7);
        let mut b = SmallRng::seed_from_u64(7);
        let d = Dist::LogNormal {
            median: 100.0,
            sigma: 0.5,
        };
        let xs: Vec<f64> = (0..1000).map(|_| d.sample(&mut a)).collect();
        let ys: Vec<f64> = (0..1000).map(|_| d.sample(&mut b)).collect();
        assert_eq!(xs, ys, "same seed, same draws");
        let mut sorted = xs.clone();
        sorted.sort_by(f64::total_cmp);
        assert!(
            (80.0..125.0).contains(&sorted[500]),
            "median near 100: {}",
            sorted[500]
        );
        let u = Dist::Uniform { min: 2.0, max: 4.0 };
        assert!((0..100).all(|_| (2.0..4.0).contains(&u.sample(&mut a))));
    }

    #[test]
    fn configs_reject_unknown_keys_and_bad_values() {
        let json = serde_json::json!({"ttft_ms": {"dist": "fixed", "value": 10}, "itl": 3});
        let err = serde_json::from_value::<LlmConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("itl"), "{err}");
        let mut c = LlmConfig::default();
        c.faults.push(FaultRule {
            kind: FaultKind::Cut,
            probability: 0.0,
            every: 0,
            models: vec![],
            after_chunks: 3,
        });
        assert!(c.check().unwrap_err().contains("faults[0]"));
        assert!(FaultKind::from_label("cut") == Some(FaultKind::Cut));
    }
}
