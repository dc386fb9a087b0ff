//! The mock Telegram Bot API, and the simulated Telegram users who chat with the bot.
//!
//! `/bot<token>/<method>` (method names case-insensitive, GET or POST, parameters in any
//! encoding) answers in the Bot API envelope with complete objects, because client
//! libraries deserialize strictly. Simulated users are driven in-process through
//! [`Telegram::user_says`]; everything the bot does in a chat is published to that
//! chat's subscriber ([`Telegram::subscribe`]) so the caller can time the bot's replies.

pub mod flood;
pub mod methods;
pub mod params;
pub mod webhook;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::any;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

/// Settings of the mock (all off by default).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramConfig {
    /// Telegram's flood limits: about 1 message/s per chat and 30/s overall; over them,
    /// 429 with `parameters.retry_after`.
    pub flood_limits: bool,
    /// Share of bot calls answered with an injected error (409, 500 or 502, in turn).
    pub fault_probability: f64,
    /// Extra delay before every answer, ms.
    pub slow_ms: u64,
    /// For simulated users: a reply is final at its last `editMessageText`, once no edit
    /// has come for this long (ms); 0 makes the first message the final reply.
    pub reply_settle_ms: u64,
    /// For simulated users: chat in groups of this many users (0: each in a private chat).
    /// In a group, a reply counts for the user whose message it quotes.
    pub group_size: u32,
}

/// The `chat` object of a chat id: negative ids are groups, as in Telegram.
pub fn chat_object(chat: i64) -> Value {
    if chat < 0 {
        json!({"id": chat, "type": "group", "title": format!("Soak group {}", -chat), "all_members_are_administrators": false})
    } else {
        json!({"id": chat, "type": "private", "first_name": format!("User {chat}")})
    }
}

/// What the bot did in a chat, as the simulated user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotAction {
    /// `sendChatAction` ("typing…").
    ChatAction,
    /// `sendMessageDraft`: part of a reply being streamed.
    Draft,
    /// `editMessageText` of message `id`.
    Edit {
        /// The edited message.
        id: i64,
    },
    /// A message (text, photo or document), possibly replying to the user's message.
    Message {
        /// The user message it replies to, if the bot said so.
        reply_to: Option<i64>,
    },
}

/// One bot (one token).
#[derive(Debug, Default)]
struct Bot {
    updates: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    webhook: Option<(String, Option<String>)>,
    /// Each user message by (chat, id), so replies can quote it as `reply_to_message`.
    user_messages: HashMap<(i64, i64), Value>,
    seen_poll: bool,
}

/// The mock's state, shared by its routes and the simulated users.
#[derive(Debug)]
pub struct Telegram {
    /// Settings.
    pub config: TelegramConfig,
    bots: Mutex<HashMap<String, Bot>>,
    notify: Notify,
    subscribers: Mutex<HashMap<i64, Vec<mpsc::UnboundedSender<BotAction>>>>,
    calls: Mutex<BTreeMap<String, u64>>,
    long_polls: AtomicU64,
    flood_429: AtomicU64,
    deliveries: AtomicU64,
    delivery_failures: AtomicU64,
    faults: AtomicU64,
    tokens_refused: AtomicU64,
    flood: Option<flood::Flood>,
}

/// Bot tokens the mock keeps state for. Any client can invent tokens, and each one would
/// otherwise hold a bot's updates and counters forever; past this, a new token gets 401
/// and is counted in `tokens_refused`.
pub const MAX_BOTS: usize = 64;

