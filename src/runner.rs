//! The steps of `soak run`: resolve the profile, find or start the target, check it answers,
//! run the plan with the aggregator and sampler beside it, stop what soak started, and
//! turn how it ended into an outcome.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::analysis::abort::Abort;
use crate::analysis::memory::Windows;
use crate::cli::RunArgs;
use crate::demo_target::DemoTarget;
use crate::engine::connect::Dialer;
use crate::engine::session::{SessionConfig, TelegramUsers, Transport};
use crate::error::{Outcome, SoakError, could_not_run, usage};
use crate::live::{Begin, Labels, Listeners, Live};
use crate::metrics::Recorder;
use crate::metrics::aggregator::{self, MemorySetup, Setup};
use crate::metrics::run_data::RunData;
use crate::metrics::snapshot::RunTotals;
use crate::mocks::Mocks;
use crate::plan::Plan;
use crate::profile::resolve::{RunConfig, Target, TargetProcess};
use crate::profile::spec::{Model, TargetOutput};
use crate::profile::{self, overrides, resolve};
use crate::progress::Progress;
use crate::report::summary::{ProbeInfo, RunMeta, Status};
use crate::report::timeseries::Columns;
use crate::report::{RunDir, StopRun, Writer};
use crate::sampler::target::{self, Started};
use crate::sampler::target_log::TargetLog;
use crate::sampler::{ProcMsg, Sampler, Source};
use crate::segment;
use crate::signals::{Root, Stop, panic_message};

/// Readings in flight from the sampler thread to the aggregator.
const SAMPLER_CHANNEL: usize = 1024;

/// Runs one load/soak profile to its end.
pub async fn run(args: RunArgs) -> Result<Outcome, SoakError> {
    let mut loaded = profile::load(args.profile.as_deref())?;
    overrides::apply(&args, &mut loaded.spec);
    let mut config = resolve::resolve(&loaded)?;
    let index = std::env::var("JOB_COMPLETION_INDEX").ok();
    let segment = segment::chosen(args.segment, args.segments, index.as_deref()).map_err(usage)?;
    segment::apply(&mut config, segment, args.sample_target).map_err(usage)?;
    let start_at = args
        .start_at
        .as_deref()
        .map(|t| segment::start_at(t, SystemTime::now()))
        .transpose()
        .map_err(|e| usage(format!("--start-at {e}")))?;
    let p = &config.effective.process;
    let asked = p.baseline.unwrap_or_default() + p.cooldown.unwrap_or_default();
    if matches!(config.process.target, TargetProcess::None) && !asked.is_zero() && !args.quiet {
        eprintln!(
            "soak: no target process (--target-pid, --target-name, --target-cmd): the profile's idle baseline and cool-down ({} in all) are skipped; they exist for the memory verdict",
            crate::units::format_duration(asked)
        );
    }
    // The live listeners are bound first: a port in use is exit 2 before anything starts.
    let mut live = Live::bind(
        Listeners {
            dashboard: args.dashboard,
            metrics: args.metrics_listen,
            linger: args.dashboard_linger,
        },
        || Labels {
            profile: config.profile.clone(),
            segment: config.segment.label(),
            messages: config.messages.iter().map(|m| m.name.clone()).collect(),
            planned: Plan::build(&config).total(),
        },
    )?;
    // Signals are watched from before the target starts: Ctrl-C while waiting for it to
    // come up stops the wait (exit 130) and still stops the target.
    let root = Root::watching_signals();
    let mocks = Mocks::start(config.llm.clone(), config.telegram.clone())?;
    let process = find_target(&config, &mocks.env())?.map(Arc::new);
    let result = with_target(
        &config,
        (args.quiet, start_at),
        (process.clone(), root.clone()),
        (&mocks, live.as_mut()),
    )
    .await;
    if let Some(process) = &process {
        process.stop(config.process.stop_grace).await;
    }
    drop(mocks);
    // An interrupted run does not linger: Ctrl-C meant "stop now".
    if let Some(live) = &live
        && root.why().is_none()
        && result.is_ok()
    {
        live.linger().await;
    }
    result
}

