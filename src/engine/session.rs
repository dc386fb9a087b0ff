//! One simulated user — the one loop every transport runs: open a link (a WebSocket, a
//! Telegram chat; channels in tests), one `select!` over cancel / arrivals / timeouts /
//! churn / sends, drain on stop, and reopen with back-off when the link is lost. What is
//! particular to a transport (dialing, sending, reading, attributing a bot's answers) is
//! behind `transport::Link`.
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
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::engine::backoff::Backoff;
pub(crate) use crate::engine::backoff::XorShift;
use crate::engine::correlate::{Match, Pending, split_id};
use crate::engine::fanout::{Reached, Seen};
use crate::engine::fields::{Found, Frame};
pub(crate) use crate::engine::pacing::Pacing;
use crate::engine::steps::{Joined, join};
use crate::engine::transport::telegram::Answers;
use crate::engine::transport::{ABNORMAL_CLOSE, Arrival, Link};
use crate::metrics::{Disconnect, ErrorKind, Sample};

/// Longest a stopping user keeps its connection open to receive the replies still in
/// flight (never longer than the reply timeout). The plan ends a user's sending, not its
/// requests: a reply held back by a stalled server at the end of the run is measured too.
pub const DRAIN_MAX: Duration = Duration::from_secs(10);

/// How long a stopping room member stays to receive the copies already counted for it
/// (never longer than its drain).
pub const FANOUT_GRACE: Duration = Duration::from_millis(500);

mod config;
pub use config::{SessionConfig, TelegramUsers, Transport};

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
    /// With fan-out measured: what this member has seen from each other member.
    seen: Option<Box<Seen>>,
    /// When the current connection counted as connected (a room member).
    joined_at: Option<Instant>,
    /// Whether it is counted among its room's connected members now.
    member: bool,
    /// When it left that count (stopping), while it stays for the copies already counted.
    left_at: Option<Instant>,
}

