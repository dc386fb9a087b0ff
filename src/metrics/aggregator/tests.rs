//! Tests of `aggregator.rs`.

use std::sync::Mutex;

use super::*;
use crate::analysis::leak::LeakRule;
use crate::analysis::memory::Windows;
use crate::metrics::{ErrorKind, Recorder};
use crate::sampler::Reading;

type Seen = Arc<Mutex<Vec<(IntervalSnapshot, RunTotals)>>>;

fn collecting() -> (Seen, Sink) {
    let seen: Seen = Arc::default();
    let into = Arc::clone(&seen);
    let sink: Sink = Box::new(move |s: &IntervalSnapshot, t: &RunTotals| {
        into.lock().unwrap().push((s.clone(), t.clone()));
    });
    (seen, sink)
}

fn no_procs() -> mpsc::Receiver<ProcMsg> {
    mpsc::channel(1).1
}

/// An aggregator over `setup` with no process readings: its recorder, the intervals it
/// emits, the token that ends it, and its task.
fn started(
    setup: Setup,
) -> (
    Recorder,
    Seen,
    CancellationToken,
    tokio::task::JoinHandle<(RunTotals, RunData)>,
) {
    let (recorder, rx, dropped) = Recorder::channel();
    let (seen, sink) = collecting();
    let done = CancellationToken::new();
    let agg = tokio::spawn(run(
        rx,
        no_procs(),
        done.clone(),
        dropped,
        setup,
        vec![sink],
    ));
    (recorder, seen, done, agg)
}

fn setup(messages: &[(&str, bool)], correct_micros: Option<u64>) -> Setup {
    let plan = Plan::new(1, Duration::from_secs(3), Duration::ZERO, Duration::ZERO);
    Setup {
        plan,
        started: Instant::now(),
        every: Duration::from_secs(1),
        messages: messages.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
        steps: Vec::new(),
        socketio: None,
        correct_micros,
        stall_rule: StallRule {
            threshold: Duration::from_millis(50),
            quorum: 0.75,
            bin: Duration::from_millis(100),
        },
        memory: MemorySetup {
            windows: Windows {
                plan,
                warmup: Duration::ZERO,
            },
            rule: LeakRule::default(),
            limit_mb: None,
            target: false,
        },
    }
}

#[tokio::test(start_paused = true)]
async fn intervals_merge_into_run_totals() {
    let (recorder, seen, _done, agg) = started(setup(&[("chat", false)], None));

    recorder.record(Sample::UserStarted);
    for micros in [10_000, 20_000, 30_000] {
        recorder.record(Sample::Sent { msg: 0 });
        recorder.record(Sample::Reply { msg: 0, micros });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    recorder.record(Sample::Sent { msg: 0 });
    recorder.record(Sample::Reply {
        msg: 0,
        micros: 1_000_000,
    });
    recorder.record(Sample::Timeout { msg: 0 });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    recorder.record(Sample::UserStopped);
    drop(recorder);
    let totals = agg.await.unwrap().0;

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "two full intervals and the partial last one");
    assert_eq!(seen[0].0.counters.sent, 3);
    assert_eq!(seen[0].0.active_users, 1);
    let first_max = seen[0].0.latency.unwrap().max;
    assert!(
        (30.0..30.1).contains(&first_max),
        "max of the first interval only: {first_max}"
    );
    assert_eq!(seen[0].0.histograms.len(), 1);
    assert_eq!(seen[0].0.histograms[0].tag, "chat.ttlf");
    assert_eq!(seen[1].0.counters.received, 1);
    assert_eq!(seen[1].0.counters.errors[ErrorKind::Timeout.index()], 1);
    assert_eq!(seen[1].0.messages[0].counters.timeouts, 1);
    assert_eq!(seen[2].0.active_users, 0);
    assert_eq!(totals.counters.sent, 4);
    assert_eq!(totals.counters.error_total(), 1);
    let run = totals.latency_run.unwrap();
    assert_eq!(run.count, 4);
    assert!((run.max - 1000.0).abs() < 1.0, "{run:?}");
    assert_eq!(totals.latency_hold.unwrap().count, 4, "all during the hold");
    assert_eq!(
        totals.messages[0].counters,
        MsgCounters {
            sent: 4,
            received: 4,
            timeouts: 1
        }
    );
    assert!(
        totals.latency_corrected.is_none(),
        "open model: no correction"
    );
    assert_eq!(totals.dropped_samples, 0);
}

