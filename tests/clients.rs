//! Real client libraries against the mocks: the official `openai` Python SDK, unchanged,
//! talks to the mock LLM on 127.0.0.1:0. The packages come from `.ci/run` (pip, pinned in
//! `tests/clients/requirements.txt`, into `.venv`). In CI a missing package fails the test;
//! elsewhere the test says what to install and passes without running.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use soak_mocks::llm::Llm;
use soak_mocks::llm::config::LlmConfig;
use tokio::net::TcpListener;
use tokio::process::Command;

/// The Python with the client packages: `$SOAK_PYTHON`, or the project's `.venv`.
pub fn python(module: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os("SOAK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python")));
    let ok = std::process::Command::new(&candidate)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(candidate);
    }
    let msg = format!(
        "{} cannot import {module}: run `python3 -m venv .venv && .venv/bin/pip install -r tests/clients/requirements.txt`",
        candidate.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("skipped (not in CI): {msg}");
    None
}

/// Runs a client script with arguments; returns its JSON output.
async fn run_client(python: &std::path::Path, script: &str, args: &[String]) -> Value {
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(python)
            .arg(&path)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client finished within 60 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_cannot_tell_the_mock_from_the_api() {
    let Some(python) = python("openai") else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let llm = Arc::new(Llm::new(LlmConfig::fast()));
    tokio::spawn(soak_mocks::llm::serve(
        listener,
        Arc::clone(&llm),
        std::future::pending(),
    ));
    let out = run_client(&python, "openai_client.py", &[format!("http://{addr}/v1")]).await;

    assert_eq!(out["chat"]["finish_reason"], "stop");
    assert!(!out["chat"]["content"].as_str().unwrap().is_empty());
    assert!(out["chat"]["total_tokens"].as_u64().unwrap() > 8);
    assert_eq!(out["stream"]["ids"], 1, "one id on every chunk");
    assert_eq!(
        out["stream"]["usage_completion_tokens"], 8,
        "the usage chunk arrived"
    );
    assert_eq!(out["stream"]["finish_reason"], "stop");
    assert_eq!(
        out["stream"]["text"].as_str().unwrap().split(' ').count(),
        8
    );
    assert_eq!(out["embeddings"]["count"], 2);
    assert_eq!(out["embeddings"]["dims"], 1536, "base64 decoded by the SDK");
    assert!((out["embeddings"]["norm"].as_f64().unwrap() - 1.0).abs() < 1e-3);
    assert_eq!(out["rate_limit"]["raised"], "RateLimitError");
    assert_eq!(
        out["rate_limit"]["retries"], 2,
        "three attempts: the SDK honoured retry-after and retried twice"
    );
    assert_eq!(out["server_error"]["raised"], "InternalServerError");
    assert_eq!(out["server_error"]["retries"], 2);
    let stats = llm.stats.snapshot();
    assert_eq!(stats.faults_injected["429"], 3);
    assert_eq!(stats.faults_injected["500"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_mock_llm_runs_an_llm_backed_chat_end_to_end() {
    let out = tempfile::tempdir().unwrap();
    let args = [
        "--mock",
        "llm",
        "--users",
        "2",
        "--rate",
        "2/s",
        "--duration",
        "3s",
        "--ramp-up",
        "0s",
        "--ramp-down",
        "0s",
    ];
    crate::common::soak(out.path(), &args).await.unwrap();
    let s = crate::common::summary(out.path());
    let llm = &s["mocks"]["llm"];
    assert!(
        llm["requests"]["chat_completions"]["200"].as_u64().unwrap() >= 4,
        "{llm}"
    );
    assert!(llm["tokens_served"].as_u64().unwrap() > 0);
    assert!(llm["base_url"].as_str().unwrap().ends_with("/v1"));
    // The demo relays the LLM's stream: first frame after the time to first token, the
    // complete reply after all tokens (default: ~200 ms, then 20–60 tokens at 15 ms).
    let (ttff, ttlf) = (
        s["ttff_ms"]["run"]["p50"].as_f64().unwrap(),
        s["latency_ms"]["run"]["p50"].as_f64().unwrap(),
    );
    assert!(
        ttff > 100.0 && ttlf > ttff + 200.0,
        "ttff {ttff} ms, ttlf {ttlf} ms"
    );
    assert_eq!(s["totals"]["errors"], 0, "{}", s["errors"]);
}

#[test]
fn a_started_target_gets_the_mock_urls_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("env.txt");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cmd = format!(
        "echo \"$OPENAI_BASE_URL $OPENAI_API_KEY\" > {}; exec {} mock --demo --listen 127.0.0.1:{port}",
        env_file.display(),
        env!("CARGO_BIN_EXE_soak")
    );
    let status = crate::common::soak_bin()
        .args([
            "--mock",
            "llm",
            "--url",
            &format!("ws://127.0.0.1:{port}/ws"),
            "--target-cmd",
            &cmd,
        ])
        .args([
            "--users",
            "1",
            "--duration",
            "1s",
            "--ramp-up",
            "0s",
            "--ramp-down",
            "0s",
            "--baseline",
            "0s",
            "--cooldown",
            "0s",
            "--quiet",
            "--out",
        ])
        .arg(dir.path().join("out"))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let env = std::fs::read_to_string(env_file).unwrap();
    assert!(
        env.starts_with("http://127.0.0.1:") && env.contains("/v1 sk-soak-mock"),
        "{env}"
    );
}
