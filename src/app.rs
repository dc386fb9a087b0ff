//! One short function per command; wiring only, each step owned by its module.

use crate::cli::{MockArgs, RunArgs};
use crate::demo_target::DemoTarget;
use std::path::Path;

use serde_json::Value;

use crate::error::{Outcome, SoakError, could_not_run, usage};
use crate::profile::{self, builtin};
use crate::signals::wait_for_signal;

/// `soak run`: see [`crate::runner`].
pub async fn run(args: RunArgs) -> Result<Outcome, SoakError> {
    crate::runner::run(args).await
}

/// `soak mock`: serve the demo target until Ctrl-C, on its own single-threaded event loop
/// (so its blocking modes block the whole server, as in a single-loop chat server).
pub async fn mock(args: MockArgs) -> Result<Outcome, SoakError> {
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "soak: WARNING: listening on {} — not loopback: anyone who can reach this machine can call the mocks and the demo target (the default is 127.0.0.1)",
            args.listen.ip()
        );
    }
    let llm = if args.llm {
        Some(llm_config(&args)?)
    } else {
        None
    };
    let telegram = args
        .telegram
        .then(soak_mocks::telegram::TelegramConfig::default);
    let other = std::net::SocketAddr::new(args.listen.ip(), 0);
    let (llm_addr, tg_addr) = if llm.is_some() {
        (args.listen, other)
    } else {
        (other, args.listen)
    };
    let mocks = crate::mocks::Mocks::start_on(llm_addr, tg_addr, llm, telegram)?;
    if let Some((_, addr)) = &mocks.telegram {
        println!(
            "mock Telegram Bot API listening: TELEGRAM_API_URL=http://{addr} TELEGRAM_BOT_TOKEN={} (the bot calls http://{addr}/bot<token>/<method>; stats at http://{addr}/__soak/stats)",
            crate::mocks::BOT_TOKEN
        );
    }
    if let Some((_, addr)) = &mocks.llm {
        println!(
            "mock LLM listening: OPENAI_BASE_URL=http://{addr}/v1 OPENAI_API_KEY={} (any key works; stats at http://{addr}/__soak/stats)",
            crate::mocks::LLM_KEY
        );
    }
    if (mocks.llm.is_some() || mocks.telegram.is_some()) && !args.demo {
        wait_for_signal().await;
        return Ok(Outcome::Passed);
    }
    let demo_addr = if mocks.llm.is_some() || mocks.telegram.is_some() {
        other
    } else {
        args.listen
    };
    let config = soak_mocks::demo::DemoConfig {
        llm: mocks
            .llm
            .as_ref()
            .map(|(llm, _)| std::sync::Arc::clone(llm)),
        reply_delay: args.demo_delay,
        stream_frames: args.demo_stream,
        frame_gap: args.demo_gap,
        block_for: args.demo_block_for,
        block_every: args.demo_block_every,
        leak_per_message: args.demo_leak_per_message,
        leak_per_close: args.demo_leak_per_close,
        rooms: args.demo_rooms,
        ..soak_mocks::demo::DemoConfig::default()
    };
    let demo = if args.reuse_port {
        DemoTarget::start_shared(demo_addr, config)?
    } else {
        DemoTarget::start_on(demo_addr, config)?
    };
    println!("demo target listening on {} (Ctrl-C stops it)", demo.url());
    wait_for_signal().await;
    drop(demo);
    Ok(Outcome::Passed)
}

