//! Tests of `session.rs`: back-off, weighted picks, and the size of a session's future.

use super::config::pick;
use super::*;
use crate::engine::connect::Dialer;

#[test]
fn weighted_picks_follow_the_weights() {
    let cumulative = [80u32, 100];
    let mut rng = XorShift::new(1);
    let chat = (0..10_000)
        .filter(|_| pick(&cumulative, rng.next() >> 32) == 0)
        .count();
    assert!((7_700..8_300).contains(&chat), "{chat}");
    assert_eq!(pick(&[5], 12345), 0);
}

/// Bytes a session's future may take (the task itself, not its socket).
const SESSION_FUTURE_BUDGET: usize = 2 * 1024;
use crate::metrics::Recorder;
use crate::profile::{ProfileSpec, resolve};

#[tokio::test]
async fn a_sessions_future_stays_small() {
    let loaded = crate::profile::Loaded {
        name: "t".into(),
        source: "t".into(),
        spec: ProfileSpec::default(),
    };
    let config = resolve::resolve(&loaded).unwrap();
    let dialer = Dialer::new("ws://127.0.0.1:1/", &config.connection, config.connect_rate)
        .await
        .unwrap();
    let (recorder, _rx, _dropped) = Recorder::channel();
    let shared = Arc::new(SessionConfig::new(
        &config,
        Transport::WebSocket(dialer),
        recorder,
        CancellationToken::new(),
    ));
    let future = run(0, shared, CancellationToken::new());
    let unguarded = std::mem::size_of_val(&future);
    // Every byte here is held by each of up to 19,000 sessions. 1,288 bytes measured on
    // 2026-11-23 (it was 11 KB while the handshake future and the stream sat inline).
    let size = std::mem::size_of_val(&future);
    // The panic guard every session runs under must not copy the future: an `async` block
    // there doubled it (2,700 bytes).
    let guarded = crate::signals::Root::default().guard(future);
    let size = std::mem::size_of_val(&guarded).max(size);
    assert!(
        size <= SESSION_FUTURE_BUDGET,
        "a session's future is {size} bytes, budget {SESSION_FUTURE_BUDGET}"
    );
    assert!(
        size <= unguarded + 64,
        "guarded {size} bytes, {unguarded} without the guard"
    );
}
