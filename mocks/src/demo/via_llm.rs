//! The demo target backed by the mock LLM: each chat message becomes a streamed chat
//! completion, relayed to the user as `delta` frames and a final `done` frame.

use std::sync::Arc;

use axum::extract::ws::Message;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Request;

/// Relays one message through the mock LLM: a streamed chat completion, its tokens as
/// frames, then the complete reply (or an error frame).
pub(super) async fn ask_llm(
    llm: Arc<crate::llm::Llm>,
    text: String,
    back: mpsc::UnboundedSender<(Instant, Message)>,
) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let send = |frame: serde_json::Value| {
        let _ = back.send((Instant::now(), Message::Text(frame.to_string().into())));
    };
    let Ok(req) = serde_json::from_str::<Request>(&text) else {
        return send(serde_json::json!({"error": "expected a JSON object with an \"id\""}));
    };
    let body = serde_json::json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": req.text}]});
    let request = axum::http::Request::post("/v1/chat/completions")
        .header("authorization", "Bearer sk-soak-demo")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()));
    let Ok(request) = request else { return };
    let Ok(response) = crate::llm::router(llm).oneshot(request).await;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        return send(
            serde_json::json!({"id": req.id, "error": format!("LLM answered {status}"), "done": true}),
        );
    }
    let mut body = response.into_body();
    let mut pending = String::new();
    let mut reply = String::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let Some(json) = event.trim().strip_prefix("data: ") else {
                continue;
            };
            let Ok(chunk) = serde_json::from_str::<serde_json::Value>(json) else {
                continue;
            };
            if let Some(delta) = chunk
                .pointer("/choices/0/delta/content")
                .and_then(serde_json::Value::as_str)
                .filter(|d| !d.is_empty())
            {
                reply.push_str(delta);
                send(serde_json::json!({"id": req.id, "delta": delta, "done": false}));
            }
        }
    }
    send(serde_json::json!({"id": req.id, "reply": reply, "done": true}));
}
