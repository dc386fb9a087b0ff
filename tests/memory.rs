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
    let rate = if extra.contains("--rate") {
        ""
    } else {
        "--rate 10/s"
    };
    let args = format!(
        "--url ws://127.0.0.1:{port}/ws --users 10 {rate} --duration 7s --ramp-up 500ms --ramp-down 500ms \
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
    let (code, out) = run_with_target(
        "--demo-leak-per-message 20000",
        "",
        "--gate leak_per_message_kb<1 --gate leak_per_connection_kb<1",
    );
    let s = summary(out.path());
    let m = &s["memory"];
    assert_eq!(m["verdict"], "leak", "{m}");
    // What leaks: per message, within 25 % of the 20,000 bytes (19.5 KiB) the demo keeps.
    let a = &m["attribution"];
    assert_claims(a, "message", 19.53);
    assert!(a["reason"].as_str().unwrap().contains("per message"), "{a}");
    assert_eq!(m["leak_per_message_kb"], a["kib_per_unit"]);
    assert_eq!(m["leak_per_connection_kb"], 0.0);
    // The per-message gate fails the run (exit 1); the per-connection one passes.
    assert_eq!(code, 1);
    let gates = s["gates"].as_array().unwrap();
    let passed =
        |metric: &str| gates.iter().find(|g| g["metric"] == metric).unwrap()["passed"].clone();
    assert_eq!(passed("leak_per_message_kb"), false, "{gates:?}");
    assert_eq!(passed("leak_per_connection_kb"), true, "{gates:?}");
    let verdict = s["verdict"]["reasons"].to_string();
    assert!(verdict.contains("retained per message"), "{verdict}");
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
    let (code, out) = run_with_target("", "", "--gate leak_per_message_kb<1");
    assert_eq!(code, 0);
    let m = &summary(out.path())["memory"];
    assert_ne!(m["verdict"], "leak", "{m}");
    assert!(m["samples"].as_u64().unwrap() > 50);
    // No leak, so nothing is attributed and nothing is kept per message.
    assert!(m["attribution"].is_null(), "{m}");
    assert_eq!(m["leak_per_message_kb"], 0.0);
}

