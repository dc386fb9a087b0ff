//! Ctrl-C, SIGTERM and SIGHUP: the root cancellation of a run, and why it was cancelled — a
//! signal, the target's exit, a gate, or a panic in one of the run's own tasks (caught, so
//! a bug in soak ends the run as a failure instead of a silent "pass").

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt as _;

use tokio_util::sync::CancellationToken;

/// Why the run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The target process ended; how.
    TargetExited(String),
    /// `--abort-on-fail`: a gate could no longer pass; which and why.
    Aborted(String),
    /// One of the run's tasks or threads panicked (a bug in soak): where and why.
    Panicked(String),
    /// A results file could not be written (a full disk): which and why.
    WriteFailed(String),
}

/// The root token of a run and the first reason it was cancelled.
#[derive(Debug, Clone, Default)]
pub struct Root {
    /// Cancelling it stops the whole run; results are still written.
    pub cancel: CancellationToken,
    why: Arc<Mutex<Option<Stop>>>,
}

impl Root {
    /// A root that Ctrl-C, SIGTERM or SIGHUP cancel. The handlers are installed before this
    /// returns, so a signal sent from then on is never the default "terminate at once".
    pub fn watching_signals() -> Root {
        let root = Root::default();
        let on_signal = root.clone();
        let signals = Signals::install();
        tokio::spawn(async move {
            signals.wait().await;
            on_signal.stop(Stop::Interrupted);
        });
        root
    }

    /// Stops the run for `why` (the first reason given is kept).
    pub fn stop(&self, why: Stop) {
        if let Ok(mut slot) = self.why.lock() {
            slot.get_or_insert(why);
        }
        self.cancel.cancel();
    }

    /// `task`, with a panic in it caught: the run is stopped for it instead of going on
    /// without that task and reporting what was left as complete.
    pub fn guard<F: Future<Output = ()>>(&self, task: F) -> impl Future<Output = ()> + use<F> {
        // A combinator, not an `async move` block: such a block would hold `task` twice
        // (as its captured value and inside the future it awaits), doubling the memory of
        // every session (1.3 KB a connection, measured with `scripts/idle-bench.sh`).
        let root = self.clone();
        AssertUnwindSafe(task).catch_unwind().map(move |ended| {
            if let Err(payload) = ended {
                root.stop(Stop::Panicked(panic_message(payload.as_ref())));
            }
        })
    }

    /// Why the run was stopped early, if it was.
    pub fn why(&self) -> Option<Stop> {
        self.why.lock().ok().and_then(|w| w.clone())
    }
}

/// The text of a panic's payload (a `&str` or `String` for `panic!` with a message).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| String::from("a panic with no message"))
}

/// Waits for Ctrl-C, SIGTERM or SIGHUP (the terminal closed: a soak left running in a
/// closed SSH session stops cleanly and writes its results).
pub async fn wait_for_signal() {
    Signals::install().wait().await;
}

/// The stopping signals, their handlers installed.
struct Signals {
    #[cfg(unix)]
    streams: Option<[tokio::signal::unix::Signal; 3]>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(int), Ok(term), Ok(hup)) => Some([int, term, hup]),
                _ => None,
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some([mut int, mut term, mut hup]) = self.streams {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_stops_the_run_and_says_why() {
        let root = Root::default();
        let task = tokio::spawn(root.guard(async {
            let deadline: Option<u32> = None;
            panic!("deadline overflow: {deadline:?}");
        }));
        task.await.expect("the panic was caught inside the task");
        assert!(root.cancel.is_cancelled());
        match root.why() {
            Some(Stop::Panicked(msg)) => assert!(msg.contains("deadline overflow"), "{msg}"),
            other => panic!("{other:?}"),
        }
        // A task that ends normally changes nothing.
        let calm = Root::default();
        calm.guard(async {}).await;
        assert_eq!(calm.why(), None);
    }

    #[test]
    fn the_first_reason_is_kept() {
        let root = Root::default();
        root.stop(Stop::TargetExited("exit status: 1".into()));
        root.stop(Stop::Interrupted);
        assert!(root.cancel.is_cancelled());
        assert_eq!(
            root.why(),
            Some(Stop::TargetExited("exit status: 1".into()))
        );
    }
}
