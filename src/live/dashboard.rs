//! The live dashboard's page: `report.html`'s charts and tables rendered from the run so
//! far, under a bar with the phase, elapsed and remaining time and the verdict so far.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::metrics::snapshot::{IntervalSnapshot, ProcRow, RunTotals};
use crate::report::html::{self, Table};
use crate::report::junit::escape;
use crate::report::summary::{self, RunMeta, Status};
use crate::report::timeseries::{self, Columns};
use crate::report::{memory, verdict};

/// Rows the live charts keep: older intervals are thinned to every other one past this.
const MAX_ROWS: usize = 1200;

/// One state of the page, sent to every open browser.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Intervals closed so far.
    pub intervals: u64,
    /// The phase now (`starting` before the first interval, `ended` after the run).
    pub phase: String,
    /// Seconds since the run's start.
    pub elapsed_s: f64,
    /// Seconds of the plan left.
    pub remaining_s: f64,
    /// `pass` or `fail` so far (the gates on the run so far), or the final verdict.
    pub verdict: String,
    /// Whether the run is over (then `verdict` is final and the report is written).
    pub ended: bool,
    /// The report's body as of now.
    pub body: String,
}

/// What the page is drawn from.
#[derive(Debug)]
pub struct Dashboard {
    meta: RunMeta,
    columns: Columns,
    planned: Duration,
    timeseries: Table,
    memory: Table,
    latest: Option<ProcRow>,
    intervals: u64,
    line: Vec<u8>,
}

impl Dashboard {
    /// The dashboard of a run not yet started.
    pub fn new(meta: RunMeta, columns: Columns, planned: Duration) -> Dashboard {
        let (mut ts, mut mem) = (Vec::new(), Vec::new());
        // Writing into a Vec cannot fail.
        let _ = timeseries::write_header(&mut ts, &columns);
        let _ = memory::write_header(&mut mem);
        let mut timeseries = Table::default();
        timeseries.push_line(&String::from_utf8_lossy(&ts));
        let mut memory = Table::default();
        memory.push_line(&String::from_utf8_lossy(&mem));
        Dashboard {
            meta,
            columns,
            planned,
            timeseries,
            memory,
            latest: None,
            intervals: 0,
            line: Vec::new(),
        }
    }

    /// The page before the first interval.
    pub fn first(&self) -> Page {
        self.page(&RunTotals::default(), "starting")
    }

    /// Adds one interval's rows (drawn by the next [`Dashboard::page`]).
    pub fn add(&mut self, s: &IntervalSnapshot) {
        self.intervals += 1;
        for row in &s.readings {
            self.line.clear();
            let _ = memory::write_row(&mut self.line, self.meta.started_at, &self.meta.phases, row);
            self.memory.push_line(&String::from_utf8_lossy(&self.line));
        }
        if let Some(row) = s.readings.last() {
            self.latest = Some(*row);
        }
        self.line.clear();
        let _ = timeseries::write_row(&mut self.line, &self.columns, s, self.latest.as_ref());
        self.timeseries
            .push_line(&String::from_utf8_lossy(&self.line));
        self.timeseries.thin(MAX_ROWS);
        self.memory.thin(2 * MAX_ROWS);
    }

    /// The page once the run is over: its final summary.
    pub fn ended(&self, summary: &Value) -> Page {
        let elapsed_s = summary
            .pointer("/run/elapsed_s")
            .and_then(Value::as_f64)
            .unwrap_or_default();
        let mut body = String::with_capacity(256 * 1024);
        html::body(&mut body, summary, &self.timeseries, &self.memory);
        Page {
            intervals: self.intervals,
            phase: String::from("ended"),
            elapsed_s,
            remaining_s: 0.0,
            verdict: summary
                .pointer("/verdict/result")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_owned(),
            ended: true,
            body,
        }
    }