#[test]
fn memory_kept_per_closed_connection_under_churn_is_attributed_to_closed_connections() {
    // No messages; each connection lives 200 ms; the demo keeps 100,000 bytes (97.7 KiB)
    // per connection that closed: about 50 closes/s × 100 KB.
    let (code, out) = run_with_target(
        "--demo-leak-per-close 100000",
        "",
        "--rate 0/s --lifetime 200ms",
    );
    assert_eq!(code, 0);
    let m = &summary(out.path())["memory"];
    assert_eq!(m["verdict"], "leak", "{m}");
    let a = &m["attribution"];
    assert_claims(a, "closed_connection", 97.66);
    assert!(
        a["fits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["cause"] != "message"),
        "no messages were sent, so none is fitted: {a}"
    );
    assert_eq!(m["leak_per_message_kb"], 0.0);
    assert_eq!(m["leak_per_connection_kb"], a["kib_per_unit"]);
}

/// The leak-hunt profile, shortened: 500 ms windows of talk (20 msg/s a user) and churn
/// (100 ms lifetimes); the demo leaks with `flags`. The run's attribution.
fn leak_hunt(flags: &str) -> serde_json::Value {
    let (code, out) = run_with_target(
        flags,
        "",
        "--profile leak-hunt --alternate 500ms --lifetime 100ms --rate 20/s",
    );
    assert_eq!(code, 1, "leak-hunt's default gate: memory != leak");
    let m = summary(out.path())["memory"].clone();
    assert_eq!(m["verdict"], "leak", "{m}");
    let a = m["attribution"].clone();
    // Both causes moved during the hold, at different times: both were fitted.
    let fitted: Vec<&str> = a["fits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["cause"].as_str().unwrap())
        .collect();
    assert!(
        fitted.contains(&"message") && fitted.contains(&"closed_connection"),
        "{a}"
    );
    a
}

/// Asserts the attribution `a` claims `cause` at `kib` per unit, within 25 %.
fn assert_claims(a: &serde_json::Value, cause: &str, kib: f64) {
    assert_eq!(a["cause"], cause, "{a}");
    let got = a["kib_per_unit"].as_f64().unwrap();
    assert!(
        (got - kib).abs() < kib * 0.25,
        "{got} KiB per {cause} for {kib}: {a}"
    );
}

#[test]
fn leak_hunt_tells_a_per_message_leak_while_connections_churn_too() {
    // 20,000 bytes a message: 19.5 KiB.
    assert_claims(
        &leak_hunt("--demo-leak-per-message 20000"),
        "message",
        19.53,
    );
}

#[test]
fn leak_hunt_tells_a_per_connection_leak_while_messages_flow_too() {
    // 100,000 bytes a closed connection: 97.7 KiB.
    let a = leak_hunt("--demo-leak-per-close 100000");
    assert_claims(&a, "closed_connection", 97.66);
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

/// A memory cgroup made for a test (v1's memory controller, or v2 where it has one);
/// the processes put in it are killed and the group removed when dropped.
struct TestCgroup(std::path::PathBuf);

impl TestCgroup {
    fn make(name: &str) -> Option<TestCgroup> {
        let tag = format!("soak-test-{}-{name}", std::process::id());
        let v2_has_memory = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"));
        let parent = if v2_has_memory {
            "/sys/fs/cgroup"
        } else {
            "/sys/fs/cgroup/memory"
        };
        let path = std::path::Path::new(parent).join(tag);
        match std::fs::create_dir(&path) {
            Ok(()) => Some(TestCgroup(path)),
            Err(err) => {
                let why = format!("cannot create a memory cgroup under {parent}: {err}");
                assert!(std::env::var_os("CI").is_none(), "{why} (CI runs as root)");
                eprintln!("skipped: {why}");
                None
            }
        }
    }

    /// Puts process `pid` in the group.
    fn add(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let procs = std::fs::read_to_string(self.0.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20)); // the kernel reaps first
        }
    }
}

/// A demo target (leaking `leak` bytes a message) and a page-cache writer (80 MB over the
/// run, into a file) in a fresh cgroup; soak samples the cgroup. (exit code, out dir).
fn run_in_cgroup(name: &str, leak: u64) -> Option<(i32, tempfile::TempDir)> {
    let group = TestCgroup::make(name)?;
    let port = free_port();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["mock", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--demo-leak-per-message", &leak.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    group.add(demo.id());
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(demo.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("listening"), "{line}");
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("cache.bin");
    let writer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {procs}; sleep 1.5; i=0; while [ $i -lt 40 ]; do dd if=/dev/zero of={f} bs=1M count=2 oflag=append conv=notrunc status=none; i=$((i+1)); sleep 0.1; done",
            procs = group.0.join("cgroup.procs").display(),
            f = file.display()
        ))
        .spawn()
        .unwrap();
    let args = format!(
        "--url ws://127.0.0.1:{port}/ws --users 10 --rate 10/s --duration 8s --ramp-up 500ms --ramp-down 500ms \
         --baseline 1s --cooldown 1s --sample-interval 100ms --probes 0 --quiet"
    );
    let status = soak_bin()
        .args(args.split_whitespace())
        .arg("--target-cgroup")
        .arg(&group.0)
        .arg("--out")
        .arg(out.path().join("r"))
        .status()
        .unwrap();
    let mut writer = writer;
    let _ = writer.kill();
    let _ = writer.wait();
    let _ = demo.kill();
    let _ = demo.wait();
    drop(group);
    Some((status.code().unwrap_or(-1), out))
}

