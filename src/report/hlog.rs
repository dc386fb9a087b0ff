//! `latency.hlog`: every interval's histograms in HdrHistogram's standard interval-log format
//! (V2, deflate-compressed, base64), one line per tag per interval, readable by
//! HdrHistogram's own log readers (Java `HistogramLogReader`, Rust `IntervalLogIterator`).
//!
//! Tags are `<message>.ttlf` (time to the complete reply) and, for streamed replies,
//! `<message>.ttff` (time to the first frame), `fanout` (a room message to each member,
//! `[rooms] deliver`), `fanout.first` and `fanout.last` (to a message's first member, and
//! to its last when every member got it). Values are microseconds; `BaseTime` is the
//! run's start, so each line's timestamp is its offset into the run.

use std::io::{self, Write};
use std::time::SystemTime;

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use crate::metrics::snapshot::IntervalSnapshot;

/// The legend line HdrHistogram's Java writer puts after the headers.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"";

/// Writes the log's headers: a comment, `StartTime` and `BaseTime` (both the run's start).
pub fn write_header<W: Write>(out: &mut W, started: SystemTime) -> io::Result<()> {
    let mut serializer = V2DeflateSerializer::new();
    IntervalLogWriterBuilder::new()
        .add_comment(
            "soak latency log: values in microseconds; tags <message>.ttlf, <message>.ttff, fanout, fanout.first and fanout.last",
        )
        .with_start_time(started)
        .with_base_time(started)
        .begin_log_with(out, &mut serializer)?;
    writeln!(out, "{LEGEND}")
}

/// Writes one interval's histograms.
pub fn write_interval<W: Write>(
    out: &mut W,
    serializer: &mut V2DeflateSerializer,
    snapshot: &IntervalSnapshot,
) -> io::Result<()> {
    let length = snapshot.end.saturating_sub(snapshot.start);
    for tagged in &snapshot.histograms {
        let mut writer = IntervalLogWriterBuilder::new().begin_log_with(out, serializer)?;
        writer
            .write_histogram(
                &tagged.histogram,
                snapshot.start,
                length,
                Tag::new(&tagged.tag),
            )
            .map_err(|err| io::Error::other(format!("latency.hlog: {err}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    use base64::Engine as _;

    use super::*;
    use crate::metrics::snapshot::{Counters, Tagged, new_histogram};
    use crate::plan::Phase;

    #[test]
    fn the_log_reads_back_with_tags_and_counts() {
        let mut h = new_histogram();
        for v in [1_000, 2_000, 3_000] {
            h.record(v).unwrap();
        }
        let snapshot = IntervalSnapshot {
            start: Duration::from_secs(1),
            end: Duration::from_secs(2),
            wall_end: SystemTime::UNIX_EPOCH,
            phase: Phase::Hold,
            active_users: 1,
            open_connections: 1,
            counters: Counters::default(),
            latency: None,
            ttff: None,
            fanout: None,
            last_member: None,
            messages: vec![],
            histograms: vec![Tagged {
                tag: "chat.ttlf".into(),
                histogram: h,
            }],
            timing: vec![],
            events: vec![],
            probe: None,
            lag_max_ms: 0.0,
            readings: vec![],
        };
        let mut out = Vec::new();
        write_header(
            &mut out,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        let mut serializer = V2DeflateSerializer::new();
        write_interval(&mut out, &mut serializer, &snapshot).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("#[BaseTime: 1700000000.000"), "{text}");
        assert!(text.contains(LEGEND));
        let mut seen = 0;
        for entry in IntervalLogIterator::new(&out) {
            if let LogEntry::Interval(ilh) = entry.unwrap() {
                assert_eq!(ilh.tag().unwrap().as_str(), "chat.ttlf");
                assert_eq!(ilh.start_timestamp(), Duration::from_secs(1));
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(ilh.encoded_histogram())
                    .unwrap();
                let h: hdrhistogram::Histogram<u64> =
                    Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                assert_eq!(h.len(), 3);
                seen += 1;
            }
        }
        assert_eq!(seen, 1);
    }
}