/// Waits for the shared start `at`; returns how far the plan already is when soak came
/// after it (said on stderr), or `None` when interrupted while waiting.
async fn meet_start(
    config: &RunConfig,
    at: SystemTime,
    quiet: bool,
    root: &Root,
) -> Option<Duration> {
    let shown = humantime::format_rfc3339_millis(at);
    match segment::meet(at, SystemTime::now()) {
        segment::Meet::Wait(ahead) => {
            if !quiet {
                eprintln!(
                    "soak: waiting {} for the shared start at {shown}",
                    crate::units::format_duration(ahead)
                );
            }
            tokio::select! {
                () = tokio::time::sleep(ahead) => Some(Duration::ZERO),
                () = root.cancel.cancelled() => None,
            }
        }
        segment::Meet::Late(passed) => {
            eprintln!(
                "soak: segment {}/{} started {} after the shared start at {shown}: joining the plan {} into it (users whose start has passed start at once, within the connect-rate cap)",
                config.segment.index,
                config.segment.count,
                crate::units::format_duration(passed),
                crate::units::format_duration(passed),
            );
            Some(passed)
        }
    }
}

/// Finds the target process by PID or name, or starts it; `None` when none is watched.
fn find_target(config: &RunConfig, env: &[(String, String)]) -> Result<Option<Started>, SoakError> {
    let console = config.effective.process.output == TargetOutput::Console;
    Ok(match &config.process.target {
        TargetProcess::None => None,
        TargetProcess::Pid(pid) => Some(target::by_pid(*pid)?),
        TargetProcess::Name(name) => Some(target::by_name(name)?),
        TargetProcess::Cmd(cmd) => Some(target::spawn(cmd, env, console)?),
        // Sampled from their files or their endpoint, see `source`.
        TargetProcess::Cgroup(_) | TargetProcess::Metrics { .. } => None,
    })
}

