//! `memory.csv`: every sampler reading — the target's process tree and soak itself.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use crate::metrics::snapshot::ProcRow;
use crate::plan::PhaseSpan;
use crate::report::summary::timestamp;

/// The header row.
/// With a cgroup target, `target_rss_mb` is its anonymous memory (the verdict's) and the last
/// two columns its page cache and all it is charged; they are empty for a process tree.
pub const HEADER: &str = "time,elapsed_s,phase,target_rss_mb,target_cpu_pct,target_fds,target_threads,target_procs,tester_rss_mb,tester_cpu_pct,tester_fds,tester_threads,target_cache_mb,target_charged_mb";

/// Writes the header row.
pub fn write_header<W: Write>(mut out: W) -> io::Result<()> {
    writeln!(out, "{HEADER}")
}

/// Writes one reading; the target's cells are empty when no target process is sampled.
pub fn write_row<W: Write>(
    mut out: W,
    started: SystemTime,
    phases: &[PhaseSpan],
    row: &ProcRow,
) -> io::Result<()> {
    let at = Duration::from_millis(u64::from(row.at_ms));
    let phase = phases
        .iter()
        .find(|p| at >= p.start && at < p.end)
        .map_or("done", |p| p.phase.label());
    write!(
        out,
        "{},{:.3},{phase},",
        timestamp(started + at),
        at.as_secs_f64()
    )?;
    match row.target {
        Some(t) => write!(
            out,
            "{:.3},{:.1},{},{},{},",
            t.rss_mb(),
            t.cpu_pct,
            t.fds,
            Cell(t.threads),
            t.procs
        )?,
        None => write!(out, ",,,,,")?,
    }
    let me = row.tester;
    write!(
        out,
        "{:.3},{:.1},{},{}",
        me.rss_mb(),
        me.cpu_pct,
        me.fds,
        Cell(me.threads)
    )?;
    match row.charged {
        Some(c) => writeln!(
            out,
            ",{:.3},{:.3}",
            c.cache_bytes as f64 / 1e6,
            c.charged_bytes as f64 / 1e6
        ),
        None => writeln!(out, ",,"),
    }
}

/// A count, or an empty cell when the source does not give it.
pub struct Cell(pub Option<u32>);

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::sampler::Reading;

    #[test]
    fn rows_match_the_header_with_and_without_a_target() {
        let phases = Plan::new(1, Duration::from_secs(10), Duration::ZERO, Duration::ZERO)
            .with_margins(Duration::from_secs(5), Duration::ZERO)
            .phases();
        let r = Reading {
            rss_bytes: 12_345_678,
            cpu_pct: 3.25,
            fds: 9,
            threads: Some(4),
            procs: 2,
        };
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        write_row(
            &mut out,
            SystemTime::UNIX_EPOCH,
            &phases,
            &ProcRow {
                charged: Some(crate::sampler::Charged {
                    cache_bytes: 2_500_000,
                    charged_bytes: 20_000_000,
                }),
                at_ms: 1500,
                target: Some(r),
                tester: r,
            },
        )
        .unwrap();
        write_row(
            &mut out,
            SystemTime::UNIX_EPOCH,
            &phases,
            &ProcRow {
                charged: None,
                at_ms: 7000,
                target: None,
                tester: r,
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines[1],
            "1970-01-01T00:00:01.500Z,1.500,baseline,12.346,3.2,9,4,2,12.346,3.2,9,4,2.500,20.000"
        );
        assert_eq!(
            lines[2],
            "1970-01-01T00:00:07.000Z,7.000,hold,,,,,,12.346,3.2,9,4,,"
        );
        let cells = HEADER.split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == cells));
    }
}
