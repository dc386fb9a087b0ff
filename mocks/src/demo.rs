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

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::{Future, pending};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

mod config;
mod via_llm;
pub use config::DemoConfig;
use via_llm::ask_llm;

/// Read and write buffers per connection. The demo may hold thousands of connections and
/// chat frames are small, so 4 KiB each instead of tungstenite's 128 KiB read buffer.
const BUFFER_BYTES: usize = 4 * 1024;

/// Largest frame the demo accepts; a chat message is far smaller.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Close code the demo uses when it drops a connection on purpose (1012: service restart).
pub const DROP_CLOSE_CODE: u16 = 1012;

/// Shared state of one demo server.
#[derive(Debug)]
pub struct Demo {
    config: DemoConfig,
    /// Connections accepted so far.
    accepted: AtomicU32,
    /// The separate message loop, when configured.
    handler: Option<mpsc::UnboundedSender<Job>>,
    /// What the leaking mode keeps.
    leaked: std::sync::Mutex<Vec<Box<[u8]>>>,
    /// Room mode: the members of each room (by URL path), by connection number.
    rooms: std::sync::Mutex<std::collections::HashMap<String, Vec<(u32, Back)>>>,
    /// Room mode: copies broadcast so far (for `room_drop_every`).
    copies: AtomicU32,
}

/// Where a connection's frames go: (when due, frame).
type Back = mpsc::UnboundedSender<(Instant, Message)>;

impl Demo {
    /// Shared state for `config`; starts the separate message loop if the config asks.
    pub fn new(config: DemoConfig) -> Demo {
        let handler = config
            .separate_handler
            .then(|| spawn_handler(config.clone()));
        Demo {
            config,
            accepted: AtomicU32::new(0),
            handler,
            leaked: std::sync::Mutex::new(Vec::new()),
            rooms: std::sync::Mutex::new(std::collections::HashMap::new()),
            copies: AtomicU32::new(0),
        }
    }

    /// Room mode: connection `n` joins `room`.
    fn join(&self, room: &str, n: u32, back: Back) {
        if let Ok(mut rooms) = self.rooms.lock() {
            rooms.entry(room.to_string()).or_default().push((n, back));
        }
    }

    /// Room mode: connection `n` leaves `room`.
    fn leave(&self, room: &str, n: u32) {
        if let Ok(mut rooms) = self.rooms.lock()
            && let Some(members) = rooms.get_mut(room)
        {
            members.retain(|(m, _)| *m != n);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Room mode: `text`'s `message` (or all of it) to every member of `room`.
    fn broadcast(&self, room: &str, text: &str) {
        let message = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("message").cloned())
            .unwrap_or_else(|| serde_json::Value::String(text.to_string()));
        let frame = serde_json::json!({ "message": message }).to_string();
        let now = Instant::now() + self.config.reply_delay;
        if let Ok(rooms) = self.rooms.lock()
            && let Some(members) = rooms.get(room)
        {
            let every = self.config.room_drop_every;
            for (_, back) in members {
                let n = self.copies.fetch_add(1, Ordering::Relaxed) + 1;
                if every > 0 && n.is_multiple_of(every) {
                    continue; // dropped on purpose
                }
                let _ = back.send((now, Message::Text(frame.clone().into())));
            }
        }
    }

    /// Keeps `bytes` forever (written, so they are resident): per message received
    /// (`leak_per_message`) or per connection closed (`leak_per_close`).
    fn leak(&self, bytes: u64) {
        let n = usize::try_from(bytes).unwrap_or(0);
        if n > 0
            && let Ok(mut leaked) = self.leaked.lock()
        {
            leaked.push(vec![0xA5; n].into_boxed_slice());
        }
    }
}

/// A message for the separate loop, and where its frames go back to.
#[derive(Debug)]
pub struct Job {
    text: String,
    received: Instant,
    back: mpsc::UnboundedSender<(Instant, Message)>,
}

/// Starts the separate message loop on its own thread; it ends when every sender is gone.
fn spawn_handler(config: DemoConfig) -> mpsc::UnboundedSender<Job> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    if let Ok(runtime) = runtime {
        let _ = std::thread::Builder::new()
            .name("demo-handler".into())
            .spawn(move || {
                runtime.block_on(async move {
                let block = blocker(config.block_for, config.block_every);
                tokio::pin!(block);
                loop {
                    tokio::select! {
                        job = rx.recv() => {
                            let Some(job) = job else { return };
                            if !config.block_per_message.is_zero() {
                                std::thread::sleep(config.block_per_message); // the imitated bug
                            }
                            // Frames are due from when the loop got to the message.
                            let now = Instant::now().max(job.received);
                            for (k, frame) in answer(&job.text, &config).into_iter().enumerate() {
                                let at = now + config.reply_delay + config.frame_gap * k as u32;
                                let _ = job.back.send((at, frame));
                            }
                        }
                        () = &mut block => {}
                    }
                }
            });
            });
    }
    tx
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
enum Frame<'a> {
    /// One piece of a streamed reply.
    Delta {
        id: &'a serde_json::Value,
        delta: String,
        done: bool,
    },
    /// The last frame of a streamed reply.
    Done {
        id: &'a serde_json::Value,
        reply: &'a str,
        done: bool,
    },
    /// The answer to a request, in one frame.
    Reply {
        id: &'a serde_json::Value,
        reply: &'a str,
    },
    /// A request that could not be read, and why.
    Error { error: String },
}