/// The run's target page cache at its first and last reading, MB.
fn cache_growth(out: &std::path::Path) -> f64 {
    let text = std::fs::read_to_string(run_dir(out).join("memory.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == "target_cache_mb").unwrap();
    let cells: Vec<f64> = lines
        .filter_map(|l| l.split(',').nth(at).and_then(|c| c.parse().ok()))
        .collect();
    cells.last().unwrap_or(&0.0) - cells.first().unwrap_or(&0.0)
}

#[test]
fn a_leak_in_a_cgroup_is_judged_on_anonymous_memory_not_page_cache() {
    // 20 KB kept per message × 100 messages/s: about 7 GB/h of anonymous memory; the page
    // cache grows 80 MB in 6 s beside it (about 48 GB/h), which must not count.
    let Some((code, out)) = run_in_cgroup("leak", 20_000) else {
        return;
    };
    assert_eq!(code, 0);
    let out = out.path().join("r");
    let s = summary(&out);
    let m = &s["memory"];
    assert_eq!(m["verdict"], "leak", "{m}");
    let slope = m["slope_mb_per_hour"].as_f64().unwrap();
    assert!(
        (2_000.0..20_000.0).contains(&slope),
        "slope {slope} MB/h: the leak's, without the cache"
    );
    assert!(m["process"].as_str().unwrap().starts_with("cgroup "), "{m}");
    assert!(
        cache_growth(&out) > 40.0,
        "the page cache grew: {}",
        cache_growth(&out)
    );
    // The report shows both: the judged anonymous memory and the page cache beside it.
    let page = std::fs::read_to_string(run_dir(&out).join("report.html")).unwrap();
    assert!(
        page.contains("Target anonymous memory — verdict: leak"),
        "title"
    );
    assert!(page.contains("page cache (not judged)"), "the cache series");
}

#[test]
fn growing_page_cache_in_a_cgroup_is_not_a_leak() {
    let Some((code, out)) = run_in_cgroup("cache", 0) else {
        return;
    };
    assert_eq!(code, 0);
    let out = out.path().join("r");
    let s = summary(&out);
    assert_ne!(s["memory"]["verdict"], "leak", "{}", s["memory"]);
    assert!(
        cache_growth(&out) > 40.0,
        "the page cache grew: {}",
        cache_growth(&out)
    );
}

#[test]
fn a_path_that_is_not_a_cgroup_is_exit_2_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |path: &std::path::Path| {
        let output = soak_bin()
            .arg("--target-cgroup")
            .arg(path)
            .args(["--duration", "20s", "--quiet", "--out"])
            .arg(dir.path().join("r"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = refused(dir.path());
    assert!(
        stderr.contains("not a cgroup") && stderr.contains("--target-cgroup"),
        "{stderr}"
    );
    let stderr = refused(&dir.path().join("no-such-group"));
    assert!(stderr.contains("no such cgroup folder"), "{stderr}");
    assert!(!dir.path().join("r").exists(), "no run was started");
}

/// A `docker` stand-in on a PATH of its own that answers `inspect` with `answer` (or fails
/// with `fails` on stderr): the CLI contract soak relies on, without a daemon.
fn fake_docker(answer: &str, fails: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = match fails {
        Some(why) => format!("#!/bin/sh\necho '{why}' >&2\nexit 1\n"),
        None => format!("#!/bin/sh\necho '{answer}'\n"),
    };
    let path = dir.path().join("docker");
    std::fs::write(&path, script).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    dir
}

/// `soak --target-container web` with `path_dir` first on PATH: (exit code, stderr, out).
fn container_run(path_dir: &std::path::Path, extra: &[&str]) -> (i32, String, tempfile::TempDir) {
    let path = format!("{}:/usr/bin:/bin", path_dir.display());
    let out = tempfile::tempdir().unwrap();
    let output = soak_bin()
        .env("PATH", path)
        .args(["--target-container", "web", "--quiet", "--out"])
        .arg(out.path())
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        out,
    )
}

#[test]
fn a_container_is_found_through_the_runtime_cli_and_sampled_by_its_cgroup() {
    let Some(group) = TestCgroup::make("container") else {
        return;
    };
    let mut server = Command::new("sleep").arg("30").spawn().unwrap();
    group.add(server.id());
    let docker = fake_docker(&format!("{} true", server.id()), None);
    let (code, stderr, out) = container_run(
        docker.path(),
        &[
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
            "--sample-interval",
            "200ms",
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    let path = group.0.display().to_string();
    drop(group);
    assert_eq!(code, 0, "{stderr}");
    let s = summary(out.path());
    let process = s["memory"]["process"].as_str().unwrap();
    assert!(
        process.contains(&path) && process.contains("container web"),
        "{process}"
    );
    assert!(
        s["memory"]["samples"].as_u64().unwrap() > 3,
        "{}",
        s["memory"]
    );
}

#[test]
fn a_container_that_cannot_be_found_is_exit_2_saying_why() {
    let stopped = fake_docker("0 false", None);
    let (code, stderr, _) = container_run(stopped.path(), &["--duration", "20s"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");
    let no_daemon = fake_docker(
        "",
        Some("Cannot connect to the Docker daemon at unix:///var/run/docker.sock."),
    );
    let (code, stderr, _) = container_run(no_daemon.path(), &["--duration", "20s"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("Cannot connect to the Docker daemon"),
        "{stderr}"
    );
    let empty = tempfile::tempdir().unwrap();
    let (code, stderr, _) = container_run(empty.path(), &["--duration", "20s"]);
    // /usr/bin may hold a real docker client: then it is asked (and, with no daemon here,
    // fails clearly); without one, soak says neither is installed.
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("neither docker nor podman") || stderr.contains("inspect failed"),
        "{stderr}"
    );
}