async fn with_target(
    config: &RunConfig,
    (quiet, start_at): (bool, Option<SystemTime>),
    (process, root): (Option<Arc<Started>>, Root),
    (mocks, mut live): (&Mocks, Option<&mut Live>),
) -> Result<Outcome, SoakError> {
    let (url, demo) = target_url(config, mocks)?;
    let log = process.as_ref().and_then(|p| p.log.clone());
    // Ctrl-C while soak waits for the target or the bot to come up stops the wait (130).
    let transport = tokio::select! {
        ready = transport(config, &url, mocks, process.as_deref()) => {
            ready.map_err(|err| with_early_output(err, log.as_deref()))?
        }
        () = root.cancel.cancelled() => {
            eprintln!("soak: interrupted while waiting for the target to come up; nothing was sent");
            return Ok(Outcome::Interrupted);
        }
    };
    let (started_at, late) = match start_at {
        None => (SystemTime::now(), Duration::ZERO),
        Some(at) => match meet_start(config, at, quiet, &root).await {
            Some(late) => (at, late),
            None => {
                eprintln!("soak: interrupted while waiting for --start-at; nothing was sent");
                return Ok(Outcome::Interrupted);
            }
        },
    };
    let name = if config.segment.is_whole() {
        config.profile.clone()
    } else {
        format!("{}-{}", config.profile, config.segment.label())
    };
    let dir = RunDir::create(&config.out_dir, &name, started_at, columns(config))?;
    if let Some(log) = &log {
        log.to_file(&dir.path.join("target.log")).map_err(|err| {
            could_not_run(format!(
                "cannot write target.log in {}: {err}",
                dir.path.display()
            ))
        })?;
    }
    let shown = dir.path.display().to_string();
    let plan = Plan::build(config);
    let shown_target = match &transport {
        Transport::Telegram(_) => mocks
            .telegram
            .as_ref()
            .map_or(url, |(_, a)| format!("telegram bot via http://{a}")),
        Transport::WebSocket(_) | Transport::SocketIo(..) => url,
        #[cfg(test)]
        Transport::Memory(_) => url,
    };
    let meta = meta(
        config,
        (dir.id(), started_at),
        shown_target,
        demo.is_some(),
        plan,
        Some(mocks),
    );
    if let Some(live) = &live {
        live.begin(Begin {
            meta: meta.clone(),
            columns: columns(config),
        });
    }
    let abort = Abort::new(
        &config.gates,
        plan.hold_start(),
        config.abort_grace,
        plan.total(),
    )
    .map(|watch| {
        let stop = stopper(
            &root,
            "ending the run early (--abort-on-fail)",
            Stop::Aborted,
        );
        (watch, stop)
    });
    let progress = Progress::new(quiet, plan.total(), plan.own_users().len() as u32);
    if let (Some(log), Some(bar)) = (&log, progress.bar()) {
        log.above(bar.clone());
    }
    let fail = stopper(
        &root,
        "cannot write the results; stopping the run",
        Stop::WriteFailed,
    );
    let path = dir.path.clone();
    let writer = Writer::spawn(dir, meta, abort, fail)?;
    let (shown_progress, showing) = progress
        .spawn()
        .map_err(|err| could_not_run(format!("cannot start the progress thread: {err}")))?;
    let mut sinks = vec![writer.sink(), shown_progress];
    sinks.extend(live.as_ref().map(|l| l.sink()));
    let totals = soak_it(config, (plan, late), transport, sinks, &root, process).await;
    let why = root.why();
    let summary = writer.finish(totals, status_of(why.as_ref()));
    if let (Some(live), Ok(s)) = (&mut live, &summary) {
        live.ended(serde_json::to_value(s).unwrap_or_default(), &path);
    }
    showing.finish(summary.as_ref().ok(), &path);
    let summary = summary?;
    drop(demo);
    ending(why, summary.verdict.result, &shown)
}

/// A callback that prints `saying` with the reason and stops the run for it.
fn stopper(root: &Root, saying: &'static str, stop: fn(String) -> Stop) -> StopRun {
    let root = root.clone();
    Box::new(move |why: String| {
        eprintln!("soak: {saying}: {why}");
        root.stop(stop(why));
    })
}

/// The run's status from why it stopped (`None`: it ran to its end).
fn status_of(why: Option<&Stop>) -> Status {
    match why {
        None => Status::Completed,
        Some(Stop::Interrupted) => Status::Interrupted,
        Some(Stop::TargetExited(_)) => Status::TargetExited,
        Some(Stop::Aborted(_)) => Status::Aborted,
        Some(Stop::Panicked(_) | Stop::WriteFailed(_)) => Status::Failed,
    }
}

/// How the run ended, as an outcome or an exit-3 error naming the results folder.
fn ending(why: Option<Stop>, verdict: &str, shown: &str) -> Result<Outcome, SoakError> {
    match why {
        None if verdict == "fail" => Ok(Outcome::GateFailed),
        None => Ok(Outcome::Passed),
        Some(Stop::Interrupted) => Ok(Outcome::Interrupted),
        Some(Stop::Aborted(_)) => Ok(Outcome::GateFailed),
        Some(Stop::WriteFailed(why)) => Err(could_not_run(format!(
            "the results could not be written ({why}); the run was stopped at once and {shown} keeps what was written before"
        ))),
        Some(Stop::Panicked(why)) => Err(could_not_run(format!(
            "internal error, a bug in soak — please report it: {why}; the run was stopped and the results so far are in {shown}"
        ))),
        Some(Stop::TargetExited(how)) => Err(could_not_run(format!(
            "{how} during the run; results are in {shown}"
        ))),
    }
}

