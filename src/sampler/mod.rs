//! The sampler: an OS thread that reads the target's process tree and soak itself.
//!
//! `/proc` and sysinfo reads block, and a tool that measures event-loop stalls must not
//! stall its own runtime, so sampling lives on its own thread and sends plain readings to
//! the aggregator. One `System` stays alive (CPU usage needs two readings); each tick
//! refreshes only the watched PIDs with the minimal refresh kind (memory, CPU, tasks), and
//! the tree of children is rediscovered only every [`DISCOVER_EVERY`] ticks.

pub mod cgroup;
pub mod scrape;
pub mod target;
pub mod target_log;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::mpsc;

use crate::sampler::target::Started;

/// Ticks between rediscoveries of the target's children (a forking server's workers).
pub const DISCOVER_EVERY: u64 = 10;

/// One reading of one process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// Resident memory (VmRSS) summed over the tree, bytes.
    pub rss_bytes: u64,
    /// CPU use summed over the tree, % of one core.
    pub cpu_pct: f32,
    /// Open file descriptors summed over the tree.
    pub fds: u32,
    /// Threads summed over the tree (`None` when the source does not say: a metrics
    /// endpoint without a threads metric).
    pub threads: Option<u32>,
    /// Processes in the tree.
    pub procs: u32,
}

/// What a cgroup target adds to a reading: the page cache charged to it (reclaimable: not
/// judged) and all the memory charged (anonymous + cache + kernel).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Charged {
    /// Page cache (`file` / `total_cache`), bytes.
    pub cache_bytes: u64,
    /// Everything charged (`memory.current` / `memory.usage_in_bytes`), bytes.
    pub charged_bytes: u64,
}

/// What the sampler watches as the target: three sources feeding the same readings.
#[derive(Debug)]
pub enum Source {
    /// A process and its children (`--target-pid`, `--target-name`, `--target-cmd`).
    Tree(Arc<Started>),
    /// A cgroup (`--target-cgroup`): its anonymous memory is the verdict's.
    Cgroup(cgroup::Cgroup),
    /// A metrics endpoint (`--target-metrics`): the resident memory it reports.
    Metrics(scrape::Scraper),
}

impl Reading {
    /// RSS in MB (10^6 bytes, as the verdict reports it).
    pub fn rss_mb(&self) -> f64 {
        self.rss_bytes as f64 / 1_000_000.0
    }
}

/// What the sampler sends.
#[derive(Debug, Clone)]
pub enum ProcMsg {
    /// One tick's readings: when (ms from the run's start), the target's, soak's own.
    Reading {
        /// Ms from the run's start.
        at_ms: u32,
        /// The target's tree, if one is watched.
        target: Option<Reading>,
        /// A cgroup target's page cache and charged memory.
        charged: Option<Charged>,
        /// Soak itself.
        tester: Reading,
    },
    /// The target process is gone: how it ended.
    TargetExited(String),
    /// A reading of the target failed this tick (a scrape that timed out or was refused):
    /// a gap in `memory.csv`, counted, never a zero.
    Gap(String),
}

/// Called once with what happened (the target's exit, the sampler's own failure).
pub type OnEvent = Box<dyn FnOnce(String) + Send>;

