//! The live view: an indicatif bar on a terminal, one plain line per interval otherwise
//! (CI logs), nothing with `--quiet`. Fed by interval snapshots on the writer thread.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::metrics::snapshot::{IntervalSnapshot, RunTotals};
use crate::report::summary::{Stalls, Summary};

/// How progress is shown.
pub enum Progress {
    /// Nothing (`--quiet`).
    Quiet,
    /// One line per interval on stdout.
    Lines {
        /// Planned length of the run.
        total: Duration,
        /// Planned users.
        users: u32,
    },
    /// A live bar on the terminal.
    Bar {
        /// The bar.
        bar: ProgressBar,
        /// Planned users.
        users: u32,
    },
}

impl Progress {
    /// Picks the display: quiet, a bar when stdout is a terminal, lines otherwise.
    pub fn new(quiet: bool, total: Duration, users: u32) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if !std::io::stdout().is_terminal() {
            return Progress::Lines { total, users };
        }
        let bar = ProgressBar::new(total.as_millis() as u64);
        let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        Progress::Bar { bar, users }
    }

    /// Shows one interval.
    pub fn interval(&mut self, s: &IntervalSnapshot, totals: &RunTotals) {
        match self {
            Progress::Quiet => {}
            Progress::Lines { total, users } => {
                let (done, total) = (s.end.as_secs_f64(), total.as_secs_f64());
                let line = describe(s, totals, *users);
                println!("[{done:>6.0}s/{total:.0}s] {line}");
            }
            Progress::Bar { bar, users } => {
                bar.set_position(s.end.as_millis() as u64);
                bar.set_message(describe(s, totals, *users));
            }
        }
    }

    /// Ends the display with the run's headline figures and where the results are.
    pub fn finish(&mut self, summary: &Summary, dir: &Path) {
        if let Progress::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
        if matches!(self, Progress::Quiet) {
            return;
        }
        let t = &summary.totals;
        println!(
            "soak: {} — sent {}, received {}, errors {}, connects {}/{}",
            summary.run.status.label(),
            t.sent,
            t.received,
            t.errors,
            summary.connects.successes,
            summary.connects.attempts
        );
        if let Some(l) = &summary.latency_ms.run {
            println!(
                "soak: latency ms  p50 {}  p95 {}  p99 {}  p99.9 {}  max {}",
                l.p50, l.p95, l.p99, l.p99_9, l.max
            );
        }
        for g in &summary.gates {
            let mark = if g.passed { "pass" } else { "FAIL" };
            println!("soak: gate {mark}  {}  — {}", g.gate, g.message);
        }
        if let Some(m) = &summary.memory {
            println!(
                "soak: memory verdict {} — {}",
                m.report.verdict.verdict, m.report.verdict.reason
            );
        }
        if let Some(stalls) = &summary.stalls {
            print_stalls(stalls);
        }
        if summary.tester.bottleneck {
            println!(
                "soak: WARNING {}",
                summary
                    .verdict
                    .reasons
                    .iter()
                    .find(|r| r.starts_with("soak itself"))
                    .map_or("", String::as_str)
            );
        }
        println!("soak: results in {}", dir.display());
    }
}

/// The stall count and the first five stalls blamed on the target.
fn print_stalls(stalls: &Stalls) {
    let tester_bound = if stalls.tester_bound_count > 0 {
        format!(
            ", plus {} while soak itself was late",
            stalls.tester_bound_count
        )
    } else {
        String::new()
    };
    println!(
        "soak: event-loop stalls {} (longest {:.0} ms, total {:.0} ms){tester_bound}",
        stalls.count, stalls.longest_ms, stalls.total_ms,
    );
    for s in stalls.list.iter().filter(|s| !s.stall.tester_bound).take(5) {
        println!(
            "soak:   at {} (+{:.1} s) for {:.0} ms",
            s.at, s.stall.start_s, s.stall.length_ms
        );
    }
}

fn describe(s: &IntervalSnapshot, totals: &RunTotals, users: u32) -> String {
    let secs = s.seconds();
    let rate = |n: u64| n as f64 / secs;
    let latency = match &s.latency {
        Some(l) => format!("p50 {:.1}ms p99 {:.1}ms", l.p50, l.p99),
        None => String::from("no replies"),
    };
    format!(
        "{:<9} users {}/{}  sent {:.0}/s  recv {:.0}/s  err {:.0}/s  {latency}  (errors so far {})",
        s.phase.label(),
        s.active_users,
        users,
        rate(s.counters.sent),
        rate(s.counters.received),
        rate(s.counters.error_total()),
        totals.counters.error_total(),
    )
}