/// A failure before the results folder exists, with the last lines the target printed
/// (they usually say why it did not come up).
fn with_early_output(err: SoakError, log: Option<&TargetLog>) -> SoakError {
    // The target has usually just exited: give its pipes a moment to be read to the end.
    let early = log
        .map(|l| l.early(Duration::from_millis(500)))
        .unwrap_or_default();
    let lines: Vec<&str> = early.lines().collect();
    if lines.is_empty() {
        return err;
    }
    let tail = lines[lines.len().saturating_sub(20)..].join("\n  ");
    match err {
        SoakError::CouldNotRun(msg) => {
            SoakError::CouldNotRun(format!("{msg}\nthe target's last output:\n  {tail}"))
        }
        other @ SoakError::Usage(_) => other,
    }
}

/// The URL users connect to: the target's, or the demo target's, started here (and kept
/// running while its handle lives).
fn target_url(
    config: &RunConfig,
    mocks: &Mocks,
) -> Result<(String, Option<DemoTarget>), SoakError> {
    Ok(match &config.target {
        Target::Demo(demo) => {
            let demo = soak_mocks::demo::DemoConfig {
                llm: mocks.llm.as_ref().map(|(llm, _)| Arc::clone(llm)),
                ..demo.clone()
            };
            let rooms = demo.rooms;
            let target = DemoTarget::start(demo)?;
            // Room mode: each room is a path, as a Channels server routes them.
            let url = if rooms {
                format!("{}/room-{}", target.url(), crate::engine::connect::ROOM)
            } else {
                target.url()
            };
            (url, Some(target))
        }
        Target::Url(url) => (url.clone(), None),
        Target::Telegram => (String::from("telegram"), None),
    })
}

/// Runs the plan with the aggregator and the sampler beside it; returns the totals and
/// the run data.
async fn soak_it(
    config: &RunConfig,
    (plan, late): (Plan, Duration),
    transport: Transport,
    sinks: Vec<aggregator::Sink>,
    root: &Root,
    process: Option<Arc<Started>>,
) -> Option<(RunTotals, RunData)> {
    let (recorder, rx, dropped) = Recorder::channel();
    let (proc_tx, proc_rx) = mpsc::channel::<ProcMsg>(SAMPLER_CHANNEL);
    // A segment that came after the shared start joins the plan where it is.
    let now = Instant::now();
    let started = now.checked_sub(late).unwrap_or(now);
    let done = CancellationToken::new();
    let aggregator = aggregator::run(
        rx,
        proc_rx,
        done.clone(),
        dropped,
        setup(config, plan, started),
        sinks,
    );
    // A panic in the aggregator stops the run at once (the writer keeps its last
    // checkpoint's totals), rather than letting users run on with nothing recording them.
    let aggregator = tokio::spawn({
        let root = root.clone();
        async move {
            match AssertUnwindSafe(aggregator).catch_unwind().await {
                Ok(totals) => Some(totals),
                Err(payload) => {
                    root.stop(Stop::Panicked(format!(
                        "the aggregator: {}",
                        panic_message(payload.as_ref())
                    )));
                    None
                }
            }
        }
    });
    let on_exit = {
        let root = root.clone();
        Box::new(move |how: String| root.stop(Stop::TargetExited(how)))
    };
    let on_panic = {
        let root = root.clone();
        Box::new(move |why: String| root.stop(Stop::Panicked(format!("the sampler: {why}"))))
    };
    // Without a sampler the run goes on; the summary then has no memory figures.
    let source = match &config.process.target {
        // Opened when the profile was resolved; a cgroup removed since is the target gone.
        TargetProcess::Cgroup(path) => crate::sampler::cgroup::Cgroup::open(path)
            .ok()
            .map(Source::Cgroup),
        // Checked when the profile was resolved; if it went down since, the run starts
        // anyway and each failed scrape is a gap.
        TargetProcess::Metrics { url, names } => {
            match crate::sampler::scrape::Scraper::open(url, names.clone(), config.process.interval)
            {
                Ok(scraper) => Some(Source::Metrics(scraper)),
                Err(why) => {
                    eprintln!("soak: {why}; sampling goes on, each failed scrape a gap");
                    crate::sampler::scrape::Scraper::unchecked(
                        url,
                        names.clone(),
                        config.process.interval,
                    )
                    .ok()
                    .map(Source::Metrics)
                }
            }
        }
        _ => process.map(Source::Tree),
    };
    let sampler = Sampler::spawn(
        source,
        config.process.interval,
        started,
        proc_tx,
        (on_exit, on_panic),
    )
    .ok();
    let sessions = Arc::new(SessionConfig::new(
        config,
        transport,
        recorder,
        root.cancel.clone(),
    ));
    crate::engine::run(plan, started, sessions, config.probes.clone(), root).await;
    drop(sampler);
    done.cancel();
    aggregator.await.ok().flatten()
}

