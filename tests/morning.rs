//! The morning after a nightly soak: default gates fail a dead server's run, a profile's
//! verdict gates fail the run that found the problem (exit code, summary, console, JUnit
//! and report agree), `soak lock` will not bless it, `--abort-on-fail` ends a hopeless run
//! early, and the conventions: `SOAK_*` variables, completions, `profiles show`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use soak::Outcome;
use soak_mocks::demo::DemoConfig;
use tokio::net::TcpListener;

use crate::common::{chromium, demo_on_own_thread, run_dir, soak, soak_bin, summary, timeseries};

/// A WebSocket server that completes every handshake and closes the connection at once.
async fn closing_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
                    let _ = ws.close(None).await;
                }
            });
        }
    });
    addr
}

fn short(url: &str) -> Vec<String> {
    format!("--url {url} --users 3 --duration 3s --ramp-up 0s --ramp-down 0s --probes 0")
        .split_whitespace()
        .map(String::from)
        .collect()
}

async fn run(out: &Path, args: &[String], extra: &[&str]) -> Outcome {
    let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
    argv.extend_from_slice(extra);
    soak(out, &argv).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_every_connection_fails_the_default_gates() {
    let url = format!("ws://{}/ws", closing_server().await);
    let out = tempfile::tempdir().unwrap();
    let outcome = run(out.path(), &short(&url), &[]).await;
    assert_eq!(outcome, Outcome::GateFailed);
    let s = summary(out.path());
    assert_eq!(s["verdict"]["result"], "fail", "{}", s["verdict"]);
    let gates = s["gates"].as_array().unwrap();
    assert!(gates.iter().all(|g| g["default"] == true), "{gates:?}");
    let rate = gates.iter().find(|g| g["metric"] == "error_rate").unwrap();
    assert_eq!(rate["passed"], false, "{rate}");
    assert!(
        s["totals"]["error_ratio"].as_f64().unwrap() > 0.3,
        "{}",
        s["totals"]
    );

    let out = tempfile::tempdir().unwrap();
    let outcome = run(out.path(), &short(&url), &["--no-default-gates"]).await;
    assert_eq!(outcome, Outcome::Passed, "no gates, nothing to fail");
    assert!(summary(out.path())["gates"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_gate_replaces_the_defaults() {
    let url = format!("ws://{}/ws", closing_server().await);
    let out = tempfile::tempdir().unwrap();
    let outcome = run(
        out.path(),
        &short(&url),
        &["--gate", "connect_success > 50%"],
    )
    .await;
    assert_eq!(outcome, Outcome::Passed);
    let gates = summary(out.path())["gates"].clone();
    assert_eq!(gates.as_array().unwrap().len(), 1, "{gates}");
    assert_eq!(gates[0]["default"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_ends_an_erroring_run_early_with_results() {
    let url = format!("ws://{}/ws", closing_server().await);
    let out = tempfile::tempdir().unwrap();
    let args: Vec<String> =
        format!("--url {url} --users 3 --duration 60s --ramp-up 0s --ramp-down 0s --probes 0")
            .split_whitespace()
            .map(String::from)
            .collect();
    let started = std::time::Instant::now();
    let outcome = run(
        out.path(),
        &args,
        &["--abort-on-fail", "--abort-grace", "1s"],
    )
    .await;
    assert_eq!(outcome, Outcome::GateFailed);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a 60 s run ended early: {:?}",
        started.elapsed()
    );
    let s = summary(out.path());
    assert_eq!(s["run"]["status"], "aborted");
    assert_eq!(s["verdict"]["result"], "fail");
    assert!(s["run"]["elapsed_s"].as_f64().unwrap() < 15.0);
    let dir = run_dir(out.path());
    for file in ["report.html", "junit.xml", "timeseries.csv", "latency.hlog"] {
        assert!(dir.join(file).exists(), "{file}");
    }
}

/// `soak --profile blocking-check` shortened, black-box, against `url`: (exit, stdout, out).
fn blocking_check(url: &str) -> (i32, String, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let output = soak_bin()
        .args(["--profile", "blocking-check", "--url", url])
        .args([
            "--users",
            "4",
            "--duration",
            "7s",
            "--ramp-up",
            "0s",
            "--ramp-down",
            "0s",
        ])
        .arg("--out")
        .arg(out.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), stdout, out)
}

#[test]
fn blocking_check_fails_a_blocking_server_everywhere_and_lock_refuses_it() {
    let demo = demo_on_own_thread(DemoConfig {
        block_for: Duration::from_millis(300),
        block_every: Duration::from_secs(3),
        ..DemoConfig::default()
    });
    let (code, stdout, out) = blocking_check(&demo.url());
    assert_eq!(code, 1, "{stdout}");
    let s = summary(out.path());
    assert!(
        s["stalls"]["count"].as_u64().unwrap() >= 1,
        "{}",
        s["stalls"]
    );
    assert_eq!(s["verdict"]["result"], "fail");
    let stall_gate = s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "stalls == 0")
        .cloned()
        .expect("the profile's verdict gate");
    assert_eq!(stall_gate["passed"], false);
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.starts_with("FAIL"),
        "console's last line: {last}\n{stdout}"
    );
    assert!(
        stdout.contains("gate FAIL  stalls == 0 (default)"),
        "{stdout}"
    );
    let dir = run_dir(out.path());
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains(r#"failures="1""#), "{junit}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains(r#"<span class="verdict v-fail">fail</span>"#));
    assert!(stdout.contains(&dir.join("report.html").display().to_string()));

    let lock = soak_bin().arg("lock").arg(&dir).output().unwrap();
    assert_eq!(lock.status.code(), Some(1));
    let why = String::from_utf8_lossy(&lock.stderr);
    assert!(
        why.contains("stalled") && why.contains("--accept-current"),
        "{why}"
    );
    assert!(!dir.join("locked.toml").exists());
    let lock = soak_bin()
        .arg("lock")
        .arg(&dir)
        .arg("--accept-current")
        .output()
        .unwrap();
    assert_eq!(lock.status.code(), Some(0));
    let locked = std::fs::read_to_string(dir.join("locked.toml")).unwrap();
    assert!(locked.contains("# --accept-current"), "{locked}");
    assert!(locked.contains("stalls <= "), "{locked}");
}

#[test]
fn blocking_check_passes_a_healthy_server() {
    let demo = demo_on_own_thread(DemoConfig::default());
    let (code, stdout, out) = blocking_check(&demo.url());
    assert_eq!(code, 0, "{stdout}");
    let s = summary(out.path());
    assert_eq!(s["verdict"]["result"], "pass");
    assert!(
        stdout.lines().last().unwrap_or("").starts_with("PASS"),
        "{stdout}"
    );
    assert!(stdout.contains("event-loop stalls none"), "{stdout}");
}

#[test]
fn quiet_prints_only_the_results_folder_and_latest_points_at_it() {
    let demo = demo_on_own_thread(DemoConfig::default());
    let out = tempfile::tempdir().unwrap();
    let output = soak_bin()
        .args(["--url", &demo.url(), "--duration", "1s", "--ramp-up", "0s"])
        .args(["--ramp-down", "0s", "--users", "1", "--quiet", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = run_dir(out.path());
    assert_eq!(stdout.trim(), dir.display().to_string());
    let latest = out.path().join("latest");
    assert_eq!(
        std::fs::canonicalize(latest).unwrap(),
        std::fs::canonicalize(&dir).unwrap()
    );
}

#[test]
fn flags_come_from_soak_variables_and_the_flag_wins() {
    let demo = demo_on_own_thread(DemoConfig::default());
    let users = |flag: Option<&str>| {
        let out = tempfile::tempdir().unwrap();
        let mut cmd = soak_bin();
        cmd.env("SOAK_USERS", "3")
            .env("SOAK_DURATION", "1s")
            .env("SOAK_RAMP_UP", "0s")
            .env("SOAK_RAMP_DOWN", "0s")
            .env("SOAK_QUIET", "true")
            .args(["--url", &demo.url(), "--out"])
            .arg(out.path());
        if let Some(n) = flag {
            cmd.args(["--users", n]);
        }
        assert_eq!(cmd.status().unwrap().code(), Some(0));
        let s = summary(out.path());
        (
            s["config"]["load"]["users"].as_u64().unwrap(),
            s["totals"]["users_started"].as_u64().unwrap(),
        )
    };
    assert_eq!(users(None), (3, 3));
    assert_eq!(users(Some("2")), (2, 2));
    let help = soak_bin().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("[env: SOAK_USERS="));
}

#[test]
fn completions_print_a_script_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef soak"),
        ("fish", "complete -c soak"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let output = soak_bin().args(["completions", shell]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("--target-cmd"),
            "{shell} completes run flags"
        );
    }
}

#[test]
fn profiles_show_round_trips_every_built_in() {
    let dir = tempfile::tempdir().unwrap();
    for name in soak::profile::builtin::names() {
        let output = soak_bin()
            .args(["profiles", "show", name])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{name}");
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, &output.stdout).unwrap();
        let printed = soak::profile::load(Some(path.to_str().unwrap())).unwrap();
        let builtin = soak::profile::load(Some(name)).unwrap();
        assert_eq!(
            serde_json::to_value(&printed.spec).unwrap(),
            serde_json::to_value(&builtin.spec).unwrap(),
            "{name}"
        );
    }
    let unknown = soak_bin()
        .args(["profiles", "show", "nope"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("blocking-check"));
}

#[test]
fn every_timeseries_row_after_the_first_reading_has_memory_cells() {
    let demo = demo_on_own_thread(DemoConfig::default());
    let mut target = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let status = soak_bin()
        .args(["--url", &demo.url(), "--users", "2", "--duration", "6s"])
        .args(["--ramp-up", "0s", "--ramp-down", "0s", "--baseline", "0s"])
        .args([
            "--cooldown",
            "0s",
            "--sample-interval",
            "1s",
            "--interval",
            "1s",
        ])
        .args(["--quiet", "--target-pid", &target.id().to_string(), "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    let _ = target.kill();
    let _ = target.wait();
    assert_eq!(status.code(), Some(0));
    let rows = timeseries(out.path());
    let first = rows
        .iter()
        .position(|r| !r["target_rss_mb"].is_empty())
        .expect("a reading");
    for (i, r) in rows.iter().enumerate().skip(first) {
        for cell in [
            "target_rss_mb",
            "target_cpu_pct",
            "target_fds",
            "tester_rss_mb",
        ] {
            assert!(!r[cell].is_empty(), "row {i} {cell} empty: {rows:?}");
        }
    }
    assert!(rows.len() - first >= 4, "{rows:?}");
}

/// Runs `line` in a shell on a pseudo-terminal (util-linux `script`), returning what the
/// terminal showed; `None` (with the reason printed) where `script` is missing.
fn on_a_terminal(line: &str) -> Option<String> {
    let output = std::process::Command::new("script")
        .args(["-q", "-e", "-c", line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(o) => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Err(err) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "`script` is needed in CI: {err}"
            );
            eprintln!("skipped: util-linux `script` is not installed ({err})");
            None
        }
    }
}

/// The live bar's message: "hold      users 2/2  sent …/s … (errors so far N)".
fn bar_messages(screen: &str) -> Vec<&str> {
    screen
        .split(['\r', '\n', '\u{1b}'])
        .filter(|s| s.contains("users "))
        .collect()
}

#[test]
fn the_bar_shows_on_the_terminal_with_stderr_redirected_and_a_chatty_target_logs_aside() {
    let bin = env!("CARGO_BIN_EXE_soak");
    let out = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!(
        "(while :; do echo chatty-target-line; echo chatty-target-err >&2; sleep 0.02; done) & exec {bin} mock --demo --listen 127.0.0.1:{port}"
    );
    let line = format!(
        "{bin} --url ws://127.0.0.1:{port}/ws --users 2 --duration 4s --ramp-up 0s --ramp-down 0s \
         --baseline 0s --cooldown 0s --probes 0 --target-cmd '{target}' --out {} 2>{}/stderr.log",
        out.path().display(),
        out.path().display()
    );
    let Some(screen) = on_a_terminal(&line) else {
        return;
    };
    let messages = bar_messages(&screen);
    assert!(
        !messages.is_empty(),
        "no live bar on the terminal:\n{screen:?}"
    );
    for m in &messages {
        assert!(!m.contains("chatty"), "the target tore the bar: {m:?}");
        assert!(
            m.contains("(errors so far") || m.contains("PASS") || m.starts_with("soak:"),
            "a bar line cut short: {m:?}"
        );
    }
    assert!(
        !screen.contains("chatty-target"),
        "target output on the terminal"
    );
    assert!(
        !screen.contains("s/4s]"),
        "plain lines instead of the bar on a terminal:\n{screen}"
    );
    assert!(screen.contains("PASS"), "{screen}");
    let dirs: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .collect();
    assert_eq!(dirs.len(), 1);
    let log = std::fs::read_to_string(dirs[0].path().join("target.log")).unwrap();
    assert!(log.contains("chatty-target-line\n"), "{log}");
    assert!(log.contains("chatty-target-err\n"), "stderr too: {log}");
    assert!(
        log.contains("demo target listening"),
        "its first lines too: {log}"
    );
}

#[test]
fn the_reports_first_screen_holds_the_totals() {
    let demo = demo_on_own_thread(DemoConfig::default());
    let out = tempfile::tempdir().unwrap();
    let status = soak_bin()
        .args(["--url", &demo.url(), "--users", "2", "--duration", "2s"])
        .args(["--ramp-up", "0s", "--ramp-down", "0s", "--quiet", "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let dir = run_dir(out.path());
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let headline = html.find(r#"class="headline""#).expect("a headline block");
    assert!(
        headline < html.find("<svg").unwrap(),
        "totals come before the charts"
    );
    let Some(browser) = chromium() else { return };
    // The report has no scripts; a page beside it frames it at 1280×720 and measures.
    std::fs::write(
        dir.join("probe.html"),
        r#"<!DOCTYPE html><html><body><iframe id="r" src="report.html" width="1280" height="720"></iframe>
<script>document.getElementById('r').onload = function () {
  var h = this.contentDocument.querySelector('.headline'), out = document.createElement('pre');
  out.id = 'result';
  out.textContent = h ? JSON.stringify({bottom: h.getBoundingClientRect().bottom, text: h.innerText}) : 'none';
  document.body.appendChild(out);
};</script></body></html>"#,
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
        ])
        .args([
            "--disable-background-networking",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", dir.join("probe.html").display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let json = dom
        .split(r#"<pre id="result">"#)
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no measurement in the DOM: {dom}"))
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let m: serde_json::Value = serde_json::from_str(&json).unwrap();
    let bottom = m["bottom"].as_f64().unwrap();
    assert!(
        bottom <= 720.0,
        "the totals end at {bottom} px, below the first screen"
    );
    let text = m["text"].as_str().unwrap();
    for label in [
        "messages sent",
        "replies received",
        "errors",
        "connects",
        "run length",
    ] {
        assert!(text.contains(label), "{label} in {text}");
    }
}

/// Splits a shell command line into words: single and double quotes kept whole.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (_, c) => (cur.push(c), any = true).1,
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Every `soak …` command in a script step (after `;`, `then` or at the start).
fn soak_commands(script: &str) -> Vec<Vec<String>> {
    script
        .split(['\n', ';'])
        .map(str::trim)
        .map(|l| l.strip_prefix("then ").unwrap_or(l).trim())
        .filter(|l| l.starts_with("soak "))
        .map(words)
        .collect()
}

#[test]
fn the_ci_examples_are_valid_and_do_what_the_readme_says() {
    use clap::Parser as _;
    let Some(python) = crate::clients::python("yaml") else {
        return;
    };
    let load = |name: &str| -> serde_json::Value {
        let path = format!("{}/examples/ci/{name}", env!("CARGO_MANIFEST_DIR"));
        let output = std::process::Command::new(&python)
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let check = |scripts: Vec<String>| {
        let commands: Vec<Vec<String>> = scripts.iter().flat_map(|s| soak_commands(s)).collect();
        for argv in &commands {
            soak::cli::Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
        let run = commands
            .iter()
            .find(|a| a.contains(&"--profile".to_string()))
            .expect("a soak run");
        assert!(
            run.contains(&"--target-cmd".to_string()),
            "the server is started by soak: {run:?}"
        );
        assert!(
            commands.iter().any(|a| a[1] == "compare"),
            "last night compared"
        );
    };

    let gh = load("github-nightly-soak.yml");
    assert_eq!(
        gh["permissions"]["checks"], "write",
        "the JUnit action needs it"
    );
    let steps = gh["jobs"]["soak"]["steps"].as_array().unwrap();
    check(
        steps
            .iter()
            .filter_map(|s| s["run"].as_str().map(String::from))
            .collect(),
    );
    for action in ["actions/upload-artifact@", "mikepenz/action-junit-report@"] {
        let step = steps
            .iter()
            .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
            .unwrap_or_else(|| panic!("{action}"));
        assert_eq!(step["if"], "always()", "{action} runs when soak failed too");
    }
    assert!(
        !gh.to_string().contains(" &\""),
        "no server started with & racing soak"
    );

    let gl = load("gitlab-nightly-soak.yml");
    let job = &gl["nightly-soak"];
    check(
        job["script"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
    );
    assert_eq!(job["artifacts"]["when"], "always");
    assert!(job["artifacts"]["reports"]["junit"].is_string());
}
