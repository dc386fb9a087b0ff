//! `junit.xml`: one test case per gate, plus the memory verdict and the stall check when
//! they were measured, so any CI shows them natively. Rendered from `summary.json`.

use std::io::{self, Write};

use serde_json::Value;

/// One test case.
struct Case {
    class: &'static str,
    name: String,
    failure: Option<String>,
    output: String,
}

/// Writes the JUnit XML for a summary.
pub fn render<W: Write>(summary: &Value, mut out: W) -> io::Result<()> {
    let cases = cases(summary);
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
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
        r#"<testsuites name="soak" tests="{}" failures="{failures}" time="{elapsed}">"#,
        cases.len()
    )?;
    writeln!(
        out,
        r#"  <testsuite name="soak.{}" tests="{}" failures="{failures}" errors="0" time="{elapsed}" timestamp="{}">"#,
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
        if let Some(f) = &c.failure {
            write!(
                out,
                r#"<failure message="{}" type="{}">{}</failure>"#,
                escape(f),
                c.class,
                escape(f)
            )?;
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
    let mut cases: Vec<Case> = summary
        .get("gates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|g| {
            let message = g
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            Case {
                class: "soak.gate",
                name: g
                    .get("gate")
                    .and_then(Value::as_str)
                    .unwrap_or("gate")
                    .to_string(),
                failure: (g.get("passed") != Some(&Value::Bool(true))).then(|| message.clone()),
                output: message,
            }
        })
        .collect();
    if let Some(m) = summary.get("memory").filter(|m| !m.is_null()) {
        let verdict = m
            .get("verdict")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let reason = m.get("reason").and_then(Value::as_str).unwrap_or("");
        let line = format!("{verdict}: {reason}");
        cases.push(Case {
            class: "soak.memory",
            name: String::from("memory verdict"),
            failure: (verdict == "leak").then(|| line.clone()),
            output: line,
        });
    }
    if let Some(s) = summary.get("stalls").filter(|s| !s.is_null()) {
        let count = s.get("count").and_then(Value::as_u64).unwrap_or(0);
        let longest = s.get("longest_ms").and_then(Value::as_f64).unwrap_or(0.0);
        let line =
            format!("{count} event-loop stall(s) of the target, the longest {longest:.0} ms");
        cases.push(Case {
            class: "soak.stalls",
            name: String::from("event-loop stalls"),
            failure: (count > 0).then(|| line.clone()),
            output: line,
        });
    }
    cases
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
    fn one_case_per_gate_plus_memory_and_stalls() {
        let summary = json!({
            "run": {"elapsed_s": 12.5, "profile": "smoke", "started_at": "2026-11-23T00:00:00.000Z"},
            "gates": [
                {"gate": "p99 < 250ms", "passed": true, "message": "p99 is 12 ms (threshold < 250 ms)"},
                {"gate": "error_rate < 0.1%", "passed": false, "message": "error_rate is 0.400 % (threshold < 0.100 %)"}
            ],
            "memory": {"verdict": "leak", "reason": "RSS grew 40 MB/h"},
            "stalls": {"count": 0, "longest_ms": 0.0}
        });
        let mut out = Vec::new();
        render(&summary, &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(
            xml.contains(r#"<testsuites name="soak" tests="4" failures="2""#),
            "{xml}"
        );
        assert!(xml.contains(r#"name="p99 &lt; 250ms""#));
        assert!(
            xml.contains(r#"<failure message="error_rate is 0.400 % (threshold &lt; 0.100 %)""#),
            "{xml}"
        );
        assert!(xml.contains(r#"name="memory verdict" time="0"><failure"#));
        assert!(!xml.contains(r#"name="event-loop stalls" time="0"><failure"#));
        assert_eq!(xml.matches("<testcase").count(), 4);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"a<b & "c"'"#), "a&lt;b &amp; &quot;c&quot;&apos;");
    }
}