fn setup(config: &RunConfig, plan: Plan, started: Instant) -> Setup {
    Setup {
        plan,
        started,
        every: config.interval,
        messages: config
            .messages
            .iter()
            .map(|m| (m.name.clone(), m.complete.streams() || telegram(config)))
            .collect(),
        correct_micros: correction(config)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        steps: config.on_connect.iter().map(|s| s.name.clone()).collect(),
        socketio: config.socketio.clone(),
        stall_rule: config.stall_rule,
        memory: memory_setup(config, plan),
    }
}

/// What the memory verdicts of `plan` need (a merge reads it as the run did).
pub(crate) fn memory_setup(config: &RunConfig, plan: Plan) -> MemorySetup {
    MemorySetup {
        windows: Windows {
            plan,
            warmup: config.process.warmup_for(plan.hold()),
        },
        rule: config.process.rule,
        limit_mb: config.process.memory_limit_mb,
        target: !matches!(config.process.target, TargetProcess::None),
    }
}

/// Telegram users time the bot's first sign of life apart from its reply, like a stream.
fn telegram(config: &RunConfig) -> bool {
    matches!(config.target, Target::Telegram)
}

fn columns(config: &RunConfig) -> Columns {
    Columns {
        ttff: config.streams() || telegram(config),
        messages: if config.messages.len() > 1 {
            config.messages.iter().map(|m| m.name.clone()).collect()
        } else {
            Vec::new()
        },
        target: !matches!(config.process.target, TargetProcess::None),
        pushes: !config.pushes.is_empty(),
        fanout: config.fanout.is_some(),
    }
}

/// The run's metadata for `soak merge`: as a run's, with no mocks of its own.
pub(crate) fn meta_for_merge(
    config: &RunConfig,
    started: (String, SystemTime),
    url: String,
    plan: Plan,
) -> RunMeta {
    let mut meta = meta(config, started, url, false, plan, None);
    meta.segment = crate::segment::Segment::WHOLE;
    meta
}

