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
use crate::engine::session::{DRAIN_MAX, Pacing, SessionConfig, Transport, XorShift, micros};
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
    let group = tg.mock.config.group_size;
    let user_id = USER_ID_BASE + i64::from(user);
    let chat = user
        .checked_div(group)
        .map_or(user_id, |g| -(GROUP_ID_BASE + i64::from(g)));
    let mut actions = tg.mock.subscribe(chat);
    rec.record(Sample::UserStarted);
    rec.record(Sample::Connected {
        user,
        micros: 0,
        reconnect: false,
    });
    let mut pacing = Pacing::new(&config, user);
    let mut pending = Pending::with_capacity(4);
    let mut ids: VecDeque<(i64, u64)> = VecDeque::with_capacity(4);
    let mut rng = XorShift::new(user);
    let mut buf = String::with_capacity(256);
    let mut seq = 0u64;
    let mut drain_until: Option<Instant> = None;
    // With a settle window, a reply is final at its last edit: (user message seq, last change).
    let settle = Duration::from_millis(tg.mock.config.reply_settle_ms);
    let mut settling: Option<(u64, Instant)> = None;
    loop {
        if drain_until.is_some() && pending.outstanding() == 0 {
            break;
        }
        let deadline = pending.next_deadline(config.reply_timeout);
        tokio::select! {
            biased;
            () = config.stop_now.cancelled() => break,
            () = cancel.cancelled(), if drain_until.is_none() => {
                // Stop sending; wait for the bot's replies in flight (bounded), then leave.
                drain_until = Some(Instant::now() + config.reply_timeout.min(DRAIN_MAX));
            }
            () = wait(drain_until) => break,
            () = wait(settling.map(|(_, last)| last + settle)) => {
                if let Some((s, last)) = settling.take() {
                    complete(&mut pending, &mut ids, &config, &mut pacing, s, last);
                }
            }
            Some(action) = actions.recv() => {
                let now = Instant::now();
                if let (BotAction::Edit { .. }, Some((_, last))) = (action, settling.as_mut()) {
                    *last = now; // the reply is still being written
                    continue;
                }
                if let (BotAction::Message { .. }, Some((s, last))) = (action, settling.take()) {
                    complete(&mut pending, &mut ids, &config, &mut pacing, s, last);
                }
                // Some(None): the reply quotes a message that is not this user's.
                let quoted = match action {
                    BotAction::Message { reply_to: Some(id) } => Some(ids.iter().find(|(m, _)| *m == id).map(|(_, s)| *s)),
                    _ => None,
                };
                let target = match (quoted, action) {
                    (Some(Some(s)), _) => Some(s),
                    // In a group, a reply is another member's unless it quotes this user.
                    (Some(None), _) | (None, BotAction::Message { .. }) if group > 0 => None,
                    _ => pending.oldest(),
                };
                let Some(s) = target else { continue };
                let Match::Pending(slot) = pending.get(s) else { continue };
                slot.frames = slot.frames.saturating_add(1);
                let (msg, latency) = (slot.msg, micros(now.saturating_duration_since(slot.intended)));
                if slot.frames == 1 {
                    rec.record(Sample::FirstFrame { msg, micros: latency });
                }
                if matches!(action, BotAction::Message { .. }) {
                    if settle.is_zero() {
                        complete(&mut pending, &mut ids, &config, &mut pacing, s, now);
                    } else {
                        settling = Some((s, now));
                    }
                }
            }
            () = wait(deadline) => {
                let mut timed_out = false;
                pending.expire(Instant::now(), config.reply_timeout, |msg| {
                    rec.record(Sample::Timeout { msg });
                    timed_out = true;
                });
                ids.retain(|(_, s)| !matches!(pending.get(*s), Match::Late));
                if timed_out {
                    pacing.reply_done(Instant::now());
                }
            }
            intended = pacing.next_send(), if drain_until.is_none() => {
                seq += 1;
                let random = rng.next();
                let msg = config.pick(random >> 32);
                buf.clear();
                config.render(msg, user, seq, random, &mut buf);
                let id = tg.mock.user_says(&tg.token, user_id, chat, &buf);
                pending.push(seq, msg, intended);
                ids.push_back((id, seq));
                rec.record(Sample::Sent { msg });
                pacing.sent();
            }
        }
    }
    let abandoned = pending.clear();
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

/// Records the reply to `seq` as complete at `at` and lets the user think, then send again.
fn complete(
    pending: &mut Pending,
    ids: &mut VecDeque<(i64, u64)>,
    config: &SessionConfig,
    pacing: &mut Pacing,
    seq: u64,
    at: Instant,
) {
    if let Match::Pending(slot) = pending.get(seq) {
        let (msg, micros) = (
            slot.msg,
            micros(at.saturating_duration_since(slot.intended)),
        );
        config.recorder.record(Sample::Reply { msg, micros });
        pending.finish(seq);
        ids.retain(|(_, q)| *q != seq);
        pacing.reply_done(at);
    }
}

async fn wait(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
