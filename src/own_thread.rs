//! A server on its own OS thread and single-threaded runtime, so its work never shares the
//! tester's workers and it behaves like one event loop; dropping the handle stops it.

use std::future::Future;
use std::io;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

/// A running server thread (or, by default, none); dropping it stops the server and waits
/// for the thread.
#[derive(Debug, Default)]
pub struct OwnThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

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
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
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
        })
    }
}

impl Drop for OwnThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
