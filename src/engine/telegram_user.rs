//! One simulated Telegram user: messages the bot through the mock Bot API on the run's
//! schedule and times the bot's answers — first sign of life (typing, a draft, an edit or
//! the reply itself) and the reply message — from the intended send time.
//!
//! A reply is attributed to the user's message it quotes (`reply_parameters` /
//! `reply_to_message_id`), else, in a private chat, to the user's oldest unanswered
//! message. In a group chat (`group_size`), only a reply quoting the user's message is
//! theirs; a typing indicator there is a sign of life for every member waiting.
//! With `reply_settle_ms` set, a bot that writes its reply by editing it (streaming by
//! `editMessageText`) is final at its last edit: the reply completes once no edit has
//! come for that long.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::engine::correlate::{Match, Pending};
use crate::engine::session::{
    DRAIN_MAX, Pacing, SessionConfig, TelegramUsers, Transport, XorShift, micros,
};
use crate::metrics::{Disconnect, Sample};
use soak_mocks::telegram::BotAction;

/// Telegram user ids and private chat ids of simulated users start here.
pub const USER_ID_BASE: i64 = 1_000_000_000;

/// Group chats of simulated users are numbered from here, negated (groups have negative ids).
pub const GROUP_ID_BASE: i64 = 1_000_000;

/// Runs simulated user `user` until `cancel` fires.
pub async fn run(user: u32, config: Arc<SessionConfig>, cancel: CancellationToken) {
    let Transport::Telegram(tg) = &config.transport else {
        return;
    };
    let rec = &config.recorder;
    let mut me = Chatter::new(user, &config, tg);
    let mut actions = tg.mock.subscribe(me.chat);
    rec.record(Sample::UserStarted);
    rec.record(Sample::Connected {
        user,
        micros: 0,
        reconnect: false,
    });
    let mut drain_until: Option<Instant> = None;
    loop {
        if drain_until.is_some() && me.pending.outstanding() == 0 {
            break;
        }
        let deadline = me.pending.next_deadline(config.reply_timeout);
        let settled = me.settling.map(|(_, last)| last + me.settle);
        tokio::select! {
            biased;
            () = config.stop_now.cancelled() => break,
            () = cancel.cancelled(), if drain_until.is_none() => {
                // Stop sending; wait for the bot's replies in flight (bounded), then leave.
                drain_until = Some(Instant::now() + config.reply_timeout.min(DRAIN_MAX));
            }
            () = wait(drain_until) => break,
            () = wait(settled) => {
                if let Some((s, last)) = me.settling.take() {
                    me.complete(s, last);
                }
            }
            Some(action) = actions.recv() => me.on_action(action, Instant::now()),
            () = wait(deadline) => me.expire(),
            intended = me.pacing.next_send(), if drain_until.is_none() => me.send(intended),
        }
    }
    let abandoned = me.pending.clear();
    if abandoned > 0 {
        rec.record(Sample::Abandoned { count: abandoned });
    }
    rec.record(Sample::Disconnected {
        user,
        cause: Disconnect::Stopped,
        code: 0,
    });
    rec.record(Sample::UserStopped);
}

/// One simulated user's state: its chat, its messages awaiting replies, its schedule.
struct Chatter<'a> {
    config: &'a SessionConfig,
    tg: &'a TelegramUsers,
    user: u32,
    user_id: i64,
    chat: i64,
    /// Users per group chat (0: private chats).
    group: u32,
    pacing: Pacing,
    pending: Pending,
    /// The mock's message id of each of this user's messages awaiting a reply, with its seq.
    ids: VecDeque<(i64, u64)>,
    rng: XorShift,
    buf: String,
    seq: u64,
    /// With a settle window, a reply is final at its last edit.
    settle: Duration,
    /// The reply being written by edits: (user message seq, last change).
    settling: Option<(u64, Instant)>,
}

