//! One simulated user: connect, one `select!` loop over cancel / frames / timeouts / churn /
//! sends, and reconnect with back-off when the connection is lost.
//!
//! Memory budget per session (×19,000 connections): the socket with a 1 KiB read buffer
//! (`upgrade.rs`) and a write buffer grown on the first send, the stream boxed, an `Arc` of the shared config, a child token,
//! the pending table (a ring of 24-byte slots sized to the requests in flight, 4 to start),
//! one send buffer sized once from the largest template, and a few timers: the task's
//! future is held under 2 KiB (a test checks it; the handshake future and the TLS-capable
//! stream are boxed so they do not sit inline). No histogram, and no allocation per
//! message: a message is rendered into a `BytesMut` whose bytes tungstenite's frame
//! shares and drops once written (the next render reclaims the same allocation), and a
//! reply is read for its id without building a JSON tree (`fields.rs`).

use std::future::pending;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::data::UserData;
use crate::engine::backoff::Backoff;
pub(crate) use crate::engine::backoff::XorShift;
use crate::engine::connect::{Dialer, Ws, classify};
use crate::engine::correlate::{Match, Pending, message_id, split_id};
use crate::engine::fields::{Fields, Found, Frame};
pub(crate) use crate::engine::pacing::Pacing;
use crate::metrics::{Disconnect, ErrorKind, Recorder, Sample};
use crate::profile::resolve::{MessageConfig, RunConfig};
use crate::profile::spec::Model;
use crate::template::Vars;

/// Longest a stopping user keeps its connection open to receive the replies still in
/// flight (never longer than the reply timeout). The plan ends a user's sending, not its
/// requests: a reply held back by a stalled server at the end of the run is measured too.
pub const DRAIN_MAX: Duration = Duration::from_secs(10);

/// How long a stopping user waits to hand its close frame to the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Close code recorded when a connection ends without a close frame (RFC 6455 §7.4.1).
const ABNORMAL_CLOSE: u16 = 1006;

/// How users reach the target.
#[derive(Debug)]
pub enum Transport {
    /// Each user holds a WebSocket connection.
    WebSocket(Dialer),
    /// Each user is a simulated Telegram user chatting with the bot through the mock.
    Telegram(TelegramUsers),
}

/// The mock Telegram Bot API the simulated users talk through, and the bot's token.
#[derive(Debug)]
pub struct TelegramUsers {
    /// The mock.
    pub mock: Arc<soak_mocks::telegram::Telegram>,
    /// The bot's token.
    pub token: String,
}

/// What every session shares, behind one `Arc`.
#[derive(Debug)]
pub struct SessionConfig {
    /// How users reach the target.
    pub transport: Transport,
    /// The scenario's messages.
    pub messages: Vec<MessageConfig>,
    /// Running sum of the weights, for picking a message.
    cumulative: Vec<u32>,
    /// The fields read from each reply: correlation and completion pointers.
    fields: Fields,
    /// The correlation pointers' fields, tried in order for a reply's id.
    ids: Vec<usize>,
    /// Per message: the field its completion rule looks at.
    complete_at: Vec<Option<usize>>,
    /// Open or closed model.
    pub model: Model,
    /// Open model: time between sends; `None` sends nothing.
    pub period: Option<Duration>,
    /// Closed model: pause after each complete reply.
    pub think: Duration,
    /// A reply not complete within this is a `timeout`.
    pub reply_timeout: Duration,
    /// Per-user CSV rows.
    pub data: UserData,
    /// Close and reopen connections after this long.
    pub lifetime: Option<Duration>,
    /// Reconnect back-off bounds.
    pub reconnect: (Duration, Duration),
    /// Whether any template needs the wall clock.
    uses_clock: bool,
    /// Where samples go.
    pub recorder: Recorder,
    /// The run's root token: Ctrl-C, SIGTERM, the target's death. Stops at once, without
    /// waiting for replies in flight.
    pub stop_now: CancellationToken,
}

