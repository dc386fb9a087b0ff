//! `run-data.json`: a run's data saved whole and versioned, so it can be read back and
//! added to another's — every histogram in HdrHistogram's V2 deflate encoding (base64),
//! counters with error kinds by name, stall bins, readings, closes.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use super::{MsgData, RunData};
use crate::analysis::attribution::Work;
use crate::analysis::stall::{Bin, Bins, Late, StallRule};
use crate::metrics::ErrorKind;
use crate::metrics::snapshot::{Counters, FanoutCounts, MsgCounters, new_histogram};
use crate::sampler::Reading;

/// What the file says it is.
pub const FORMAT: &str = "soak-run-data";

/// Its shape's version; bumped when a field changes meaning or goes away.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    version: u32,
    soak_version: String,
    counters: CountersFile,
    messages: Vec<MsgFile>,
    histograms: BTreeMap<String, String>,
    close_codes: BTreeMap<u16, u64>,
    abnormal_closes: Vec<u32>,
    stall_rule: RuleFile,
    bins: Vec<BinFile>,
    target_readings: Vec<(u32, ReadingFile)>,
    /// `[messages, opened, closed]` at each target reading.
    target_work: Vec<(u64, u64, u64)>,
    target_gaps: (u64, Option<String>),
    tester_readings: Vec<(u32, ReadingFile)>,
    dropped_samples: u64,
}

#[derive(Serialize, Deserialize)]
struct CountersFile {
    sent: u64,
    received: u64,
    late: u64,
    abandoned: u64,
    connect_attempts: u64,
    connects: u64,
    disconnects: u64,
    reconnects: u64,
    churned: u64,
    users_started: u64,
    users_stopped: u64,
    errors: BTreeMap<String, u64>,
    pushes: Vec<u64>,
    /// `[expected, messages, complete, delivered, late, duplicates, out_of_order, unexpected]`
    fanout: [u64; 8],
    heartbeats: u64,
    attachments: u64,
}

/// The stall rule the bins were cut by (probe period) and are judged by.
#[derive(Serialize, Deserialize)]
struct RuleFile {
    threshold_us: u64,
    quorum: f64,
    bin_us: u64,
}

/// One stall bin: its index, probes seen and late, the tester's worst lag, and the late
/// spans kept (`[send_ms, answer_ms]`, the union of the late probes').
#[derive(Serialize, Deserialize)]
struct BinFile {
    index: usize,
    seen: u16,
    late: u16,
    lag_max_us: u32,
    samples: Vec<(u32, u32)>,
}

#[derive(Serialize, Deserialize)]
struct MsgFile {
    name: String,
    sent: u64,
    received: u64,
    timeouts: u64,
    ttlf: String,
    ttff: String,
}

#[derive(Serialize, Deserialize)]
struct ReadingFile {
    rss_bytes: u64,
    cpu_pct: f32,
    fds: u32,
    threads: Option<u32>,
    procs: u32,
}

/// The run data as JSON text.
pub fn to_json(data: &RunData) -> String {
    let file = File {
        format: FORMAT.into(),
        version: VERSION,
        soak_version: env!("CARGO_PKG_VERSION").into(),
        counters: counters_out(&data.counters),
        messages: data
            .messages
            .iter()
            .map(|m| MsgFile {
                name: m.name.clone(),
                sent: m.counters.sent,
                received: m.counters.received,
                timeouts: m.counters.timeouts,
                ttlf: encode(&m.ttlf),
                ttff: encode(&m.ttff),
            })
            .collect(),
        histograms: data
            .histograms()
            .iter()
            .map(|(name, h)| ((*name).to_string(), encode(h)))
            .collect(),
        close_codes: data.close_codes.clone(),
        abnormal_closes: data.abnormal_closes.clone(),
        stall_rule: {
            let r = data.bins.rule();
            RuleFile {
                threshold_us: r.threshold.as_micros() as u64,
                quorum: r.quorum,
                bin_us: r.bin.as_micros() as u64,
            }
        },
        bins: data
            .bins
            .all()
            .into_iter()
            .map(|(i, b)| {
                let samples = b
                    .late_samples()
                    .iter()
                    .map(|l| (l.send_ms, l.answer_ms))
                    .collect();
                BinFile {
                    index: i,
                    seen: b.seen,
                    late: b.late,
                    lag_max_us: b.lag_max_us,
                    samples,
                }
            })
            .collect(),
        target_readings: data.target_readings.iter().map(reading_out).collect(),
        target_work: data
            .target_work
            .iter()
            .map(|w| (w.messages, w.opened, w.closed))
            .collect(),
        target_gaps: data.target_gaps.clone(),
        tester_readings: data.tester_readings.iter().map(reading_out).collect(),
        dropped_samples: data.dropped_samples,
    };
    serde_json::to_string(&file).unwrap_or_default()
}

