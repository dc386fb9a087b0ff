//! Tests of `gates.rs`.

use serde_json::json;

use super::*;

fn summary() -> Value {
    json!({
        "latency_ms": {"run": {"p99": 180.0, "p95": 90.0}, "hold": {"p99": 260.0}},
        "totals": {"error_ratio": 0.004, "errors": 4},
        "connects": {"success_ratio": 1.0},
        "messages": [{"name": "chat", "latency_ms": {"p99": 420.0}}],
        "stalls": {"count": 0},
        "memory": {"verdict": "plateau", "retained_mb": 12.5}
    })
}

fn check(expr: &str) -> GateResult {
    evaluate(&[parse(expr).unwrap()], &summary()).remove(0)
}

#[test]
fn valid_gates_evaluate_with_units() {
    assert!(check("p99 < 250ms").passed);
    assert!(check("p99 < 0.25s").passed);
    assert!(!check("p99{phase=hold} < 250ms").passed);
    assert!(check("p95 <= 1s").passed);
    assert!(check("error_rate < 0.5%").passed);
    assert!(!check("error_rate < 0.1%").passed);
    assert!(check("connect_success > 99%").passed);
    assert!(check("stalls == 0").passed);
    assert!(check("memory != leak").passed);
    assert!(check("leak != leak").passed);
    assert!(!check("memory == none").passed);
    assert!(check("retained_mb < 50MB").passed);
    assert!(!check("p99{message=chat} < 400ms").passed);
    assert!(check("p99{message=chat} < 500ms").passed);
}

#[test]
fn results_carry_threshold_actual_and_a_message() {
    let r = check("p99{message=chat} < 400ms");
    assert_eq!(r.actual, json!(420.0));
    assert_eq!(r.threshold, json!(400.0));
    assert!(
        r.message.contains("420") && r.message.contains("400"),
        "{}",
        r.message
    );
    let r = check("error_rate < 0.1%");
    assert!(r.message.contains("0.400 %"), "{}", r.message);
}

#[test]
fn unmeasured_metrics_fail_and_say_so() {
    let r = check("ttff_p99 < 5s");
    assert!(!r.passed);
    assert!(r.message.contains("not measured"));
    assert!(!check("p99{message=history} < 1s").passed);
}

#[test]
fn errors_point_at_the_offending_character() {
    let e = parse("p98 < 250ms").unwrap_err();
    assert_eq!(e.column, 0);
    assert!(
        e.message.contains("known metrics") && e.message.contains("p99"),
        "{e}"
    );
    let e = parse("p99 ~ 250ms").unwrap_err();
    assert_eq!(e.column, 4, "{e}");
    let e = parse("p99 < 250xs").unwrap_err();
    assert_eq!(e.column, 9, "{e}");
    assert!(e.message.contains("ms, s"), "{e}");
    let e = parse("p99{phase=ramp} < 1s").unwrap_err();
    assert_eq!(e.column, 4, "{e}");
    let e = parse("memory < leak").unwrap_err();
    assert!(e.message.contains("== or !="), "{e}");
    let e = parse("memory != leaky").unwrap_err();
    assert!(e.message.contains("plateau"), "{e}");
    assert!(parse("p99 <").is_err());
    assert!(parse("").is_err());
    let shown = parse("p99 ~ 1s").unwrap_err().to_string();
    assert!(shown.contains("`p99 ~` ← here"), "{shown}");
}
