//! What the mock saw: requests by endpoint and status, SDK retries, faults, tokens, in-flight.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::llm::config::FaultKind;

/// Live counters (cheap to update from every handler).
#[derive(Debug, Default)]
pub struct Stats {
    by_status: Mutex<BTreeMap<(&'static str, u16), u64>>,
    faults: Mutex<BTreeMap<FaultKind, u64>>,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    tokens: AtomicU64,
    in_flight: AtomicU64,
    streams: AtomicU64,
    ids: AtomicU64,
}

/// The counters as served at `/__soak/stats` and written into soak's `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Requests by endpoint, then by HTTP status.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Requests that were SDK retries (`x-stainless-retry-count` above 0).
    pub retries_seen: u64,
    /// 429s sent by the rate limiter (injected 429s are counted under faults).
    pub rate_limited: u64,
    /// Faults injected, by kind.
    pub faults_injected: BTreeMap<String, u64>,
    /// Completion and embedding tokens served.
    pub tokens_served: u64,
    /// Requests in progress now.
    pub in_flight: u64,
    /// Streams open now.
    pub streams_open: u64,
}

/// Endpoint names for the counters.
pub fn endpoint(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "chat_completions",
        "/v1/embeddings" => "embeddings",
        "/v1/models" => "models",
        p if p.starts_with("/v1/models/") => "model",
        "/__soak/stats" => "stats",
        _ => "other",
    }
}

impl Stats {
    /// Counts a finished request.
    pub fn request(&self, endpoint: &'static str, status: u16) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry((endpoint, status)).or_default() += 1;
        }
    }

    /// Counts an SDK retry.
    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 429 from the rate limiter.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an injected fault.
    pub fn fault(&self, kind: FaultKind) {
        if let Ok(mut m) = self.faults.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    /// Counts tokens served.
    pub fn tokens(&self, n: u64) {
        self.tokens.fetch_add(n, Ordering::Relaxed);
    }

    /// A request (`stream` false) or a stream (`stream` true) began.
    pub fn open(&self, stream: bool) {
        let gauge = if stream {
            &self.streams
        } else {
            &self.in_flight
        };
        gauge.fetch_add(1, Ordering::Relaxed);
    }

    /// A request or a stream ended.
    pub fn close(&self, stream: bool) {
        let gauge = if stream {
            &self.streams
        } else {
            &self.in_flight
        };
        gauge.fetch_sub(1, Ordering::Relaxed);
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A new request id number.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let mut requests: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        if let Ok(m) = self.by_status.lock() {
            for ((endpoint, status), n) in m.iter() {
                requests
                    .entry((*endpoint).to_string())
                    .or_default()
                    .insert(status.to_string(), *n);
            }
        }
        let faults_injected = self
            .faults
            .lock()
            .map(|m| m.iter().map(|(k, n)| (k.label().to_string(), *n)).collect())
            .unwrap_or_default();
        Snapshot {
            requests,
            retries_seen: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            faults_injected,
            tokens_served: self.tokens.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            streams_open: self.streams.load(Ordering::Relaxed),
        }
    }
}
