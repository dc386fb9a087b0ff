//! The nightly job's artefacts: gates and exit codes, JUnit, the HTML report, `soak report`,
//! `soak compare`, `soak lock`, the summary's schema, and redaction of secrets.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use soak::Outcome;
use soak_mocks::demo::DemoConfig;

use crate::common::{assert_valid, demo_target, run_dir, soak, soak_bin, summary};

fn delay(ms: u64) -> DemoConfig {
    DemoConfig {
        reply_delay: Duration::from_millis(ms),
        ..DemoConfig::default()
    }
}

/// Arguments for a short run against `url`.
fn short(url: &str) -> Vec<String> {
    format!(
        "--url {url} --users 3 --rate 10/s --duration 2s --ramp-up 0s --ramp-down 0s --probes 0"
    )
    .split_whitespace()
    .map(String::from)
    .collect()
}

fn code(cmd: &mut Command) -> i32 {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

#[test]
fn a_failing_gate_exits_1_with_a_junit_failure_and_a_passing_one_exits_0() {
    let out = tempfile::tempdir().unwrap();
    let base = [
        "--users",
        "2",
        "--duration",
        "1s",
        "--ramp-up",
        "0s",
        "--ramp-down",
        "0s",
        "--quiet",
        "--probes",
        "0",
    ];
    let failing = out.path().join("failing");
    assert_eq!(
        code(
            soak_bin()
                .args(base)
                .args(["--gate", "p99 < 1us", "--gate", "error_rate < 1%"])
                .arg("--out")
                .arg(&failing)
        ),
        1
    );
    let s = summary(&failing);
    assert_eq!(s["verdict"]["result"], "fail");
    assert_eq!(s["gates"][0]["passed"], false);
    assert_eq!(s["gates"][1]["passed"], true);
    let junit = std::fs::read_to_string(run_dir(&failing).join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"name="p99 &lt; 1us""#) && junit.contains("<failure"),
        "{junit}"
    );
    assert_eq!(junit.matches("<failure").count(), 1);

    let passing = out.path().join("passing");
    assert_eq!(
        code(
            soak_bin()
                .args(base)
                .args(["--gate", "p99 < 5s", "--gate", "memory != leak"])
                .arg("--out")
                .arg(&passing)
        ),
        1,
        "memory is not measured without a target: that gate fails"
    );
    let passing2 = out.path().join("passing2");
    assert_eq!(
        code(
            soak_bin()
                .args(base)
                .args(["--gate", "p99 < 5s", "--gate", "connect_success > 99%"])
                .arg("--out")
                .arg(&passing2)
        ),
        0
    );
    assert_eq!(summary(&passing2)["verdict"]["result"], "pass");
}

#[test]
fn a_bad_gate_exits_2_pointing_at_the_character() {
    let out = soak_bin().args(["--gate", "p99 ~ 250ms"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("column 5") && stderr.contains("`p99 ~` ← here"),
        "{stderr}"
    );
    let out = soak_bin()
        .args(["--gate", "latency < 1s"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("known metrics"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_self_contained_and_soak_report_reproduces_the_files() {
    let addr = demo_target(delay(5)).await;
    let out = tempfile::tempdir().unwrap();
    let args = short(&format!("ws://{addr}/ws"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    soak(out.path(), &args).await.unwrap();
    let dir = run_dir(out.path());
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for needle in ["src=", "href=", "<script", "<link", "@import"] {
        assert!(
            !html.contains(needle),
            "report.html references something outside itself: {needle}"
        );
    }
    assert!(
        html.matches("<svg").count() >= 6,
        "the charts are inline SVG"
    );
    let before = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    std::fs::remove_file(dir.join("report.html")).unwrap();
    std::fs::remove_file(dir.join("junit.xml")).unwrap();
    assert_eq!(code(soak_bin().arg("report").arg(&dir)), 0);
    assert!(dir.join("report.html").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("junit.xml")).unwrap(),
        before
    );
    assert_eq!(summary(out.path())["run"]["status"], "completed");
}

#[test]
fn soak_report_finishes_a_killed_run() {
    let out = tempfile::tempdir().unwrap();
    let mut child = soak_bin()
        .args([
            "--users",
            "2",
            "--duration",
            "60s",
            "--interval",
            "100ms",
            "--out",
        ])
        .arg(out.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..3 {
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap(); // three intervals written
    }
    child.kill().unwrap(); // SIGKILL: no chance to finish
    child.wait().unwrap();
    assert_eq!(
        summary(out.path())["run"]["status"],
        "running",
        "the last checkpoint"
    );
    assert_eq!(code(soak_bin().arg("report").arg(run_dir(out.path()))), 0);
    let s = summary(out.path());
    assert_eq!(s["run"]["status"], "killed");
    assert_eq!(s["verdict"]["result"], "incomplete");
    assert!(s["totals"]["sent"].as_u64().unwrap() > 0);
    assert!(run_dir(out.path()).join("report.html").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_flags_a_doubled_p99_and_lock_feeds_back_as_a_passing_profile() {
    let fast = demo_target(delay(20)).await;
    let slow = demo_target(delay(60)).await;
    let out = tempfile::tempdir().unwrap();
    for (name, addr) in [("fast", fast), ("slow", slow)] {
        let args = short(&format!("ws://{addr}/ws"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        soak(&out.path().join(name), &args).await.unwrap();
    }
    let (fast_dir, slow_dir) = (
        run_dir(&out.path().join("fast")),
        run_dir(&out.path().join("slow")),
    );
    let compare = |a: &Path, b: &Path| {
        soak_bin()
            .arg("compare")
            .arg(a)
            .arg(b)
            .arg("--tolerance")
            .arg("10%")
            .output()
            .unwrap()
    };
    let worse = compare(&fast_dir, &slow_dir);
    assert_eq!(worse.status.code(), Some(1));
    let table = String::from_utf8_lossy(&worse.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("p99 ms") && l.contains("REGRESSION")),
        "{table}"
    );
    let same = compare(
        &fast_dir.join("summary.json"),
        &fast_dir.join("summary.json"),
    );
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );

    // 100 %: the rerun must pass on a busy CI machine (the fast server's p99 is ~21 ms,
    // so its gate sits near 45 ms), and the slow server (60 ms) still fails it.
    let lock = soak_bin()
        .arg("lock")
        .arg(&fast_dir)
        .args(["--margin", "100%"])
        .output()
        .unwrap();
    assert_eq!(
        lock.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );
    let locked = fast_dir.join("locked.toml");
    let text = std::fs::read_to_string(&locked).unwrap();
    assert!(text.contains("p99 <") && text.contains("[gates]"), "{text}");
    let rerun = out.path().join("rerun");
    let outcome = soak(&rerun, &["--profile", locked.to_str().unwrap()])
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Passed, "{}", summary(&rerun)["verdict"]);
    assert!(summary(&rerun)["gates"].as_array().unwrap().len() >= 4);
    // The slow run fails the fast run's gates.
    let strict = out.path().join("strict");
    let slow_url = format!("ws://{slow}/ws");
    let outcome = soak(
        &strict,
        &["--profile", locked.to_str().unwrap(), "--url", &slow_url],
    )
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::GateFailed);
}

#[test]
fn the_schema_rejects_a_broken_summary() {
    let broken = serde_json::json!({"schema_version": 1, "run": {}});
    let caught = std::panic::catch_unwind(|| assert_valid(&broken));
    assert!(caught.is_err(), "the schema check must be able to fail");
}

#[test]
fn planted_secrets_appear_in_no_file_soak_writes() {
    const TOKEN: &str = "PLANTED-s3cret-7f3a";
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(&csv, format!("name,api_token\nann,{TOKEN}\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!(
        "env SERVICE_TOKEN={TOKEN} {} mock --demo --listen 127.0.0.1:{port}",
        env!("CARGO_BIN_EXE_soak")
    );
    let out = dir.path().join("out");
    let output = soak_bin()
        .args([
            "--url",
            &format!(
                "ws://user:{TOKEN}@127.0.0.1:{port}/ws?token={TOKEN}&room=1#access_token={TOKEN}"
            ),
        ])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--header", &format!("X-Api-Key: {TOKEN}")])
        .arg("--data")
        .arg(&csv)
        .args(["--message", r#"{"id": {{id}}, "auth": "{{api_token}}"}"#])
        .args(["--target-cmd", &target])
        .args([
            "--users",
            "2",
            "--duration",
            "2s",
            "--ramp-up",
            "0s",
            "--ramp-down",
            "0s",
            "--baseline",
            "0s",
            "--cooldown",
            "0s",
        ])
        .args(["--gate", "p99 < 10s", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let s = summary(&out);
    assert!(
        s["totals"]["received"].as_u64().unwrap() > 0,
        "the run worked with its secrets"
    );
    let mut checked = 0;
    for entry in std::fs::read_dir(run_dir(&out)).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "{} contains the planted secret",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 7, "every output file was checked ({checked})");
    for stream in [&output.stdout, &output.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains(TOKEN),
            "console output contains the secret"
        );
    }
}
