//! Router-level tests: methods, the four encodings, long polls, offsets, webhooks, errors.
#![allow(clippy::needless_pass_by_value)]

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

const TOKEN: &str = "123456:TEST-token";

fn app() -> (Arc<Telegram>, Router) {
    let tg = Arc::new(Telegram::new(TelegramConfig::default()));
    (Arc::clone(&tg), router(tg))
}

async fn call(app: &Router, req: Request<Body>) -> (u16, Value) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post(path: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn get_me_is_case_insensitive_and_bad_tokens_and_methods_are_rejected() {
    let (_, app) = app();
    let (status, v) = call(&app, get(&format!("/bot{TOKEN}/GETME"))).await;
    assert_eq!(status, 200);
    assert_eq!(v["ok"], true);
    assert_eq!(v["result"]["id"], 123_456);
    assert_eq!(v["result"]["is_bot"], true);
    let (status, v) = call(&app, get("/botnotatoken/getMe")).await;
    assert_eq!((status, v["error_code"].clone()), (401, json!(401)));
    let (status, v) = call(&app, get(&format!("/bot{TOKEN}/launchRockets"))).await;
    assert_eq!(status, 404);
    assert_eq!(
        v,
        json!({"ok": false, "error_code": 404, "description": "Not Found"})
    );
}

#[tokio::test]
async fn send_message_in_all_four_encodings() {
    let (tg, app) = app();
    let user_msg = tg.user_says(TOKEN, 7, 7, "hi");
    let mut actions = tg.subscribe(7);
    let path = format!("/bot{TOKEN}/sendMessage");
    let query = Request::post(format!("{path}?chat_id=7&text=one"))
        .body(Body::empty())
        .unwrap();
    let form = post(
        &path,
        "application/x-www-form-urlencoded; charset=utf-8",
        format!("chat_id=7&text=two&reply_parameters=%7B%22message_id%22%3A{user_msg}%7D"),
    );
    let json = post(
        &path,
        "application/json",
        json!({"chat_id": 7, "text": "three", "reply_to_message_id": user_msg}).to_string(),
    );
    let boundary = "XyZ";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n7\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"document\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello file\r\n--{boundary}--\r\n"
    );
    let doc = post(
        &format!("/bot{TOKEN}/sendDocument"),
        &format!("multipart/form-data; boundary={boundary}"),
        multipart,
    );
    let mut texts = Vec::new();
    for req in [query, form, json] {
        let (status, v) = call(&app, req).await;
        assert_eq!(status, 200, "{v}");
        let m = &v["result"];
        assert!(m["message_id"].is_i64() && m["date"].is_i64());
        assert_eq!(m["chat"]["id"], 7);
        assert_eq!(m["chat"]["type"], "private");
        assert_eq!(m["from"]["is_bot"], true);
        texts.push(m["text"].as_str().unwrap().to_string());
        if m["text"] != "one" {
            assert_eq!(m["reply_to_message"]["message_id"], user_msg, "{m}");
        }
    }
    assert_eq!(texts, ["one", "two", "three"]);
    let (status, v) = call(&app, doc).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["document"]["file_name"], "a.txt");
    assert_eq!(v["result"]["document"]["file_size"], 10);
    for expected in [None, Some(user_msg), Some(user_msg), None] {
        assert_eq!(
            actions.try_recv().unwrap(),
            BotAction::Message { reply_to: expected }
        );
    }
}

