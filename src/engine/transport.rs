//! The transport seam: how one user reaches the target — a WebSocket, a chat through the
//! mock Telegram Bot API, or (in unit tests) a pair of channels — behind one enum that the
//! user loop (`session.rs`) opens, sends on, reads from and closes.

#[cfg(test)]
pub(crate) mod memory;
pub mod socketio;
pub(crate) mod telegram;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::engine::connect::{Ws, classify};
use crate::engine::session::{SessionConfig, Transport};
use crate::metrics::{Disconnect, ErrorKind, Sample};
use soak_mocks::telegram::BotAction;

/// Close code recorded when a connection ends without a close frame (RFC 6455 §7.4.1).
pub const ABNORMAL_CLOSE: u16 = 1006;

/// The seq a probe's ping carried in its first 8 bytes (0 when shorter).
pub(crate) fn pong_seq(payload: &[u8]) -> u64 {
    payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// How long a stopping user waits to hand its close frame to the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// One user's open way to the target.
pub(crate) enum Link {
    /// A WebSocket connection (boxed: the stream is large and one per connection).
    Ws(Box<Ws>),
    /// A Socket.IO connection (Engine.IO over a WebSocket).
    SocketIo(Box<socketio::Socket>),
    /// A private or group chat with the bot, through the mock.
    Telegram(Box<telegram::Chat>),
    /// Channels to a test's stand-in server.
    #[cfg(test)]
    Memory(memory::Link),
}

/// What the target sent.
pub(crate) enum Arrival {
    /// A text frame, correlated by the loop (ids and completion rules).
    Text(Utf8Bytes),
    /// What the bot did in the chat (attributed by the chat itself).
    Bot(BotAction),
    /// The reply a Telegram bot was writing by edits has settled.
    Settled,
    /// A binary frame: an error (soak speaks text).
    Binary,
    /// A Socket.IO event: its name's index (pushes), whether it is the reply event, and
    /// where its first argument is in the frame.
    Event {
        /// Index of its name (`socketio::EventNames`); 0 for the reply event.
        name: u8,
        /// The reply event (`socketio.reply_event`): correlated like a text frame.
        reply: bool,
        /// The frame.
        text: Utf8Bytes,
        /// Its first argument's bytes in `text`.
        range: std::ops::Range<u32>,
    },
    /// A Socket.IO ack of request `id`.
    Ack {
        /// The ack id (the request's seq).
        id: u64,
        /// The frame.
        text: Utf8Bytes,
        /// Its first argument's bytes in `text`.
        range: std::ops::Range<u32>,
    },
    /// A Socket.IO namespace connect went through.
    Connected,
    /// A Socket.IO namespace refused the connection (`connect_error`), with its message.
    Refused(String),
    /// A Socket.IO server ping, answered; this much later than its `pingInterval`.
    Heartbeat(Duration),
    /// A binary attachment of a Socket.IO packet: counted.
    Attachment,
    /// Nothing to attribute (pings, answered below).
    Nothing,
    /// A pong carrying these first 8 bytes (a probe's ping seq), 0 when shorter.
    Pong(u64),
    /// The connection ended: why, and the server's close code.
    Closed(ErrorKind, u16),
}

impl Link {
    /// Opens user `user`'s link; (link, connect time) or the failure. WebSocket dials wait
    /// their turn under the connect-rate cap and count as attempts; a Telegram chat is
    /// open at once.
    pub(crate) async fn open(
        config: &SessionConfig,
        user: u32,
    ) -> Result<(Link, Duration), ErrorKind> {
        match &config.transport {
            Transport::WebSocket(dialer) => {
                dialer.wait_turn().await;
                config.recorder.record(Sample::ConnectAttempt);
                let began = Instant::now();
                // Boxed: the handshake future (TLS included) is large and lives only while
                // connecting; inline, its size would stay in every session for the run.
                let ws = Box::pin(dialer.dial(config.room_of(user))).await?;
                Ok((Link::Ws(ws), began.elapsed()))
            }
            Transport::SocketIo(dialer, sio) => {
                dialer.wait_turn().await;
                config.recorder.record(Sample::ConnectAttempt);
                let began = Instant::now();
                let ws = Box::pin(dialer.dial(config.room_of(user))).await?;
                let within = dialer.handshake_timeout();
                let socket = Box::pin(socketio::Socket::open(ws, Arc::clone(sio), within)).await?;
                Ok((Link::SocketIo(Box::new(socket)), began.elapsed()))
            }
            Transport::Telegram(tg) => Ok((
                Link::Telegram(Box::new(telegram::Chat::new(user, config, tg))),
                Duration::ZERO,
            )),
            #[cfg(test)]
            Transport::Memory(server) => {
                config.recorder.record(Sample::ConnectAttempt);
                let link = server.connect(user).await?;
                Ok((Link::Memory(link), Duration::ZERO))
            }
        }
    }

    /// Whether the link is a connection that `session.lifetime` churns (a chat is not).
    pub(crate) fn churns(&self) -> bool {
        !matches!(self, Link::Telegram(_))
    }

    /// Sends the rendered message `seq` (taking `out`'s bytes). A send the target does not
    /// take within the reply timeout is a `send_timeout`; `Ok(false)` when the user was
    /// stopped while it waited.
    pub(crate) async fn send(
        &mut self,
        out: &mut BytesMut,
        seq: u64,
        config: &SessionConfig,
        cancel: &CancellationToken,
    ) -> Result<bool, ErrorKind> {
        match self {
            Link::Ws(_) | Link::SocketIo(_) => {
                let ws = match self {
                    Link::SocketIo(socket) => socket.ws(),
                    Link::Ws(ws) => ws,
                    Link::Telegram(_) => return Ok(false),
                    #[cfg(test)]
                    Link::Memory(_) => return Ok(false),
                };
                // Rendered from `&str` pieces only, so always UTF-8.
                let text = Utf8Bytes::try_from(out.split().freeze()).unwrap_or_default();
                tokio::select! {
                    biased;
                    () = config.stop_now.cancelled() => Ok(false),
                    () = cancel.cancelled() => Ok(false),
                    sent = timeout(config.reply_timeout, ws.send(Message::Text(text))) => match sent {
                        Ok(Ok(())) => Ok(true),
                        Ok(Err(err)) => Err(classify(&err)),
                        // Counted once, as the connection's loss (`Disconnect::Lost`).
                        Err(_) => Err(ErrorKind::SendTimeout),
                    },
                }
            }
            Link::Telegram(chat) => {
                chat.say(out, seq, config);
                out.clear();
                Ok(true)
            }
            #[cfg(test)]
            Link::Memory(link) => link.send(out),
        }
    }

    /// The next thing the target sent (cancel-safe: a `select!` branch).
    pub(crate) async fn next(&mut self) -> Arrival {
        match self {
            Link::Ws(ws) => match ws.next().await {
                Some(Ok(Message::Text(text))) => Arrival::Text(text),
                Some(Ok(Message::Close(frame))) => Arrival::Closed(
                    ErrorKind::Closed,
                    frame.map_or(ABNORMAL_CLOSE, |f| u16::from(f.code)),
                ),
                Some(Ok(Message::Binary(_))) => Arrival::Binary,
                Some(Ok(Message::Pong(p))) => Arrival::Pong(pong_seq(&p)),
                Some(Ok(_)) => Arrival::Nothing,
                Some(Err(err)) => Arrival::Closed(classify(&err), ABNORMAL_CLOSE),
                None => Arrival::Closed(ErrorKind::Closed, ABNORMAL_CLOSE),
            },
            Link::SocketIo(socket) => socket.next().await,
            Link::Telegram(chat) => chat.next().await,
            #[cfg(test)]
            Link::Memory(link) => link.next().await,
        }
    }

    /// Sends a WebSocket ping carrying `seq` (a probe's); `false` when the link has no
    /// WebSocket or the send failed.
    pub(crate) async fn ping(&mut self, seq: u64) -> bool {
        let ws = match self {
            Link::Ws(ws) => ws,
            Link::SocketIo(socket) => socket.ws(),
            Link::Telegram(_) => return false,
            #[cfg(test)]
            Link::Memory(_) => return false,
        };
        let payload = bytes::Bytes::copy_from_slice(&seq.to_be_bytes());
        ws.send(Message::Ping(payload)).await.is_ok()
    }

    /// Ends the link the user ended itself (a close frame, bounded); nothing when it was lost.
    pub(crate) async fn close(&mut self, end: &Disconnect) {
        let reason = match end {
            Disconnect::Stopped => "soak: user stopped",
            Disconnect::Churned => "soak: connection lifetime",
            Disconnect::Lost(_) => return,
        };
        match self {
            Link::Ws(ws) => {
                let close = Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: reason.into(),
                }));
                // Boxed: needed once per connection, so it need not take room in every session.
                let _ = Box::pin(timeout(CLOSE_GRACE, ws.send(close))).await;
            }
            Link::SocketIo(socket) => Box::pin(socket.close(CLOSE_GRACE)).await,
            Link::Telegram(_) => {}
            #[cfg(test)]
            Link::Memory(link) => link.close(),
        }
    }
}
