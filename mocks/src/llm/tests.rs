//! Router-level tests: every endpoint, error and fault, through `oneshot` (no socket).
#![allow(clippy::needless_pass_by_value)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::llm::config::{FaultRule, LlmConfig};

fn mock(config: LlmConfig) -> (Arc<Llm>, Router) {
    let llm = Arc::new(Llm::new(config));
    (Arc::clone(&llm), router(llm))
}

fn post(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn chat(extra: Value) -> Value {
    let mut body =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

#[tokio::test]
async fn a_chat_completion_has_the_api_shape() {
    let (_, app) = mock(LlmConfig::fast());
    let (status, headers, body) = send(&app, post("/v1/chat/completions", chat(json!({})))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let words = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .split(' ')
        .count();
    assert_eq!(v["usage"]["completion_tokens"], words);
    assert_eq!(
        v["usage"]["total_tokens"],
        v["usage"]["prompt_tokens"].as_u64().unwrap() + words as u64
    );
}

#[tokio::test]
async fn max_tokens_cuts_the_reply_with_finish_reason_length() {
    let (_, app) = mock(LlmConfig::fast());
    let (_, _, body) = send(
        &app,
        post("/v1/chat/completions", chat(json!({"max_tokens": 3}))),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

/// Parses an SSE body the way a client does: `data: …` lines separated by blank lines.
fn sse(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_stream_is_chunks_with_one_id_role_first_finish_last_usage_and_done() {
    let (llm, app) = mock(LlmConfig::fast());
    let req = post(
        "/v1/chat/completions",
        chat(json!({"stream": true, "stream_options": {"include_usage": true}})),
    );
    let (status, headers, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let id = &chunks[0]["id"];
    assert!(
        chunks
            .iter()
            .all(|c| &c["id"] == id && c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 8);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text.split(' ').count(), 8);
    assert!(
        chunks[1]["usage"].is_null(),
        "usage is null on the other chunks"
    );
    assert_eq!(llm.stats.snapshot().streams_open, 0, "the stream closed");
}

#[tokio::test]
async fn embeddings_as_floats_and_as_base64_agree() {
    let (_, app) = mock(LlmConfig::fast());
    let req = |fmt: &str| {
        post(
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": fmt, "dimensions": 8}),
        )
    };
    let (_, _, floats) = send(&app, req("float")).await;
    let (_, _, b64) = send(&app, req("base64")).await;
    let floats: Value = serde_json::from_str(&floats).unwrap();
    let b64: Value = serde_json::from_str(&b64).unwrap();
    assert_eq!(floats["data"].as_array().unwrap().len(), 2);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][1]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks(4)
        .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
        .collect();
    let direct: Vec<f64> = floats["data"][1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(decoded.len(), 8);
    for (a, b) in decoded.iter().zip(&direct) {
        assert!((a - b).abs() < 1e-6);
    }
    assert_eq!(floats["object"], "list");
}

#[tokio::test]
async fn models_are_listed_and_found() {
    let (_, app) = mock(LlmConfig::fast());
    let get = |p: &str| {
        Request::get(p)
            .header("authorization", "Bearer k")
            .body(Body::empty())
            .unwrap()
    };
    let (_, _, list) = send(&app, get("/v1/models")).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-4o-mini")
    );
    let (status, _, one) = send(&app, get("/v1/models/gpt-4o")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&one).unwrap()["object"],
        "model"
    );
}

#[tokio::test]
async fn bad_requests_get_the_apis_4xx_shape() {
    let (_, app) = mock(LlmConfig::fast());
    let cases = [
        (
            post(
                "/v1/chat/completions",
                json!({"messages": [{"role": "user", "content": "x"}]}),
            ),
            400,
            Some("model"),
        ),
        (
            post("/v1/chat/completions", json!({"model": "m"})),
            400,
            Some("messages"),
        ),
        (
            post("/v1/chat/completions", json!({"model": 3, "messages": []})),
            400,
            Some("model"),
        ),
        (
            post(
                "/v1/chat/completions",
                json!({"model": "m", "messages": "hi"}),
            ),
            400,
            Some("messages"),
        ),
        (
            post(
                "/v1/chat/completions",
                json!({"model": "m", "messages": [{"content": "x"}]}),
            ),
            400,
            Some("messages"),
        ),
        (
            post("/v1/embeddings", json!({"model": "m"})),
            400,
            Some("input"),
        ),
        (
            post(
                "/v1/embeddings",
                json!({"model": "m", "input": "x", "encoding_format": "hex"}),
            ),
            400,
            Some("encoding_format"),
        ),
        (post("/v1/nope", json!({})), 404, None),
    ];
    for (req, status, param) in cases {
        let (got, _, body) = send(&app, req).await;
        assert_eq!(got.as_u16(), status, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["error"]["message"].is_string() && v["error"]["type"].is_string(),
            "{body}"
        );
        assert_eq!(v["error"]["param"].as_str(), param, "{body}");
    }
    let not_json = Request::post("/v1/chat/completions")
        .header("authorization", "Bearer k")
        .body(Body::from("{nope"))
        .unwrap();
    let (status, _, body) = send(&app, not_json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let no_key = Request::post("/v1/chat/completions")
        .body(Body::from(chat(json!({})).to_string()))
        .unwrap();
    assert_eq!(send(&app, no_key).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn model_names_and_headers_ask_for_faults() {
    let (llm, app) = mock(LlmConfig::fast());
    let (status, headers, body) = send(
        &app,
        post("/v1/chat/completions", chat(json!({"model": "mock-429"}))),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after-ms"], "20");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "rate_limit_exceeded"
    );
    assert_eq!(
        send(
            &app,
            post("/v1/chat/completions", chat(json!({"model": "mock-503"})))
        )
        .await
        .0
        .as_u16(),
        503
    );
    let mut req = post("/v1/chat/completions", chat(json!({})));
    req.headers_mut()
        .insert("x-soak-fault", "500".parse().unwrap());
    req.headers_mut()
        .insert("x-stainless-retry-count", "1".parse().unwrap());
    assert_eq!(send(&app, req).await.0.as_u16(), 500);
    let s = llm.stats.snapshot();
    assert_eq!(s.faults_injected["429"], 1);
    assert_eq!(s.faults_injected["500"], 1);
    assert_eq!(s.retries_seen, 1);
    assert_eq!(s.requests["chat_completions"]["500"], 1);
}

#[tokio::test]
async fn a_mid_stream_error_chunk_and_a_cut_connection() {
    let (_, app) = mock(LlmConfig::fast());
    let mut req = post("/v1/chat/completions", chat(json!({"stream": true})));
    req.headers_mut()
        .insert("x-soak-fault", "error_chunk".parse().unwrap());
    let (_, _, body) = send(&app, req).await;
    let events = sse(&body);
    assert_eq!(events.len(), 4, "three chunks, then the error: {events:?}");
    assert!(events[3].contains("\"error\""));
    let mut req = post("/v1/chat/completions", chat(json!({"stream": true})));
    req.headers_mut()
        .insert("x-soak-fault", "cut".parse().unwrap());
    let response = app.clone().oneshot(req).await.unwrap();
    assert!(
        response.into_body().collect().await.is_err(),
        "the body breaks off"
    );
}

#[tokio::test]
async fn configured_faults_fire_every_nth_request() {
    let mut config = LlmConfig::fast();
    config.faults.push(FaultRule {
        kind: FaultKind::Unavailable,
        probability: 0.0,
        every: 3,
        models: vec![],
        after_chunks: 3,
    });
    let (_, app) = mock(config);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            send(&app, post("/v1/chat/completions", chat(json!({}))))
                .await
                .0
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 503, 200, 200, 503]);
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers_on_every_response() {
    let config = LlmConfig {
        requests_per_minute: 2,
        tokens_per_minute: 10_000,
        ..LlmConfig::fast()
    };
    let (llm, app) = mock(config);
    let (_, first, _) = send(&app, post("/v1/chat/completions", chat(json!({})))).await;
    assert_eq!(first["x-ratelimit-limit-requests"], "2");
    assert_eq!(first["x-ratelimit-remaining-requests"], "1");
    assert!(
        first.contains_key("x-ratelimit-remaining-tokens")
            && first.contains_key("x-ratelimit-reset-tokens")
    );
    send(&app, post("/v1/chat/completions", chat(json!({})))).await;
    let (status, third, body) = send(&app, post("/v1/chat/completions", chat(json!({})))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(third.contains_key("retry-after") && third.contains_key("retry-after-ms"));
    assert_eq!(third["x-ratelimit-remaining-requests"], "0");
    assert_eq!(llm.stats.snapshot().rate_limited, 1);
}

#[tokio::test]
async fn the_stats_path_serves_the_counters() {
    let (_, app) = mock(LlmConfig::fast());
    send(&app, post("/v1/chat/completions", chat(json!({})))).await;
    let (status, _, body) = send(
        &app,
        Request::get("/__soak/stats").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["requests"]["chat_completions"]["200"], 1);
    assert_eq!(v["tokens_served"], 8);
}

#[tokio::test]
async fn embeddings_requests_are_capped_as_the_api_caps_them() {
    let (_, app) = mock(LlmConfig::fast());
    let ask = |body: Value| send(&app, post("/v1/embeddings", body));
    let inputs: Vec<String> = (0..20_000).map(|i| format!("x{i}")).collect();
    let (status, _, body) = ask(json!({"model": "m", "input": inputs})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("2048"),
        "{err}"
    );
    let (status, _, body) = ask(json!({"model": "m", "input": "a", "dimensions": 16_384})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("dimensions"));
    let long = "word ".repeat(10_000);
    let (status, _, body) = ask(json!({"model": "m", "input": long})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("maximum context length"));
    let many: Vec<String> = (0..2048).map(|i| format!("x{i}")).collect();
    let (status, _, body) = ask(json!({"model": "m", "input": many, "dimensions": 3072})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the response would be too big: {body}"
    );
    let (status, _, _) = ask(json!({"model": "m", "input": ["a", "b"], "dimensions": 3072})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_over_the_limit_gets_the_apis_error_shape() {
    let (_, app) = mock(LlmConfig::fast());
    for path in ["/v1/embeddings", "/v1/chat/completions"] {
        let big = "x".repeat(3 * 1024 * 1024);
        let req = Request::post(path)
            .header("authorization", "Bearer sk-test")
            .header("content-type", "application/json")
            .body(Body::from(big))
            .unwrap();
        let (status, _, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        let err: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["error"]["code"], "request_too_large", "{path}");
    }
}

use proptest::strategy::Strategy as _;

proptest::proptest! {
    /// Any body to the OpenAI endpoints: an answer in the API's shape (200 or 4xx with an
    /// `error` object), never a 5xx without a fault configured, never a panic.
    #[test]
    fn any_request_body_gets_an_api_shaped_answer(
        body in proptest::prop_oneof![
            proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..300),
            "\\{\"model\": \"[a-z0-9-]{0,8}\", \"(messages|input|max_tokens|stream|dimensions|encoding_format|n)\": (null|true|-1|1e9|\"x\"|\\[\\]|\\{\\}|\\[\"a\"\\]|\\[\\{\"role\": \"user\", \"content\": \"hi\"\\}\\])\\}"
                .prop_map(String::into_bytes),
        ],
        path in proptest::sample::select(vec!["/v1/chat/completions", "/v1/embeddings"]),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (status, _, text) = runtime.block_on(async {
            let (_, app) = mock(LlmConfig::fast());
            let req = Request::post(path)
                .header("authorization", "Bearer sk-test")
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap();
            send(&app, req).await
        });
        proptest::prop_assert!(status.as_u16() < 500, "{status} for {:?}: {text}", String::from_utf8_lossy(&body));
        if status.as_u16() >= 400 {
            let v: Value = serde_json::from_str(&text).unwrap();
            proptest::prop_assert!(v["error"]["message"].is_string(), "{text}");
        }
    }
}
