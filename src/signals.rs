//! Ctrl-C and SIGTERM: the root cancellation of a run, and why it was cancelled.

use std::sync::{Arc, Mutex};

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
}

/// The root token of a run and the first reason it was cancelled.
#[derive(Debug, Clone, Default)]
pub struct Root {
    /// Cancelling it stops the whole run; results are still written.
    pub cancel: CancellationToken,
    why: Arc<Mutex<Option<Stop>>>,
}

impl Root {
    /// A root that Ctrl-C or SIGTERM cancel.
    pub fn watching_signals() -> Root {
        let root = Root::default();
        let on_signal = root.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
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

    /// Why the run was stopped early, if it was.
    pub fn why(&self) -> Option<Stop> {
        self.why.lock().ok().and_then(|w| w.clone())
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
