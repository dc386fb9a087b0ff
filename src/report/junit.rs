//! `junit.xml`: one test case per gate, plus the memory verdict, the stall check and a
//! room run's fan-out when they were measured and no gate judges them (then marked skipped: "not gated"), so any
//! CI shows them natively and its failures are exactly the run's failed gates — the same
//! as the exit code, `verdict.result` and the report's badge. Rendered from `summary.json`.

use std::io::{self, Write};

use serde_json::Value;

/// How a test case ended.
enum End {
    Passed,
    Failed(String),
    Skipped(String),
}

/// One test case.
struct Case {
    class: &'static str,
    name: String,
    end: End,
    output: String,
}

/// Writes the JUnit XML for a summary.
pub fn render<W: Write>(summary: &Value, mut out: W) -> io::Result<()> {
    let cases = cases(summary);
    let failures = cases
        .iter()
        .filter(|c| matches!(c.end, End::Failed(_)))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.end, End::Skipped(_)))
        .count();
    let elapsed = summary
        .pointer("/run/elapsed_s")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let profile = summary
        .pointer("/run/profile")
        .and_then(Value::as_str)
        .unwrap_or("run");
    let started = summary
        .pointer("/run/started_at")
        .and_then(Value::as_str)
        .unwrap_or("");
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="soak" tests="{}" failures="{failures}" skipped="{skipped}" time="{elapsed}">"#,
        cases.len()
    )?;
    writeln!(
        out,
        r#"  <testsuite name="soak.{}" tests="{}" failures="{failures}" errors="0" skipped="{skipped}" time="{elapsed}" timestamp="{}">"#,
        escape(profile),
        cases.len(),
        escape(started)
    )?;
    for c in &cases {
        write!(
            out,
            r#"    <testcase classname="{}" name="{}" time="0">"#,
            c.class,
            escape(&c.name)
        )?;
        match &c.end {
            End::Passed => {}
            End::Failed(f) => write!(
                out,
                r#"<failure message="{}" type="{}">{}</failure>"#,
                escape(f),
                c.class,
                escape(f)
            )?,
            End::Skipped(why) => write!(out, r#"<skipped message="{}"/>"#, escape(why))?,
        }
        writeln!(
            out,
            "<system-out>{}</system-out></testcase>",
            escape(&c.output)
        )?;
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}

fn cases(summary: &Value) -> Vec<Case> {
    let gates: Vec<&Value> = summary
        .get("gates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let gated = |metrics: &[&str]| {
        gates.iter().any(|g| {
            g.get("skipped") != Some(&Value::Bool(true))
                && g.get("metric")
                    .and_then(Value::as_str)
                    .is_some_and(|m| metrics.contains(&m))
        })
    };
    let not_gated =
        "not gated: no gate of this run judges it (the exit code does not depend on it)";
    let mut cases: Vec<Case> = gates.iter().map(|g| gate_case(g)).collect();
    if let Some(m) = summary.get("memory").filter(|m| !m.is_null()) {
        let verdict = m
            .get("verdict")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let reason = m.get("reason").and_then(Value::as_str).unwrap_or("");
        if !gated(&["memory", "leak"]) {
            cases.push(Case {
                class: "soak.memory",
                name: String::from("memory verdict"),
                end: End::Skipped(not_gated.into()),
                output: format!("{verdict}: {reason}"),
            });
        }
    }
    if let Some(f) = summary.get("fanout").filter(|f| !f.is_null())
        && !gated(FANOUT_GATES)
    {
        cases.push(Case {
            class: "soak.fanout",
            name: String::from("room fan-out"),
            end: End::Skipped(not_gated.into()),
            output: fanout_line(f),
        });
    }
    if let Some(s) = summary.get("stalls").filter(|s| !s.is_null()) {
        let count = s.get("count").and_then(Value::as_u64).unwrap_or(0);
        let longest = s.get("longest_ms").and_then(Value::as_f64).unwrap_or(0.0);
        if !gated(&["stalls", "stall_longest"]) {
            cases.push(Case {
                class: "soak.stalls",
                name: String::from("event-loop stalls"),
                end: End::Skipped(not_gated.into()),
                output: format!(
                    "{count} event-loop stall(s) of the target, the longest {longest:.0} ms"
                ),
            });
        }
    }
    cases
}

/// The gates that judge a room's fan-out.
const FANOUT_GATES: &[&str] = &[
    "reach",
    "lost",
    "fanout_p50",
    "fanout_p95",
    "fanout_p99",
    "first_member_p99",
    "last_member_p50",
    "last_member_p95",
    "last_member_p99",
];

/// The fan-out in a line: reach, lost copies, and the latencies to each and the last member.
fn fanout_line(f: &Value) -> String {
    let n = |p: &str| f.pointer(p).and_then(Value::as_f64);
    let ms = |p: &str| n(p).map_or_else(|| String::from("-"), |v| format!("{v} ms"));
    format!(
        "reach {}, {} of {} copies lost; {} of {} messages reached every member; \
         fan-out p50 {}, p99 {}; last member p99 {}",
        n("/reach").map_or_else(|| String::from("-"), |r| format!("{:.2} %", r * 100.0)),
        n("/lost").unwrap_or(0.0),
        n("/expected").unwrap_or(0.0),
        n("/complete").unwrap_or(0.0),
        n("/messages").unwrap_or(0.0),
        ms("/fanout_ms/p50"),
        ms("/fanout_ms/p99"),
        ms("/last_member_ms/p99"),
    )
}

/// A gate's test case: failed, passed, or skipped (a default gate on what was not measured).
fn gate_case(g: &Value) -> Case {
    let message = g
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let default = g.get("default") == Some(&Value::Bool(true));
    let gate = g.get("gate").and_then(Value::as_str).unwrap_or("gate");
    let end = if g.get("skipped") == Some(&Value::Bool(true)) {
        End::Skipped(message.clone())
    } else if g.get("passed") == Some(&Value::Bool(true)) {
        End::Passed
    } else {
        End::Failed(message.clone())
    };
    Case {
        class: "soak.gate",
        name: if default {
            format!("{gate} (default gate)")
        } else {
            gate.to_string()
        },
        end,
        output: message,
    }
}

/// Escapes text for XML attributes and content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn failures_are_exactly_the_failed_gates() {
        let summary = json!({
            "run": {"elapsed_s": 12.5, "profile": "smoke", "started_at": "2026-11-23T00:00:00.000Z"},
            "gates": [
                {"gate": "p99 < 250ms", "metric": "p99", "passed": true, "message": "p99 is 12 ms (threshold < 250 ms)"},
                {"gate": "error_rate < 0.1%", "metric": "error_rate", "passed": false, "message": "error_rate is 0.400 % (threshold < 0.100 %)"}
            ],
            "memory": {"verdict": "leak", "reason": "RSS grew 40 MB/h"},
            "stalls": {"count": 3, "longest_ms": 300.0}
        });
        let mut out = Vec::new();
        render(&summary, &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(
            xml.contains(r#"<testsuites name="soak" tests="4" failures="1" skipped="2""#),
            "{xml}"
        );
        assert!(xml.contains(r#"name="p99 &lt; 250ms""#));
        assert!(
            xml.contains(r#"<failure message="error_rate is 0.400 % (threshold &lt; 0.100 %)""#),
            "{xml}"
        );
        // Not gated: shown, skipped, never a failure the exit code would not have.
        assert!(
            xml.contains(r#"name="memory verdict" time="0"><skipped"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"name="event-loop stalls" time="0"><skipped"#),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase").count(), 4);
    }

    #[test]
    fn a_gated_verdict_is_its_gate_and_a_default_gate_says_so() {
        let summary = json!({
            "gates": [
                {"gate": "stalls == 0", "metric": "stalls", "passed": false, "default": true, "skipped": false, "message": "stalls is 3 (threshold == 0)"},
                {"gate": "memory != leak", "metric": "memory", "passed": true, "default": true, "skipped": true, "message": "memory: not measured"}
            ],
            "stalls": {"count": 3, "longest_ms": 300.0}
        });
        let mut out = Vec::new();
        render(&summary, &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(xml.contains(r#"failures="1" skipped="1""#), "{xml}");
        assert!(
            xml.contains(r#"name="stalls == 0 (default gate)" time="0"><failure"#),
            "{xml}"
        );
        assert!(
            !xml.contains("event-loop stalls"),
            "the gate covers it: {xml}"
        );
    }

    #[test]
    fn a_room_run_shows_its_fan_out_unless_a_gate_judges_it() {
        let fanout = json!({"reach": 0.995, "lost": 5, "expected": 1000, "messages": 400,
            "complete": 396, "fanout_ms": {"p50": 3.1, "p99": 12.0},
            "last_member_ms": {"p99": 14.5}});
        let mut out = Vec::new();
        render(&json!({"gates": [], "fanout": fanout}), &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(
            xml.contains(r#"classname="soak.fanout" name="room fan-out" time="0"><skipped"#),
            "{xml}"
        );
        assert!(
            xml.contains("reach 99.50 %, 5 of 1000 copies lost; 396 of 400 messages"),
            "{xml}"
        );
        assert!(xml.contains("last member p99 14.5 ms"), "{xml}");
        let gated = json!({"gates": [{"gate": "reach >= 99%", "metric": "reach",
            "passed": true, "message": "reach is 99.5 %"}], "fanout": fanout});
        let mut out = Vec::new();
        render(&gated, &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(!xml.contains("room fan-out"), "the gate covers it: {xml}");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"a<b & "c"'"#), "a&lt;b &amp; &quot;c&quot;&apos;");
    }
}
