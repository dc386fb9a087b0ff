//! Finding the target process (by PID or name) or starting it (a shell command), telling
//! when it has exited, and stopping what soak started.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, Signal, System};
use tokio::time::{Instant, sleep};

use crate::engine::connect::Dialer;
use crate::error::{SoakError, could_not_run, usage};
use crate::sampler::target_log::TargetLog;

/// How often a starting target is tried, and how often a stopping one is checked.
const POLL: Duration = Duration::from_millis(50);

/// The watched target process.
#[derive(Debug)]
pub struct Started {
    /// Its PID (the root of the sampled tree).
    pub pid: u32,
    /// The child, when soak started it (so soak reaps and stops it).
    child: Mutex<Option<Child>>,
    /// Its output, when soak started it.
    pub log: Option<Arc<TargetLog>>,
    /// The watchdog that stops the target's process group if soak itself dies (see
    /// [`spawn`]); stopped by soak first when soak ends normally.
    watchdog: Mutex<Option<Child>>,
}

impl Started {
    /// How the target ended, if it has; `sys` must have been refreshed for its PID.
    pub fn exited(&self, sys: &System) -> Option<String> {
        if let Ok(mut guard) = self.child.lock()
            && let Some(child) = guard.as_mut()
        {
            return match child.try_wait() {
                Ok(Some(status)) => Some(format!("the target (pid {}) exited: {status}", self.pid)),
                Ok(None) => None,
                Err(err) => Some(format!(
                    "the target (pid {}) cannot be waited for: {err}",
                    self.pid
                )),
            };
        }
        sys.process(Pid::from_u32(self.pid))
            .is_none()
            .then(|| format!("the target process (pid {}) is gone", self.pid))
    }

    /// Whether soak started this process (and so must stop it).
    pub fn started_by_soak(&self) -> bool {
        self.child.lock().map(|c| c.is_some()).unwrap_or(false)
    }

    /// Stops a target soak started: SIGTERM to its tree, then SIGKILL after `grace`.
    /// A process soak did not start is left alone.
    pub async fn stop(&self, grace: Duration) {
        if !self.started_by_soak() {
            return;
        }
        let tree = tree_of(self.pid);
        signal(&tree, Signal::Term);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.reaped() {
                break;
            }
            sleep(POLL).await;
        }
        signal(&tree, Signal::Kill);
        if let Ok(mut guard) = self.child.lock()
            && let Some(child) = guard.as_mut()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stop_watchdog();
    }

    /// Kills the watchdog (soak's own child, by PID) before its pipe closes, so it never
    /// signals a process group that is gone (and whose number could be reused).
    fn stop_watchdog(&self) {
        if let Ok(mut guard) = self.watchdog.lock()
            && let Some(mut dog) = guard.take()
        {
            let _ = dog.kill();
            let _ = dog.wait();
        }
    }

    fn reaped(&self) -> bool {
        match self.child.lock() {
            Ok(mut guard) => guard
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_)))),
            Err(_) => true,
        }
    }
}

/// The running process with this PID (exit 2 if there is none).
pub fn by_pid(pid: u32) -> Result<Started, SoakError> {
    let mut sys =
        System::new().map_err(|err| could_not_run(format!("cannot read processes: {err}")))?;
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[Pid::from_u32(pid)]),
        true,
        ProcessRefreshKind::nothing(),
    );
    if sys.process(Pid::from_u32(pid)).is_none() {
        return Err(usage(format!(
            "--target-pid {pid}: no running process has that PID"
        )));
    }
    Ok(Started {
        pid,
        child: Mutex::new(None),
        log: None,
        watchdog: Mutex::new(None),
    })
}

/// The one running process named `name` (its executable's file name or its process name).
/// Several matches that form one tree (a forking server's workers) resolve to its root;
/// otherwise exit 2, listing the candidates with their PIDs and command lines.
pub fn by_name(name: &str) -> Result<Started, SoakError> {
    let mut sys =
        System::new().map_err(|err| could_not_run(format!("cannot read processes: {err}")))?;
    let kind = ProcessRefreshKind::nothing()
        .without_tasks()
        .with_cmd(sysinfo::UpdateKind::Always)
        .with_exe(sysinfo::UpdateKind::Always);
    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
    let me = Pid::from_u32(std::process::id());
    let matches: Vec<Pid> = sys
        .processes()
        .iter()
        .filter(|(pid, p)| {
            **pid != me
                && (p.name() == name
                    || p.exe()
                        .and_then(|e| e.file_name())
                        .is_some_and(|f| f == name))
        })
        .map(|(pid, _)| *pid)
        .collect();
    let roots: Vec<Pid> = matches
        .iter()
        .copied()
        .filter(|pid| {
            sys.process(*pid)
                .and_then(|p| p.parent())
                .is_none_or(|parent| !matches.contains(&parent))
        })
        .collect();
    match roots.as_slice() {
        [root] => Ok(Started {
            pid: root.as_u32(),
            child: Mutex::new(None),
            log: None,
            watchdog: Mutex::new(None),
        }),
        [] => Err(usage(format!(
            "--target-name {name}: no running process has that name"
        ))),
        many => {
            let list: Vec<String> = many.iter().map(|pid| shown(&sys, *pid)).collect();
            Err(usage(format!(
                "--target-name {name}: {} processes match; pick one with --target-pid: {}",
                many.len(),
                list.join("; ")
            )))
        }
    }
}

