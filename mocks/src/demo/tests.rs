//! Tests of the demo target.

use super::*;
use futures_channel::mpsc;

fn text(m: &Message) -> &str {
    match m {
        Message::Text(t) => t.as_str(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn converse(config: DemoConfig, inputs: Vec<Message>) -> Vec<Message> {
    let (out_tx, out_rx) = mpsc::unbounded::<Message>();
    let (in_tx, in_rx) = mpsc::unbounded::<Result<Message, ()>>();
    for m in inputs {
        in_tx.unbounded_send(Ok(m)).unwrap();
    }
    in_tx.unbounded_send(Ok(Message::Close(None))).unwrap();
    chat(out_tx, in_rx, Arc::new(Demo::new(config)), None).await;
    out_rx.collect().await
}

#[tokio::test]
async fn answers_with_the_same_id() {
    let out = converse(
        DemoConfig::default(),
        vec![Message::Text(r#"{"id": 7, "text": "hi"}"#.into())],
    )
    .await;
    assert_eq!(out.len(), 1);
    let v: serde_json::Value = serde_json::from_str(text(&out[0])).unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["reply"], "echo: hi");
}

#[tokio::test]
async fn string_ids_come_back_as_strings() {
    let out = converse(
        DemoConfig::default(),
        vec![Message::Text(r#"{"id": "a-1"}"#.into())],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(text(&out[0])).unwrap();
    assert_eq!(v["id"], "a-1");
}

#[tokio::test]
async fn bad_json_gets_an_error_frame_not_a_panic() {
    let out = converse(
        DemoConfig::default(),
        vec![
            Message::Text("not json".into()),
            Message::Text(r#"{"text": "no id"}"#.into()),
        ],
    )
    .await;
    assert_eq!(out.len(), 2);
    for m in &out {
        let v: serde_json::Value = serde_json::from_str(text(m)).unwrap();
        assert!(v["error"].as_str().unwrap().contains("id"), "{v}");
    }
}

#[tokio::test(start_paused = true)]
async fn replies_wait_for_the_delay() {
    let (out_tx, mut out_rx) = mpsc::unbounded::<Message>();
    let (in_tx, in_rx) = mpsc::unbounded::<Result<Message, ()>>();
    let config = DemoConfig {
        reply_delay: Duration::from_millis(50),
        ..DemoConfig::default()
    };
    let started = Instant::now();
    tokio::spawn(chat(out_tx, in_rx, Arc::new(Demo::new(config)), None));
    in_tx
        .unbounded_send(Ok(Message::Text(r#"{"id": 1}"#.into())))
        .unwrap();
    let reply = out_rx.next().await.unwrap();
    assert!(text(&reply).contains("\"id\":1"));
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn streamed_replies_interleave_by_due_time() {
    let (out_tx, mut out_rx) = mpsc::unbounded::<Message>();
    let (in_tx, in_rx) = mpsc::unbounded::<Result<Message, ()>>();
    let config = DemoConfig {
        reply_delay: Duration::from_millis(10),
        stream_frames: 3,
        frame_gap: Duration::from_millis(20),
        ..DemoConfig::default()
    };
    tokio::spawn(chat(out_tx, in_rx, Arc::new(Demo::new(config)), None));
    in_tx
        .unbounded_send(Ok(Message::Text(r#"{"id": 1}"#.into())))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    in_tx
        .unbounded_send(Ok(Message::Text(r#"{"id": 2}"#.into())))
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..6 {
        let v: serde_json::Value =
            serde_json::from_str(text(&out_rx.next().await.unwrap())).unwrap();
        seen.push((v["id"].as_u64().unwrap(), v["done"].as_bool().unwrap()));
    }
    assert_eq!(
        seen,
        [
            (1, false),
            (2, false),
            (1, false),
            (2, false),
            (1, true),
            (2, true)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_connections_get_close_code_1012() {
    let (out_tx, mut out_rx) = mpsc::unbounded::<Message>();
    let (_in_tx, in_rx) = mpsc::unbounded::<Result<Message, ()>>();
    let drop_at = Instant::now() + Duration::from_secs(1);
    tokio::spawn(chat(
        out_tx,
        in_rx,
        Arc::new(Demo::new(DemoConfig::default())),
        Some(drop_at),
    ));
    match out_rx.next().await.unwrap() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, DROP_CLOSE_CODE),
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(Instant::now() >= drop_at);
}