/// Runs user `user` until `cancel` fires.
pub async fn run(user: u32, config: Arc<SessionConfig>, cancel: CancellationToken) {
    let rec = &config.recorder;
    rec.record(Sample::UserStarted);
    let mut session = Session::new(user, &config);
    let mut backoff = Backoff::new(user, config.reconnect);
    let mut connected_before = false;
    loop {
        let attempt = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            attempt = Link::open(&config, user) => attempt,
        };
        match attempt {
            Ok((mut link, took)) => {
                match session.join(&mut link, &config, &cancel).await {
                    Some(true) => {}
                    Some(false) => {
                        // A failed step: the usual back-off, then connect and try again.
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => break,
                            () = sleep(backoff.next_delay()) => {}
                        }
                        continue;
                    }
                    None => break,
                }
                rec.record(Sample::Connected {
                    user,
                    micros: micros(took),
                    reconnect: connected_before,
                });
                connected_before = true;
                backoff.reset();
                if let Some(f) = &config.fanout {
                    session.enter_room(f);
                }
                let (cause, code) = session.converse(link, &config, &cancel).await;
                if let Some(f) = &config.fanout {
                    session.leave_room(f);
                }
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
            Err(kind) => rec.record(Sample::Error { kind, user }),
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
            seen: config
                .fanout
                .as_ref()
                .map(|f| Box::new(Seen::new(f.room_size))),
            joined_at: None,
            member: false,
            left_at: None,
        }
    }

    /// The loop over one open link; returns why it ended and the server's close code.
    async fn converse(
        &mut self,
        mut link: Link,
        config: &SessionConfig,
        cancel: &CancellationToken,
    ) -> (Disconnect, u16) {
        // Not split into halves: `select!` drops its other branches before a handler runs,
        // so the send in a handler and the read in a branch never borrow the link at once,
        // and no lock (a split's `BiLock`) is taken per frame.
        let mut pacing = Pacing::new(config, self.user);
        let expiry = sleep_until(Instant::now());
        tokio::pin!(expiry);
        let mut armed: Option<Instant> = None;
        // Under `session.alternate`: a talk window sends and keeps the connection, a churn
        // window sends nothing and closes it after its lifetime.
        let mut window = config.window_at(Instant::now());
        let churns = |window: Option<(bool, Instant)>| window.is_none_or(|(talk, _)| !talk);
        let talks = |window: Option<(bool, Instant)>| window.is_none_or(|(talk, _)| talk);
        let lifetime = config.lifetime.filter(|_| link.churns());
        let mut end_of_life = churns(window)
            .then(|| lifetime.map(|l| Instant::now() + l))
            .flatten();
        let mut drain_until: Option<Instant> = None;
        // In a room, a stopping member leaves the count at once and stays a moment for the
        // copies already counted for it, so the end of a run does not read as losses.
        let mut stay_until: Option<Instant> = None;
        let end = loop {
            let deadline = self.pending.next_deadline(config.reply_timeout);
            if deadline != armed {
                if let Some(at) = deadline {
                    expiry.as_mut().reset(at);
                }
                armed = deadline;
            }
            if drain_until.is_some() && self.pending.outstanding() == 0 && stay_until.is_none() {
                break (Disconnect::Stopped, 0);
            }
            tokio::select! {
                biased;
                () = config.stop_now.cancelled() => break (Disconnect::Stopped, 0),
                () = cancel.cancelled(), if drain_until.is_none() => {
                    // Stop sending; wait for what is in flight (bounded), then close.
                    let drain = config.reply_timeout.min(DRAIN_MAX);
                    drain_until = Some(Instant::now() + drain);
                    if let Some(f) = &config.fanout {
                        self.leave_room(f);
                        stay_until = Some(Instant::now() + FANOUT_GRACE.min(drain));
                    }
                }
                () = wait_until(stay_until) => stay_until = None,
                () = wait_until(drain_until) => break (Disconnect::Stopped, 0),
                arrival = link.next() => {
                    if let Some(end) = self.arrived(arrival, &mut link, config, &mut pacing) {
                        break end;
                    }
                }
                () = &mut expiry, if armed.is_some() => {
                    self.expire(&mut link, config, &mut pacing);
                    armed = None;
                }
                () = wait_until(end_of_life), if drain_until.is_none() => break (Disconnect::Churned, 0),
                () = wait_until(window.map(|w| w.1)), if drain_until.is_none() => {
                    window = config.window_at(Instant::now());
                    if churns(window) {
                        end_of_life = lifetime.map(|l| Instant::now() + l);
                    } else {
                        end_of_life = None;
                        pacing = Pacing::new(config, self.user);
                    }
                }
                intended = pacing.next_send(), if drain_until.is_none() && talks(window) => {
                    match self.send(intended, &mut link, config, cancel).await {
                        Ok(true) => pacing.sent(),
                        Ok(false) => break (Disconnect::Stopped, 0),
                        Err(kind) => break (Disconnect::Lost(kind), ABNORMAL_CLOSE),
                    }
                }
            }
        };
        link.close(&end.0).await;
        end
    }

    /// Takes what the link gave; `Some` with why and the close code when it ended.
    fn arrived(
        &mut self,
        arrival: Arrival,
        link: &mut Link,
        config: &SessionConfig,
        pacing: &mut Pacing,
    ) -> Option<(Disconnect, u16)> {
        let now = Instant::now();
        match arrival {
            Arrival::Text(text) => self.on_frame(&text, config, pacing, now),
            Arrival::Bot(action) => {
                if let Link::Telegram(chat) = link {
                    chat.on_action(action, now, &mut self.answers(pacing, config));
                }
            }
            Arrival::Settled => {
                if let Link::Telegram(chat) = link {
                    chat.settled(&mut self.answers(pacing, config));
                }
            }
            Arrival::Binary => config.recorder.record(Sample::Error {
                kind: ErrorKind::Binary,
                user: self.user,
            }),
            Arrival::Event {
                name,
                reply,
                text,
                range,
            } => {
                let data = text
                    .get(range.start as usize..range.end as usize)
                    .unwrap_or_default();
                self.on_event(data, name, reply, config, pacing, now);
            }
            Arrival::Ack { id, .. } => self.on_ack(id, config, pacing, now),
            Arrival::Heartbeat(late) => config.recorder.record(Sample::Heartbeat {
                late_us: u32::try_from(late.as_micros()).unwrap_or(u32::MAX),
            }),
            Arrival::Attachment => config.recorder.record(Sample::Attachment),
            // A namespace connect answered late, or refused after it connected: kicked.
            Arrival::Connected | Arrival::Nothing | Arrival::Pong(_) => {}
            Arrival::Refused(_) => return Some((Disconnect::Lost(ErrorKind::Kicked), 0)),
            Arrival::Closed(kind, code) => return Some((Disconnect::Lost(kind), code)),
        }
        None
    }

    /// What a transport that attributes answers itself may touch.
    fn answers<'a>(&'a mut self, pacing: &'a mut Pacing, config: &'a SessionConfig) -> Answers<'a> {
        Answers {
            pending: &mut self.pending,
            pacing,
            config,
        }
    }

    /// Times out the requests whose reply is overdue.
    fn expire(&mut self, link: &mut Link, config: &SessionConfig, pacing: &mut Pacing) {
        let rec = &config.recorder;
        let mut timed_out = false;
        self.pending
            .expire(Instant::now(), config.reply_timeout, |msg| {
                rec.record(Sample::Timeout { msg });
                timed_out = true;
            });
        if let Link::Telegram(chat) = link {
            chat.expired(&mut self.pending);
        }
        if timed_out {
            pacing.reply_done(Instant::now());
        }
    }

    /// Sends the next message, due at `intended` (latency is measured from there). A send
    /// the target does not take within the reply timeout (a server that stopped reading) is
    /// a `send_timeout` and ends the connection; `Ok(false)` when the user was stopped while
    /// the send waited — the run's end is never held up by a server that does not read.
    async fn send(
        &mut self,
        intended: Instant,
        link: &mut Link,
        config: &SessionConfig,
        cancel: &CancellationToken,
    ) -> Result<bool, ErrorKind> {
        self.seq += 1;
        let random = self.rng.next();
        let msg = config.pick(random >> 32);
        // Reclaims the buffer in place once the last frame's bytes are dropped: tungstenite
        // copies a frame into its write buffer as it is sent, so after the first message
        // this allocates nothing.
        self.out.reserve(self.room);
        config.render(msg, self.user, self.seq, random, &mut self.out);
        self.pending.push(self.seq, msg, intended);
        if let Some(f) = &config.fanout {
            f.sending(self.user, self.seq, intended);
        }
        if !link.send(&mut self.out, self.seq, config, cancel).await? {
            return Ok(false);
        }
        config.recorder.record(Sample::Sent { msg });
        if let Some(f) = &config.fanout {
            let (expected, every) = f.expected(self.user, self.seq);
            config.recorder.record(Sample::FanoutSent { expected });
            if let Some(micros) = every {
                config.recorder.record(Sample::FanoutLast { micros });
            }
        }
        Ok(true)
    }

    /// Runs the connect-time steps on a new link: `Some(true)` when they passed (or there
    /// are none), `Some(false)` when one failed (recorded, the link closed), `None` when the
    /// user was stopped meanwhile.
    async fn join(
        &mut self,
        link: &mut Link,
        config: &SessionConfig,
        cancel: &CancellationToken,
    ) -> Option<bool> {
        if config.steps.is_empty() && !matches!(link, Link::SocketIo(_)) {
            return Some(true);
        }
        let rec = &config.recorder;
        // Boxed: once per connection, so its frame buffer is not in every session.
        match Box::pin(join(link, &mut self.out, (self.user, true), config, cancel)).await {
            Joined::Passed(took) => {
                rec.record(Sample::Joined {
                    micros: micros(took),
                });
                Some(true)
            }
            Joined::Failed { step, code, reason } => {
                let user = self.user;
                let reason = match (&config.transport, reason) {
                    (Transport::SocketIo(_, sio), Some(r)) => sio.refusals.index(&r) + 1,
                    _ => 0,
                };
                rec.record(Sample::JoinFailed {
                    user,
                    step,
                    code,
                    reason,
                });
                link.close(&Disconnect::Stopped).await;
                Some(false)
            }
            Joined::Stopped => {
                link.close(&Disconnect::Stopped).await;
                None
            }
        }
    }

    /// Joins the room's count of connected members: copies are expected here from now.
    fn enter_room(&mut self, f: &crate::engine::fanout::Fanout) {
        f.joined(self.user);
        self.member = true;
        self.left_at = None;
        self.joined_at = Some(Instant::now());
    }

    /// Leaves the room's count of connected members (once per connection).
    fn leave_room(&mut self, f: &crate::engine::fanout::Fanout) {
        if std::mem::take(&mut self.member) {
            f.left(self.user);
            self.left_at = Some(Instant::now());
        }
    }

    /// A copy of `sender`'s message `seq` arrived at `now`.
    fn delivered(
        &mut self,
        f: &crate::engine::fanout::Fanout,
        sender: u32,
        seq: u64,
        config: &SessionConfig,
        now: Instant,
    ) {
        if sender == self.user && !f.include_sender {
            return; // its own message, not a delivery: perhaps its reply
        }
        let (duplicate, out_of_order) = self
            .seen
            .as_mut()
            .map_or((false, false), |s| s.note(sender, seq));
        let sent = f.intended(sender, seq);
        // A member that connected after the sender counted its room (the server let it in
        // before soak counted it), or had left the count before (stopping), was not expected
        // to get this copy.
        let unexpected = match sent {
            Some((_, Some(counted))) => {
                self.joined_at.is_some_and(|j| j > counted)
                    || self.left_at.is_some_and(|l| l < counted)
            }
            _ => false,
        };
        let waited = sent.map(|(at, _)| now.saturating_duration_since(at));
        let late = waited.is_none_or(|w| w > config.reply_timeout);
        let micros = waited.map_or(0, micros);
        let reached = if late || duplicate || unexpected {
            Reached::default()
        } else {
            f.reached(sender, seq, micros)
        };
        config.recorder.record(Sample::Delivery {
            micros,
            late,
            duplicate,
            out_of_order,
            unexpected,
            first: reached.first,
        });
        if let Some(micros) = reached.last {
            config.recorder.record(Sample::FanoutLast { micros });
        }
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
        // A room member's copy of a message (before pushes: a rule naming chat messages must
        // not hide deliveries): timed from its sender's intended send. The
        // sender's own copy (with `include_sender`) may also be its reply, so it goes on.
        if self.took_delivery(&fields, config, now) == Some(false) {
            return;
        }
        // A push (presence, typing…) is counted under its rule, never as a reply or an error.
        if let Some(rule) = config
            .pushes
            .iter()
            .position(|(rule, at)| rule.is_complete(&fields[*at], 1))
        {
            let rule = u8::try_from(rule).unwrap_or(u8::MAX);
            return rec.record(Sample::Push { rule });
        }
        self.correlate(&fields, config, pacing, now);
    }

    /// A Socket.IO event with first argument `data`: a room member's copy, the reply event
    /// (correlated inside its data like a text frame), or a push counted under its name.
    fn on_event(
        &mut self,
        data: &str,
        name: u8,
        reply: bool,
        config: &SessionConfig,
        pacing: &mut Pacing,
        now: Instant,
    ) {
        let mut fields = Frame::default();
        let read = config.fields.read(data, &mut fields).is_ok();
        if read
            && let Some(own) = self.took_delivery(&fields, config, now)
            && (!own || !reply)
        {
            return;
        }
        if !reply {
            return config.recorder.record(Sample::Push { rule: name });
        }
        if !read {
            return config.recorder.record(Sample::Error {
                kind: ErrorKind::Unparsable,
                user: self.user,
            });
        }
        self.correlate(&fields, config, pacing, now);
    }

    /// A Socket.IO ack of request `id` (its seq) at `now`: the request's complete reply.
    fn on_ack(&mut self, id: u64, config: &SessionConfig, pacing: &mut Pacing, now: Instant) {
        let rec = &config.recorder;
        let error = |kind| Sample::Error {
            kind,
            user: self.user,
        };
        let slot = match self.pending.get(id) {
            Match::Pending(slot) => slot,
            Match::Late => return rec.record(Sample::LateReply),
            Match::Duplicate => return rec.record(error(ErrorKind::Duplicate)),
            Match::Unknown => return rec.record(error(ErrorKind::Unmatched)),
        };
        let (msg, latency) = (
            slot.msg,
            micros(now.saturating_duration_since(slot.intended)),
        );
        self.pending.finish(id);
        rec.record(Sample::Reply {
            msg,
            micros: latency,
        });
        pacing.reply_done(now);
    }

    /// A room member's copy in `fields`, recorded: `Some(true)` when it is this user's own
    /// message (which may also be its reply), `Some(false)` another member's, `None` when
    /// the frame is no copy of a message of this room.
    fn took_delivery(
        &mut self,
        fields: &Frame<'_>,
        config: &SessionConfig,
        now: Instant,
    ) -> Option<bool> {
        let f = config.fanout.as_ref()?;
        let (sender, seq) = fields[f.deliver_at].id().and_then(split_id)?;
        if !f.same_room(sender, self.user) {
            return None;
        }
        self.delivered(f, sender, seq, config, now);
        Some(sender == self.user)
    }

    /// Attributes a frame's fields to this user's request by the correlation pointer.
    fn correlate(
        &mut self,
        fields: &Frame<'_>,
        config: &SessionConfig,
        pacing: &mut Pacing,
        now: Instant,
    ) {
        let rec = &config.recorder;
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
            Match::Duplicate => {
                return rec.record(Sample::Error {
                    kind: ErrorKind::Duplicate,
                    user: self.user,
                });
            }
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

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