/// The mock LLM's settings: `--config FILE` (an `[llm]` section), then `--seed`.
fn llm_config(args: &MockArgs) -> Result<soak_mocks::llm::config::LlmConfig, SoakError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct MockFile {
        llm: soak_mocks::llm::config::LlmConfig,
    }
    let mut config = match &args.config {
        Some(path) => {
            let text =
                crate::files::read_text(path, crate::files::MAX_PROFILE_BYTES).map_err(usage)?;
            crate::profile::parse_toml::<MockFile>(&text, &path.display().to_string())?.llm
        }
        None => soak_mocks::llm::config::LlmConfig::default(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config
        .check()
        .map_err(|e| usage(format!("mock LLM config: {e}")))?;
    Ok(config)
}

/// `soak report RUN_DIR`: re-render the reports from saved data.
pub fn report(dir: &Path) -> Result<Outcome, SoakError> {
    let summary = crate::report::rerender(dir)?;
    let result = summary
        .pointer("/verdict/result")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    println!(
        "soak: re-rendered summary.json, report.html and junit.xml in {} (verdict: {result})",
        dir.display()
    );
    Ok(if result == "fail" {
        Outcome::GateFailed
    } else {
        Outcome::Passed
    })
}

/// `soak compare BASELINE CANDIDATE`: side by side; exit 1 on a regression.
pub fn compare(baseline: &Path, candidate: &Path, tolerance: f64) -> Result<Outcome, SoakError> {
    let rows = crate::report::compare::compare(
        &load_summary(baseline)?,
        &load_summary(candidate)?,
        tolerance,
    );
    print!("{}", crate::report::compare::table(&rows, tolerance));
    Ok(if rows.iter().any(|r| r.regression) {
        Outcome::GateFailed
    } else {
        Outcome::Passed
    })
}

/// `soak lock RUN_DIR`: write `locked.toml` into the run folder and print it. A run whose
/// verdicts failed is refused (exit 1, with the reasons) unless `accept_current`.
pub fn lock(dir: &Path, margin: f64, accept_current: bool) -> Result<Outcome, SoakError> {
    let summary = load_summary(dir)?;
    let problems = crate::report::lock::problems(&summary);
    if !problems.is_empty() && !accept_current {
        eprintln!(
            "soak: not locking {}: {} — locked gates would accept them as the baseline; fix the run, or pass --accept-current to lock them anyway",
            dir.display(),
            problems.join("; ")
        );
        return Ok(Outcome::GateFailed);
    }
    let accepted = if accept_current { problems } else { Vec::new() };
    let text = crate::report::lock::profile(&summary, margin, &accepted)
        .map_err(|e| usage(format!("{}: {e}", dir.display())))?;
    let path = dir.join("locked.toml");
    std::fs::write(&path, &text)
        .map_err(|e| could_not_run(format!("cannot write {}: {e}", path.display())))?;
    print!("{text}");
    eprintln!(
        "soak: wrote {} — run it with: soak --profile {}",
        path.display(),
        path.display()
    );
    Ok(Outcome::Passed)
}

/// A `summary.json`, given its file or its run folder.
fn load_summary(path: &Path) -> Result<Value, SoakError> {
    let file = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_path_buf()
    };
    let text = crate::files::read_text(&file, crate::files::MAX_SUMMARY_BYTES).map_err(usage)?;
    serde_json::from_str(&text)
        .map_err(|e| usage(format!("{}: not a soak summary: {e}", file.display())))
}

/// `soak profiles`: one line per built-in profile.
pub fn profiles() -> Result<Outcome, SoakError> {
    for name in builtin::names() {
        let description = profile::load(Some(name)).map(|p| p.spec.description)?;
        println!("{name:<16} {description}");
    }
    Ok(Outcome::Passed)
}

/// `soak profiles show NAME`: the built-in profile's TOML, as shipped (comments included).
pub fn show_profile(name: &str) -> Result<Outcome, SoakError> {
    let text = builtin::get(name).ok_or_else(|| {
        usage(format!(
            "no built-in profile `{name}`; built-in profiles: {}",
            builtin::names().join(", ")
        ))
    })?;
    print!("{text}");
    Ok(Outcome::Passed)
}

/// `soak completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    let mut command = crate::cli::Cli::command();
    clap_complete::generate(shell, &mut command, "soak", &mut std::io::stdout());
}