    /// The page as of the run's totals `t`, in `phase`.
    pub fn page(&self, t: &RunTotals, phase: &str) -> Page {
        let mut s = summary::build(&self.meta, t, Status::Running, SystemTime::now());
        verdict::apply_gates(&mut s, &self.meta.gates);
        let so_far = if s.gates.iter().any(|g| !g.passed) {
            "fail"
        } else {
            "pass"
        };
        let json = serde_json::to_value(&s).unwrap_or(Value::Null);
        let mut body = String::with_capacity(256 * 1024);
        html::body(&mut body, &json, &self.timeseries, &self.memory);
        Page {
            intervals: self.intervals,
            phase: phase.to_owned(),
            elapsed_s: t.elapsed.as_secs_f64(),
            remaining_s: self.planned.saturating_sub(t.elapsed).as_secs_f64(),
            verdict: String::from(so_far),
            ended: false,
            body,
        }
    }
}

/// The whole document for `GET /`: the page as it is now, and the script that keeps it
/// current from `/events` (inline; nothing is fetched from anywhere else).
pub fn document(page: &Page, profile: &str) -> String {
    let mut state = serde_json::to_value(page).unwrap_or(Value::Null);
    if let Some(o) = state.as_object_mut() {
        o.remove("body");
    }
    // `</script>` inside the JSON would end the script early.
    let state = state.to_string().replace("</", "<\\/");
    format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>soak live — {profile}</title>
<style>{style}
#live{{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:8px 0;margin-bottom:8px;z-index:1;font-size:15px}}
#live b{{margin-right:16px}}#live .dot{{display:inline-block;width:10px;height:10px;border-radius:5px;background:#2c9f2c;margin-right:6px}}
#live.lost .dot{{background:#d62728}}#live.ended .dot{{background:#888}}</style></head><body>
<div id="live"><span class="dot"></span><span id="state">LIVE</span> · phase <b id="phase"></b> elapsed <b id="elapsed"></b> remaining <b id="remaining"></b>
<span id="vlabel">verdict so far</span> <span id="verdict" class="verdict"></span> <span id="link"></span> <small id="conn"></small></div>
<div id="report">{body}</div>
<script>
(function () {{
  var $ = function (id) {{ return document.getElementById(id); }};
  function hms(s) {{
    s = Math.max(0, Math.round(s));
    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, x = s % 60;
    return h + ':' + (m < 10 ? '0' : '') + m + ':' + (x < 10 ? '0' : '') + x;
  }}
  function show(p) {{
    var live = $('live');
    live.dataset.phase = p.phase;
    live.dataset.elapsed = p.elapsed_s;
    live.dataset.intervals = p.intervals;
    live.dataset.verdict = p.verdict;
    live.dataset.status = p.ended ? 'ended' : 'running';
    $('phase').textContent = p.phase;
    $('elapsed').textContent = hms(p.elapsed_s);
    $('remaining').textContent = hms(p.remaining_s);
    var v = $('verdict');
    v.textContent = p.verdict;
    v.className = 'verdict v-' + p.verdict;
    if (p.ended) {{
      live.className = 'ended';
      $('state').textContent = 'ENDED';
      $('vlabel').textContent = 'final verdict';
      $('link').innerHTML = '· <a href="report">report.html</a>';
    }}
    if (p.body !== undefined) $('report').innerHTML = p.body;
  }}
  show({state});
  if (!window.EventSource) return;
  var events = new EventSource('events');
  events.addEventListener('page', function (e) {{ $('live').classList.remove('lost'); $('conn').textContent = ''; show(JSON.parse(e.data)); }});
  events.onerror = function () {{ if ($('live').dataset.status !== 'ended') {{ $('live').classList.add('lost'); $('conn').textContent = 'reconnecting…'; }} }};
}})();
</script></body></html>
"#,
        profile = escape(profile),
        style = html::STYLE,
        body = page.body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_carries_the_state_and_never_ends_its_script_early() {
        let page = Page {
            intervals: 2,
            phase: String::from("hold"),
            elapsed_s: 2.0,
            remaining_s: 8.0,
            verdict: String::from("pass"),
            ended: false,
            body: String::from("<h1>soak — </script><b>x</b></h1>"),
        };
        let doc = document(&page, "smoke</title>");
        assert!(doc.contains("soak live — smoke&lt;/title&gt;"), "{doc}");
        assert!(doc.contains(r#""phase":"hold""#), "{doc}");
        let script = &doc[doc.find("<script>").unwrap()..];
        assert_eq!(script.matches("</script>").count(), 1, "{script}");
        assert!(
            !doc.contains("http://") && !doc.contains("https://"),
            "nothing from the network"
        );
    }
}
