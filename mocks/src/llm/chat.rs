//! `POST /v1/chat/completions`: a `chat.completion` after TTFT + tokens × ITL, or, with
//! `stream: true`, `chat.completion.chunk` events over SSE ending in `data: [DONE]`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use serde_json::{Value, json};

use crate::llm::config::FaultKind;
use crate::llm::error::ApiError;
use crate::llm::{Llm, Open, admit, json_response, pause};

/// Words the replies are made of; one word is one token.
const WORDS: [&str; 16] = [
    "soak", "mock", "reply", "token", "stream", "latency", "chat", "server", "event", "loop",
    "memory", "steady", "load", "user", "message", "test",
];

/// A parsed, validated request.
struct Ask {
    model: String,
    stream: bool,
    include_usage: bool,
    max_tokens: Option<u32>,
    prompt_tokens: u32,
}

fn parse(body: &[u8]) -> Result<Ask, ApiError> {
    let value = ApiError::json_body(body)?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::invalid("The request body must be a JSON object.", None))?;
    let include_usage = value
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_u64))
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    Ok(Ask {
        model: model(obj)?,
        stream: wants_stream(obj)?,
        include_usage,
        max_tokens,
        prompt_tokens: u32::try_from(prompt_chars(obj)? / 4)
            .unwrap_or(u32::MAX)
            .max(1),
    })
}

/// The required `model`, a non-empty string.
fn model(obj: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        Some(_) => Err(ApiError::invalid(
            "Invalid type for 'model': expected a string.",
            Some("model"),
        )),
        None => Err(ApiError::invalid(
            "you must provide a model parameter",
            Some("model"),
        )),
    }
}

/// The characters of text in the required, non-empty `messages`, each with a `role`.
fn prompt_chars(obj: &serde_json::Map<String, Value>) -> Result<usize, ApiError> {
    let bad = |message: &str| Err(ApiError::invalid(message, Some("messages")));
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return bad("[] is too short - 'messages'"),
        Some(_) => return bad("Invalid type for 'messages': expected an array."),
        None => return bad("Missing required parameter: 'messages'."),
    };
    let mut chars = 0usize;
    for (i, m) in messages.iter().enumerate() {
        if m.get("role").and_then(Value::as_str).is_none() {
            return bad(&format!(
                "Missing required parameter: 'messages[{i}].role'."
            ));
        }
        chars += match m.get("content") {
            Some(Value::String(s)) => s.len(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .map(str::len)
                .sum(),
            _ => 0,
        };
    }
    Ok(chars)
}

/// The optional `stream` flag.
fn wants_stream(obj: &serde_json::Map<String, Value>) -> Result<bool, ApiError> {
    match obj.get("stream") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid(
            "Invalid type for 'stream': expected a boolean.",
            Some("stream"),
        )),
    }
}

/// The handler.
pub async fn completions(
    State(llm): State<Arc<Llm>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let open = Open::new(&llm, false);
    let Ok(body) = body else {
        return ApiError::too_large().into_response();
    };
    let ask = match parse(&body) {
        Ok(ask) => ask,
        Err(err) => return err.into_response(),
    };
    let planned = llm.with_rng(|r| llm.config.reply_tokens.sample(r)).round() as u32;
    let tokens = ask.max_tokens.map_or(planned, |m| planned.min(m)).max(1);
    let finish = if ask.max_tokens.is_some_and(|m| planned > m) {
        "length"
    } else {
        "stop"
    };
    let admitted = match admit(&llm, &headers, ask.prompt_tokens + tokens) {
        Ok(a) => a,
        Err(response) => return response,
    };
    let fault = llm.fault(&headers, &ask.model);
    match fault {
        Some((FaultKind::RateLimited, _)) => {
            return ApiError::rate_limited("requests", llm.config.retry_after_ms).into_response();
        }
        Some((FaultKind::Internal, _)) => return ApiError::internal().into_response(),
        Some((FaultKind::Unavailable, _)) => return ApiError::unavailable().into_response(),
        _ => {}
    }
    let slow = llm.slowdown();
    let ttft = llm.with_rng(|r| llm.config.ttft_ms.sample(r)) * slow;
    let itl = llm.with_rng(|r| llm.config.itl_ms.sample(r))
        * slow
        * if matches!(fault, Some((FaultKind::Drip, _))) {
            10.0
        } else {
            1.0
        };
    let reply = Reply::new(&llm, &ask, tokens, finish);
    llm.stats.tokens(u64::from(tokens));
    if ask.stream {
        let mut response =
            stream(&llm, reply, ttft, itl, ask.include_usage, fault, open).into_response();
        admitted.apply(response.headers_mut());
        return response;
    }
    match fault {
        Some((FaultKind::Stall, _)) => std::future::pending::<()>().await,
        Some((FaultKind::Cut, _)) => return cut_response(),
        _ => {}
    }
    pause(ttft + itl * f64::from(tokens)).await;
    drop(open);
    json_response(&admitted, reply.complete())
}

