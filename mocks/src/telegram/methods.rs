//! The Bot API methods, in the real API's envelope: `{"ok": true, "result": …}` or
//! `{"ok": false, "error_code", "description", "parameters"}`.
// An error here is the finished response, returned once per call: its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until};

use crate::telegram::params::Params;
use crate::telegram::{BotAction, MAX_BOTS, Telegram, bot_id, now, webhook};

/// Longest `getUpdates` long poll, s (the real API's limit).
const MAX_POLL_S: i64 = 50;

fn ok(result: Value) -> Response {
    let mut envelope = serde_json::Map::new();
    envelope.insert("ok".into(), Value::Bool(true));
    envelope.insert("result".into(), result);
    axum::Json(Value::Object(envelope)).into_response()
}

fn err(code: u16, description: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({"ok": false, "error_code": code, "description": description})),
    )
        .into_response()
}

/// Unknown paths: the real API's 404 envelope.
pub async fn not_found() -> Response {
    err(404, "Not Found")
}

/// The methods the mock implements, lower-cased (names are case-insensitive).
const KNOWN: [&str; 13] = [
    "getme",
    "getupdates",
    "setwebhook",
    "deletewebhook",
    "getwebhookinfo",
    "sendmessage",
    "sendphoto",
    "senddocument",
    "editmessagetext",
    "sendchataction",
    "sendmessagedraft",
    "deletemessage",
    "answercallbackquery",
];

/// Every `/bot<token>/<method>` call.
pub async fn call(
    State(tg): State<Arc<Telegram>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return err(404, "Not Found");
    };
    if bot_id(token).is_none() {
        return err(401, "Unauthorized");
    }
    if !tg.admit(token) {
        return err(
            401,
            &format!("Unauthorized: the mock keeps at most {MAX_BOTS} bot tokens"),
        );
    }
    let method = method.to_ascii_lowercase();
    // Known methods are counted by name; anything else in one bucket, so a client inventing
    // method names cannot grow the counters.
    let counted = if KNOWN.contains(&method.as_str()) {
        method.as_str()
    } else {
        "unknown"
    };
    if let Ok(mut calls) = tg.calls.lock() {
        match calls.get_mut(counted) {
            Some(n) => *n += 1,
            None => {
                calls.insert(counted.to_string(), 1);
            }
        }
    }
    if tg.config.slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(tg.config.slow_ms)).await;
    }
    let params = match Params::from_request(request).await {
        Ok(p) => p,
        Err(description) => return err(400, &description),
    };
    if let Some(response) = injected_fault(&tg) {
        return response;
    }
    let token = token.to_string();
    match method.as_str() {
        "getme" => ok(bot_user(&token)),
        "getupdates" => get_updates(&tg, &token, &params).await,
        "setwebhook" => set_webhook(&tg, &token, &params),
        "deletewebhook" => delete_webhook(&tg, &token, &params),
        "getwebhookinfo" => webhook_info(&tg, &token),
        "sendmessage" | "sendphoto" | "senddocument" => send(&tg, &token, &method, &params),
        "editmessagetext" => edit(&tg, &token, &params),
        "sendchataction" => chat_signal(&tg, &params, BotAction::ChatAction, &["action"]),
        "sendmessagedraft" => chat_signal(&tg, &params, BotAction::Draft, &["text"]),
        "deletemessage" => match (params.int("chat_id"), params.int("message_id")) {
            (Some(_), Some(_)) => ok(json!(true)),
            _ => err(400, "Bad Request: chat_id and message_id are required"),
        },
        "answercallbackquery" => match params.str("callback_query_id") {
            Some(_) => ok(json!(true)),
            None => err(400, "Bad Request: callback_query_id is required"),
        },
        _ => err(404, "Not Found"),
    }
}

fn delete_webhook(tg: &Telegram, token: &str, params: &Params) -> Response {
    tg.with_bot(token, |bot| {
        bot.webhook = None;
        if params.bool("drop_pending_updates") {
            bot.updates.clear();
        }
    });
    tg.notify.notify_waiters();
    ok(json!(true))
}

fn webhook_info(tg: &Telegram, token: &str) -> Response {
    let (url, pending) = tg.with_bot(token, |bot| {
        let url = bot
            .webhook
            .as_ref()
            .map(|w| w.0.clone())
            .unwrap_or_default();
        (url, bot.updates.len())
    });
    ok(
        json!({"url": url, "has_custom_certificate": false, "pending_update_count": pending, "max_connections": 40}),
    )
}

fn injected_fault(tg: &Telegram) -> Option<Response> {
    let p = tg.config.fault_probability;
    if p <= 0.0 {
        return None;
    }
    let n = tg.faults.load(Ordering::Relaxed);
    let hit = rand::random_bool(p.min(1.0));
    if !hit {
        return None;
    }
    tg.faults.fetch_add(1, Ordering::Relaxed);
    Some(match n % 3 {
        0 => err(
            409,
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        ),
        1 => err(500, "Internal Server Error"),
        _ => err(502, "Bad Gateway"),
    })
}

/// The bot's own `User`.
fn bot_user(token: &str) -> Value {
    json!({"id": bot_id(token).unwrap_or(0), "is_bot": true, "first_name": "Soak Mock Bot", "username": "soak_mock_bot",
           "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
           "can_connect_to_business": false, "has_main_web_app": false})
}

