//! `POST /v1/embeddings`: deterministic unit vectors per input (the same text always gets
//! the same vector), as float arrays or, with `encoding_format: "base64"` (the Python SDK's
//! default), little-endian float32 bytes in base64.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::llm::config::FaultKind;
use crate::llm::error::ApiError;
use crate::llm::{Llm, Open, admit, json_response, pause};

/// Inputs per request, as the API allows.
pub const MAX_INPUTS: usize = 2048;
/// Dimensions of the largest embedding model (`text-embedding-3-large`).
pub const MAX_DIMENSIONS: usize = 3072;
/// Tokens per input (the embedding models' context), counted as soak counts them (4 bytes
/// a token).
pub const MAX_INPUT_TOKENS: usize = 8192;
/// The mock's own bound on one response: inputs × dimensions. 2,048 inputs of 3,072
/// dimensions would be a 120 MB JSON answer; the mock must stay small whatever it is
/// asked (the real API streams such answers from a fleet, the mock builds them in memory).
pub const MAX_VALUES: usize = 1 << 19;

/// The handler.
pub async fn create(
    State(llm): State<Arc<Llm>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let _open = Open::new(&llm, false);
    let Ok(body) = body else {
        return ApiError::too_large().into_response();
    };
    let ask = match parse(&body, llm.config.embedding_dimensions) {
        Ok(ask) => ask,
        Err(e) => return e.into_response(),
    };
    let tokens: u32 = ask
        .inputs
        .iter()
        .map(|s| u32::try_from(s.len() / 4).unwrap_or(u32::MAX).max(1))
        .sum();
    let admitted = match admit(&llm, &headers, tokens) {
        Ok(a) => a,
        Err(response) => return response,
    };
    match llm.fault(&headers, &ask.model) {
        Some((FaultKind::RateLimited, _)) => {
            return ApiError::rate_limited("requests", llm.config.retry_after_ms).into_response();
        }
        Some((FaultKind::Internal | FaultKind::Cut | FaultKind::ErrorChunk, _)) => {
            return ApiError::internal().into_response();
        }
        Some((FaultKind::Unavailable, _)) => return ApiError::unavailable().into_response(),
        Some((FaultKind::Stall, _)) => std::future::pending::<()>().await,
        _ => {}
    }
    pause(llm.with_rng(|r| llm.config.ttft_ms.sample(r)) * llm.slowdown()).await;
    llm.stats.tokens(u64::from(tokens));
    let data: Vec<Value> = ask
        .inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = vector(text, ask.dims);
            let embedding = if ask.base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::from(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json_response(
        &admitted,
        json!({"object": "list", "data": data, "model": ask.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

/// A parsed, validated embeddings request.
struct Ask {
    model: String,
    inputs: Vec<String>,
    base64: bool,
    dims: usize,
}

/// Reads the request body; errors are the API's 400s.
fn parse(body: &[u8], default_dims: usize) -> Result<Ask, ApiError> {
    let value = ApiError::json_body(body)?;
    let model = value
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::invalid("you must provide a model parameter", Some("model")))?;
    let inputs: Vec<String> = match value.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().map(input_text).collect::<Option<Vec<_>>>().ok_or_else(|| {
                ApiError::invalid(
                    "Invalid type for 'input': expected a string, an array of strings, or arrays of token ids.",
                    Some("input"),
                )
            })?
        }
        _ => {
            return Err(ApiError::invalid(
                "'input' is required and must not be empty.",
                Some("input"),
            ));
        }
    };
    let base64 = match value.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                format!("'{other}' is not one of ['float', 'base64'] - 'encoding_format'"),
                Some("encoding_format"),
            ));
        }
    };
    if inputs.len() > MAX_INPUTS {
        return Err(ApiError::invalid(
            format!(
                "Invalid 'input': array too long. Expected an array with maximum length {MAX_INPUTS}, but got an array with length {} instead.",
                inputs.len()
            ),
            Some("input"),
        ));
    }
    if let Some(long) = inputs.iter().find(|i| i.len() / 4 > MAX_INPUT_TOKENS) {
        return Err(ApiError::invalid(
            format!(
                "This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you requested {} tokens ({} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
                long.len() / 4,
                long.len() / 4
            ),
            Some("input"),
        ));
    }
    let dims = match value.get("dimensions") {
        None | Some(Value::Null) => default_dims.min(MAX_DIMENSIONS),
        Some(d) => match d.as_u64().and_then(|d| usize::try_from(d).ok()) {
            Some(d) if (1..=MAX_DIMENSIONS).contains(&d) => d,
            _ => {
                return Err(ApiError::invalid(
                    format!(
                        "Invalid 'dimensions': expected an integer from 1 to {MAX_DIMENSIONS}, but got {d} instead."
                    ),
                    Some("dimensions"),
                ));
            }
        },
    };
    if inputs.len() * dims > MAX_VALUES {
        return Err(ApiError::invalid(
            format!(
                "The mock answers at most {MAX_VALUES} embedding values per request ({} inputs × {dims} dimensions asked): send fewer inputs or fewer dimensions.",
                inputs.len()
            ),
            Some("input"),
        ));
    }
    Ok(Ask {
        model: model.to_string(),
        inputs,
        base64,
        dims,
    })
}

fn input_text(item: &Value) -> Option<String> {
    match item {
        Value::String(s) => Some(s.clone()),
        Value::Array(ids) if ids.iter().all(Value::is_u64) => Some(format!("{ids:?}")),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A unit vector seeded by the text.
pub fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let mut rng = SmallRng::seed_from_u64(h.finish());
    let raw: Vec<f32> = (0..dims).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    raw.into_iter().map(|x| x / norm).collect()
}
