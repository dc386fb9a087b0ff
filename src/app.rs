//! One short function per command; wiring only, each step owned by its module.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::{MockArgs, RunArgs};
use crate::demo_target::DemoTarget;
use crate::engine::connect::{Dialer, describe};
use crate::engine::session::SessionConfig;
use crate::error::{Outcome, SoakError, could_not_run};
use crate::metrics::Recorder;
use crate::metrics::aggregator::{self, Setup};
use crate::metrics::snapshot::RunTotals;
use crate::plan::Plan;
use crate::profile::resolve::{RunConfig, Target};
use crate::profile::spec::Model;
use crate::profile::{self, builtin, overrides, resolve};
use crate::progress::Progress;
use crate::report::summary::{ProbeInfo, RunMeta, Status};
use crate::report::timeseries::Columns;
use crate::report::{RunDir, Writer};

/// `soak run`: resolve the profile, check the target, run the plan, write the results.
pub async fn run(args: RunArgs) -> Result<Outcome, SoakError> {
    let mut loaded = profile::load(args.profile.as_deref())?;
    overrides::apply(&args, &mut loaded.spec);
    let config = resolve::resolve(&loaded)?;
    let (url, demo) = match &config.target {
        Target::Demo(demo) => {
            let target = DemoTarget::start(demo.clone())?;
            (target.url(), Some(target))
        }
        Target::Url(url) => (url.clone(), None),
    };
    let dialer = Dialer::new(&url, &config.connection, config.connect_rate)
        .await
        .map_err(could_not_run)?;
    preflight(&dialer).await?;
    let columns = Columns {
        ttff: config.streams(),
        messages: if config.messages.len() > 1 {
            config.messages.iter().map(|m| m.name.clone()).collect()
        } else {
            Vec::new()
        },
    };
    let started_at = SystemTime::now();
    let dir = RunDir::create(&config.out_dir, &config.profile, started_at, columns)?;
    let plan = Plan::build(&config);
    let meta = RunMeta {
        id: dir.id(),
        profile: config.profile.clone(),
        target: url,
        demo_target: demo.is_some(),
        started_at,
        config: redacted(&config),
        phases: plan.phases(),
        model: config.model,
        correction: correction(&config),
        probes: config.probes.as_ref().map(|p| ProbeInfo {
            count: p.count,
            every_ms: p.every.as_secs_f64() * 1000.0,
            kind: if p.message.is_some() {
                "message"
            } else {
                "ping"
            },
        }),
        stall_rule: config.stall_rule,
        messages: config
            .messages
            .iter()
            .map(|m| (m.name.clone(), m.weight, m.complete.streams()))
            .collect(),
    };
    let writer = Writer::spawn(
        dir,
        meta,
        Progress::new(args.quiet, plan.total(), plan.users()),
    )?;
    let interrupted = watch_signals(&CancellationToken::new());
    let outcome = soak_it(&config, plan, dialer, &writer, &interrupted).await;
    let status = if interrupted.flag.load(Ordering::Relaxed) {
        Status::Interrupted
    } else {
        Status::Completed
    };
    writer.finish(outcome, status)?;
    drop(demo);
    Ok(match status {
        Status::Interrupted => Outcome::Interrupted,
        _ => Outcome::Passed,
    })
}

/// The profile as written to `summary.json`: header values with secret names masked.
fn redacted(config: &RunConfig) -> crate::profile::ProfileSpec {
    let mut spec = config.effective.clone();
    spec.target.headers = spec
        .target
        .headers
        .iter()
        .map(|h| crate::redact::header(h))
        .collect();
    spec
}

/// The closed model's expected interval between one user's sends (the think time), used
/// for corrected recording; none in the open model or with no think time.
fn correction(config: &RunConfig) -> Option<std::time::Duration> {
    (config.model == Model::Closed && !config.think.is_zero()).then_some(config.think)
}

/// Runs the plan with the aggregator beside it; returns the totals.
async fn soak_it(
    config: &RunConfig,
    plan: Plan,
    dialer: Dialer,
    writer: &Writer,
    signals: &Signals,
) -> RunTotals {
    let (recorder, rx, dropped) = Recorder::channel();
    let started = Instant::now();
    let done = CancellationToken::new();
    let setup = Setup {
        plan,
        started,
        every: config.interval,
        messages: config
            .messages
            .iter()
            .map(|m| (m.name.clone(), m.complete.streams()))
            .collect(),
        correct_micros: correction(config)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        stall_rule: config.stall_rule,
    };
    let aggregator = tokio::spawn(aggregator::run(
        rx,
        done.clone(),
        dropped,
        setup,
        writer.sink(),
    ));
    let sessions = Arc::new(SessionConfig::new(config, dialer, recorder));
    crate::engine::run(
        plan,
        started,
        sessions,
        config.probes.clone(),
        &signals.cancel,
    )
    .await;
    done.cancel();
    aggregator.await.unwrap_or_default()
}

/// One connection before any load, so an unreachable target is exit 3 with nothing sent.
async fn preflight(dialer: &Dialer) -> Result<(), SoakError> {
    match dialer.dial().await {
        Ok(mut ws) => {
            let _ = ws.close(None).await;
            Ok(())
        }
        Err(kind) => Err(could_not_run(format!(
            "target {} is unreachable: {}",
            crate::redact::url(dialer.url()),
            describe(kind)
        ))),
    }
}

/// The root token and whether a signal fired it.
struct Signals {
    cancel: CancellationToken,
    flag: Arc<AtomicBool>,
}

/// Ctrl-C or SIGTERM cancels the run (results are still written) and marks it interrupted.
fn watch_signals(cancel: &CancellationToken) -> Signals {
    let flag = Arc::new(AtomicBool::new(false));
    let (token, set) = (cancel.clone(), Arc::clone(&flag));
    tokio::spawn(async move {
        wait_for_signal().await;
        set.store(true, Ordering::Relaxed);
        token.cancel();
    });
    Signals {
        cancel: cancel.clone(),
        flag,
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `soak mock`: serve the demo target until Ctrl-C, on its own single-threaded event loop
/// (so its blocking modes block the whole server, as in a single-loop chat server).
pub async fn mock(args: MockArgs) -> Result<Outcome, SoakError> {
    let config = soak_mocks::demo::DemoConfig {
        reply_delay: args.demo_delay,
        stream_frames: args.demo_stream,
        frame_gap: args.demo_gap,
        block_for: args.demo_block_for,
        block_every: args.demo_block_every,
        ..soak_mocks::demo::DemoConfig::default()
    };
    let demo = DemoTarget::start_on(args.listen, config)?;
    println!("demo target listening on {} (Ctrl-C stops it)", demo.url());
    wait_for_signal().await;
    drop(demo);
    Ok(Outcome::Passed)
}

/// `soak profiles`: one line per built-in profile.
pub fn profiles() -> Result<Outcome, SoakError> {
    for name in builtin::names() {
        let description = profile::load(Some(name)).map(|p| p.spec.description)?;
        println!("{name:<16} {description}");
    }
    Ok(Outcome::Passed)
}