#[test]
fn soak_judges_its_own_memory_only_after_a_minute_of_warm_up() {
    // Target and tester grow alike, 1 MB every 4 s through a 50 s hold: the target's
    // growth is judged a leak; soak's own is warm-up, too short to judge.
    let mut s = setup(&[("chat", false)], None);
    s.plan = Plan::new(1, Duration::from_secs(50), Duration::ZERO, Duration::ZERO);
    s.memory.windows.plan = s.plan;
    s.memory.target = true;
    let mut state = State::new(s, Arc::default());
    for i in 0..250u32 {
        let reading = Reading {
            rss_bytes: 10_000_000 + u64::from(i) * 50_000,
            cpu_pct: 10.0,
            fds: 10,
            threads: Some(4),
            procs: 1,
        };
        state.sampled(ProcMsg::Reading {
            charged: None,
            at_ms: i * 200,
            target: Some(reading),
            tester: reading,
        });
    }
    let totals = state.totals(Duration::from_secs(50));
    assert_eq!(totals.memory.unwrap().verdict.verdict, "leak");
    let me = totals.tester_memory.unwrap();
    assert_eq!(me.verdict.verdict, "insufficient-data", "{me:?}");
    assert!((me.warmup_s - 60.0).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn a_target_exit_sent_as_the_users_finish_is_still_written() {
    // The sampler reports the exit, then the users stop: whichever channel the
    // aggregator sees first, the exit must reach the last interval's events.
    // Eight runs, so a race that loses it half the time fails here.
    for _ in 0..8 {
        let (recorder, rx, dropped) = Recorder::channel();
        let (procs_tx, procs) = mpsc::channel(4);
        let (seen, sink) = collecting();
        // A second sink (as the progress display is) sees every interval the first does.
        let (also, second) = collecting();
        let agg = tokio::spawn(run(
            rx,
            procs,
            CancellationToken::new(),
            dropped,
            setup(&[("chat", false)], None),
            vec![sink, second],
        ));
        procs_tx
            .send(ProcMsg::TargetExited("exit status: 124".into()))
            .await
            .unwrap();
        drop(recorder);
        agg.await.unwrap();
        let seen = seen.lock().unwrap();
        let exits = seen
            .iter()
            .flat_map(|(s, _)| &s.events)
            .filter(|r| matches!(&r.event, Event::TargetExit { how } if how == "exit status: 124"))
            .count();
        assert_eq!(exits, 1);
        let also = also.lock().unwrap();
        assert_eq!(also.len(), seen.len());
        assert!(
            also.iter()
                .zip(seen.iter())
                .all(|(a, b)| a.0.end == b.0.end)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn per_message_breakdown_ttff_and_close_codes() {
    let (recorder, _seen, done, agg) = started(setup(&[("chat", true), ("history", false)], None));
    recorder.record(Sample::FirstFrame {
        msg: 0,
        micros: 5_000,
    });
    recorder.record(Sample::Reply {
        msg: 0,
        micros: 50_000,
    });
    recorder.record(Sample::Reply {
        msg: 1,
        micros: 2_000,
    });
    let lost = Disconnect::Lost(ErrorKind::Closed);
    recorder.record(Sample::Disconnected {
        user: 1,
        cause: lost,
        code: 1011,
    });
    recorder.record(Sample::Disconnected {
        user: 2,
        cause: lost,
        code: 1011,
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    done.cancel();
    let totals = agg.await.unwrap().0;
    assert_eq!(totals.messages[0].ttff.unwrap().count, 1);
    assert!(totals.messages[1].ttff.is_none());
    assert!(totals.messages[0].latency.unwrap().p50 >= 49.9);
    assert!(totals.messages[1].latency.unwrap().p50 <= 2.01);
    assert_eq!(totals.ttff_run.unwrap().count, 1);
    assert_eq!(totals.close_codes.get(&1011), Some(&2));
    assert_eq!(totals.counters.errors[ErrorKind::Closed.index()], 2);
}

#[tokio::test(start_paused = true)]
async fn closed_model_records_a_corrected_histogram() {
    let (recorder, _seen, done, agg) = started(setup(&[("m", false)], Some(100_000)));
    // One reply took 1 s while the user meant to send every 100 ms: the corrected
    // histogram adds the 9 sends that the stall held back (900 ms, 800 ms, … 100 ms).
    recorder.record(Sample::Reply {
        msg: 0,
        micros: 1_000_000,
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    done.cancel();
    let totals = agg.await.unwrap().0;
    assert_eq!(totals.latency_run.unwrap().count, 1);
    let corrected = totals.latency_corrected.unwrap();
    assert_eq!(corrected.count, 10);
    assert!((corrected.p50 - 500.0).abs() < 1.0, "{corrected:?}");
}