/// A frame waiting for its time; the heap pops the earliest (then the first queued).
struct Scheduled {
    due: Instant,
    order: u64,
    frame: Message,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// The demo's routes: a WebSocket on every path (`/`, `/ws`, `/chat` all work).
pub fn router(config: DemoConfig) -> Router {
    Router::new()
        .fallback(upgrade)
        .with_state(Arc::new(Demo::new(config)))
}

/// Serves the demo on an already bound `listener` until `shutdown` completes. With a block
/// pattern configured, a task on the serving runtime blocks it on schedule: serve it from a
/// single-threaded runtime to block the whole event loop, as a single-loop server would be.
pub async fn serve(
    listener: TcpListener,
    config: DemoConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // With a separate message loop, that loop carries the blocks instead.
    let blocker = if config.separate_handler {
        blocker(Duration::ZERO, Duration::ZERO)
    } else {
        blocker(config.block_for, config.block_every)
    };
    let server = crate::listen::serve(
        listener,
        router(config),
        shutdown,
        crate::listen::Limits::websocket(),
    );
    tokio::select! {
        result = server => result,
        () = blocker => Ok(()),
    }
}

/// Blocks the current thread for `block_for` every `every`, on a drift-free schedule.
async fn blocker(block_for: Duration, every: Duration) {
    if block_for.is_zero() || every.is_zero() {
        return pending().await;
    }
    let mut next = Instant::now() + every;
    loop {
        sleep_until(next).await;
        // Deliberately blocking: this is the bug the demo imitates.
        std::thread::sleep(block_for);
        next += every;
    }
}

async fn upgrade(
    State(demo): State<Arc<Demo>>,
    uri: axum::http::Uri,
    ws: WebSocketUpgrade,
) -> Response {
    let room = demo.config.rooms.then(|| uri.path().to_string());
    ws.read_buffer_size(BUFFER_BYTES)
        .write_buffer_size(BUFFER_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket: WebSocket| {
            let n = demo.accepted.fetch_add(1, Ordering::Relaxed);
            let drop_at = (n < demo.config.drop_first_connections)
                .then(|| Instant::now() + demo.config.drop_after);
            let (sink, stream) = socket.split();
            async move {
                let joined = room.map(|r| (r, n));
                chat_in(sink, stream, Arc::clone(&demo), drop_at, joined.as_ref()).await;
                if let Some((room, n)) = &joined {
                    demo.leave(room, *n);
                }
                demo.leak(demo.config.leak_per_close);
            }
        })
}

/// One connection's conversation, over any sink and stream of frames (tests feed channels).
///
/// Outgoing frames wait in a heap ordered by due time, so the read loop never waits on a
/// reply and frames of concurrent streamed replies interleave as a real server's would.
/// `drop_at`: when the server closes this connection on purpose (code 1012).
pub async fn chat<S, R, E>(sink: S, stream: R, demo: Arc<Demo>, drop_at: Option<Instant>)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    chat_in(sink, stream, demo, drop_at, None).await;
}

