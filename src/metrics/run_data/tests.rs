use std::time::Duration;

use super::*;
use crate::metrics::snapshot::record;
use crate::metrics::{Disconnect, ErrorKind, Sample};

fn rule() -> StallRule {
    StallRule {
        threshold: Duration::from_millis(50),
        quorum: 0.75,
        bin: Duration::from_millis(100),
    }
}

/// A run's data from a seed: samples counted, latencies recorded, probes binned, closes.
fn data(seed: u64) -> RunData {
    let names = [String::from("chat"), String::from("history")];
    let mut d = RunData::new(&names, rule());
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..200 {
        let v = next() % 200_000 + 1;
        let m = (next() % 2) as usize;
        d.counters.count(Sample::Sent { msg: m as u16 });
        d.counters.count(Sample::Reply {
            msg: m as u16,
            micros: v,
        });
        d.messages[m].counters.sent += 1;
        d.messages[m].counters.received += 1;
        record(&mut d.messages[m].ttlf, v);
        record(&mut d.connect, v / 3 + 1);
        record(&mut d.fanout, v / 2 + 1);
        let at_ms = (next() % 5_000) as u32;
        let rtt_us = (next() % 120_000) as u32;
        record(&mut d.probe, u64::from(rtt_us) + 1);
        d.bins.add_probe((at_ms / 100) as usize, at_ms, rtt_us);
    }
    d.counters.count(Sample::Error {
        kind: ErrorKind::Unmatched,
        user: 1,
    });
    d.counters.count(Sample::Disconnected {
        user: 1,
        cause: Disconnect::Lost(ErrorKind::Closed),
        code: 1006,
    });
    *d.close_codes.entry(1006).or_default() += seed % 3 + 1;
    *d.close_codes.entry(4000 + (seed % 2) as u16).or_default() += 1;
    d.abnormal_closes = (0..5)
        .map(|k| (k * 700 + seed * 13) as u32 % 5000)
        .collect();
    d.abnormal_closes.sort_unstable();
    d.tester_readings = (0..4)
        .map(|k| ((k * 1000 + seed) as u32, Reading::default()))
        .collect();
    d.target_gaps.0 = seed % 2;
    d.dropped_samples = seed % 5;
    d
}

/// Everything a sum is judged by, comparable.
fn view(d: &RunData) -> String {
    let h = |h: &Histogram<u64>| {
        (
            h.len(),
            h.min(),
            h.max(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect::<Vec<_>>(),
        )
    };
    let messages: Vec<_> = d
        .messages
        .iter()
        .map(|m| (m.name.clone(), m.counters, h(&m.ttlf), h(&m.ttff)))
        .collect();
    let histograms: Vec<_> = d.histograms().iter().map(|(n, x)| (*n, h(x))).collect();
    let readings: Vec<u32> = d.tester_readings.iter().map(|(t, _)| *t).collect();
    format!(
        "{:?} {messages:?} {histograms:?} {:?} {:?} {:?} {readings:?} {:?} {}",
        d.counters,
        d.close_codes,
        d.abnormal_closes,
        d.bins.all(),
        d.target_gaps,
        d.dropped_samples
    )
}

fn sum(parts: &[&RunData]) -> RunData {
    let mut total = RunData::new(&[], rule());
    for p in parts {
        total += p;
    }
    total
}

#[test]
fn adding_is_associative_commutative_and_empty_data_is_its_identity() {
    let (a, b, c) = (data(1), data(2), data(3));
    // (a + b) + c == a + (b + c)
    let mut left = sum(&[&a, &b]);
    left += &c;
    let mut right = a.clone();
    right += &sum(&[&b, &c]);
    assert_eq!(view(&left), view(&right));
    // a + b == b + a
    assert_eq!(view(&sum(&[&a, &b])), view(&sum(&[&b, &a])));
    // a + 0 == a == 0 + a
    let names = [String::from("chat"), String::from("history")];
    let mut with_zero = a.clone();
    with_zero += &RunData::new(&names, rule());
    assert_eq!(view(&with_zero), view(&a));
    assert_eq!(view(&sum(&[&a])), view(&a));
}

#[test]
fn a_sum_holds_every_recorded_value_so_its_percentiles_are_the_unions() {
    let (a, b) = (data(4), data(5));
    let total = sum(&[&a, &b]);
    let mut union = Histogram::<u64>::new(3).unwrap();
    for part in [&a, &b] {
        for m in &part.messages {
            union.add(&m.ttlf).unwrap();
        }
    }
    let mut merged = Histogram::<u64>::new(3).unwrap();
    for m in &total.messages {
        merged.add(&m.ttlf).unwrap();
    }
    assert_eq!(merged.len(), 400);
    for q in [0.5, 0.9, 0.99, 1.0] {
        assert_eq!(
            merged.value_at_quantile(q),
            union.value_at_quantile(q),
            "{q}"
        );
    }
    assert_eq!(total.counters.sent, a.counters.sent + b.counters.sent);
    assert_eq!(
        total.close_codes[&1006],
        a.close_codes[&1006] + b.close_codes[&1006]
    );
    assert!(total.abnormal_closes.is_sorted());
    assert_eq!(total.abnormal_closes.len(), 10);
    let seen = |d: &RunData| {
        d.bins
            .all()
            .iter()
            .map(|(_, b)| u32::from(b.seen))
            .sum::<u32>()
    };
    assert_eq!(seen(&total), seen(&a) + seen(&b));
}

#[test]
fn saved_run_data_reads_back_whole() {
    let mut d = data(6);
    d.target_readings = vec![(
        10,
        Reading {
            rss_bytes: 5,
            cpu_pct: 1.5,
            fds: 3,
            threads: Some(2),
            procs: 1,
        },
    )];
    d.target_work = vec![crate::analysis::attribution::Work {
        messages: 1,
        opened: 2,
        closed: 3,
    }];
    d.target_gaps = (2, Some("gone".into()));
    d.counters.fanout.delivered = 7;
    d.counters.pushes[2] = 9;
    let text = file::to_json(&d);
    let back = file::from_json(&text).unwrap();
    assert_eq!(view(&back), view(&d));
    assert_eq!(back.target_readings, d.target_readings);
    assert_eq!(back.target_work, d.target_work);
    // Not run data, another version, a garbled histogram: each says so.
    assert!(
        file::from_json("{}")
            .unwrap_err()
            .contains("not soak run data")
    );
    let other = text.replace("\"version\":1", "\"version\":99");
    assert!(file::from_json(&other).unwrap_err().contains("version 99"));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["histograms"]["connect"] = "AAAA".into();
    let e = file::from_json(&v.to_string()).unwrap_err();
    assert!(e.contains("histogram connect"), "{e}");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["stall_rule"]["bin_us"] = 0.into();
    let e = file::from_json(&v.to_string()).unwrap_err();
    assert!(e.contains("bin_us"), "{e}");
    assert_eq!(back.bins.rule(), rule());
}
