//! The demo chat target: a WebSocket server answering `{"id": X, "text": T}` with `{"id": X, "reply": …}`.
//!
//! It is what `soak` runs against when no `--url` is given, and what the tests soak.
//! Behaviour is set by [`DemoConfig`]; new behaviours (streamed replies, a blocked event
//! loop, a leak) are new fields with a neutral default, so callers that build the config as
//! `DemoConfig { reply_delay, ..DemoConfig::default() }` keep compiling as it grows.
//!
//! Ping frames are answered with pongs by the WebSocket layer itself. A frame that is not a
//! JSON object with an `id` is answered with `{"error": "…"}` and the connection stays open,
//! because a demo that drops connections on bad input would hide the client's mistake.

use std::collections::VecDeque;
use std::future::{Future, pending};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::time::{Instant, sleep_until};

/// Read and write buffers per connection. The demo may hold thousands of connections and
/// chat frames are small, so 4 KiB each instead of tungstenite's 128 KiB read buffer.
const BUFFER_BYTES: usize = 4 * 1024;

/// Largest frame the demo accepts; a chat message is far smaller.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// How the demo target behaves. Build it as `DemoConfig { field, ..DemoConfig::default() }`.
#[derive(Debug, Clone, Default)]
pub struct DemoConfig {
    /// Time between receiving a message and sending its reply. Replies to concurrent
    /// messages are delayed independently (the server is not a queue of one).
    pub reply_delay: Duration,
}

/// A chat request as the demo reads it. `id` is echoed back unchanged, whatever its type.
#[derive(Debug, Deserialize)]
struct Request {
    id: serde_json::Value,
    #[serde(default)]
    text: String,
}

/// One frame the demo sends.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Frame {
    /// The answer to a request: its `id` and the reply text.
    Reply {
        id: serde_json::Value,
        reply: String,
    },
    /// A request that could not be read, and why.
    Error { error: String },
}

/// The demo's routes: a WebSocket on every path (`/`, `/ws`, `/chat` all work).
pub fn router(config: DemoConfig) -> Router {
    Router::new().fallback(upgrade).with_state(Arc::new(config))
}

/// Serves the demo on an already bound `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: DemoConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn upgrade(State(config): State<Arc<DemoConfig>>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(BUFFER_BYTES)
        .write_buffer_size(BUFFER_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket: WebSocket| {
            let (sink, stream) = socket.split();
            chat(sink, stream, config)
        })
}

/// One connection's conversation, over any sink and stream of frames (tests feed channels).
///
/// Replies wait in a queue ordered by due time; with one fixed delay that order is the
/// arrival order, so a `VecDeque` is enough and the read loop never waits on a reply.
pub async fn chat<S, R, E>(mut sink: S, mut stream: R, config: Arc<DemoConfig>)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let mut due: VecDeque<(Instant, Message)> = VecDeque::new();
    loop {
        let next_due = due.front().map(|(at, _)| *at);
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let reply = answer(&text);
                    if config.reply_delay.is_zero() {
                        if sink.send(reply).await.is_err() {
                            return;
                        }
                    } else {
                        due.push_back((Instant::now() + config.reply_delay, reply));
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {} // pings are answered by the WebSocket layer; binary is ignored
            },
            () = wait_until(next_due) => {
                if let Some((_, reply)) = due.pop_front()
                    && sink.send(reply).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

/// The reply frame for one text frame.
fn answer(text: &str) -> Message {
    let frame = match serde_json::from_str::<Request>(text) {
        Ok(req) => Frame::Reply {
            reply: format!("echo: {}", req.text),
            id: req.id,
        },
        Err(err) => Frame::Error {
            error: format!("expected a JSON object with an \"id\": {err}"),
        },
    };
    let json = serde_json::to_string(&frame).unwrap_or_else(|_| String::from("{}"));
    Message::Text(json.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_channel::mpsc;

    fn text(m: &Message) -> &str {
        match m {
            Message::Text(t) => t.as_str(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    async fn converse(config: DemoConfig, inputs: Vec<Message>) -> Vec<Message> {
        let (out_tx, out_rx) = mpsc::unbounded::<Message>();
        let (in_tx, in_rx) = mpsc::unbounded::<Result<Message, ()>>();
        for m in inputs {
            in_tx.unbounded_send(Ok(m)).unwrap();
        }
        in_tx.unbounded_send(Ok(Message::Close(None))).unwrap();
        chat(out_tx, in_rx, Arc::new(config)).await;
        out_rx.collect().await
    }

    #[tokio::test]
    async fn answers_with_the_same_id() {
        let out = converse(
            DemoConfig::default(),
            vec![Message::Text(r#"{"id": 7, "text": "hi"}"#.into())],
        )
        .await;
        assert_eq!(out.len(), 1);
        let v: serde_json::Value = serde_json::from_str(text(&out[0])).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["reply"], "echo: hi");
    }

    #[tokio::test]
    async fn string_ids_come_back_as_strings() {
        let out = converse(
            DemoConfig::default(),
            vec![Message::Text(r#"{"id": "a-1"}"#.into())],
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(text(&out[0])).unwrap();
        assert_eq!(v["id"], "a-1");
    }

    #[tokio::test]
    async fn bad_json_gets_an_error_frame_not_a_panic() {
        let out = converse(
            DemoConfig::default(),
            vec![
                Message::Text("not json".into()),
                Message::Text(r#"{"text": "no id"}"#.into()),
            ],
        )
        .await;
        assert_eq!(out.len(), 2);
        for m in &out {
            let v: serde_json::Value = serde_json::from_str(text(m)).unwrap();
            assert!(v["error"].as_str().unwrap().contains("id"), "{v}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn replies_wait_for_the_delay() {
        let (out_tx, mut out_rx) = mpsc::unbounded::<Message>();
        let (in_tx, in_rx) = mpsc::unbounded::<Result<Message, ()>>();
        let config = DemoConfig {
            reply_delay: Duration::from_millis(50),
        };
        let started = Instant::now();
        tokio::spawn(chat(out_tx, in_rx, Arc::new(config)));
        in_tx
            .unbounded_send(Ok(Message::Text(r#"{"id": 1}"#.into())))
            .unwrap();
        let reply = out_rx.next().await.unwrap();
        assert!(text(&reply).contains("\"id\":1"));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
