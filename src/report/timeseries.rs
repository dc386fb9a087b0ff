//! `timeseries.csv`: one row per interval, rates per second and that interval's percentiles.

use std::io::{self, Write};

use crate::metrics::snapshot::{IntervalSnapshot, MsgStats, ProcRow};
use crate::report::summary::timestamp;

/// The columns every run has.
pub const HEADER: &str = "time,elapsed_s,phase,active_users,open_connections,sent_per_s,received_per_s,errors_per_s,p50_ms,p95_ms,p99_ms,max_ms,probe_p99_ms,tester_lag_max_ms,tester_rss_mb,tester_cpu_pct";

/// The target process's columns, when one is sampled.
const TARGET: &str = ",target_rss_mb,target_cpu_pct,target_fds,target_threads";

/// Which optional columns a run's file has.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    /// Time-to-first-frame columns (streamed replies).
    pub ttff: bool,
    /// Per-message columns, by name (only for scenarios of two or more messages).
    pub messages: Vec<String>,
    /// Target process columns (when a target process is sampled).
    pub target: bool,
    /// A `pushes_per_s` column (when the profile names push rules).
    pub pushes: bool,
    /// Fan-out columns (when rooms' deliveries are measured).
    pub fanout: bool,
}

/// Writes the header row.
pub fn write_header<W: Write>(mut out: W, columns: &Columns) -> io::Result<()> {
    write!(out, "{HEADER}")?;
    if columns.target {
        write!(out, "{TARGET}")?;
    }
    if columns.ttff {
        write!(out, ",ttff_p50_ms,ttff_p99_ms")?;
    }
    for name in &columns.messages {
        write!(
            out,
            ",{name}_sent_per_s,{name}_received_per_s,{name}_timeouts_per_s,{name}_p50_ms,{name}_p99_ms"
        )?;
    }
    if columns.pushes {
        write!(out, ",pushes_per_s")?;
    }
    if columns.fanout {
        write!(
            out,
            ",fanout_p50_ms,fanout_p99_ms,last_member_p99_ms,delivered_per_s,reach"
        )?;
    }
    writeln!(out)
}

/// Writes one interval's row; percentile cells are empty when no reply arrived in it.
/// The memory and CPU cells carry `latest`, the newest sampler reading so far (readings
/// land a few ms either side of an interval's end, so an interval may hold none of its
/// own; `memory.csv` keeps every reading with its time). They are empty only before the
/// first reading.
pub fn write_row<W: Write>(
    mut out: W,
    columns: &Columns,
    s: &IntervalSnapshot,
    latest: Option<&ProcRow>,
) -> io::Result<()> {
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
        Some(l) => write!(out, "{},{},{},{}", l.p50, l.p95, l.p99, l.max)?,
        None => write!(out, ",,,")?,
    }
    match &s.probe {
        Some(p) => write!(out, ",{}", p.p99)?,
        None => write!(out, ",")?,
    }
    write!(out, ",{}", s.lag_max_ms)?;
    let last = s.readings.last().or(latest);
    match last {
        Some(r) => write!(out, ",{:.3},{:.1}", r.tester.rss_mb(), r.tester.cpu_pct)?,
        None => write!(out, ",,")?,
    }
    if columns.target {
        match last.and_then(|r| r.target) {
            Some(t) => write!(
                out,
                ",{:.3},{:.1},{},{}",
                t.rss_mb(),
                t.cpu_pct,
                t.fds,
                crate::report::memory::Cell(t.threads)
            )?,
            None => write!(out, ",,,,")?,
        }
    }
    if columns.ttff {
        match &s.ttff {
            Some(l) => write!(out, ",{},{}", l.p50, l.p99)?,
            None => write!(out, ",,")?,
        }
    }
    if !columns.messages.is_empty() {
        for m in &s.messages {
            message_cells(&mut out, m, secs)?;
        }
    }
    if columns.pushes {
        write!(out, ",{:.2}", per_s(s.counters.push_total()))?;
    }
    if columns.fanout {
        match &s.fanout {
            Some(l) => write!(out, ",{},{}", l.p50, l.p99)?,
            None => write!(out, ",,")?,
        }
        match &s.last_member {
            Some(l) => write!(out, ",{}", l.p99)?,
            None => write!(out, ",")?,
        }
        // Copies delivered in the interval over those expected of the messages sent in it.
        let f = &s.counters.fanout;
        write!(out, ",{:.2},", per_s(f.delivered))?;
        if f.expected > 0 {
            write!(
                out,
                "{:.4}",
                (f.delivered as f64 / f.expected as f64).min(1.0)
            )?;
        }
    }
    writeln!(out)
}

