//! The sampler and the memory verdict against real processes: a leaking target started by
//! `--target-cmd` is judged a leak, the same target without the leak is not, a target
//! that dies mid-run gives exit 3 with results written, and target lookups fail clearly.

use std::process::{Command, Stdio};

use crate::common::{run_dir, soak_bin, summary};

/// A free loopback port for a target soak starts (bound, then released just before).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the built soak against a demo target it starts itself; returns (exit code, out dir).
fn run_with_target(target_flags: &str, wrap: &str, extra: &str) -> (i32, tempfile::TempDir) {
    let port = free_port();
    let bin = env!("CARGO_BIN_EXE_soak");
    let cmd = format!("{wrap}{bin} mock --demo --listen 127.0.0.1:{port} {target_flags}");
    let out = tempfile::tempdir().unwrap();
    let args = format!(
        "--url ws://127.0.0.1:{port}/ws --users 10 --rate 10/s --duration 7s --ramp-up 500ms --ramp-down 500ms \
         --baseline 1s --cooldown 1s --sample-interval 100ms --probes 0 --quiet {extra}"
    );
    let status = soak_bin()
        .args(args.split_whitespace())
        .arg("--target-cmd")
        .arg(cmd)
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    (status.code().unwrap_or(-1), out)
}

#[test]
fn a_leaking_target_is_judged_a_leak() {
    // 20 KB kept per message × 100 messages/s: about 7 GB/h, far above the floors.
    let (code, out) = run_with_target("--demo-leak-per-message 20000", "", "");
    assert_eq!(code, 0);
    let s = summary(out.path());
    let m = &s["memory"];
    assert_eq!(m["verdict"], "leak", "{m}");
    let slope = m["slope_mb_per_hour"].as_f64().unwrap();
    assert!(slope > 3000.0, "slope {slope} MB/h for about 7200");
    // 20 KB × 100 messages/s over about 6 s of load stay behind: about 12 MB.
    assert!(m["retained_mb"].as_f64().unwrap() > 6.0, "{m}");
    assert!(m["baseline_mb"].as_f64().unwrap() > 0.0);
    let rows = std::fs::read_to_string(run_dir(out.path()).join("memory.csv")).unwrap();
    let phases: std::collections::BTreeSet<&str> = rows
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(2))
        .collect();
    assert!(
        ["baseline", "hold", "cool-down"]
            .iter()
            .all(|p| phases.contains(p)),
        "{phases:?}"
    );
}

#[test]
fn the_same_target_without_a_leak_is_not_a_leak() {
    let (code, out) = run_with_target("", "", "");
    assert_eq!(code, 0);
    let m = &summary(out.path())["memory"];
    assert_ne!(m["verdict"], "leak", "{m}");
    assert!(m["samples"].as_u64().unwrap() > 50);
}

#[test]
fn a_target_that_dies_mid_run_is_exit_3_with_results_written() {
    // `timeout` ends the target 3 s in; the run was planned for 9 s.
    let (code, out) = run_with_target("", "timeout 3 ", "");
    assert_eq!(code, 3);
    let s = summary(out.path());
    assert_eq!(s["run"]["status"], "target_exited");
    assert!(
        s["totals"]["sent"].as_u64().unwrap() > 0,
        "what was measured is kept"
    );
    let events = std::fs::read_to_string(run_dir(out.path()).join("events.jsonl")).unwrap();
    assert!(events.contains("\"event\":\"target_exit\""), "{events}");
}

#[test]
fn a_name_matching_several_processes_is_exit_2_listing_them() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("soak-sleeper-{}", std::process::id());
    let exe = dir.path().join(&name);
    std::fs::copy("/bin/sleep", &exe).unwrap();
    let mut a = Command::new(&exe).arg("30").spawn().unwrap();
    let mut b = Command::new(&exe).arg("30").spawn().unwrap();
    let out = soak_bin()
        .args([
            "--target-name",
            &name,
            "--duration",
            "1s",
            "--ramp-up",
            "0s",
            "--ramp-down",
            "0s",
        ])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let _ = (a.kill(), b.kill(), a.wait(), b.wait());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&a.id().to_string()) && stderr.contains(&b.id().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("--target-pid"), "{stderr}");
}

#[test]
fn a_missing_pid_is_exit_2() {
    let out = soak_bin()
        .args([
            "--target-pid",
            "999999999",
            "--duration",
            "1s",
            "--ramp-up",
            "0s",
            "--ramp-down",
            "0s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running process"));
}