/// The running sampler thread; dropping it stops the thread.
pub struct Sampler {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling every `every` from `started`: the target (if any) and soak itself.
    /// `on_exit` is called once if the target goes away; `on_panic` if the sampler itself
    /// fails (a bug), so the run stops rather than going on without memory figures.
    pub fn spawn(
        target: Option<Source>,
        every: Duration,
        started: tokio::time::Instant,
        tx: mpsc::Sender<ProcMsg>,
        (on_exit, on_panic): (OnEvent, OnEvent),
    ) -> std::io::Result<Sampler> {
        let (stop, stopped) = channel();
        let started = started.into_std();
        let thread = std::thread::Builder::new()
            .name("soak-sampler".into())
            .spawn(move || {
                let run = AssertUnwindSafe(|| {
                    sample_loop(target, every, started, &tx, &stopped, on_exit);
                });
                if let Err(payload) = std::panic::catch_unwind(run) {
                    on_panic(crate::signals::panic_message(payload.as_ref()));
                }
            })?;
        Ok(Sampler {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn sample_loop(
    mut target: Option<Source>,
    every: Duration,
    started: Instant,
    tx: &mpsc::Sender<ProcMsg>,
    stopped: &Receiver<()>,
    on_exit: Box<dyn FnOnce(String) + Send>,
) {
    let mut sys = System::new().ok();
    let me = Pid::from_u32(std::process::id());
    let root = match &target {
        Some(Source::Tree(t)) => Some(Pid::from_u32(t.pid)),
        _ => None,
    };
    let mut tree: Vec<Pid> = root.into_iter().collect();
    let mut on_exit = Some(on_exit);
    let mut tick: u64 = 0;
    loop {
        let Some(sys) = sys.as_mut() else { return };
        let mut gone = None;
        if let (Some(Source::Tree(t)), Some(root)) = (&target, root) {
            if tick.is_multiple_of(DISCOVER_EVERY) {
                tree = descendants(sys, root);
            }
            gone = t.exited(sys);
        }
        let mut watched = tree.clone();
        watched.push(me);
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&watched),
            true,
            ProcessRefreshKind::nothing()
                .with_memory()
                .with_cpu()
                .with_tasks(),
        );
        let (reading, charged) = match &mut target {
            Some(Source::Tree(_)) => (Some(read(sys, &tree)), None),
            Some(Source::Cgroup(group)) => match group.read() {
                Some((r, c)) => (Some(r), Some(c)),
                None => {
                    gone.get_or_insert_with(|| {
                        format!("the cgroup {} is gone", group.path().display())
                    });
                    (None, None)
                }
            },
            Some(Source::Metrics(scraper)) => match scraper.read() {
                Ok(r) => (Some(r), None),
                Err(why) => {
                    if tx.blocking_send(ProcMsg::Gap(why)).is_err() {
                        return;
                    }
                    (None, None)
                }
            },
            None => (None, None),
        };
        if let Some(how) = gone {
            let _ = tx.blocking_send(ProcMsg::TargetExited(how.clone()));
            if let Some(f) = on_exit.take() {
                f(how);
            }
        }
        let reading = ProcMsg::Reading {
            at_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
            target: reading,
            charged,
            tester: read(sys, &[me]),
        };
        if tx.blocking_send(reading).is_err() {
            return;
        }
        tick += 1;
        // Drift-free: the next tick is due at a fixed multiple of `every` from the start.
        let next = started + every * u32::try_from(tick).unwrap_or(u32::MAX);
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// `root` and every process below it (from a full but cheap refresh: no tasks, no memory).
pub(crate) fn descendants(sys: &mut System, root: Pid) -> Vec<Pid> {
    sys.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().without_tasks(),
    );
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        let children: Vec<Pid> = sys
            .processes()
            .iter()
            .filter(|(pid, p)| p.parent() == Some(parent) && !tree.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        tree.extend(children);
        i += 1;
    }
    tree
}

/// Sums one reading over `pids` (those still alive).
fn read(sys: &System, pids: &[Pid]) -> Reading {
    let mut r = Reading::default();
    for pid in pids {
        if let Some(p) = sys.process(*pid) {
            r.rss_bytes += p.memory();
            r.cpu_pct += p.cpu_usage();
            r.fds += p
                .open_files()
                .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
            let threads = p
                .tasks()
                .map_or(1, |t| u32::try_from(t.len()).unwrap_or(u32::MAX).max(1));
            r.threads = Some(r.threads.unwrap_or(0).saturating_add(threads));
            r.procs += 1;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let mut sys = System::new().unwrap();
        let me = Pid::from_u32(std::process::id());
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[me]),
            true,
            ProcessRefreshKind::nothing()
                .with_memory()
                .with_cpu()
                .with_tasks(),
        );
        let r = read(&sys, &[me]);
        assert_eq!(r.procs, 1);
        assert!(r.rss_bytes > 1_000_000, "{r:?}");
        assert!(r.fds >= 3, "{r:?}");
        assert!(r.threads >= Some(1), "{r:?}");
    }

    #[test]
    fn finds_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let mut sys = System::new().unwrap();
        let me = Pid::from_u32(std::process::id());
        let tree = descendants(&mut sys, me);
        assert!(tree.contains(&Pid::from_u32(child.id())), "{tree:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
