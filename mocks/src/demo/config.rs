//! [`DemoConfig`]: how the demo target behaves (reply delays, streaming, blocking, drops,
//! a leak, an LLM behind it); every default is the plain, fast echo.

use std::sync::Arc;
use std::time::Duration;

/// How the demo target behaves. Build it as `DemoConfig { field, ..DemoConfig::default() }`;
/// every field's default is the plain, fast echo.
#[derive(Debug, Clone, Default)]
pub struct DemoConfig {
    /// Time between receiving a message and sending its reply (its first frame when
    /// streaming). Replies to concurrent messages are delayed independently.
    pub reply_delay: Duration,
    /// Frames per reply: 0 or 1 sends one `{"id", "reply"}` frame; N > 1 streams N − 1
    /// `{"id", "delta", "done": false}` frames and a last `{"id", "reply", "done": true}`.
    pub stream_frames: u32,
    /// Time between the frames of one streamed reply.
    pub frame_gap: Duration,
    /// Block the server's event loop for this long every [`DemoConfig::block_every`]
    /// (a synchronous call in an async handler). Zero: never.
    pub block_for: Duration,
    /// Period of the blocks; the first comes one period after the server starts.
    pub block_every: Duration,
    /// Block the event loop this long on every message received. Zero: never.
    pub block_per_message: Duration,
    /// The first this-many connections are closed by the server (code 1012) after
    /// [`DemoConfig::drop_after`]; later connections are left alone. Zero: none.
    pub drop_first_connections: u32,
    /// How long a connection that will be dropped lives.
    pub drop_after: Duration,
    /// Handle messages on a separate single-threaded event loop (its own thread), while
    /// connections, and so pings, are served by the I/O runtime: the blocking modes then
    /// block message handling only, and pings keep being answered on time, as in servers
    /// whose WebSocket layer answers pings off the application's loop.
    pub separate_handler: bool,
    /// Keep this many bytes per message received, forever: a leak for soak to find.
    pub leak_per_message: u64,
    /// Keep this many bytes per connection that closed, forever: the leak of a server that
    /// forgets to free a connection's state (found under `--lifetime` churn).
    pub leak_per_close: u64,
    /// Room mode, in the Django Channels tutorial's shape: a connection joins the room of
    /// its URL path, and each message `{"message": …}` is broadcast to every member of the
    /// room, the sender included, as `{"message": …}` with no id; nothing else is answered.
    pub rooms: bool,
    /// Room mode: leave out every N-th copy of a broadcast (0: none) — a server that drops
    /// messages for some members, as a full channel layer does.
    pub room_drop_every: u32,
    /// Answer each message by calling this mock LLM (a streamed chat completion through its
    /// HTTP router) and relaying its tokens as `{"id", "delta", "done": false}` frames, then
    /// `{"id", "reply", "done": true}`: an LLM-backed chat server, end to end.
    pub llm: Option<Arc<crate::llm::Llm>>,
}