impl Reply {
    /// A reply of `tokens` random words to `ask`.
    fn new(llm: &Llm, ask: &Ask, tokens: u32, finish: &'static str) -> Reply {
        let words: Vec<&'static str> = llm.with_rng(|r| {
            (0..tokens)
                .map(|_| WORDS[rand::Rng::random_range(r, 0..WORDS.len())])
                .collect()
        });
        Reply {
            id: format!("chatcmpl-soak{:012x}", llm.stats.next_id()),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model: ask.model.clone(),
            prompt_tokens: ask.prompt_tokens,
            words,
            finish,
        }
    }
}

/// What one reply says.
struct Reply {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u32,
    words: Vec<&'static str>,
    finish: &'static str,
}

impl Reply {
    fn usage(&self) -> Value {
        let completion = self.words.len();
        json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": completion, "total_tokens": self.prompt_tokens as usize + completion,
               "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
    }

    fn complete(&self) -> Value {
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "system_fingerprint": "fp_soak_mock", "service_tier": "default",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.words.join(" "), "refusal": null, "annotations": []},
                         "logprobs": null, "finish_reason": self.finish}],
            "usage": self.usage()
        })
    }

    fn chunk(&self, delta: &Value, finish: Option<&str>, usage: bool) -> Value {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": "fp_soak_mock", "service_tier": "default",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if usage {
            c["usage"] = Value::Null;
        }
        c
    }
}

/// A response whose body breaks at once: the connection is cut.
fn cut_response() -> Response {
    let body = Body::from_stream(stream::once(async {
        Err::<Bytes, _>(std::io::Error::other(
            "connection cut by soak's fault injection",
        ))
    }));
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The SSE body: role chunk at TTFT, one chunk per token every ITL, the finish chunk, the
/// usage chunk when asked for, then `[DONE]` — or the fault that cuts it short.
fn stream(
    llm: &Arc<Llm>,
    reply: Reply,
    ttft: f64,
    itl: f64,
    include_usage: bool,
    fault: Option<(FaultKind, u32)>,
    open: Open,
) -> Response {
    let stream_open = Open::new(llm, true);
    let reply = Arc::new(reply);
    let n = reply.words.len();
    // Event k: 0 role, 1..=n tokens, n+1 finish, n+2 usage (optional), last [DONE].
    let last = n + 2 + usize::from(include_usage);
    let events = stream::iter(0..=last)
        .then(move |k| {
            let reply = Arc::clone(&reply);
            async move {
                let delay = match k {
                    0 => ttft,
                    k if k <= n => itl,
                    _ => 0.0,
                };
                pause(delay).await;
                event(&reply, k, include_usage)
            }
        })
        .map(move |bytes| {
            let _held = (&open, &stream_open); // closes the gauges when the stream ends
            bytes
        });
    let body = with_fault(events, fault);
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// SSE event `k` of a streamed reply (see `stream` for the numbering).
fn event(reply: &Reply, k: usize, include_usage: bool) -> Bytes {
    let n = reply.words.len();
    let data = match k {
        0 => reply.chunk(
            &json!({"role": "assistant", "content": "", "refusal": null}),
            None,
            include_usage,
        ),
        k if k <= n => {
            let sep = if k == 1 { "" } else { " " };
            reply.chunk(
                &json!({"content": format!("{sep}{}", reply.words[k - 1])}),
                None,
                include_usage,
            )
        }
        k if k == n + 1 => reply.chunk(&json!({}), Some(reply.finish), include_usage),
        k if include_usage && k == n + 2 => {
            let mut c = reply.chunk(&json!({}), None, true);
            c["choices"] = json!([]);
            c["usage"] = reply.usage();
            c
        }
        _ => return Bytes::from_static(b"data: [DONE]\n\n"),
    };
    Bytes::from(format!("data: {data}\n\n"))
}

/// The events as a body, cut short (or never started) by a stream fault.
fn with_fault(
    events: impl futures_util::Stream<Item = Bytes> + Send + 'static,
    fault: Option<(FaultKind, u32)>,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    match fault {
        Some((FaultKind::Stall, _)) => stream::pending().boxed(),
        Some((FaultKind::Cut, after)) => events
            .take(after as usize)
            .map(Ok)
            .chain(stream::once(async {
                Err(std::io::Error::other(
                    "connection cut by soak's fault injection",
                ))
            }))
            .boxed(),
        Some((FaultKind::ErrorChunk, after)) => {
            let error = crate::llm::error::ApiError::internal().body();
            events
                .take(after as usize)
                .map(Ok)
                .chain(stream::once(async move {
                    Ok(Bytes::from(format!("data: {error}\n\n")))
                }))
                .boxed()
        }
        _ => events.map(Ok).boxed(),
    }
}
