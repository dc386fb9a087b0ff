//! `timeseries.csv`: one row per interval, rates per second and that interval's percentiles.

use std::io::{self, Write};

use crate::metrics::snapshot::IntervalSnapshot;
use crate::report::summary::timestamp;

/// The header row.
pub const HEADER: &str = "time,elapsed_s,phase,active_users,open_connections,sent_per_s,received_per_s,errors_per_s,p50_ms,p95_ms,p99_ms,max_ms";

/// Writes the header row.
pub fn write_header<W: Write>(mut out: W) -> io::Result<()> {
    writeln!(out, "{HEADER}")
}

/// Writes one interval's row; percentile cells are empty when no reply arrived in it.
pub fn write_row<W: Write>(mut out: W, s: &IntervalSnapshot) -> io::Result<()> {
    let secs = s.seconds();
    let per_s = |n: u64| n as f64 / secs;
    write!(
        out,
        "{},{:.3},{},{},{},{:.2},{:.2},{:.2},",
        timestamp(s.wall_end),
        s.end.as_secs_f64(),
        s.phase.label(),
        s.active_users,
        s.open_connections,
        per_s(s.counters.sent),
        per_s(s.counters.received),
        per_s(s.counters.error_total()),
    )?;
    match &s.latency {
        Some(l) => writeln!(out, "{},{},{},{}", l.p50, l.p95, l.p99, l.max),
        None => writeln!(out, ",,,"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::metrics::snapshot::{Counters, LatencyStats};
    use crate::plan::Phase;

    #[test]
    fn rows_have_as_many_cells_as_the_header() {
        let mut s = IntervalSnapshot {
            start: Duration::from_millis(500),
            end: Duration::from_millis(1000),
            wall_end: SystemTime::UNIX_EPOCH,
            phase: Phase::Hold,
            active_users: 3,
            open_connections: 2,
            counters: Counters {
                sent: 5,
                ..Counters::default()
            },
            latency: None,
        };
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        write_row(&mut out, &s).unwrap();
        s.latency = Some(LatencyStats {
            count: 1,
            p50: 1.5,
            p90: 2.0,
            p95: 2.0,
            p99: 2.0,
            p99_9: 2.0,
            max: 2.5,
            mean: 1.6,
        });
        write_row(&mut out, &s).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        let cells = HEADER.split(',').count();
        assert!(
            lines.iter().all(|l| l.split(',').count() == cells),
            "{text}"
        );
        assert_eq!(
            lines[1],
            "1970-01-01T00:00:00.000Z,1.000,hold,3,2,10.00,0.00,0.00,,,,"
        );
        assert!(lines[2].ends_with(",1.5,2,2,2.5"), "{}", lines[2]);
    }
}
