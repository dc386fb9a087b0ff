//! `events.jsonl`: one JSON object per line — connects, disconnects with close codes,
//! errors, and counted repeats (see `metrics::events` for how the log is bounded).

use std::io::{self, Write};
use std::time::SystemTime;

use serde::Serialize;

use crate::metrics::events::{Event, Record};
use crate::report::summary::timestamp;

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    elapsed_s: f64,
    #[serde(flatten)]
    event: &'a Event,
}

/// Writes one record as a line; `started` turns its offset into wall-clock time.
pub fn write_record<W: Write>(mut out: W, started: SystemTime, record: &Record) -> io::Result<()> {
    let line = Line {
        time: timestamp(started + record.at),
        elapsed_s: (record.at.as_secs_f64() * 1000.0).round() / 1000.0,
        event: &record.event,
    };
    serde_json::to_writer(&mut out, &line)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn records_are_one_json_object_per_line() {
        let record = Record {
            at: Duration::from_millis(1500),
            event: Event::Disconnect {
                user: 4,
                reason: "closed",
                code: Some(1011),
            },
        };
        let mut out = Vec::new();
        write_record(&mut out, SystemTime::UNIX_EPOCH, &record).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"time\":\"1970-01-01T00:00:01.500Z\",\"elapsed_s\":1.5,\"event\":\"disconnect\",\"user\":4,\"reason\":\"closed\",\"code\":1011}\n"
        );
    }
}