/// One scenario message's cells: its rates over `secs` and its latency.
fn message_cells<W: Write>(mut out: W, m: &MsgStats, secs: f64) -> io::Result<()> {
    let c = &m.counters;
    let per_s = |n: u64| n as f64 / secs;
    write!(
        out,
        ",{:.2},{:.2},{:.2}",
        per_s(c.sent),
        per_s(c.received),
        per_s(c.timeouts)
    )?;
    match &m.latency {
        Some(l) => write!(out, ",{},{}", l.p50, l.p99),
        None => write!(out, ",,"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::metrics::snapshot::{Counters, LatencyStats, MsgCounters, MsgStats};
    use crate::plan::Phase;

    /// A hold interval of one second with one user and nothing counted.
    fn quiet_second() -> IntervalSnapshot {
        IntervalSnapshot {
            start: Duration::ZERO,
            end: Duration::from_secs(1),
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
            histograms: vec![],
            timing: Vec::new(),
            events: vec![],
            probe: None,
            lag_max_ms: 0.0,
            readings: vec![],
        }
    }

    #[test]
    fn rows_have_as_many_cells_as_the_header() {
        let mut s = IntervalSnapshot {
            start: Duration::from_millis(500),
            end: Duration::from_millis(1000),
            active_users: 3,
            open_connections: 2,
            counters: Counters {
                sent: 5,
                ..Counters::default()
            },
            ..quiet_second()
        };
        let columns = Columns::default();
        let mut out = Vec::new();
        write_header(&mut out, &columns).unwrap();
        write_row(&mut out, &columns, &s, None).unwrap();
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
        write_row(&mut out, &columns, &s, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        let cells = HEADER.split(',').count();
        assert!(
            lines.iter().all(|l| l.split(',').count() == cells),
            "{text}"
        );
        assert_eq!(
            lines[1],
            "1970-01-01T00:00:00.000Z,1.000,hold,3,2,10.00,0.00,0.00,,,,,,0,,"
        );
        assert!(lines[2].ends_with(",1.5,2,2,2.5,,0,,"), "{}", lines[2]);
    }

    #[test]
    fn optional_columns_follow_the_header() {
        let columns = Columns {
            ttff: true,
            messages: vec!["chat".into(), "history".into()],
            target: true,
            pushes: true,
            fanout: true,
        };
        let stats = |sent| MsgStats {
            counters: MsgCounters {
                sent,
                received: 0,
                timeouts: 0,
            },
            latency: None,
            ttff: None,
        };
        let s = IntervalSnapshot {
            messages: vec![stats(8), stats(2)],
            ..quiet_second()
        };
        let mut out = Vec::new();
        write_header(&mut out, &columns).unwrap();
        write_row(&mut out, &columns, &s, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        let header: Vec<_> = lines[0].split(',').collect();
        let row: Vec<_> = lines[1].split(',').collect();
        assert_eq!(header.len(), row.len(), "{text}");
        let at = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(at("chat_sent_per_s"), "8.00");
        assert_eq!(at("history_sent_per_s"), "2.00");
        assert_eq!(at("ttff_p50_ms"), "");
    }

    #[test]
    fn a_row_with_no_reading_of_its_own_carries_the_latest() {
        let columns = Columns {
            target: true,
            ..Columns::default()
        };
        let reading = crate::sampler::Reading {
            rss_bytes: 42_000_000,
            cpu_pct: 12.5,
            fds: 17,
            threads: Some(4),
            procs: 1,
        };
        let latest = ProcRow {
            charged: None,
            at_ms: 990,
            target: Some(reading),
            tester: reading,
        };
        let s = quiet_second();
        let mut out = Vec::new();
        write_header(&mut out, &columns).unwrap();
        write_row(&mut out, &columns, &s, None).unwrap();
        write_row(&mut out, &columns, &s, Some(&latest)).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        let header: Vec<_> = lines[0].split(',').collect();
        let cell = |line: usize, name: &str| {
            let row: Vec<_> = lines[line].split(',').collect();
            row[header.iter().position(|h| *h == name).unwrap()].to_string()
        };
        assert_eq!(cell(1, "target_rss_mb"), "", "no reading yet: empty");
        assert_eq!(cell(2, "target_rss_mb"), "42.000");
        assert_eq!(cell(2, "target_fds"), "17");
        assert_eq!(cell(2, "tester_cpu_pct"), "12.5");
    }
}