/// A process as listed in an error: its pid and command line, secrets masked.
fn shown(sys: &System, pid: Pid) -> String {
    let cmd = sys.process(pid).map(|p| {
        p.cmd()
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    });
    format!(
        "{pid}: {}",
        crate::redact::command(&cmd.unwrap_or_default())
    )
}

/// Starts `cmd` with `sh -c` in its own process group (a Ctrl-C at the terminal reaches
/// soak, which then stops the target in order). Its stdout and stderr go to a
/// [`TargetLog`]: `target.log` in the results folder, and the console with `console`.
pub fn spawn(cmd: &str, env: &[(String, String)], console: bool) -> Result<Started, SoakError> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|err| {
            could_not_run(format!(
                "cannot start the target `{}`: {err}",
                crate::redact::command(cmd)
            ))
        })?;
    let log = TargetLog::new(console);
    if let Some(out) = child.stdout.take() {
        log.follow(out);
    }
    if let Some(err) = child.stderr.take() {
        log.follow(err);
    }
    let watchdog = watchdog(child.id());
    Ok(Started {
        pid: child.id(),
        child: Mutex::new(Some(child)),
        log: Some(log),
        watchdog: Mutex::new(watchdog),
    })
}

/// If soak is killed (`kill -9`, a crash), nothing stops the target it started: it would be
/// orphaned, holding its port. So soak starts a watchdog beside it — `sh` reading a pipe
/// only soak writes to; when soak dies, the kernel closes the pipe, the read ends, and the
/// watchdog sends SIGTERM to the target's process group, then SIGKILL 5 s later. (A
/// parent-death signal would need `unsafe` in soak.) When soak ends normally it stops the
/// target itself and kills the watchdog first. `None` if the watchdog cannot start: the
/// run goes on without it.
fn watchdog(group: u32) -> Option<Child> {
    Command::new("sh")
        .arg("-c")
        // `kill -SIG -PGID` without `--`: dash's kill takes no `--`.
        .arg("cat >/dev/null; kill -TERM -\"$0\" 2>/dev/null; sleep 5; kill -KILL -\"$0\" 2>/dev/null")
        .arg(group.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Waits until the target accepts WebSocket connections, or fails (exit 3) when it exits
/// first or does not come up within `timeout`.
pub async fn wait_ready(
    target: &Started,
    dialer: &Dialer,
    timeout: Duration,
) -> Result<(), SoakError> {
    let deadline = Instant::now() + timeout;
    let sys =
        System::new().map_err(|err| could_not_run(format!("cannot read processes: {err}")))?;
    loop {
        if dialer.dial(0).await.is_ok() {
            return Ok(());
        }
        if let Some(how) = target.exited(&sys) {
            return Err(could_not_run(format!("{how} before accepting connections")));
        }
        if Instant::now() >= deadline {
            return Err(could_not_run(format!(
                "the target (pid {}) did not accept connections at {} within {}",
                target.pid,
                crate::redact::url(dialer.url()),
                crate::units::format_duration(timeout)
            )));
        }
        sleep(POLL).await;
    }
}

/// Waits until the bot polls the mock or sets its webhook, or fails (exit 3) when the
/// target process exits first or the bot does not come up within `timeout`.
pub async fn wait_for_bot(
    tg: &soak_mocks::telegram::Telegram,
    token: &str,
    target: Option<&Started>,
    timeout: Duration,
) -> Result<(), SoakError> {
    let deadline = Instant::now() + timeout;
    let sys =
        System::new().map_err(|err| could_not_run(format!("cannot read processes: {err}")))?;
    loop {
        if tg.bot_is_up(token) {
            return Ok(());
        }
        if let Some(how) = target.and_then(|t| t.exited(&sys)) {
            return Err(could_not_run(format!(
                "{how} before the bot started polling"
            )));
        }
        if Instant::now() >= deadline {
            return Err(could_not_run(format!(
                "the bot did not call getUpdates or setWebhook within {}",
                crate::units::format_duration(timeout)
            )));
        }
        sleep(POLL).await;
    }
}

/// `pid` and its descendants, now.
fn tree_of(pid: u32) -> Vec<Pid> {
    match System::new() {
        Ok(mut sys) => crate::sampler::descendants(&mut sys, Pid::from_u32(pid)),
        Err(_) => vec![Pid::from_u32(pid)],
    }
}

fn signal(pids: &[Pid], signal: Signal) {
    let Ok(mut sys) = System::new() else { return };
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(pids),
        true,
        ProcessRefreshKind::nothing().without_tasks(),
    );
    for pid in pids {
        if let Some(p) = sys.process(*pid) {
            let _ = p.kill_with(signal);
        }
    }
}