#[tokio::test]
async fn chat_actions_drafts_edits_and_other_methods() {
    let (tg, app) = app();
    let mut actions = tg.subscribe(9);
    let p = |m: &str, body: Value| {
        post(
            &format!("/bot{TOKEN}/{m}"),
            "application/json",
            body.to_string(),
        )
    };
    assert_eq!(
        call(
            &app,
            p("sendChatAction", json!({"chat_id": 9, "action": "typing"}))
        )
        .await
        .1["result"],
        true
    );
    assert_eq!(
        call(
            &app,
            p(
                "sendMessageDraft",
                json!({"chat_id": 9, "draft_id": 1, "text": "par"})
            )
        )
        .await
        .1["result"],
        true
    );
    let (_, edited) = call(
        &app,
        p(
            "editMessageText",
            json!({"chat_id": 9, "message_id": 5, "text": "partial"}),
        ),
    )
    .await;
    assert!(edited["result"]["edit_date"].is_i64());
    assert_eq!(
        call(
            &app,
            p("deleteMessage", json!({"chat_id": 9, "message_id": 5}))
        )
        .await
        .1["result"],
        true
    );
    assert_eq!(
        call(
            &app,
            p("answerCallbackQuery", json!({"callback_query_id": "q"}))
        )
        .await
        .1["result"],
        true
    );
    assert_eq!(actions.try_recv().unwrap(), BotAction::ChatAction);
    assert_eq!(actions.try_recv().unwrap(), BotAction::Draft);
    assert_eq!(actions.try_recv().unwrap(), BotAction::Edit { id: 5 });
    let (status, v) = call(&app, p("sendMessage", json!({"chat_id": 9}))).await;
    assert_eq!(
        (status, v["description"].as_str().unwrap()),
        (400, "Bad Request: message text is empty")
    );
    let (status, _) = call(&app, p("sendMessage", json!({"text": "x"}))).await;
    assert_eq!(status, 400);
    let (status, v) = call(
        &app,
        post(
            &format!("/bot{TOKEN}/sendMessage"),
            "application/json",
            "{nope",
        ),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["ok"], false);
}

#[tokio::test]
async fn long_polls_wake_early_and_time_out_and_offsets_confirm() {
    let (tg, app) = app();
    let started = std::time::Instant::now();
    let (_, empty) = call(&app, get(&format!("/bot{TOKEN}/getUpdates?timeout=1"))).await;
    assert_eq!(empty["result"], json!([]));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "held until the timeout"
    );
    let poll = tokio::spawn({
        let app = app.clone();
        async move { call(&app, get(&format!("/bot{TOKEN}/getUpdates?timeout=30"))).await }
    });
    tokio::task::yield_now().await;
    let started = std::time::Instant::now();
    tg.user_says(TOKEN, 1, 1, "wake up");
    let (_, v) = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "answered early");
    let updates = v["result"].as_array().unwrap();
    assert_eq!(updates[0]["message"]["text"], "wake up");
    let first = updates[0]["update_id"].as_i64().unwrap();
    tg.user_says(TOKEN, 1, 1, "second");
    let (_, v) = call(
        &app,
        get(&format!("/bot{TOKEN}/getUpdates?offset={}", first + 1)),
    )
    .await;
    assert_eq!(
        v["result"].as_array().unwrap().len(),
        1,
        "the first is confirmed"
    );
    assert_eq!(v["result"][0]["message"]["text"], "second");
    let (_, v) = call(
        &app,
        get(&format!(
            "/bot{TOKEN}/getUpdates?limit=1&allowed_updates=%5B%22message%22%2C%22future_type%22%5D"
        )),
    )
    .await;
    assert_eq!(v["result"].as_array().unwrap().len(), 1);
    assert!(tg.snapshot().long_polls >= 2);
}

#[tokio::test]
async fn webhooks_get_updates_with_the_secret_and_block_get_updates() {
    let (tg, app) = app();
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(Option<String>, Value)>();
    let attempts = Arc::new(AtomicU64::new(0));
    let bot_app = {
        let attempts = Arc::clone(&attempts);
        Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let (seen_tx, attempts) = (seen_tx.clone(), Arc::clone(&attempts));
                async move {
                    if attempts.fetch_add(1, Ordering::Relaxed) == 0 {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR; // the first attempt fails
                    }
                    let secret = headers
                        .get("x-telegram-bot-api-secret-token")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let _ = seen_tx.send((secret, serde_json::from_str(&body).unwrap()));
                    axum::http::StatusCode::OK
                }
            }),
        )
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, bot_app).await });
    let (_, v) = call(
        &app,
        get(&format!(
            "/bot{TOKEN}/setWebhook?url=https://example.com/hook"
        )),
    )
    .await;
    assert_eq!(v["ok"], false, "only loopback webhooks");
    let (_, v) = call(
        &app,
        get(&format!(
            "/bot{TOKEN}/setWebhook?url=http://127.0.0.1:{port}/hook&secret_token=s3"
        )),
    )
    .await;
    assert_eq!(v["result"], true);
    let (status, v) = call(&app, get(&format!("/bot{TOKEN}/getUpdates"))).await;
    assert_eq!((status, v["error_code"].clone()), (409, json!(409)));
    tg.user_says(TOKEN, 4, 4, "via webhook");
    let (secret, update) = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret.as_deref(), Some("s3"));
    assert_eq!(update["message"]["text"], "via webhook");
    let stats = tg.snapshot();
    assert_eq!(stats.webhook_failures, 1, "the failed attempt was retried");
    let (_, info) = call(&app, get(&format!("/bot{TOKEN}/getWebhookInfo"))).await;
    assert!(info["result"]["url"].as_str().unwrap().ends_with("/hook"));
    assert_eq!(
        call(&app, get(&format!("/bot{TOKEN}/deleteWebhook")))
            .await
            .1["result"],
        true
    );
    assert_eq!(
        call(&app, get(&format!("/bot{TOKEN}/getUpdates"))).await.0,
        200
    );
}