/// Counters, as served at `/__soak/stats` and written into soak's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Bot API calls by method.
    pub calls: BTreeMap<String, u64>,
    /// `getUpdates` calls that waited for updates (long polls).
    pub long_polls: u64,
    /// 429s sent by the flood limits.
    pub flood_429: u64,
    /// Updates delivered to a webhook (2xx).
    pub webhook_deliveries: u64,
    /// Webhook attempts that failed (non-2xx or unreachable), each retried.
    pub webhook_failures: u64,
    /// Injected faults.
    pub faults_injected: u64,
    /// Calls with a new token refused because [`MAX_BOTS`] tokens were already known.
    pub tokens_refused: u64,
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The bot's id is the digits before the colon of its token.
pub fn bot_id(token: &str) -> Option<i64> {
    let (digits, rest) = token.split_once(':')?;
    if rest.is_empty() || digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Telegram {
    /// A mock with `config`.
    pub fn new(config: TelegramConfig) -> Telegram {
        Telegram {
            flood: config.flood_limits.then(flood::Flood::new),
            config,
            bots: Mutex::new(HashMap::new()),
            notify: Notify::new(),
            subscribers: Mutex::new(HashMap::new()),
            calls: Mutex::new(BTreeMap::new()),
            long_polls: AtomicU64::new(0),
            flood_429: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            delivery_failures: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            tokens_refused: AtomicU64::new(0),
        }
    }

    /// Whether calls with `token` are served: a known token, or a new one while fewer than
    /// [`MAX_BOTS`] are known (then it is known from now on).
    pub fn admit(&self, token: &str) -> bool {
        let known = {
            let bots = match self.bots.lock() {
                Ok(b) => b,
                Err(poisoned) => poisoned.into_inner(),
            };
            bots.contains_key(token) || bots.len() < MAX_BOTS
        };
        if known {
            self.with_bot(token, |_| ());
        } else {
            self.tokens_refused.fetch_add(1, Ordering::Relaxed);
        }
        known
    }

    fn with_bot<T>(&self, token: &str, f: impl FnOnce(&mut Bot) -> T) -> T {
        let mut bots = match self.bots.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(bots.entry(token.to_string()).or_insert_with(|| Bot {
            next_update_id: 1,
            next_message_id: 1,
            ..Bot::default()
        }))
    }

    /// A simulated user (`user`, in private chat `chat`) sends `text` to the bot of `token`;
    /// returns the new message's id. Long polls wake at once; a webhook gets it pushed.
    pub fn user_says(&self, token: &str, user: i64, chat: i64, text: &str) -> i64 {
        let id = self.with_bot(token, |bot| {
            let id = bot.next_message_id;
            bot.next_message_id += 1;
            let message = json!({
                "message_id": id, "date": now(), "text": text,
                "from": {"id": user, "is_bot": false, "first_name": format!("User {user}"), "language_code": "en"},
                "chat": chat_object(chat)
            });
            bot.user_messages.insert((chat, id), message.clone());
            let update = json!({"update_id": bot.next_update_id, "message": message});
            bot.next_update_id += 1;
            bot.updates.push_back(update);
            id
        });
        self.notify.notify_waiters();
        id
    }

    /// Everything the bot does in `chat` from now on is sent to the returned receiver
    /// (every member of a group chat subscribes to it).
    pub fn subscribe(&self, chat: i64) -> mpsc::UnboundedReceiver<BotAction> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.entry(chat).or_default().push(tx);
        }
        rx
    }

    fn publish(&self, chat: i64, action: BotAction) {
        if let Ok(mut subs) = self.subscribers.lock()
            && let Some(list) = subs.get_mut(&chat)
        {
            list.retain(|tx| tx.send(action).is_ok());
        }
    }

    /// Whether the bot of `token` has started polling or set a webhook (it is up).
    pub fn bot_is_up(&self, token: &str) -> bool {
        self.with_bot(token, |bot| bot.seen_poll || bot.webhook.is_some())
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            calls: self.calls.lock().map(|c| c.clone()).unwrap_or_default(),
            long_polls: self.long_polls.load(Ordering::Relaxed),
            flood_429: self.flood_429.load(Ordering::Relaxed),
            webhook_deliveries: self.deliveries.load(Ordering::Relaxed),
            webhook_failures: self.delivery_failures.load(Ordering::Relaxed),
            faults_injected: self.faults.load(Ordering::Relaxed),
            tokens_refused: self.tokens_refused.load(Ordering::Relaxed),
        }
    }
}

/// The routes, over shared state (tests drive them with `oneshot`).
pub fn router(telegram: Arc<Telegram>) -> Router {
    Router::new()
        .route(
            "/__soak/stats",
            any(
                |axum::extract::State(t): axum::extract::State<Arc<Telegram>>| async move {
                    axum::Json(t.snapshot())
                },
            ),
        )
        .route("/{bot}/{method}", any(methods::call))
        .fallback(methods::not_found)
        .with_state(telegram)
}

/// Serves the mock on an already bound `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    telegram: Arc<Telegram>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    crate::listen::serve(
        listener,
        router(telegram),
        shutdown,
        crate::listen::Limits::default(),
    )
    .await
}

#[cfg(test)]
mod tests;