fn meta(
    config: &RunConfig,
    (id, started_at): (String, SystemTime),
    url: String,
    demo: bool,
    plan: Plan,
    mocks: Option<&Mocks>,
) -> RunMeta {
    RunMeta {
        id,
        profile: config.profile.clone(),
        target: url,
        demo_target: demo,
        started_at,
        config: redacted(config),
        phases: plan.phases(),
        model: config.model,
        correction: correction(config),
        probes: config.probes.as_ref().map(|p| ProbeInfo {
            count: p.count,
            every_ms: p.every.as_secs_f64() * 1000.0,
            kind: if p.event.is_some() {
                "event"
            } else if p.message.is_some() {
                "message"
            } else {
                "ping"
            },
        }),
        stall_rule: config.stall_rule,
        segment: config.segment,
        messages: config
            .messages
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.weight,
                    m.complete.streams() || telegram(config),
                )
            })
            .collect(),
        process: match &config.process.target {
            TargetProcess::None => None,
            TargetProcess::Pid(pid) => Some(format!("pid {pid}")),
            TargetProcess::Name(name) => Some(format!("name {name}")),
            TargetProcess::Cmd(cmd) => Some(format!("cmd {}", crate::redact::command(cmd))),
            TargetProcess::Metrics { url, names } => Some(format!(
                "metrics {} ({})",
                crate::redact::url(url),
                names.memory
            )),
            TargetProcess::Cgroup(path) => Some(format!(
                "cgroup {}{} (anonymous memory; page cache apart)",
                path.display(),
                config
                    .effective
                    .process
                    .container
                    .as_ref()
                    .map_or(String::new(), |c| format!(" of container {c}"))
            )),
        },
        gates: config.gates.clone(),
        socketio: config.socketio.clone(),
        llm: mocks
            .and_then(|m| m.llm.as_ref())
            .map(|(llm, addr)| (Arc::clone(llm), format!("http://{addr}/v1"))),
        telegram: mocks
            .and_then(|m| m.telegram.as_ref())
            .map(|(t, addr)| (Arc::clone(t), format!("http://{addr}"))),
    }
}

/// The profile as written to `summary.json`: secrets in headers and the command masked.
fn redacted(config: &RunConfig) -> crate::profile::ProfileSpec {
    let mut spec = config.effective.clone();
    spec.target.headers = spec
        .target
        .headers
        .iter()
        .map(|h| crate::redact::header(h))
        .collect();
    spec.process.cmd = spec.process.cmd.as_deref().map(crate::redact::command);
    spec
}

/// The closed model's expected interval between one user's sends (the think time), used
/// for corrected recording; none in the open model or with no think time.
pub(crate) fn correction(config: &RunConfig) -> Option<Duration> {
    (config.model == Model::Closed && !config.think.is_zero()).then_some(config.think)
}

/// How users reach the target, checked before any load: a WebSocket target must accept one
/// connection (exit 3 otherwise); a Telegram bot must start polling or set its webhook.
async fn transport(
    config: &RunConfig,
    url: &str,
    mocks: &Mocks,
    process: Option<&Started>,
) -> Result<Transport, SoakError> {
    if let (Target::Telegram, Some((tg, addr))) = (&config.target, &mocks.telegram) {
        if process.is_none_or(|p| !p.started_by_soak()) {
            eprintln!(
                "soak: waiting for the bot: start it with TELEGRAM_API_URL=http://{addr} TELEGRAM_BOT_TOKEN={}",
                crate::mocks::BOT_TOKEN
            );
        }
        target::wait_for_bot(
            tg,
            crate::mocks::BOT_TOKEN,
            process,
            config.process.startup_timeout,
        )
        .await?;
        return Ok(Transport::Telegram(TelegramUsers {
            mock: Arc::clone(tg),
            token: crate::mocks::BOT_TOKEN.into(),
        }));
    }
    let dialer = Dialer::new(url, &config.connection, config.connect_rate).await?;
    match process {
        Some(p) if p.started_by_soak() => {
            target::wait_ready(p, &dialer, config.process.startup_timeout).await?
        }
        _ => preflight(&dialer).await?,
    }
    Ok(match &config.socketio {
        Some(sio) => Transport::SocketIo(dialer, Arc::clone(sio)),
        None => Transport::WebSocket(dialer),
    })
}

/// One connection before any load, so an unreachable target is exit 3 with nothing sent.
async fn preflight(dialer: &Dialer) -> Result<(), SoakError> {
    match dialer.dial_explained(0).await {
        Ok(mut ws) => {
            let _ = ws.close(None).await;
            Ok(())
        }
        Err((_, why)) => Err(could_not_run(format!(
            "target {} is unreachable: {why}",
            crate::redact::url(dialer.url()),
        ))),
    }
}
