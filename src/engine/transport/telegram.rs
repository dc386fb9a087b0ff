//! The Telegram transport: one simulated user's chat with the bot through the mock Bot API.
//! Sending is typing into the chat; what comes back is the bot's actions there — first sign
//! of life (typing, a draft, an edit or the reply itself) and the reply message.
//!
//! A reply is attributed to the user's message it quotes (`reply_parameters` /
//! `reply_to_message_id`), else, in a private chat, to the user's oldest unanswered
//! message. In a group chat (`group_size`), only a reply quoting the user's message is
//! theirs; a typing indicator there is a sign of life for every member waiting.
//! With `reply_settle_ms` set, a bot that writes its reply by editing it (streaming by
//! `editMessageText`) is final at its last edit: the reply completes once no edit has
//! come for that long.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::engine::correlate::{Match, Pending};
use crate::engine::pacing::Pacing;
use crate::engine::session::{SessionConfig, TelegramUsers, Transport, micros};
use crate::engine::transport::Arrival;
use crate::metrics::Sample;
use soak_mocks::telegram::BotAction;

/// Telegram user ids and private chat ids of simulated users start here.
pub const USER_ID_BASE: i64 = 1_000_000_000;

/// Group chats of simulated users are numbered from here, negated (groups have negative ids).
pub const GROUP_ID_BASE: i64 = 1_000_000;

/// One simulated user's chat.
pub(crate) struct Chat {
    user_id: i64,
    chat: i64,
    /// Users per group chat (0: private chats).
    group: u32,
    actions: mpsc::UnboundedReceiver<BotAction>,
    /// The mock's message id of each of this user's messages awaiting a reply, with its seq.
    ids: VecDeque<(i64, u64)>,
    /// With a settle window, a reply is final at its last edit.
    settle: Duration,
    /// The reply being written by edits: (user message seq, last change).
    settling: Option<(u64, Instant)>,
}

impl Chat {
    /// User `user`'s chat, subscribed to the bot's actions in it.
    pub(crate) fn new(user: u32, _config: &SessionConfig, tg: &TelegramUsers) -> Chat {
        let group = tg.mock.config.group_size;
        let user_id = USER_ID_BASE + i64::from(user);
        let chat = user
            .checked_div(group)
            .map_or(user_id, |g| -(GROUP_ID_BASE + i64::from(g)));
        Chat {
            user_id,
            chat,
            group,
            actions: tg.mock.subscribe(chat),
            ids: VecDeque::with_capacity(4),
            settle: Duration::from_millis(tg.mock.config.reply_settle_ms),
            settling: None,
        }
    }

    /// Types message `seq` (rendered in `out`) into the chat.
    pub(crate) fn say(&mut self, out: &BytesMut, seq: u64, config: &SessionConfig) {
        let Transport::Telegram(tg) = &config.transport else {
            return;
        };
        // Rendered from `&str` pieces only, so always UTF-8.
        let text = std::str::from_utf8(out).unwrap_or_default();
        let id = tg.mock.user_says(&tg.token, self.user_id, self.chat, text);
        self.ids.push_back((id, seq));
    }

    /// The bot's next action in this chat, or the end of a settle window.
    pub(crate) async fn next(&mut self) -> Arrival {
        let settled = self.settling.map(|(_, last)| last + self.settle);
        tokio::select! {
            biased;
            () = wait(settled) => Arrival::Settled,
            Some(action) = self.actions.recv() => Arrival::Bot(action),
        }
    }

    /// What the bot did at `now`: a sign of life, or (part of) a reply.
    pub(crate) fn on_action(&mut self, action: BotAction, now: Instant, at: &mut Answers<'_>) {
        if let (BotAction::Edit { .. }, Some((_, last))) = (action, self.settling.as_mut()) {
            *last = now; // the reply is still being written
            return;
        }
        if let (BotAction::Message { .. }, Some((s, last))) = (action, self.settling.take()) {
            self.complete(s, last, at);
        }
        let Some(s) = self.attributed(action, at.pending) else {
            return;
        };
        let Match::Pending(slot) = at.pending.get(s) else {
            return;
        };
        slot.frames = slot.frames.saturating_add(1);
        let (msg, latency) = (
            slot.msg,
            micros(now.saturating_duration_since(slot.intended)),
        );
        if slot.frames == 1 {
            at.config.recorder.record(Sample::FirstFrame {
                msg,
                micros: latency,
            });
        }
        if matches!(action, BotAction::Message { .. }) {
            if self.settle.is_zero() {
                self.complete(s, now, at);
            } else {
                self.settling = Some((s, now));
            }
        }
    }

    /// The settle window of the reply being edited ended: it is complete.
    pub(crate) fn settled(&mut self, at: &mut Answers<'_>) {
        if let Some((s, last)) = self.settling.take() {
            self.complete(s, last, at);
        }
    }

    /// Forgets the message ids of requests that timed out.
    pub(crate) fn expired(&mut self, pending: &mut Pending) {
        self.ids
            .retain(|(_, s)| !matches!(pending.get(*s), Match::Late));
    }

    /// The seq of this user's message a bot action belongs to, if any.
    fn attributed(&self, action: BotAction, pending: &Pending) -> Option<u64> {
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
            _ => pending.oldest(),
        }
    }

    /// Records the reply to `seq` as complete at `done` and lets the user think, then send.
    fn complete(&mut self, seq: u64, done: Instant, at: &mut Answers<'_>) {
        if let Match::Pending(slot) = at.pending.get(seq) {
            let (msg, micros) = (
                slot.msg,
                micros(done.saturating_duration_since(slot.intended)),
            );
            at.config.recorder.record(Sample::Reply { msg, micros });
            at.pending.finish(seq);
            self.ids.retain(|(_, q)| *q != seq);
            at.pacing.reply_done(done);
        }
    }
}

/// What attributing an answer touches in the user loop.
pub(crate) struct Answers<'a> {
    /// The user's requests in flight.
    pub pending: &'a mut Pending,
    /// Its schedule (a complete reply lets the closed model think, then send).
    pub pacing: &'a mut Pacing,
    /// The run's shared config (the recorder).
    pub config: &'a SessionConfig,
}

async fn wait(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
