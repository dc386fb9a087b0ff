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

/// The one loop on the in-memory transport, on paused time: the test is the server.
mod on_memory {
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::*;
    use crate::engine::transport::memory::{Frame, Peer, Server};
    use crate::profile::spec::ProfileSpec;

    struct Harness {
        samples: mpsc::Receiver<Sample>,
        peers: mpsc::UnboundedReceiver<Peer>,
        cancel: CancellationToken,
        user: tokio::task::JoinHandle<()>,
        server: Arc<SessionConfig>,
    }

    /// User 3 of a profile edited by `edit`, connecting to a fresh in-memory server.
    fn start(edit: impl FnOnce(&mut ProfileSpec)) -> Harness {
        let mut spec = ProfileSpec::default();
        spec.session.reply_timeout = Duration::from_secs(2);
        edit(&mut spec);
        let loaded = crate::profile::Loaded {
            name: "t".into(),
            source: "t".into(),
            spec,
        };
        let config = resolve::resolve(&loaded).unwrap();
        let (server, peers) = Server::new();
        let (recorder, samples, _dropped) = Recorder::channel();
        let shared = Arc::new(SessionConfig::new(
            &config,
            Transport::Memory(server),
            recorder,
            CancellationToken::new(),
        ));
        let cancel = CancellationToken::new();
        let user = tokio::spawn(run(3, Arc::clone(&shared), cancel.clone()));
        Harness {
            samples,
            peers,
            cancel,
            user,
            server: shared,
        }
    }

    impl Harness {
        async fn peer(&mut self) -> Peer {
            self.peers.recv().await.unwrap()
        }

        /// Samples up to and including the first that `stop` accepts.
        async fn until(&mut self, stop: impl Fn(&Sample) -> bool) -> Vec<Sample> {
            let mut seen = Vec::new();
            loop {
                let s = self.samples.recv().await.unwrap();
                seen.push(s);
                if stop(&s) {
                    return seen;
                }
            }
        }

        fn refuse(&self, n: u32) {
            if let Transport::Memory(server) = &self.server.transport {
                server.refuse(n);
            }
        }
    }

    /// Asserts `since` was between `at_least` and 100 ms more ago (paused time is exact up to
    /// the loop's own steps).
    fn waited(since: Instant, at_least: Duration) {
        let waited = since.elapsed();
        assert!(
            waited >= at_least && waited < at_least + Duration::from_millis(100),
            "{waited:?} for {at_least:?}"
        );
    }

    /// Stops the user and waits for its task.
    async fn finish(h: Harness) {
        h.cancel.cancel();
        h.user.await.unwrap();
    }