#[tokio::test]
async fn flood_limits_answer_429_with_retry_after() {
    let tg = Arc::new(Telegram::new(TelegramConfig {
        flood_limits: true,
        ..TelegramConfig::default()
    }));
    let app = router(Arc::clone(&tg));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, v) = call(
            &app,
            get(&format!("/bot{TOKEN}/sendMessage?chat_id=3&text=spam")),
        )
        .await;
        if status == 429 {
            assert!(v["parameters"]["retry_after"].as_u64().unwrap() >= 1);
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429, 429],
        "bursts of 3 per chat, then about 1/s"
    );
    assert_eq!(tg.snapshot().flood_429, 2);
}

#[tokio::test]
async fn invented_methods_and_tokens_cannot_grow_the_counters() {
    let (tg, app) = app();
    for i in 0..3000 {
        let (status, _) = call(&app, get(&format!("/bot{TOKEN}/madeUp{i}"))).await;
        assert_eq!(status, 404);
    }
    let calls = tg.snapshot().calls;
    assert_eq!(calls.get("unknown"), Some(&3000));
    assert_eq!(calls.len(), 1, "{calls:?}");
    for i in 0..3000 {
        let (status, _) = call(&app, get(&format!("/bot{i}:x/getMe"))).await;
        assert_eq!(
            status,
            if i < MAX_BOTS - 1 { 200 } else { 401 },
            "token {i}"
        );
    }
    let s = tg.snapshot();
    assert_eq!(s.tokens_refused, 3000 - (MAX_BOTS as u64 - 1));
    assert_eq!(tg.bots.lock().unwrap().len(), MAX_BOTS);
    let (status, _) = call(&app, get(&format!("/bot{TOKEN}/getMe"))).await;
    assert_eq!(status, 200, "a known token is still served");
    let stats = serde_json::to_string(&s).unwrap();
    assert!(stats.len() < 1000, "{} bytes of stats", stats.len());
}

proptest::proptest! {
    /// Any parameters in any of the four encodings to any method: the Bot API envelope
    /// (`ok` true, or false with `error_code` and `description`), never a 5xx, never a panic.
    #[test]
    fn any_call_gets_the_bot_api_envelope(
        method in proptest::sample::select(vec!["sendMessage", "getUpdates", "setWebhook", "editMessageText", "sendChatAction", "deleteMessage", "getMe", "x"]),
        encoding in 0usize..4,
        key in "(chat_id|text|timeout|offset|url|message_id|reply_parameters|limit|[a-z]{1,4})",
        value in "[ -~]{0,24}",
        raw in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..120),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (status, v) = runtime.block_on(async {
            let (_, app) = app();
            let path = format!("/bot{TOKEN}/{method}");
            let pair = serde_urlencoded::to_string([(key.as_str(), value.as_str())]).unwrap();
            let req = match encoding {
                0 => get(&format!("{path}?{pair}")),
                1 => post(&path, "application/x-www-form-urlencoded", pair),
                2 => post(&path, "application/json", raw.clone()),
                _ => post(&path, "multipart/form-data; boundary=XyZ", raw.clone()),
            };
            // A long poll with a timeout would wait: the mock's bound is 50 s, too long here.
            tokio::time::timeout(Duration::from_secs(2), call(&app, req))
                .await
                .unwrap_or((200, json!({"ok": true, "long_poll": true})))
        });
        proptest::prop_assert!(status < 500, "{status}: {v}");
        proptest::prop_assert!(v["ok"].is_boolean(), "{v}");
        if v["ok"] == false {
            proptest::prop_assert!(v["error_code"].is_number() && v["description"].is_string(), "{v}");
        }
    }
}
