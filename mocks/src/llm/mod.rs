//! The mock OpenAI-compatible LLM API: chat completions (JSON and SSE), embeddings, models,
//! with a latency model, per-key rate limits, fault injection and counters.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`,
//! `GET /v1/models/{id}`, and `GET /__soak/stats` (the counters, as JSON). Every other path
//! gets the API's own 404 body. Requests need `Authorization: Bearer <any key>`; the key
//! is what rate limits are counted per.

pub mod chat;
pub mod config;
pub mod embeddings;
pub mod error;
pub mod limits;
pub mod stats;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::json;
use tokio::net::TcpListener;

use crate::llm::config::{FaultKind, LlmConfig};
use crate::llm::error::ApiError;
use crate::llm::limits::{Admitted, Limits};
use crate::llm::stats::Stats;

/// One mock LLM: its config, random source, limiters and counters.
#[derive(Debug)]
pub struct Llm {
    /// The configuration.
    pub config: LlmConfig,
    rng: Mutex<SmallRng>,
    limits: Limits,
    /// What the mock saw.
    pub stats: Stats,
    requests: AtomicU64,
}

impl Llm {
    /// A mock with `config` (checked by the caller with [`LlmConfig::check`]).
    pub fn new(config: LlmConfig) -> Llm {
        Llm {
            rng: Mutex::new(SmallRng::seed_from_u64(config.seed)),
            limits: Limits::new(
                config.requests_per_minute,
                config.tokens_per_minute,
                config.retry_after_ms,
            ),
            stats: Stats::default(),
            requests: AtomicU64::new(0),
            config,
        }
    }

    /// Runs `f` with the seeded random source.
    fn with_rng<T>(&self, f: impl FnOnce(&mut SmallRng) -> T) -> T {
        match self.rng.lock() {
            Ok(mut rng) => f(&mut rng),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The fault this request gets, if any: the `x-soak-fault` header, a `mock-429`-style
    /// model name, or a configured rule; and chunks to send first (cut, error chunk).
    fn fault(&self, headers: &HeaderMap, model: &str) -> Option<(FaultKind, u32)> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let asked = headers
            .get("x-soak-fault")
            .and_then(|v| v.to_str().ok())
            .and_then(FaultKind::from_label);
        let by_model = model.strip_prefix("mock-").and_then(FaultKind::from_label);
        let fault = asked.or(by_model).map(|k| (k, 3)).or_else(|| {
            self.config.faults.iter().find_map(|rule| {
                let applies = rule.models.is_empty() || rule.models.iter().any(|m| m == model);
                let hit = (rule.every > 0 && n.is_multiple_of(rule.every))
                    || (rule.probability > 0.0
                        && self.with_rng(|r| rand::Rng::random_bool(r, rule.probability)));
                (applies && hit).then_some((rule.kind, rule.after_chunks))
            })
        });
        if let Some((kind, _)) = fault {
            self.stats.fault(kind);
        }
        fault
    }

    /// The latency multiplier for the requests now in flight.
    fn slowdown(&self) -> f64 {
        1.0 + self.config.slowdown_per_inflight * self.stats.in_flight().saturating_sub(1) as f64
    }
}

/// The routes, over shared state (tests drive them with `oneshot`, no socket).
pub fn router(llm: Arc<Llm>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/__soak/stats", get(stats))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&llm), track))
        .with_state(llm)
}

/// Serves the mock on an already bound `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    llm: Arc<Llm>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    crate::listen::serve(
        listener,
        router(llm),
        shutdown,
        crate::listen::Limits::default(),
    )
    .await
}

/// Counts every request by endpoint and status, SDK retries, and adds `x-request-id`.
async fn track(State(llm): State<Arc<Llm>>, request: Request, next: Next) -> Response {
    let endpoint = stats::endpoint(request.uri().path());
    let retry = request
        .headers()
        .get("x-stainless-retry-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|n| n > 0);
    if retry {
        llm.stats.retry();
    }
    let mut response = next.run(request).await;
    llm.stats.request(endpoint, response.status().as_u16());
    let id = format!("req_{:016x}", llm.stats.next_id());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The API key from `Authorization: Bearer …`.
fn api_key(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .ok_or_else(ApiError::unauthorized)
}

/// Checks the key and the rate limits for a request of `tokens`. The error is the finished
/// response, returned once per request: its size does not matter.
#[allow(clippy::result_large_err)]
fn admit(llm: &Llm, headers: &HeaderMap, tokens: u32) -> Result<Admitted, Response> {
    let key = api_key(headers).map_err(IntoResponse::into_response)?;
    llm.limits.admit(&key, tokens).map_err(|(err, admitted)| {
        if err.status.as_u16() == 429 {
            llm.stats.rate_limited();
        }
        let mut response = err.into_response();
        admitted.apply(response.headers_mut());
        response
    })
}

/// A JSON response with the rate-limit headers.
fn json_response(admitted: &Admitted, body: serde_json::Value) -> Response {
    let mut response = axum::Json(body).into_response();
    admitted.apply(response.headers_mut());
    response
}

fn model_object(id: &str) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "soak-mock"})
}

async fn models(State(llm): State<Arc<Llm>>, headers: HeaderMap) -> Response {
    match admit(&llm, &headers, 1) {
        Ok(admitted) => {
            let data: Vec<_> = llm.config.models.iter().map(|m| model_object(m)).collect();
            json_response(&admitted, json!({"object": "list", "data": data}))
        }
        Err(response) => response,
    }
}

async fn model(
    State(llm): State<Arc<Llm>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match admit(&llm, &headers, 1) {
        Ok(admitted) => json_response(&admitted, model_object(&id)),
        Err(response) => response,
    }
}

async fn stats(State(llm): State<Arc<Llm>>) -> Response {
    axum::Json(llm.stats.snapshot()).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError::not_found(method.as_str(), uri.path()).into_response()
}

/// Counts a request (or a stream) as open until dropped; a streamed reply moves its guards
/// into the stream, so they close when the stream ends or the client goes away.
#[derive(Debug)]
pub struct Open {
    llm: Arc<Llm>,
    stream: bool,
}

impl Open {
    /// Opens a request (`stream` false) or a stream (`stream` true).
    pub fn new(llm: &Arc<Llm>, stream: bool) -> Open {
        llm.stats.open(stream);
        Open {
            llm: Arc::clone(llm),
            stream,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.llm.stats.close(self.stream);
    }
}

/// Sleeps `ms` milliseconds (fractions kept to the microsecond).
async fn pause(ms: f64) {
    if ms > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
    }
}

#[cfg(test)]
mod tests;