impl SessionConfig {
    /// The shared session config of a run.
    pub fn new(
        config: &RunConfig,
        transport: Transport,
        recorder: Recorder,
        stop_now: CancellationToken,
    ) -> SessionConfig {
        // The profile allows at most MAX_FIELDS distinct pointers, so every one is added.
        let mut fields = Fields::default();
        let mut ids = Vec::new();
        for m in &config.messages {
            if let Some(i) = fields.add(&m.correlate)
                && !ids.contains(&i)
            {
                ids.push(i);
            }
        }
        let complete_at = config
            .messages
            .iter()
            .map(|m| m.complete.pointer().and_then(|p| fields.add(p)))
            .collect();
        let cumulative = config
            .messages
            .iter()
            .scan(0u32, |sum, m| {
                *sum = sum.saturating_add(m.weight);
                Some(*sum)
            })
            .collect();
        SessionConfig {
            transport,
            messages: config.messages.clone(),
            cumulative,
            fields,
            ids,
            complete_at,
            model: config.model,
            period: config.period,
            think: config.think,
            reply_timeout: config.reply_timeout,
            data: config.data.clone(),
            lifetime: config.lifetime,
            reconnect: (config.reconnect_min, config.reconnect_max),
            uses_clock: config.messages.iter().any(|m| m.template.uses_clock()),
            recorder,
            stop_now,
        }
    }

    /// The WebSocket dialer, unless users are simulated Telegram users.
    pub fn dialer(&self) -> Option<&Dialer> {
        match &self.transport {
            Transport::WebSocket(dialer) => Some(dialer),
            Transport::Telegram(_) => None,
        }
    }

    /// Appends message `msg` for `user`'s message `seq` to `out`.
    pub(crate) fn render(
        &self,
        msg: u16,
        user: u32,
        seq: u64,
        random: u64,
        out: &mut impl std::fmt::Write,
    ) {
        let now_ms = if self.uses_clock { unix_ms() } else { 0 };
        let vars = Vars {
            user,
            seq,
            id: message_id(user, seq),
            now_ms,
            random: random & 0x7FFF_FFFF_FFFF_FFFF,
            row: self.data.row(user),
        };
        self.messages[usize::from(msg)]
            .template
            .render_into(vars, out);
    }

    /// The message index a random draw picks, by weight.
    pub(crate) fn pick(&self, draw: u64) -> u16 {
        pick(&self.cumulative, draw)
    }
}

/// The index whose share of the cumulative weights a draw falls in.
fn pick(cumulative: &[u32], draw: u64) -> u16 {
    let total = cumulative.last().copied().unwrap_or(1).max(1);
    let r = (draw % u64::from(total)) as u32;
    cumulative.iter().position(|&c| r < c).unwrap_or(0) as u16
}

/// One user's state that outlives its connections.
struct Session {
    user: u32,
    seq: u64,
    pending: Pending,
    /// Where messages are rendered; each send splits its bytes off (see the module doc).
    out: BytesMut,
    /// Room one rendered message needs (the largest template's hint).
    room: usize,
    rng: XorShift,
}

/// Runs user `user` until `cancel` fires.
pub async fn run(user: u32, config: Arc<SessionConfig>, cancel: CancellationToken) {
    let Some(dialer) = config.dialer() else {
        return crate::engine::telegram_user::run(user, Arc::clone(&config), cancel).await;
    };
    let rec = &config.recorder;
    rec.record(Sample::UserStarted);
    let mut session = Session::new(user, &config);
    let mut backoff = Backoff::new(user, config.reconnect);
    let mut connected_before = false;
    loop {
        let attempt = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            attempt = async {
                dialer.wait_turn().await;
                rec.record(Sample::ConnectAttempt);
                let began = Instant::now();
                // Boxed: the handshake future (TLS included) is large and lives only while
                // connecting; inline, its size would stay in every session for the whole run.
                (Box::pin(dialer.dial()).await, began.elapsed())
            } => attempt,
        };
        match attempt {
            (Ok(ws), took) => {
                rec.record(Sample::Connected {
                    user,
                    micros: micros(took),
                    reconnect: connected_before,
                });
                connected_before = true;
                backoff.reset();
                let (cause, code) = session.converse(ws, &config, &cancel).await;
                rec.record(Sample::Disconnected { user, cause, code });
                let abandoned = session.pending.clear();
                if abandoned > 0 {
                    rec.record(Sample::Abandoned { count: abandoned });
                }
                match cause {
                    Disconnect::Stopped => break,
                    Disconnect::Churned => continue, // reopen at once: churn is not a failure
                    Disconnect::Lost(_) => {}
                }
            }
            (Err(kind), _) => rec.record(Sample::Error { kind, user }),
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = sleep(backoff.next_delay()) => {}
        }
    }
    rec.record(Sample::UserStopped);
}