async fn get_updates(tg: &Arc<Telegram>, token: &str, params: &Params) -> Response {
    let offset = params.int("offset");
    let limit = params.int("limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = params.int("timeout").unwrap_or(0).clamp(0, MAX_POLL_S);
    let deadline = Instant::now() + Duration::from_secs(u64::try_from(timeout).unwrap_or(0));
    let mut counted = false;
    loop {
        // Register for a wake-up before looking, so an update arriving in between is not missed.
        let notified = tg.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let taken = tg.with_bot(token, |bot| {
            if bot.webhook.is_some() {
                return Err(());
            }
            bot.seen_poll = true;
            if let Some(offset) = offset {
                if offset >= 0 {
                    bot.updates
                        .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
                } else {
                    let keep = usize::try_from(-offset).unwrap_or(0);
                    while bot.updates.len() > keep {
                        bot.updates.pop_front();
                    }
                }
            }
            Ok(bot.updates.iter().take(limit).cloned().collect::<Vec<_>>())
        });
        let Ok(updates) = taken else {
            return err(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            );
        };
        if !updates.is_empty() || Instant::now() >= deadline {
            return ok(Value::from(updates));
        }
        if !counted {
            tg.long_polls.fetch_add(1, Ordering::Relaxed);
            counted = true;
        }
        tokio::select! {
            () = &mut notified => {}
            () = sleep_until(deadline) => {}
        }
    }
}

fn set_webhook(tg: &Arc<Telegram>, token: &str, params: &Params) -> Response {
    let Some(url) = params.str("url") else {
        return err(400, "Bad Request: url is required");
    };
    if url.is_empty() {
        tg.with_bot(token, |bot| bot.webhook = None);
        return ok(json!(true));
    }
    if let Err(why) = webhook::target(&url) {
        return err(400, &format!("Bad Request: bad webhook: {why}"));
    }
    let secret = params.str("secret_token");
    let first = tg.with_bot(token, |bot| {
        let first = bot.webhook.is_none();
        bot.webhook = Some((url.clone(), secret));
        if params.bool("drop_pending_updates") {
            bot.updates.clear();
        }
        first
    });
    if first {
        tokio::spawn(webhook::deliver(Arc::clone(tg), token.to_string()));
    }
    tg.notify.notify_waiters();
    ok(json!(true))
}

fn chat_of(params: &Params) -> Result<i64, Response> {
    params
        .int("chat_id")
        .ok_or_else(|| err(400, "Bad Request: chat_id is empty or not a number"))
}

fn send(tg: &Telegram, token: &str, method: &str, params: &Params) -> Response {
    let chat = match chat_of(params) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let text = params.str("text").unwrap_or_default();
    let file_param = match method {
        "sendphoto" => Some("photo"),
        "senddocument" => Some("document"),
        _ => None,
    };
    match file_param {
        None if text.trim().is_empty() => return err(400, "Bad Request: message text is empty"),
        Some(p) if !params.has(p) => {
            return err(400, &format!("Bad Request: there is no {p} in the request"));
        }
        _ => {}
    }
    if let Some(flood) = &tg.flood
        && let Err(retry_after) = flood.check(chat)
    {
        tg.flood_429.fetch_add(1, Ordering::Relaxed);
        let body = json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {retry_after}"),
                          "parameters": {"retry_after": retry_after}});
        return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    }
    let reply_to = params
        .json("reply_parameters")
        .and_then(|r| r.get("message_id").and_then(Value::as_i64))
        .or_else(|| params.int("reply_to_message_id"));
    let message = tg.with_bot(token, |bot| {
        let id = bot.next_message_id;
        bot.next_message_id += 1;
        let mut m = json!({"message_id": id, "date": now(), "chat": crate::telegram::chat_object(chat), "from": bot_user(token)});
        match file_param {
            Some("photo") => {
                let size = params.files.get("photo").map_or(0, |f| f.1);
                m["photo"] = json!([{"file_id": format!("photo-{id}"), "file_unique_id": format!("u{id}"), "width": 640, "height": 480, "file_size": size}]);
                if !text.is_empty() {
                    m["caption"] = json!(params.str("caption").unwrap_or_default());
                }
            }
            Some(_) => {
                let (name, size) = params.files.get("document").cloned().unwrap_or_else(|| (String::from("file"), 0));
                m["document"] = json!({"file_id": format!("doc-{id}"), "file_unique_id": format!("u{id}"), "file_name": name, "mime_type": "application/octet-stream", "file_size": size});
            }
            None => m["text"] = json!(text),
        }
        if let Some(r) = reply_to.and_then(|r| bot.user_messages.get(&(chat, r))) {
            m["reply_to_message"] = r.clone();
        }
        m
    });
    tg.publish(chat, BotAction::Message { reply_to });
    ok(message)
}

fn edit(tg: &Telegram, token: &str, params: &Params) -> Response {
    if params.str("inline_message_id").is_some() {
        return ok(json!(true));
    }
    let (chat, id) = match (chat_of(params), params.int("message_id")) {
        (Ok(c), Some(id)) => (c, id),
        (Err(r), _) => return r,
        (_, None) => return err(400, "Bad Request: message_id is required"),
    };
    let Some(text) = params.str("text").filter(|t| !t.trim().is_empty()) else {
        return err(400, "Bad Request: message text is empty");
    };
    tg.publish(chat, BotAction::Edit { id });
    ok(
        json!({"message_id": id, "date": now(), "edit_date": now(), "text": text,
              "chat": crate::telegram::chat_object(chat), "from": bot_user(token)}),
    )
}

/// `sendChatAction`, `sendMessageDraft`: a sign of life in a chat.
fn chat_signal(tg: &Telegram, params: &Params, action: BotAction, required: &[&str]) -> Response {
    let chat = match chat_of(params) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Some(missing) = required.iter().find(|r| params.str(r).is_none()) {
        return err(400, &format!("Bad Request: {missing} is required"));
    }
    tg.publish(chat, action);
    ok(json!(true))
}
