//! Property tests of every parser and reader that takes outside input: durations, rates,
//! gates, JSON pointers, completion rules, templates, CSV data, profiles, and the streaming
//! frame-field reader. Properties: no panic on any input; errors say where; values that
//! parse round-trip; the frame reader agrees with `serde_json`. `PROPTEST_CASES` sets the
//! cases per property (256 here; `scripts/fuzz.sh` runs many more).

use proptest::prelude::*;
use serde_json::Value;

use soak::analysis::gates;
use soak::engine::complete::Complete;
use soak::engine::fields::{Fields, Found, MAX_FIELDS};
use soak::template::{Template, Vars};
use soak::units::{format_duration, parse_duration, parse_rate};

/// Strings that look like what users type: ASCII with digits, units, operators, braces.
fn typed() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "[0-9.e+-]{1,12}(ns|us|ms|s|m|h|d|y|/s|/m|/h|%|MB)?",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn durations_never_panic_and_round_trip(text in typed(), secs in 0u64..31_622_400, ms in 0u32..1000) {
        let _ = parse_duration(&text);
        let d = std::time::Duration::from_secs(secs) + std::time::Duration::from_millis(u64::from(ms));
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn rates_never_panic_and_round_trip(text in typed(), count in 0u32..100_000, unit in prop::sample::select(vec!["s", "m", "h"])) {
        let _ = parse_rate(&text);
        let rate = parse_rate(&format!("{count}/{unit}")).unwrap();
        let again = parse_rate(&rate.to_string()).unwrap();
        prop_assert!((again.per_second - rate.per_second).abs() <= rate.per_second * 1e-12);
        if let Some(period) = rate.period() {
            prop_assert!(period > std::time::Duration::ZERO);
        }
    }

    #[test]
    fn gates_never_panic_and_point_inside_the_expression(text in typed()) {
        if let Err(err) = gates::parse(&text) {
            prop_assert!(err.column <= text.chars().count(), "{err}");
            prop_assert!(err.to_string().contains("gate `"));
        }
    }

    #[test]
    fn valid_gates_parse_and_keep_their_expression(
        metric in prop::sample::select(vec!["p50", "p99", "max", "ttff_p99", "connect_p99", "stalls", "errors", "timeouts"]),
        op in prop::sample::select(vec!["<", "<=", ">", ">=", "==", "!="]),
        value in 0u32..100_000,
        unit in prop::sample::select(vec!["", "ms", "s"]),
    ) {
        let unit = if matches!(metric, "stalls" | "errors" | "timeouts") { "" } else { unit };
        let expr = format!("{metric} {op} {value}{unit}");
        let gate = gates::parse(&expr).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(gate.expr, expr);
    }

    #[test]
    fn pointers_and_completion_rules_never_panic(text in typed()) {
        let mut fields = Fields::default();
        let _ = fields.add(&text);
        if let Ok(rule) = Complete::parse(&text)
            && let Some(p) = rule.pointer()
        {
            prop_assert!(p.is_empty() || p.starts_with('/'), "{p}");
        }
    }

    #[test]
    fn templates_never_panic_and_plain_text_renders_as_itself(text in typed(), user in any::<u32>(), seq in any::<u64>()) {
        let columns = vec![String::from("name")];
        let row = vec![String::from("ann")];
        let vars = Vars { user, seq, id: seq, now_ms: 0, random: seq, row: &row, room: 0 };
        match Template::compile(&text, &columns) {
            Ok(t) => {
                let mut out = String::new();
                t.render(vars, &mut out);
                if !text.contains("{{") {
                    prop_assert_eq!(out, text);
                }
            }
            Err(err) => prop_assert!(!err.is_empty()),
        }
    }

    #[test]
    fn csv_data_files_never_panic_and_errors_name_the_file(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(err) = soak::data::load(&path) {
            prop_assert!(err.contains("users.csv"), "{err}");
        }
    }

    #[test]
    fn the_frame_reader_never_panics_on_any_text(text in any::<String>(), pointer in "(/[a-z0-9~]{0,4}){0,3}") {
        let mut fields = Fields::default();
        if let Some(_i) = fields.add(&pointer) {
            let mut frame: [Found; MAX_FIELDS] = Default::default();
            let _ = fields.read(&text, &mut frame);
        }
    }

    #[test]
    fn the_frame_reader_agrees_with_serde_json(value in json(), path in prop::collection::vec("[a-c0-2]", 0..3)) {
        let text = value.to_string();
        let pointer: String = path.iter().map(|p| format!("/{p}")).collect();
        let mut fields = Fields::default();
        let i = fields.add(&pointer).unwrap();
        let mut frame: [Found; MAX_FIELDS] = Default::default();
        fields.read(&text, &mut frame).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        let expected = value.pointer(&pointer);
        let agrees = match (&frame[i], expected) {
            (Found::Missing, None) => true,
            (Found::Null, Some(Value::Null)) => true,
            (Found::Bool(a), Some(Value::Bool(b))) => a == b,
            (Found::Number(a), Some(Value::Number(b))) => a == b,
            (Found::Str(a), Some(Value::String(b))) => a == b,
            (Found::Composite, Some(Value::Array(_) | Value::Object(_))) => true,
            _ => false,
        };
        prop_assert!(agrees, "{pointer} in {text}: {:?} vs {expected:?}", frame[i]);
    }
}