impl Session {
    fn new(user: u32, config: &SessionConfig) -> Session {
        let largest = config
            .messages
            .iter()
            .map(|m| m.template.capacity_hint())
            .max()
            .unwrap_or(64);
        Session {
            user,
            seq: 0,
            pending: Pending::with_capacity(4),
            out: BytesMut::new(),
            room: largest + 64,
            rng: XorShift::new(user),
        }
    }

    /// The loop over one open connection; returns why it ended and the server's close code.
    async fn converse(
        &mut self,
        ws: Box<Ws>,
        config: &SessionConfig,
        cancel: &CancellationToken,
    ) -> (Disconnect, u16) {
        // Not split into halves: `select!` drops its other branches before a handler runs,
        // so the send in a handler and the read in a branch never borrow `ws` at once, and
        // no lock (a split's `BiLock`) is taken per frame.
        let mut ws = ws;
        let mut pacing = Pacing::new(config, self.user);
        let expiry = sleep_until(Instant::now());
        tokio::pin!(expiry);
        let mut armed: Option<Instant> = None;
        let end_of_life = config.lifetime.map(|l| Instant::now() + l);
        let mut drain_until: Option<Instant> = None;
        let end = loop {
            let deadline = self.pending.next_deadline(config.reply_timeout);
            if deadline != armed {
                if let Some(at) = deadline {
                    expiry.as_mut().reset(at);
                }
                armed = deadline;
            }
            if drain_until.is_some() && self.pending.outstanding() == 0 {
                break (Disconnect::Stopped, 0);
            }
            tokio::select! {
                biased;
                () = config.stop_now.cancelled() => break (Disconnect::Stopped, 0),
                () = cancel.cancelled(), if drain_until.is_none() => {
                    // Stop sending; wait for what is in flight (bounded), then close.
                    drain_until = Some(Instant::now() + config.reply_timeout.min(DRAIN_MAX));
                }
                () = wait_until(drain_until) => break (Disconnect::Stopped, 0),
                frame = ws.next() => {
                    if let Some(end) = self.received(frame, config, &mut pacing) {
                        break end;
                    }
                }
                () = &mut expiry, if armed.is_some() => {
                    self.expire(config, &mut pacing);
                    armed = None;
                }
                () = wait_until(end_of_life), if drain_until.is_none() => break (Disconnect::Churned, 0),
                intended = pacing.next_send(), if drain_until.is_none() => {
                    if let Err(kind) = self.send(intended, &mut ws, config).await {
                        break (Disconnect::Lost(kind), ABNORMAL_CLOSE);
                    }
                    pacing.sent();
                }
            }
        };
        let reason = match end.0 {
            Disconnect::Stopped => "soak: user stopped",
            Disconnect::Churned => "soak: connection lifetime",
            Disconnect::Lost(_) => return end,
        };
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: reason.into(),
        }));
        // Boxed: needed once per connection, so it need not take room in every session.
        let _ = Box::pin(timeout(CLOSE_GRACE, ws.send(close))).await;
        end
    }

    /// Takes what the socket gave; `Some` with why and the close code when it ended.
    fn received(
        &mut self,
        frame: Option<Result<Message, WsError>>,
        config: &SessionConfig,
        pacing: &mut Pacing,
    ) -> Option<(Disconnect, u16)> {
        match frame {
            Some(Ok(Message::Text(text))) => self.on_frame(&text, config, pacing, Instant::now()),
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(ABNORMAL_CLOSE, |f| u16::from(f.code));
                return Some((Disconnect::Lost(ErrorKind::Closed), code));
            }
            Some(Ok(_)) => {} // pongs, binary and raw frames carry no reply
            Some(Err(err)) => return Some((Disconnect::Lost(classify(&err)), ABNORMAL_CLOSE)),
            None => return Some((Disconnect::Lost(ErrorKind::Closed), ABNORMAL_CLOSE)),
        }
        None
    }

    /// Times out the requests whose reply is overdue.
    fn expire(&mut self, config: &SessionConfig, pacing: &mut Pacing) {
        let rec = &config.recorder;
        let mut timed_out = false;
        self.pending
            .expire(Instant::now(), config.reply_timeout, |msg| {
                rec.record(Sample::Timeout { msg });
                timed_out = true;
            });
        if timed_out {
            pacing.reply_done(Instant::now());
        }
    }

    /// Sends the next message, due at `intended` (latency is measured from there).
    async fn send(
        &mut self,
        intended: Instant,
        ws: &mut Ws,
        config: &SessionConfig,
    ) -> Result<(), ErrorKind> {
        self.seq += 1;
        let random = self.rng.next();
        let msg = config.pick(random >> 32);
        // Reclaims the buffer in place once the last frame's bytes are dropped: tungstenite
        // copies a frame into its write buffer as it is sent, so after the first message
        // this allocates nothing.
        self.out.reserve(self.room);
        config.render(msg, self.user, self.seq, random, &mut self.out);
        self.pending.push(self.seq, msg, intended);
        // Rendered from `&str` pieces only, so always UTF-8.
        let text = Utf8Bytes::try_from(self.out.split().freeze()).unwrap_or_default();
        ws.send(Message::Text(text))
            .await
            .map_err(|err| classify(&err))?;
        config.recorder.record(Sample::Sent { msg });
        Ok(())
    }

    /// Attributes one text frame received at `now` to its request by the correlation pointer.
    fn on_frame(&mut self, text: &str, config: &SessionConfig, pacing: &mut Pacing, now: Instant) {
        let rec = &config.recorder;
        let mut fields = Frame::default();
        if config.fields.read(text, &mut fields).is_err() {
            rec.record(Sample::Error {
                kind: ErrorKind::Unparsable,
                user: self.user,
            });
            return;
        }
        let Some(id) = config.ids.iter().find_map(|&i| fields[i].id()) else {
            rec.record(Sample::Error {
                kind: ErrorKind::Unparsable,
                user: self.user,
            });
            return;
        };
        let seq = match split_id(id) {
            Some((user, seq)) if user == self.user => seq,
            _ => {
                rec.record(Sample::Error {
                    kind: ErrorKind::Unmatched,
                    user: self.user,
                });
                return;
            }
        };
        let slot = match self.pending.get(seq) {
            Match::Pending(slot) => slot,
            Match::Late => return rec.record(Sample::LateReply),
            Match::Unknown => {
                return rec.record(Sample::Error {
                    kind: ErrorKind::Unmatched,
                    user: self.user,
                });
            }
        };
        slot.frames = slot.frames.saturating_add(1);
        let (msg, frames, latency) = (
            slot.msg,
            slot.frames,
            micros(now.saturating_duration_since(slot.intended)),
        );
        let rule = &config.messages[usize::from(msg)].complete;
        if frames == 1 && rule.streams() {
            rec.record(Sample::FirstFrame {
                msg,
                micros: latency,
            });
        }
        let at = config.complete_at[usize::from(msg)].map_or(&Found::Missing, |i| &fields[i]);
        if rule.is_complete(at, u32::from(frames)) {
            self.pending.finish(seq);
            rec.record(Sample::Reply {
                msg,
                micros: latency,
            });
            pacing.reply_done(now);
        }
    }
}

async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
