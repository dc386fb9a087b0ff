//! Telegram bots written with real libraries (python-telegram-bot, aiogram) run unchanged
//! against the mock Bot API while simulated users chat with them; and a bot that answers
//! one user at a time shows its queueing in the reply latency.

use std::path::PathBuf;

use crate::common::{soak, summary};

/// The Python with the client packages, or `None` outside CI (see `clients.rs`).
fn python(module: &str) -> Option<PathBuf> {
    crate::clients::python(module)
}

/// How the simulated users chat with the bot.
struct Chat<'a> {
    users: &'a str,
    /// Closed model: pause after each reply.
    think: &'a str,
    duration: &'a str,
    /// Extra `[mocks.telegram]` settings.
    mock: &'a str,
}

/// Three users replying as fast as the bot answers, for 4 s, default mock settings.
const CHAT: Chat<'static> = Chat {
    users: "3",
    think: "300ms",
    duration: "4s",
    mock: "",
};

/// Runs simulated users against `script` (started by soak with the mock's URL and token).
async fn chat_with(
    python: &std::path::Path,
    script_and_args: &str,
    chat: Chat<'_>,
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("telegram.toml");
    std::fs::write(
        &profile,
        format!(
            "[mocks]\nenable = [\"telegram\"]\n[mocks.telegram]\n{}\n",
            chat.mock
        ),
    )
    .unwrap();
    let cmd = format!(
        "{} {}/tests/clients/{script_and_args}",
        python.display(),
        env!("CARGO_MANIFEST_DIR")
    );
    let out = dir.path().join("out");
    let args = [
        "--profile",
        profile.to_str().unwrap(),
        "--target-cmd",
        &cmd,
        "--users",
        chat.users,
        "--model",
        "closed",
        "--think",
        chat.think,
        "--duration",
        chat.duration,
        "--ramp-up",
        "0s",
        "--ramp-down",
        "0s",
        "--baseline",
        "0s",
        "--cooldown",
        "0s",
        "--reply-timeout",
        "10s",
    ];
    soak(&out, &args).await.unwrap();
    summary(&out)
}

fn assert_every_message_answered(s: &serde_json::Value) {
    let t = &s["totals"];
    let (sent, received, abandoned) = (
        t["sent"].as_u64().unwrap(),
        t["received"].as_u64().unwrap(),
        t["abandoned"].as_u64().unwrap(),
    );
    assert!(received >= 6, "{t}");
    assert_eq!(
        received + abandoned,
        sent,
        "every message got a reply (or was cut off by the end): {t}"
    );
    assert_eq!(s["errors"]["timeout"], 0, "{}", s["errors"]);
    assert!(s["ttff_ms"].is_null() || s["ttff_ms"]["run"]["count"].as_u64().unwrap() >= received);
    let tg = &s["mocks"]["telegram"];
    assert!(
        tg["calls"]["sendmessage"].as_u64().unwrap() >= received,
        "{tg}"
    );
    assert!(
        s["memory"]["samples"].as_u64().unwrap() > 0,
        "the bot's process was sampled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_telegram_bot_polling_answers_every_message() {
    let Some(py) = python("telegram") else { return };
    let s = chat_with(&py, "echo_ptb.py", CHAT).await;
    assert_every_message_answered(&s);
    assert!(
        s["mocks"]["telegram"]["calls"]["getupdates"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        s["mocks"]["telegram"]["calls"]["sendchataction"]
            .as_u64()
            .unwrap()
            > 0,
        "the typing action counted as first sign of life"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_telegram_bot_webhook_answers_every_message() {
    let Some(py) = python("telegram") else { return };
    let s = chat_with(&py, "echo_ptb.py webhook", CHAT).await;
    assert_every_message_answered(&s);
    let tg = &s["mocks"]["telegram"];
    assert!(tg["webhook_deliveries"].as_u64().unwrap() >= 6, "{tg}");
    assert_eq!(tg["calls"]["setwebhook"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiogram_polling_answers_every_message() {
    let Some(py) = python("aiogram") else { return };
    let s = chat_with(&py, "echo_aiogram.py", CHAT).await;
    assert_every_message_answered(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_that_answers_one_user_at_a_time_shows_the_queue() {
    let Some(py) = python("json") else { return };
    let (sequential, concurrent) = tokio::join!(
        chat_with(
            &py,
            "slow_bot.py sequential",
            Chat {
                think: "0s",
                duration: "8s",
                ..CHAT
            }
        ),
        chat_with(
            &py,
            "slow_bot.py concurrent",
            Chat {
                think: "0s",
                duration: "8s",
                ..CHAT
            }
        ),
    );
    let p50 = |s: &serde_json::Value| s["latency_ms"]["run"]["p50"].as_f64().unwrap();
    // Three users, 1 s per message: one at a time, each waits for the other two (≈ 3 s);
    // concurrently, each waits only for its own (≈ 1 s).
    assert!(
        p50(&sequential) > 2500.0,
        "sequential p50 {} ms",
        p50(&sequential)
    );
    assert!(
        p50(&concurrent) < 1600.0,
        "concurrent p50 {} ms",
        p50(&concurrent)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_written_by_edits_is_final_at_its_last_edit() {
    let Some(py) = python("json") else { return };
    let chat = Chat {
        users: "2",
        think: "200ms",
        duration: "5s",
        mock: "reply_settle_ms = 400",
    };
    let s = chat_with(&py, "edit_bot.py", chat).await;
    // The placeholder arrives at once (first sign of life); the last of three edits 200 ms
    // apart about 600 ms later, and that is the reply's time.
    let first = s["ttff_ms"]["run"]["p50"].as_f64().unwrap();
    let last = s["latency_ms"]["run"]["p50"].as_f64().unwrap();
    assert!(first < 300.0, "first sign of life {first} ms");
    assert!((550.0..1200.0).contains(&last), "final reply {last} ms");
    assert!(s["totals"]["received"].as_u64().unwrap() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_in_group_chats_get_the_replies_that_quote_them() {
    let Some(py) = python("telegram") else { return };
    let chat = Chat {
        users: "4",
        mock: "group_size = 2",
        ..CHAT
    };
    let s = chat_with(&py, "echo_ptb.py", chat).await;
    assert_every_message_answered(&s);
}