impl<'a> Chatter<'a> {
    fn new(user: u32, config: &'a SessionConfig, tg: &'a TelegramUsers) -> Self {
        let group = tg.mock.config.group_size;
        let user_id = USER_ID_BASE + i64::from(user);
        let chat = user
            .checked_div(group)
            .map_or(user_id, |g| -(GROUP_ID_BASE + i64::from(g)));
        Chatter {
            config,
            tg,
            user,
            user_id,
            chat,
            group,
            pacing: Pacing::new(config, user),
            pending: Pending::with_capacity(4),
            ids: VecDeque::with_capacity(4),
            rng: XorShift::new(user),
            buf: String::with_capacity(256),
            seq: 0,
            settle: Duration::from_millis(tg.mock.config.reply_settle_ms),
            settling: None,
        }
    }

    /// Types the next message, due at `intended`, into the chat.
    fn send(&mut self, intended: Instant) {
        self.seq += 1;
        let random = self.rng.next();
        let msg = self.config.pick(random >> 32);
        self.buf.clear();
        self.config
            .render(msg, self.user, self.seq, random, &mut self.buf);
        let id = self
            .tg
            .mock
            .user_says(&self.tg.token, self.user_id, self.chat, &self.buf);
        self.pending.push(self.seq, msg, intended);
        self.ids.push_back((id, self.seq));
        self.config.recorder.record(Sample::Sent { msg });
        self.pacing.sent();
    }

    /// What the bot did in this chat at `now`: a sign of life, or (part of) a reply.
    fn on_action(&mut self, action: BotAction, now: Instant) {
        if let (BotAction::Edit { .. }, Some((_, last))) = (action, self.settling.as_mut()) {
            *last = now; // the reply is still being written
            return;
        }
        if let (BotAction::Message { .. }, Some((s, last))) = (action, self.settling.take()) {
            self.complete(s, last);
        }
        let Some(s) = self.attributed(action) else {
            return;
        };
        let Match::Pending(slot) = self.pending.get(s) else {
            return;
        };
        slot.frames = slot.frames.saturating_add(1);
        let (msg, latency) = (
            slot.msg,
            micros(now.saturating_duration_since(slot.intended)),
        );
        if slot.frames == 1 {
            self.config.recorder.record(Sample::FirstFrame {
                msg,
                micros: latency,
            });
        }
        if matches!(action, BotAction::Message { .. }) {
            if self.settle.is_zero() {
                self.complete(s, now);
            } else {
                self.settling = Some((s, now));
            }
        }
    }

    /// The seq of this user's message a bot action belongs to, if any.
    fn attributed(&self, action: BotAction) -> Option<u64> {
        // Some(None): the reply quotes a message that is not this user's.
        let quoted = match action {
            BotAction::Message { reply_to: Some(id) } => {
                Some(self.ids.iter().find(|(m, _)| *m == id).map(|(_, s)| *s))
            }
            _ => None,
        };
        match (quoted, action) {
            (Some(Some(s)), _) => Some(s),
            // In a group, a reply is another member's unless it quotes this user.
            (Some(None), _) | (None, BotAction::Message { .. }) if self.group > 0 => None,
            _ => self.pending.oldest(),
        }
    }

    /// Times out the messages whose reply is overdue.
    fn expire(&mut self) {
        let rec = &self.config.recorder;
        let mut timed_out = false;
        self.pending
            .expire(Instant::now(), self.config.reply_timeout, |msg| {
                rec.record(Sample::Timeout { msg });
                timed_out = true;
            });
        let pending = &mut self.pending;
        self.ids
            .retain(|(_, s)| !matches!(pending.get(*s), Match::Late));
        if timed_out {
            self.pacing.reply_done(Instant::now());
        }
    }

    /// Records the reply to `seq` as complete at `at` and lets the user think, then send again.
    fn complete(&mut self, seq: u64, at: Instant) {
        if let Match::Pending(slot) = self.pending.get(seq) {
            let (msg, micros) = (
                slot.msg,
                micros(at.saturating_duration_since(slot.intended)),
            );
            self.config.recorder.record(Sample::Reply { msg, micros });
            self.pending.finish(seq);
            self.ids.retain(|(_, q)| *q != seq);
            self.pacing.reply_done(at);
        }
    }
}

async fn wait(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