/// Reads run data back; the error says what is wrong with the text.
pub fn from_json(text: &str) -> Result<RunData, String> {
    let file: File = serde_json::from_str(text).map_err(|e| format!("not soak run data: {e}"))?;
    if file.format != FORMAT {
        return Err(format!("`format` is {:?}, not {FORMAT:?}", file.format));
    }
    if file.version != VERSION {
        return Err(format!(
            "run data version {} (soak {}); this soak reads version {VERSION}",
            file.version, file.soak_version
        ));
    }
    let r = &file.stall_rule;
    if r.bin_us == 0 || !(0.0..=1.0).contains(&r.quorum) {
        return Err(format!(
            "stall_rule: bin_us must be > 0 and quorum in 0..=1, not {} and {}",
            r.bin_us, r.quorum
        ));
    }
    let rule = StallRule {
        threshold: Duration::from_micros(r.threshold_us),
        quorum: r.quorum,
        bin: Duration::from_micros(r.bin_us),
    };
    let mut data = RunData::new(&[], rule);
    data.counters = counters_in(&file.counters)?;
    for m in &file.messages {
        data.messages.push(MsgData {
            name: m.name.clone(),
            counters: MsgCounters {
                sent: m.sent,
                received: m.received,
                timeouts: m.timeouts,
            },
            ttlf: decode(&m.ttlf).map_err(|e| format!("message {}: {e}", m.name))?,
            ttff: decode(&m.ttff).map_err(|e| format!("message {}: {e}", m.name))?,
        });
    }
    let mut histograms = file.histograms;
    for (name, h) in data.histograms_mut() {
        if let Some(text) = histograms.remove(name) {
            *h = decode(&text).map_err(|e| format!("histogram {name}: {e}"))?;
        }
    }
    data.close_codes = file.close_codes;
    data.abnormal_closes = file.abnormal_closes;
    let mut bins = Bins::new(rule);
    for b in file.bins {
        let mut bin = Bin::default();
        bin.seen = b.seen;
        bin.late = b.late;
        bin.lag_max_us = b.lag_max_us;
        for (send_ms, answer_ms) in b.samples {
            bin.join(Late { send_ms, answer_ms });
        }
        bins.merge_bin(b.index, &bin);
    }
    data.bins = bins;
    data.target_readings = file.target_readings.iter().map(reading_in).collect();
    data.target_work = file
        .target_work
        .iter()
        .map(|&(messages, opened, closed)| Work {
            messages,
            opened,
            closed,
        })
        .collect();
    data.target_gaps = file.target_gaps;
    data.tester_readings = file.tester_readings.iter().map(reading_in).collect();
    data.dropped_samples = file.dropped_samples;
    Ok(data)
}

fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = V2DeflateSerializer::new().serialize(h, &mut bytes);
    STANDARD.encode(bytes)
}

fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("not base64: {e}"))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram: {e:?}"))?;
    let mut out = new_histogram();
    out.add(&h).map_err(|e| format!("{e:?}"))?;
    Ok(out)
}

fn counters_out(c: &Counters) -> CountersFile {
    let f = &c.fanout;
    CountersFile {
        sent: c.sent,
        received: c.received,
        late: c.late,
        abandoned: c.abandoned,
        connect_attempts: c.connect_attempts,
        connects: c.connects,
        disconnects: c.disconnects,
        reconnects: c.reconnects,
        churned: c.churned,
        users_started: c.users_started,
        users_stopped: c.users_stopped,
        errors: ErrorKind::ALL
            .iter()
            .map(|k| (k.label().to_string(), c.errors[k.index()]))
            .collect(),
        pushes: c.pushes.to_vec(),
        fanout: [
            f.expected,
            f.messages,
            f.complete,
            f.delivered,
            f.late,
            f.duplicates,
            f.out_of_order,
            f.unexpected,
        ],
        heartbeats: c.heartbeats,
        attachments: c.attachments,
    }
}

fn counters_in(f: &CountersFile) -> Result<Counters, String> {
    let mut c = Counters {
        sent: f.sent,
        received: f.received,
        late: f.late,
        abandoned: f.abandoned,
        connect_attempts: f.connect_attempts,
        connects: f.connects,
        disconnects: f.disconnects,
        reconnects: f.reconnects,
        churned: f.churned,
        users_started: f.users_started,
        users_stopped: f.users_stopped,
        heartbeats: f.heartbeats,
        attachments: f.attachments,
        ..Counters::default()
    };
    for (label, n) in &f.errors {
        let kind = ErrorKind::ALL
            .iter()
            .find(|k| k.label() == label)
            .ok_or_else(|| format!("unknown error kind `{label}`"))?;
        c.errors[kind.index()] = *n;
    }
    for (slot, n) in c.pushes.iter_mut().zip(&f.pushes) {
        *slot = *n;
    }
    let [
        expected,
        messages,
        complete,
        delivered,
        late,
        duplicates,
        out_of_order,
        unexpected,
    ] = f.fanout;
    c.fanout = FanoutCounts {
        expected,
        messages,
        complete,
        delivered,
        late,
        duplicates,
        out_of_order,
        unexpected,
    };
    Ok(c)
}

fn reading_out((at, r): &(u32, Reading)) -> (u32, ReadingFile) {
    (
        *at,
        ReadingFile {
            rss_bytes: r.rss_bytes,
            cpu_pct: r.cpu_pct,
            fds: r.fds,
            threads: r.threads,
            procs: r.procs,
        },
    )
}

fn reading_in((at, r): &(u32, ReadingFile)) -> (u32, Reading) {
    (
        *at,
        Reading {
            rss_bytes: r.rss_bytes,
            cpu_pct: r.cpu_pct,
            fds: r.fds,
            threads: r.threads,
            procs: r.procs,
        },
    )
}