/// [`chat`], in room mode a member of `room` as connection `n`.
async fn chat_in<S, R, E>(
    mut sink: S,
    mut stream: R,
    demo: Arc<Demo>,
    drop_at: Option<Instant>,
    room: Option<&(String, u32)>,
) where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let mut due: BinaryHeap<Reverse<Scheduled>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut schedule = |due: &mut BinaryHeap<Reverse<Scheduled>>, at, frame| {
        order += 1;
        due.push(Reverse(Scheduled {
            due: at,
            order,
            frame,
        }));
    };
    let (back_tx, mut back_rx) = mpsc::unbounded_channel::<(Instant, Message)>();
    if let Some((name, n)) = room {
        demo.join(name, *n, back_tx.clone());
    }
    loop {
        let next_due = due.peek().map(|Reverse(s)| s.due);
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) if room.is_some() => {
                    demo.leak(demo.config.leak_per_message);
                    if let Some((name, _)) = room {
                        demo.broadcast(name, &text);
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    demo.leak(demo.config.leak_per_message);
                    for (at, frame) in take(&demo, &text, &back_tx) {
                        schedule(&mut due, at, frame);
                    }
                    if send_due(&mut due, &mut sink).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {} // pings are answered by the WebSocket layer; binary is ignored
            },
            Some((at, frame)) = back_rx.recv() => {
                schedule(&mut due, at, frame);
                if send_due(&mut due, &mut sink).await.is_err() {
                    return;
                }
            }
            () = wait_until(next_due) => {
                if send_due(&mut due, &mut sink).await.is_err() {
                    return;
                }
            }
            () = wait_until(drop_at) => {
                let close = CloseFrame { code: DROP_CLOSE_CODE, reason: "demo: dropped on purpose".into() };
                let _ = sink.send(Message::Close(Some(close))).await;
                return;
            }
        }
    }
}

/// Takes one chat message: relayed to the mock LLM or the separate handler (their answers
/// come back on `back`), or answered here; returns the frames to send here and when.
fn take(
    demo: &Demo,
    text: &str,
    back: &mpsc::UnboundedSender<(Instant, Message)>,
) -> Vec<(Instant, Message)> {
    let config = &demo.config;
    if let Some(llm) = &config.llm {
        tokio::spawn(ask_llm(Arc::clone(llm), text.to_string(), back.clone()));
        return Vec::new();
    }
    if let Some(handler) = &demo.handler {
        let job = Job {
            text: text.to_string(),
            received: Instant::now(),
            back: back.clone(),
        };
        let _ = handler.send(job);
        return Vec::new();
    }
    if !config.block_per_message.is_zero() {
        std::thread::sleep(config.block_per_message); // the imitated bug
    }
    let now = Instant::now();
    answer(text, config)
        .into_iter()
        .enumerate()
        .map(|(k, frame)| {
            (
                now + config.reply_delay + config.frame_gap * k as u32,
                frame,
            )
        })
        .collect()
}

/// Sends every frame whose time has come, earliest first.
async fn send_due<S: Sink<Message> + Unpin>(
    due: &mut BinaryHeap<Reverse<Scheduled>>,
    sink: &mut S,
) -> Result<(), ()> {
    let now = Instant::now();
    while due.peek().is_some_and(|Reverse(s)| s.due <= now) {
        if let Some(Reverse(s)) = due.pop() {
            sink.send(s.frame).await.map_err(|_| ())?;
        }
    }
    Ok(())
}

async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

/// The frames answering one text frame, in order.
fn answer(text: &str, config: &DemoConfig) -> Vec<Message> {
    let json = |frame: &Frame<'_>| {
        Message::Text(
            serde_json::to_string(frame)
                .unwrap_or_else(|_| String::from("{}"))
                .into(),
        )
    };
    let req = match serde_json::from_str::<Request>(text) {
        Ok(req) => req,
        Err(err) => {
            let error = format!("expected a JSON object with an \"id\": {err}");
            return vec![json(&Frame::Error { error })];
        }
    };
    let reply = format!("echo: {}", req.text);
    let id = &req.id;
    if config.stream_frames <= 1 {
        return vec![json(&Frame::Reply { id, reply: &reply })];
    }
    let mut frames: Vec<Message> = (1..config.stream_frames)
        .map(|k| {
            json(&Frame::Delta {
                id,
                delta: format!("part {k} "),
                done: false,
            })
        })
        .collect();
    frames.push(json(&Frame::Done {
        id,
        reply: &reply,
        done: true,
    }));
    frames
}

#[cfg(test)]
mod tests;
