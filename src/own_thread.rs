//! A server on its own OS thread and single-threaded runtime, so its work never shares the
//! tester's workers and it behaves like one event loop; dropping the handle stops it (and
//! waits for it a bounded time: a server blocked in a call — the demo's `block_per_message
//! = "1h"` — is left to end with the process rather than hold soak up).

use std::future::Future;
use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

/// A running server thread (or, by default, none); dropping it stops the server and waits
/// for the thread.
#[derive(Debug, Default)]
pub struct OwnThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Closed when the thread's work has ended.
    done: Option<mpsc::Receiver<()>>,
}

/// How long dropping the handle waits for the server to stop.
pub const STOP_WAIT: Duration = Duration::from_secs(2);

impl OwnThread {
    /// Runs the future `serve` builds (inside the new runtime) on a thread named `name`,
    /// until it ends or the handle is dropped (which drops it and every task it spawned).
    pub fn spawn<F, Fut>(name: &str, serve: F) -> io::Result<OwnThread>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (finished, done) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _finished = finished; // dropped (the channel closes) when this ends
                runtime.block_on(async move {
                    tokio::select! {
                        () = serve() => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(OwnThread {
            stop: Some(stop),
            thread: Some(thread),
            done: Some(done),
        })
    }
}

impl Drop for OwnThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let ended = self.done.take().is_none_or(|done| {
            done.recv_timeout(STOP_WAIT) != Err(mpsc::RecvTimeoutError::Timeout)
        });
        if let Some(thread) = self.thread.take() {
            if ended {
                let _ = thread.join();
            } else {
                let name = thread.thread().name().unwrap_or("server").to_string();
                eprintln!(
                    "soak: {name} did not stop within {} (blocked in a call); leaving it to end with soak",
                    crate::units::format_duration(STOP_WAIT)
                );
            }
        }
    }
}
