//! The built-in demo chat target, served on 127.0.0.1:0 from its own thread and runtime.
//!
//! Its own single-threaded runtime keeps the demo's work off the tester's workers, and
//! makes it behave like the single event loop of a typical chat server (so a blocking
//! mode, when it comes, blocks the demo and not the tester).

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use soak_mocks::demo::{self, DemoConfig};
use tokio::sync::oneshot;

use crate::error::{SoakError, could_not_run};

/// A running demo target; dropping it stops the server.
pub struct DemoTarget {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DemoTarget {
    /// Binds 127.0.0.1:0 and starts serving; clients may connect as soon as this returns.
    pub fn start(config: DemoConfig) -> Result<DemoTarget, SoakError> {
        DemoTarget::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config)
    }

    /// Binds `addr` and starts serving; clients may connect as soon as this returns.
    pub fn start_on(addr: SocketAddr, config: DemoConfig) -> Result<DemoTarget, SoakError> {
        let fail = |err: std::io::Error| {
            could_not_run(format!("cannot start the demo target on {addr}: {err}"))
        };
        let listener = TcpListener::bind(addr).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(fail)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("soak-demo-target".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    // Dropping the server future on stop ends every connection with it.
                    tokio::select! {
                        _ = demo::serve(listener, config, std::future::pending()) => {}
                        _ = stopped => {}
                    }
                });
            })
            .map_err(fail)?;
        Ok(DemoTarget {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The WebSocket URL to soak.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

impl Drop for DemoTarget {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
