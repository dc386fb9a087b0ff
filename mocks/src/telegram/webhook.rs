//! Webhook delivery: each update is POSTed as JSON to the bot's loopback URL with
//! `X-Telegram-Bot-Api-Secret-Token`; a non-2xx answer or a refused connection is retried
//! with back-off (100 ms doubling to 5 s), in order, as Telegram does.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::telegram::Telegram;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Delivers the bot's updates while its webhook is set.
pub async fn deliver(tg: Arc<Telegram>, token: String) {
    let mut backoff = BACKOFF_START;
    loop {
        let notified = tg.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = tg.with_bot(&token, |bot| {
            bot.webhook
                .clone()
                .map(|w| (w, bot.updates.front().cloned()))
        });
        let Some(((url, secret), update)) = next else {
            return;
        };
        let Some(update) = update else {
            notified.await;
            continue;
        };
        if post(&url, secret.as_deref(), &update.to_string()).await {
            tg.deliveries.fetch_add(1, Ordering::Relaxed);
            let id = update["update_id"].as_i64();
            tg.with_bot(&token, |bot| {
                if bot.updates.front().and_then(|u| u["update_id"].as_i64()) == id {
                    bot.updates.pop_front();
                }
            });
            backoff = BACKOFF_START;
        } else {
            tg.delivery_failures.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// One POST; true on a 2xx answer.
async fn post(url: &str, secret: Option<&str>, body: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or("");
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, String::from("/")), |(a, p)| (a, format!("/{p}")));
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(addr.replace("localhost", "127.0.0.1")),
    )
    .await
    else {
        return false;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return false;
    };
    tokio::spawn(conn);
    let mut request = Request::post(path)
        .header("host", authority)
        .header("content-type", "application/json");
    if let Some(secret) = secret {
        request = request.header("x-telegram-bot-api-secret-token", secret);
    }
    let Ok(request) = request.body(Body::from(body.to_string())) else {
        return false;
    };
    matches!(tokio::time::timeout(Duration::from_secs(10), sender.send_request(request)).await, Ok(Ok(r)) if r.status().is_success())
}
