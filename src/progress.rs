//! The live view: an indicatif bar when stdout is a terminal, one plain line per interval
//! otherwise (CI logs), and at the end the run's headline figures and a PASS/FAIL line;
//! with `--quiet` only the results folder, as the last line. One of the aggregator's
//! sinks: it draws on a thread of its own, so a slow terminal never holds the aggregator.
//!
//! Everything is drawn on stdout, and the bar is chosen by whether *stdout* is a terminal:
//! `soak … 2>server.log` still shows the bar, and the target's output (which goes to
//! `target.log`, or above the bar with `--target-output console`) never tears it.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::aggregator::Sink;

use crate::metrics::snapshot::{IntervalSnapshot, LatencyStats, RunTotals};
use crate::report::summary::{Stalls, Summary};

/// The progress display running as a sink; ends when its sink has been dropped.
#[derive(Debug)]
pub struct Showing {
    thread: std::thread::JoinHandle<Progress>,
}

impl Showing {
    /// Waits for the intervals queued to be drawn, then ends the display with the run's
    /// figures (see [`Progress::finish`]); with no summary (the run failed to write one)
    /// only clears the bar.
    pub fn finish(self, summary: Option<&Summary>, dir: &Path) {
        let Ok(mut progress) = self.thread.join() else {
            return;
        };
        match summary {
            Some(s) => progress.finish(s, dir),
            None => {
                if let Progress::Bar { bar, .. } = &progress {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

/// How progress is shown.
pub enum Progress {
    /// Nothing but the results folder at the end (`--quiet`).
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
        let bar = ProgressBar::with_draw_target(
            Some(total.as_millis() as u64),
            ProgressDrawTarget::stdout(),
        );
        let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        Progress::Bar { bar, users }
    }

    /// The live bar, when one is drawn (other output must go above it).
    pub fn bar(&self) -> Option<&ProgressBar> {
        match self {
            Progress::Bar { bar, .. } => Some(bar),
            _ => None,
        }
    }

    /// The display as an aggregator sink drawing on its own thread, and the handle that
    /// ends it.
    pub fn spawn(self) -> std::io::Result<(Sink, Showing)> {
        let (tx, rx) = std::sync::mpsc::channel::<(IntervalSnapshot, RunTotals)>();
        let thread = std::thread::Builder::new()
            .name("soak-progress".into())
            .spawn(move || {
                let mut progress = self;
                for (snapshot, totals) in rx {
                    progress.interval(&snapshot, &totals);
                }
                progress
            })?;
        let sink: Sink = Box::new(move |s: &IntervalSnapshot, t: &RunTotals| {
            let _ = tx.send((s.clone(), t.clone()));
        });
        Ok((sink, Showing { thread }))
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

    /// Ends the display with the run's headline figures, where the report is, and a
    /// PASS/FAIL line (coloured on a terminal unless `NO_COLOR` is set); `--quiet` prints
    /// only the results folder.
    pub fn finish(&mut self, summary: &Summary, dir: &Path) {
        if let Progress::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
        if matches!(self, Progress::Quiet) {
            println!("{}", dir.display());
            return;
        }
        let colour = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        print!("{}", end_of_run(summary, dir, colour));
    }
}

/// The console's end of a run: totals, percentiles (TTFF too), the per-message table of a
/// scenario, gates, memory and stalls in words, the report's path, and PASS/FAIL.
pub fn end_of_run(summary: &Summary, dir: &Path, colour: bool) -> String {
    let mut out = String::new();
    let t = &summary.totals;
    let c = &summary.connects;
    let rate = t
        .error_ratio
        .map_or(String::from("n/a"), |r| format!("{:.2} %", r * 100.0));
    let _ = writeln!(
        out,
        "soak: {} after {:.1} s — sent {}, received {}, errors {} ({rate} of attempts), connects {}/{}",
        summary.run.status.label(),
        summary.run.elapsed_s,
        t.sent,
        t.received,
        t.errors,
        c.successes,
        c.attempts
    );
    let streamed = summary.ttff_ms.is_some();
    let label = if streamed {
        "last frame (TTLF)"
    } else {
        "latency"
    };
    match &summary.latency_ms.run {
        Some(l) => {
            let _ = writeln!(out, "soak: {label:<17} {}", percentiles(l));
        }
        None => {
            let _ = writeln!(out, "soak: {label:<17} no replies");
        }
    }
    if let Some(f) = summary.ttff_ms.as_ref().and_then(|t| t.run.as_ref()) {
        let _ = writeln!(out, "soak: {:<17} {}", "first frame (TTFF)", percentiles(f));
    }
    if summary.messages.len() > 1 {
        messages(&mut out, summary);
    }
    for g in &summary.gates {
        let mark = match (g.skipped, g.passed) {
            (true, _) => "skip",
            (false, true) => "pass",
            (false, false) => "FAIL",
        };
        let default = if g.default { " (default)" } else { "" };
        let _ = writeln!(
            out,
            "soak: gate {mark}  {}{default} — {}",
            g.gate, g.message
        );
    }
    if let Some(m) = &summary.memory {
        let _ = writeln!(
            out,
            "soak: memory verdict {} — {}",
            m.report.verdict.verdict, m.report.verdict.reason
        );
        if let Some(a) = &m.report.attribution {
            let _ = writeln!(out, "soak: what leaks: {}", a.reason);
        }
        if m.report.gaps > 0 {
            let _ = writeln!(
                out,
                "soak: {} readings of the target failed (gaps in memory.csv, left out of the verdict); the last: {}",
                m.report.gaps,
                m.report.last_gap.as_deref().unwrap_or("?")
            );
        }
    }
    if let Some(stalls) = &summary.stalls {
        print_stalls(&mut out, stalls);
    }
    if summary.tester.bottleneck {
        let why = summary
            .verdict
            .reasons
            .iter()
            .find(|r| r.starts_with("soak itself"))
            .map_or("", String::as_str);
        let _ = writeln!(out, "soak: WARNING {why}");
    }
    let _ = writeln!(out, "soak: report  {}", dir.join("report.html").display());
    let _ = writeln!(out, "soak: results {}", dir.display());
    let (word, paint) = match summary.verdict.result {
        "pass" => ("PASS", "32"),
        "fail" => ("FAIL", "31"),
        other => (other, "33"),
    };
    let why = summary.verdict.reasons.first().map_or("", String::as_str);
    if colour {
        let _ = writeln!(out, "\x1b[1;{paint}m{word}\x1b[0m  {why}");
    } else {
        let _ = writeln!(out, "{word}  {why}");
    }
    out
}

fn percentiles(l: &LatencyStats) -> String {
    format!(
        "p50 {:.1} ms  p95 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} replies)",
        l.p50, l.p95, l.p99, l.p99_9, l.max, l.count
    )
}

/// The per-message table of a scenario, like Locust's per-endpoint one.
fn messages(out: &mut String, summary: &Summary) {
    let width = summary
        .messages
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "soak:   {:<width$} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "message", "sent", "received", "timeouts", "p50 ms", "p99 ms"
    );
    for m in &summary.messages {
        let (p50, p99) = m
            .latency_ms
            .as_ref()
            .map_or((String::from("-"), String::from("-")), |l| {
                (format!("{:.1}", l.p50), format!("{:.1}", l.p99))
            });
        let _ = writeln!(
            out,
            "soak:   {:<width$} {:>9} {:>9} {:>9} {p50:>9} {p99:>9}",
            m.name, m.counts.sent, m.counts.received, m.counts.timeouts
        );
    }
}

/// The stall count and the first five stalls blamed on the target.
fn print_stalls(out: &mut String, stalls: &Stalls) {
    let tester_bound = if stalls.tester_bound_count > 0 {
        format!(
            ", plus {} while soak itself was late",
            stalls.tester_bound_count
        )
    } else {
        String::new()
    };
    if stalls.count == 0 {
        let _ = writeln!(
            out,
            "soak: event-loop stalls none — the target answered its probes in time{tester_bound}"
        );
        return;
    }
    let _ = writeln!(
        out,
        "soak: event-loop stalls {} (longest {:.0} ms, total {:.0} ms){tester_bound}",
        stalls.count, stalls.longest_ms, stalls.total_ms,
    );
    for s in stalls.list.iter().filter(|s| !s.stall.tester_bound).take(5) {
        let _ = writeln!(
            out,
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