/// Arbitrary JSON with keys and indices the pointers above can reach.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~\u{e9}\u{1F600}\\\\\"]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-c0-2]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One profile key with a value that may or may not suit it.
fn profile_line() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "[load]\nusers",
        "[load]\nduration",
        "[load]\nramp_up",
        "[load]\nconnect_rate",
        "[session]\nrate",
        "[session]\nmodel",
        "[session]\nmessage",
        "[session]\ncorrelate",
        "[session]\ncomplete",
        "[session]\nreply_timeout",
        "[probes]\ncount",
        "[probes]\nquorum",
        "[process]\ninterval",
        "[process]\nleak_alpha",
        "[gates]\nchecks",
        "[output]\ninterval",
        "[target]\nurl",
        "[target]\nheaders",
        "[demo]\nblock_for",
        "[mocks]\nenable",
    ]);
    let values = prop_oneof![
        "[0-9]{1,6}",
        "\"[0-9]{1,4}(ms|s|m|h|/s)\"",
        "\"[ -~&&[^\"\\\\]]{0,20}\"",
        Just(String::from("[\"p99 < 1s\", \"stalls == 0\"]")),
        Just(String::from("true")),
        Just(String::from("-1")),
        Just(String::from("1e308")),
        Just(String::from("{ gate = \"errors == 0\", abort = true }")),
    ];
    (keys, values).prop_map(|(k, v)| format!("{k} = {v}\n"))
}

proptest! {
    #[test]
    fn profiles_never_panic_and_errors_name_the_file(
        lines in prop::collection::vec(profile_line(), 0..6),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let mut text = lines.concat().into_bytes();
        for (at, byte) in flips {
            if !text.is_empty() {
                let i = at.index(text.len());
                text[i] = byte;
            }
        }
        let text = String::from_utf8_lossy(&text);
        match soak::profile::parse(&text, "fuzz.toml") {
            Ok(spec) => {
                // What parses writes back out and parses to the same profile.
                let again = toml_round_trip(&spec);
                prop_assert_eq!(serde_json::to_value(&again).unwrap(), serde_json::to_value(&spec).unwrap());
            }
            Err(err) => prop_assert!(err.to_string().contains("fuzz.toml"), "{err}"),
        }
    }
}

fn toml_round_trip(spec: &soak::profile::ProfileSpec) -> soak::profile::ProfileSpec {
    let text = toml::to_string(spec).unwrap();
    soak::profile::parse(&text, "again.toml").unwrap()
}
