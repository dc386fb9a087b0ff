//! Black-box tests through the built binary: exit codes 0, 2, 3 and 130.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::{closed_port, soak_bin, summary};

fn code(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_short_run_on_the_demo_target_exits_0() {
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = code(
        soak_bin()
            .args([
                "--users",
                "2",
                "--duration",
                "1s",
                "--ramp-up",
                "0s",
                "--ramp-down",
                "0s",
                "--quiet",
                "--out",
            ])
            .arg(out.path()),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary(out.path())["run"]["status"], "completed");
}

#[test]
fn a_bad_flag_value_exits_2() {
    let (code, _, stderr) = code(soak_bin().args(["--users", "many"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("--users"), "{stderr}");
}

#[test]
fn a_ramp_longer_than_the_run_exits_2() {
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = code(
        soak_bin()
            .args([
                "--duration",
                "10s",
                "--ramp-up",
                "8s",
                "--ramp-down",
                "5s",
                "--out",
            ])
            .arg(out.path()),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("longer than the whole run"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing was run"
    );
}

#[test]
fn a_profile_with_an_unknown_key_exits_2_naming_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("bad.toml");
    std::fs::write(&profile, "[load]\nusers = 2\nramp_upp = \"1s\"\n").unwrap();
    let (code, stdout, stderr) = code(soak_bin().arg("--profile").arg(&profile));
    assert_eq!(code, 2);
    let line = stderr.lines().next().unwrap_or_default();
    assert!(
        line.contains("bad.toml:3:1") && line.contains("ramp_upp") && line.contains("ramp_up"),
        "{stderr}"
    );
    assert!(stdout.is_empty());
}

#[test]
fn nothing_listening_at_the_url_exits_3_with_nothing_written() {
    let out = tempfile::tempdir().unwrap();
    let url = format!("ws://127.0.0.1:{}/ws", closed_port());
    let (code, _, stderr) = code(soak_bin().args(["--url", &url, "--out"]).arg(out.path()));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("unreachable") && stderr.contains("refused"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn sigint_mid_run_exits_130_with_results_written() {
    signal_mid_run_exits_130_with_results_written("-INT");
}

#[test]
fn sighup_mid_run_exits_130_with_results_written() {
    // The terminal of an SSH session closed: the run stops and keeps its results.
    signal_mid_run_exits_130_with_results_written("-HUP");
}

fn signal_mid_run_exits_130_with_results_written(signal: &str) {
    let out = tempfile::tempdir().unwrap();
    let mut child = soak_bin()
        .args([
            "--users",
            "3",
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
    // Wait for the first progress line: the run is under way.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("users"), "{first}");
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = stdout.lines().map(Result::unwrap).collect();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130), "{signal}: {rest:?}");
    let s = summary(out.path());
    assert_eq!(s["run"]["status"], "interrupted");
    assert_eq!(s["verdict"]["result"], "interrupted");
    assert!(s["totals"]["sent"].as_u64().unwrap() > 0);
}

#[test]
fn profiles_lists_the_built_ins() {
    let (code, stdout, _) = code(soak_bin().arg("profiles"));
    assert_eq!(code, 0);
    assert!(stdout.lines().any(|l| l.starts_with("smoke")), "{stdout}");
}

#[test]
fn a_ragged_csv_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(&csv, "name,room\nann,red\nbob\n").unwrap();
    let (code, _, stderr) = code(
        soak_bin()
            .arg("--data")
            .arg(&csv)
            .arg("--out")
            .arg(dir.path().join("out")),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("users.csv:3:") && stderr.contains("--data"),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists(), "nothing was run");
}

#[test]
fn a_bad_template_exits_2_naming_the_placeholder() {
    let (code, _, stderr) =
        code(soak_bin().args(["--message", r#"{"id": {{id}}, "who": "{{nmae}}"}"#]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("session.message (--message)") && stderr.contains("{{nmae}}"),
        "{stderr}"
    );
}

#[test]
fn a_bad_completion_rule_exits_2() {
    let (code, _, stderr) = code(soak_bin().args(["--complete", "done"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--complete") && stderr.contains("/done == true"),
        "{stderr}"
    );
}

#[test]
fn bad_steps_and_push_rules_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, says) in [
        (
            "[[session.on_connect]]\nmessage = 'hi'\nexpect = 'type == 1'\n",
            "session.on_connect[0].expect",
        ),
        (
            "[[session.on_connect]]\nmessage = 'hi'\nfail = '/type == \"error\"'\n",
            "needs an `expect` rule too",
        ),
        (
            "[[session.on_connect]]\nmessage = '{{nope}}'\n",
            "session.on_connect[0].message",
        ),
        ("[session]\npush = ['frames 2']\n", "session.push[0]"),
    ] {
        let path = dir.path().join("p.toml");
        std::fs::write(&path, toml).unwrap();
        let (code, _, stderr) = code(soak_bin().arg("--profile").arg(&path));
        assert_eq!(code, 2, "{toml}: {stderr}");
        assert!(stderr.contains(says), "{toml}: {stderr}");
    }
    let (code, _, stderr) = code(soak_bin().args(["--push", "/type ~ 3"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--push"), "{stderr}");
}

#[test]
fn out_of_range_durations_and_rates_are_exit_2_naming_the_flag() {
    let out = tempfile::tempdir().unwrap();
    let base = ["--duration", "2s", "--users", "2"];
    for (flag, value) in [
        ("--rate", "1e-30/h"),
        ("--rate", "1e-300/s"),
        ("--connect-rate", "1e-19/s"),
        ("--interval", "500000000000y"),
        ("--reply-timeout", "300000000000y"),
        ("--ramp-up", "500000000000y"),
        ("--baseline", "18446744073709551615s"),
        ("--cooldown", "500000000000y"),
    ] {
        let mut cmd = soak_bin();
        cmd.args(base);
        if flag != "--ramp-up" {
            cmd.args(["--ramp-up", "0s", "--ramp-down", "0s"]);
        }
        let (code, _, stderr) = code(cmd.args([flag, value, "--quiet", "--out"]).arg(out.path()));
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} named: {stderr}");
        assert!(
            stderr.contains("366 days") || stderr.contains("100000/s"),
            "the valid range is given: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing was run: {left:?}");
}

#[test]
fn data_and_profile_files_that_are_not_regular_files_are_exit_2_at_once() {
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    let mut cases = vec![vec!["--data".to_string(), "/dev/zero".to_string()]];
    if made.is_ok_and(|s| s.success()) {
        let f = fifo.display().to_string();
        cases.push(vec!["--data".into(), f.clone()]);
        cases.push(vec!["--profile".into(), f]);
    }
    for case in cases {
        let started = std::time::Instant::now();
        let (code, _, stderr) = code(
            soak_bin()
                .args(&case)
                .args(["--duration", "20s", "--quiet", "--out"])
                .arg(out.path().join("r")),
        );
        assert_eq!(code, 2, "{case:?}: {stderr}");
        assert!(stderr.contains("not a regular file"), "{case:?}: {stderr}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{case:?} hung"
        );
    }
}

/// Whether process `pid` is gone, waiting up to `within` (it is not ours to wait for: it
/// is soak's child, so its exit can only be seen in /proc).
fn gone_within(pid: &str, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its (dead) parent's reaper.
        if state.is_empty() || state.split(' ').nth(2) == Some("Z") {
            return true;
        }
        // No event to wait on: the process is soak's child (or an orphan), not ours.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[test]
fn a_started_target_dies_with_soak_even_after_kill_9() {
    let out = tempfile::tempdir().unwrap();
    let pidfile = out.path().join("target.pid");
    let port = closed_port();
    let bin = env!("CARGO_BIN_EXE_soak");
    let target = format!(
        "echo $$ > {}; exec {bin} mock --demo --listen 127.0.0.1:{port}",
        pidfile.display()
    );
    let mut child = soak_bin()
        .args([
            "--url",
            &format!("ws://127.0.0.1:{port}/ws"),
            "--users",
            "2",
        ])
        .args([
            "--duration",
            "60s",
            "--baseline",
            "0s",
            "--interval",
            "100ms",
        ])
        .arg("--target-cmd")
        .arg(&target)
        .arg("--out")
        .arg(out.path().join("r"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("users"), "the run is under way: {first}");
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    child.kill().unwrap(); // SIGKILL: soak gets no chance to stop it
    child.wait().unwrap();
    assert!(
        gone_within(&pid, std::time::Duration::from_secs(10)),
        "the target (pid {pid}) outlived soak"
    );
}

#[test]
fn ctrl_c_while_waiting_for_the_target_is_exit_130_and_stops_it() {
    let out = tempfile::tempdir().unwrap();
    let pidfile = out.path().join("target.pid");
    let port = closed_port();
    // A target that never accepts connections: soak waits for it (30 s by default).
    let target = format!("echo $$ > {}; exec sleep 60", pidfile.display());
    let mut child = soak_bin()
        .args([
            "--url",
            &format!("ws://127.0.0.1:{port}/ws"),
            "--duration",
            "20s",
        ])
        .arg("--target-cmd")
        .arg(&target)
        .arg("--out")
        .arg(out.path().join("r"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The pid file exists once soak has started the target, after its signal handlers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pid = loop {
        if let Ok(pid) = std::fs::read_to_string(&pidfile)
            && !pid.trim().is_empty()
        {
            break pid.trim().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the target never started"
        );
        std::thread::yield_now();
    };
    let started = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(exit.code(), Some(130));
    assert!(
        gone_within(&pid, std::time::Duration::from_secs(10)),
        "the target was stopped"
    );
}

#[test]
fn a_demo_target_blocked_for_an_hour_does_not_hold_soak_up() {
    let out = tempfile::tempdir().unwrap();
    let profile = out.path().join("stuck.toml");
    std::fs::write(&profile, "[demo]\nblock_per_message = \"1h\"\n").unwrap();
    let started = std::time::Instant::now();
    let (code, _, stderr) = code(
        soak_bin()
            .args(["--profile", profile.to_str().unwrap(), "--users", "1"])
            .args(["--duration", "2s", "--ramp-up", "0s", "--ramp-down", "0s"])
            .args(["--reply-timeout", "1s", "--probes", "0", "--quiet", "--out"])
            .arg(out.path().join("r")),
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        code, 1,
        "every reply timed out: the default gates fail: {stderr}"
    );
    assert!(stderr.contains("did not stop"), "{stderr}");
}

/// A 64 KiB tmpfs for the results (root only); unmounted when dropped, then its mount
/// point's temporary folder goes.
struct TinyDisk(std::path::PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl TinyDisk {
    fn mount() -> Option<TinyDisk> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(TinyDisk(path, dir))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_run_at_once_with_exit_3_and_keeps_what_was_written() {
    let Some(disk) = TinyDisk::mount() else {
        return;
    };
    let started = std::time::Instant::now();
    let (code, _, stderr) = code(
        soak_bin()
            .args([
                "--users",
                "5",
                "--rate",
                "20/s",
                "--duration",
                "60s",
                "--interval",
                "100ms",
            ])
            .args(["--ramp-up", "0s", "--ramp-down", "0s", "--quiet", "--out"])
            .arg(&disk.0),
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "went on for {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("No space left"), "{stderr}");
    assert!(
        stderr.contains("stopping the run"),
        "said at once: {stderr}"
    );
    let dir = std::fs::read_dir(&disk.0)
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_type().unwrap().is_dir())
        .unwrap()
        .path();
    assert!(
        !dir.join(".summary.json.tmp").exists(),
        "no temporary file left"
    );
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let s: serde_json::Value = serde_json::from_str(&text).expect("the last complete summary");
    assert!(s["totals"]["sent"].as_u64().unwrap() > 0);
}

#[test]
fn mock_on_every_interface_says_so() {
    let mut child = soak_bin()
        .args(["mock", "--demo", "--listen", "0.0.0.0:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WARNING") && stderr.contains("not loopback"),
        "{stderr}"
    );
}

#[test]
fn a_bad_port_or_header_is_bad_usage_and_an_out_file_says_so() {
    let out = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            vec!["--url", "ws://127.0.0.1:99999/ws"],
            "not a port number",
        ),
        (vec!["--url", "ws://127.0.0.1:0/ws"], "not a port number"),
        (
            vec!["--header", "X-Bad: a\u{7}b"],
            "characters a header cannot carry",
        ),
        (vec!["--header", "Bad(Name): x"], "header"),
    ] {
        let (code, _, stderr) = code(
            soak_bin()
                .args(&args)
                .args(["--duration", "20s", "--quiet", "--out"])
                .arg(out.path().join("r")),
        );
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let file = out.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (code, _, stderr) = code(
        soak_bin()
            .args([
                "--duration",
                "2s",
                "--ramp-up",
                "0s",
                "--ramp-down",
                "0s",
                "--quiet",
                "--out",
            ])
            .arg(&file),
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("is a file, not a folder"), "{stderr}");
}

#[test]
fn a_soak_profile_without_a_target_process_skips_its_baseline_and_cool_down() {
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (code, _, stderr) = code(
        soak_bin()
            .args([
                "--profile",
                "soak-1h",
                "--duration",
                "2s",
                "--ramp-up",
                "0s",
            ])
            .args(["--ramp-down", "0s", "--users", "2", "--out"])
            .arg(out.path()),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("baseline and cool-down") && stderr.contains("skipped"),
        "{stderr}"
    );
    let s = summary(out.path());
    let phases: Vec<&str> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        !phases.contains(&"baseline") && !phases.contains(&"cool-down"),
        "{phases:?}"
    );
}
