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

/// Where a webhook URL delivers: the address to connect to, the `Host` header, the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `127.0.0.1:8443` or `[::1]:8443`.
    pub connect: String,
    /// The URL's authority, for the `Host` header.
    pub authority: String,
    /// The path and query, from `/`.
    pub path: String,
}

/// Parses a webhook URL the one way both `setWebhook`'s check and the delivery use, so
/// what is checked is what is delivered to: `http://` only, no user info, a loopback host
/// (`127.0.0.1`, `localhost`, `[::1]`), a numeric port (80 by default).
pub fn target(url: &str) -> Result<Target, &'static str> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("the mock delivers over http:// only")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err("user info in the URL is not allowed");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p),
        _ => (authority, "80"),
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or("the port must be a number from 1 to 65535")?;
    let ip = match host {
        "127.0.0.1" | "localhost" => "127.0.0.1",
        "[::1]" => "[::1]",
        _ => {
            return Err(
                "the mock delivers to loopback addresses only (127.0.0.1, localhost, [::1])",
            );
        }
    };
    let path = match tail.split('#').next().unwrap_or("") {
        "" => String::from("/"),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(Target {
        connect: format!("{ip}:{port}"),
        authority: authority.to_string(),
        path,
    })
}

/// One POST; true on a 2xx answer.
async fn post(url: &str, secret: Option<&str>, body: &str) -> bool {
    let Ok(Target {
        connect,
        authority,
        path,
    }) = target(url)
    else {
        return false;
    };
    let Ok(Ok(stream)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(connect)).await
    else {
        return false;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return false;
    };
    tokio::spawn(conn);
    let mut request = Request::post(path)
        .header("host", authority.as_str())
        .header("content-type", "application/json");
    if let Some(secret) = secret {
        request = request.header("x-telegram-bot-api-secret-token", secret);
    }
    let Ok(request) = request.body(Body::from(body.to_string())) else {
        return false;
    };
    matches!(tokio::time::timeout(Duration::from_secs(10), sender.send_request(request)).await, Ok(Ok(r)) if r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_and_the_delivery_read_a_url_alike() {
        let t = target("http://127.0.0.1:8443/hook?x=1").unwrap();
        assert_eq!(t.connect, "127.0.0.1:8443");
        assert_eq!(t.path, "/hook?x=1");
        assert_eq!(target("http://localhost/").unwrap().connect, "127.0.0.1:80");
        assert_eq!(target("http://[::1]:9/p").unwrap().connect, "[::1]:9");
        assert_eq!(target("http://localhost?q").unwrap().path, "/?q");
        for bad in [
            "http://localhost?@10.0.0.1:80/",
            "http://localhost@10.0.0.1/",
            "http://10.0.0.1/",
            "http://localhost:99999/",
            "http://localhost:80x/",
            "https://localhost/",
            "http://localhost.evil.com/",
        ] {
            match target(bad) {
                Err(_) => {}
                // Parsed: then it must deliver to loopback, whatever the string looked like.
                Ok(t) => assert!(
                    t.connect.starts_with("127.0.0.1:") || t.connect.starts_with("[::1]:"),
                    "{bad}: {t:?}"
                ),
            }
        }
    }
}