    /// The id in a default-template message: `{"id": 4000000001, ...}`.
    fn id_of(text: &str) -> u64 {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["id"].as_u64().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_by_id_is_timed_from_the_intended_send() {
        let mut h = start(|_| {});
        let mut peer = h.peer().await;
        assert_eq!(peer.user, 3);
        let sent = peer.from_user.recv().await.unwrap();
        let id = id_of(&sent);
        assert_eq!(split_id(id), Some((3, 1)));
        tokio::time::sleep(Duration::from_millis(40)).await;
        peer.to_user
            .send(Frame::Text(format!(r#"{{"id": {id}}}"#)))
            .unwrap();
        let seen = h.until(|s| matches!(s, Sample::Reply { .. })).await;
        let Some(Sample::Reply { micros, .. }) = seen.last() else {
            panic!("{seen:?}");
        };
        // Paused time: the latency is the server's 40 ms plus the user's schedule offset.
        assert!((40_000..1_040_000).contains(micros), "{micros}");
        assert!(seen.contains(&Sample::Sent { msg: 0 }));
        finish(h).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_that_only_echoes_the_text_is_matched_by_the_id_inside_it() {
        let mut h = start(|s| {
            s.session.message = r#"{"message": "hi {{id}} from {{user}}"}"#.into();
            s.session.correlate = "/message".into();
        });
        let mut peer = h.peer().await;
        let sent = peer.from_user.recv().await.unwrap();
        // The Channels tutorial's shape: the text comes back, no id of its own.
        peer.to_user.send(Frame::Text(sent)).unwrap();
        let seen = h
            .until(|s| matches!(s, Sample::Reply { .. } | Sample::Error { .. }))
            .await;
        assert!(
            matches!(seen.last(), Some(Sample::Reply { .. })),
            "{seen:?}"
        );
        finish(h).await;
    }

    #[tokio::test(start_paused = true)]
    async fn pushes_are_counted_under_their_rule_and_replies_still_match() {
        let mut h = start(|s| {
            s.session.push = vec![r#"/type == "presence""#.into(), "/typing exists".into()];
        });
        let mut peer = h.peer().await;
        let sent = peer.from_user.recv().await.unwrap();
        for frame in [
            r#"{"type": "presence", "user": 7}"#.to_string(),
            r#"{"typing": 7}"#.to_string(),
            r#"{"type": "presence", "user": 8}"#.to_string(),
            format!(r#"{{"id": {}}}"#, id_of(&sent)),
        ] {
            peer.to_user.send(Frame::Text(frame)).unwrap();
        }
        let seen = h.until(|s| matches!(s, Sample::Reply { .. })).await;
        let pushes: Vec<&Sample> = seen
            .iter()
            .filter(|s| matches!(s, Sample::Push { .. }))
            .collect();
        assert_eq!(
            pushes,
            [
                &Sample::Push { rule: 0 },
                &Sample::Push { rule: 1 },
                &Sample::Push { rule: 0 }
            ]
        );
        assert!(
            !seen.iter().any(|s| matches!(s, Sample::Error { .. })),
            "{seen:?}"
        );
        // A frame no rule names is still an error: an error frame is never hidden.
        peer.to_user
            .send(Frame::Text(r#"{"type": "error"}"#.into()))
            .unwrap();
        let seen = h.until(|s| matches!(s, Sample::Error { .. })).await;
        assert!(
            matches!(
                seen.last(),
                Some(Sample::Error {
                    kind: ErrorKind::Unparsable,
                    ..
                })
            ),
            "{seen:?}"
        );
        finish(h).await;
    }

    /// An auth step waiting for `auth_ok` (failing on `error`), then a join step.
    fn with_steps(s: &mut ProfileSpec) {
        use crate::profile::spec::StepSpec;
        s.session.on_connect = vec![
            StepSpec {
                name: "auth".into(),
                message: r#"{"type": "auth", "user": {{user}}}"#.into(),
                expect: r#"/type == "auth_ok""#.into(),
                fail: r#"/type == "error""#.into(),
                timeout: Duration::from_secs(3),
                ..StepSpec::default()
            },
            StepSpec {
                message: r#"{"type": "join", "room": "r1"}"#.into(),
                ..StepSpec::default()
            },
        ];
    }

    #[tokio::test(start_paused = true)]
    async fn steps_pass_before_the_user_counts_as_connected_and_sends() {
        let mut h = start(with_steps);
        let mut peer = h.peer().await;
        let auth = peer.from_user.recv().await.unwrap();
        assert_eq!(auth, r#"{"type": "auth", "user": 3}"#);
        // A banner meets neither rule: let pass. Then the answer the step waits for.
        tokio::time::sleep(Duration::from_millis(25)).await;
        for frame in [r#"{"type": "welcome"}"#, r#"{"type": "auth_ok"}"#] {
            peer.to_user.send(Frame::Text(frame.into())).unwrap();
        }
        assert_eq!(
            peer.from_user.recv().await.unwrap(),
            r#"{"type": "join", "room": "r1"}"#
        );
        let first = peer.from_user.recv().await.unwrap();
        assert_eq!(split_id(id_of(&first)), Some((3, 1)), "then the schedule");
        let seen = h.until(|s| matches!(s, Sample::Sent { .. })).await;
        let joined = seen.iter().position(|s| matches!(s, Sample::Joined { .. }));
        let connected = seen
            .iter()
            .position(|s| matches!(s, Sample::Connected { .. }));
        assert!(joined.is_some() && joined < connected, "{seen:?}");
        let Some(Sample::Joined { micros }) = joined.map(|i| seen[i]) else {
            panic!("{seen:?}");
        };
        assert!((25_000..30_000).contains(&micros), "{micros}");
        assert!(
            !seen.iter().any(|s| matches!(s, Sample::Error { .. })),
            "{seen:?}"
        );
        finish(h).await;
    }

    /// The first `JoinFailed` sample, with the samples before it.
    async fn until_join_failed(h: &mut Harness) -> (Sample, Vec<Sample>) {
        let seen = h.until(|s| matches!(s, Sample::JoinFailed { .. })).await;
        (*seen.last().unwrap(), seen)
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_fails_on_its_fail_rule_a_close_or_its_timeout_and_is_retried() {
        let mut h = start(with_steps);
        // The fail rule.
        let mut peer = h.peer().await;
        let _ = peer.from_user.recv().await.unwrap();
        peer.to_user
            .send(Frame::Text(
                r#"{"type": "error", "why": "bad token"}"#.into(),
            ))
            .unwrap();
        let (failed, seen) = until_join_failed(&mut h).await;
        assert_eq!(
            failed,
            Sample::JoinFailed {
                user: 3,
                step: 0,
                code: 0,
                reason: 0,
            }
        );
        assert!(
            !seen.iter().any(|s| matches!(s, Sample::Connected { .. })),
            "{seen:?}"
        );
        // Retried after the back-off: the server closes with 4401.
        let mut peer = h.peer().await;
        let _ = peer.from_user.recv().await.unwrap();
        peer.to_user.send(Frame::Close(4401)).unwrap();
        let (failed, _) = until_join_failed(&mut h).await;
        assert_eq!(
            failed,
            Sample::JoinFailed {
                user: 3,
                step: 0,
                code: 4401,
                reason: 0,
            }
        );
        // Then a server that never answers: the step's 3 s timeout.
        let mut peer = h.peer().await;
        let _ = peer.from_user.recv().await.unwrap();
        let asked = Instant::now();
        let (failed, _) = until_join_failed(&mut h).await;
        assert_eq!(
            failed,
            Sample::JoinFailed {
                user: 3,
                step: 0,
                code: 0,
                reason: 0,
            }
        );
        waited(asked, Duration::from_secs(3));
        finish(h).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconnect_repeats_the_steps() {
        let mut h = start(with_steps);
        for round in 0..2 {
            let mut peer = h.peer().await;
            let auth = peer.from_user.recv().await.unwrap();
            assert!(auth.contains(r#""type": "auth""#), "round {round}: {auth}");
            peer.to_user
                .send(Frame::Text(r#"{"type": "auth_ok"}"#.into()))
                .unwrap();
            let join = peer.from_user.recv().await.unwrap();
            assert!(join.contains("join"), "round {round}: {join}");
            h.until(|s| matches!(s, Sample::Connected { .. })).await;
            peer.to_user.send(Frame::Close(1012)).unwrap();
        }
        finish(h).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_users_room_fills_steps_and_messages() {
        let mut h = start(|s| {
            s.load.users = 10;
            s.rooms.size = 2; // user 3 is in room 1
            s.session.on_connect = vec![crate::profile::spec::StepSpec {
                message: r#"{"join": "room-{{room}}"}"#.into(),
                ..Default::default()
            }];
            s.session.message = r#"{"id": {{id}}, "room": {{room}}}"#.into();
        });
        let mut peer = h.peer().await;
        assert_eq!(
            peer.from_user.recv().await.unwrap(),
            r#"{"join": "room-1"}"#
        );
        let sent = peer.from_user.recv().await.unwrap();
        assert!(sent.ends_with(r#""room": 1}"#), "{sent}");
        finish(h).await;
    }

    #[tokio::test(start_paused = true)]
    async fn room_copies_are_timed_and_duplicates_and_out_of_order_ones_told() {
        let mut h = start(|s| {
            s.load.users = 8;
            s.rooms.size = 4; // user 3 shares room 0 with users 0, 1 and 2
            s.rooms.deliver = "/message".into();
            s.session.rate = crate::units::Rate { per_second: 0.0 };
        });
        let peer = h.peer().await;
        let fanout = h.server.fanout.as_ref().unwrap();
        // User 1 sent its messages 4 and 5; the copies reach user 3 30 ms later.
        let sent = Instant::now();
        fanout.sending(1, 4, sent);
        fanout.sending(1, 5, sent);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let copy = |seq: u64| {
            Frame::Text(format!(
                r#"{{"message": "hi {} from 1"}}"#,
                2_000_000_000 + seq
            ))
        };
        for seq in [5, 5, 4] {
            peer.to_user.send(copy(seq)).unwrap();
        }
        // A copy from another room's user (5) is not this member's: an ordinary frame, and
        // with no id at the correlation pointer, unparsable.
        peer.to_user
            .send(Frame::Text(r#"{"message": "hi 6000000001"}"#.into()))
            .unwrap();
        let seen = h.until(|s| matches!(s, Sample::Error { .. })).await;
        let copies: Vec<(u64, bool, bool, bool, bool)> = seen
            .iter()
            .filter_map(|s| match *s {
                Sample::Delivery {
                    micros,
                    late,
                    duplicate,
                    out_of_order,
                    first,
                    ..
                } => Some((micros, late, duplicate, out_of_order, first)),
                _ => None,
            })
            .collect();
        assert_eq!(copies.len(), 3, "{seen:?}");
        assert!(
            copies
                .iter()
                .all(|c| (30_000..31_000).contains(&c.0) && !c.1),
            "{copies:?}"
        );
        assert_eq!(
            copies.iter().map(|c| (c.2, c.3)).collect::<Vec<_>>(),
            [(false, false), (true, false), (false, true)],
            "first, duplicate, out of order"
        );
        assert_eq!(
            copies.iter().map(|c| c.4).collect::<Vec<_>>(),
            [true, false, true],
            "the first copies of messages 5 and 4: their time to the first member"
        );
        assert!(
            !seen.iter().any(|s| matches!(s, Sample::FanoutLast { .. })),
            "not counted by their sender: no last member"
        );
        assert!(matches!(
            seen.last(),
            Some(Sample::Error {
                kind: ErrorKind::Unparsable,
                ..
            })
        ));
        finish(h).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_message_times_out_after_the_reply_timeout() {
        let mut h = start(|_| {});
        let mut peer = h.peer().await;
        let _ = peer.from_user.recv().await.unwrap();
        let sent_at = Instant::now();
        h.until(|s| matches!(s, Sample::Timeout { .. })).await;
        waited(sent_at, Duration::from_secs(2));
        finish(h).await;
    }

    #[tokio::test(start_paused = true)]
    async fn frames_without_an_id_or_for_another_user_are_errors_not_replies() {
        let mut h = start(|_| {});
        let mut peer = h.peer().await;
        let _ = peer.from_user.recv().await.unwrap();
        peer.to_user.send(Frame::Text("not json".into())).unwrap();
        peer.to_user
            .send(Frame::Text(r#"{"type": "presence"}"#.into()))
            .unwrap();
        peer.to_user
            .send(Frame::Text(r#"{"id": 9000000001}"#.into()))
            .unwrap();
        let mut kinds = Vec::new();
        while kinds.len() < 3 {
            if let Sample::Error { kind, .. } = h.samples.recv().await.unwrap() {
                kinds.push(kind);
            }
        }
        use crate::metrics::ErrorKind::{Unmatched, Unparsable};
        assert_eq!(kinds, [Unparsable, Unparsable, Unmatched]);
        finish(h).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_close_is_a_loss_with_its_code_then_a_reconnect() {
        let mut h = start(|_| {});
        let peer = h.peer().await;
        peer.to_user.send(Frame::Close(4001)).unwrap();
        let seen = h.until(|s| matches!(s, Sample::Disconnected { .. })).await;
        assert_eq!(
            seen.last(),
            Some(&Sample::Disconnected {
                user: 3,
                cause: Disconnect::Lost(ErrorKind::Closed),
                code: 4001
            })
        );
        let _again = h.peer().await;
        let seen = h.until(|s| matches!(s, Sample::Connected { .. })).await;
        assert!(
            matches!(
                seen.last(),
                Some(Sample::Connected {
                    reconnect: true,
                    ..
                })
            ),
            "{seen:?}"
        );
        finish(h).await;
    }

    #[tokio::test(start_paused = true)]
    async fn refused_connects_are_errors_retried_with_back_off() {
        let mut h = start(|_| {});
        h.refuse(2);
        let began = Instant::now();
        let _peer = h.peer().await;
        // Two refusals, then the back-off's first two delays (100 ms, then about 200 ms).
        assert!(
            began.elapsed() >= Duration::from_millis(100),
            "{:?}",
            began.elapsed()
        );
        let seen = h.until(|s| matches!(s, Sample::Connected { .. })).await;
        let refused = seen
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Sample::Error {
                        kind: ErrorKind::ConnectRefused,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(refused, 2, "{seen:?}");
        finish(h).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_user_waits_for_its_reply_in_flight_then_closes() {
        let mut h = start(|_| {});
        let mut peer = h.peer().await;
        let sent = peer.from_user.recv().await.unwrap();
        h.cancel.cancel();
        // The reply comes 300 ms after the stop: still measured (the drain).
        tokio::time::sleep(Duration::from_millis(300)).await;
        peer.to_user
            .send(Frame::Text(format!(r#"{{"id": {}}}"#, id_of(&sent))))
            .unwrap();
        let seen = h.until(|s| matches!(s, Sample::UserStopped)).await;
        let reply = seen.iter().position(|s| matches!(s, Sample::Reply { .. }));
        let gone = seen.iter().position(|s| {
            matches!(
                s,
                Sample::Disconnected {
                    cause: Disconnect::Stopped,
                    ..
                }
            )
        });
        assert!(reply.is_some() && reply < gone, "{seen:?}");
        h.user.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_lifetime_churns_the_connection_and_reopens_it_at_once() {
        let mut h = start(|s| s.session.lifetime = Duration::from_secs(5));
        let _first = h.peer().await;
        let opened = Instant::now();
        let _second = h.peer().await;
        waited(opened, Duration::from_secs(5));
        let seen = h
            .until(|s| {
                matches!(
                    s,
                    Sample::Disconnected {
                        cause: Disconnect::Churned,
                        ..
                    }
                )
            })
            .await;
        assert!(
            !seen.iter().any(|s| matches!(s, Sample::Error { .. })),
            "{seen:?}"
        );
        finish(h).await;
    }
}
