//! The built-in demo chat target, served on 127.0.0.1:0 from its own thread and runtime.
//!
//! Its own single-threaded runtime keeps the demo's work off the tester's workers, and
//! makes it behave like the single event loop of a typical chat server (so a blocking
//! mode, when it comes, blocks the demo and not the tester).

use std::net::{SocketAddr, TcpListener};

use soak_mocks::demo::{self, DemoConfig};

use crate::error::{SoakError, could_not_run};
use crate::own_thread::OwnThread;

/// A running demo target; dropping it stops the server.
pub struct DemoTarget {
    addr: SocketAddr,
    /// Stops the server when dropped.
    _server: OwnThread,
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
        let server = OwnThread::spawn("soak-demo-target", move || async move {
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                let _ = demo::serve(listener, config, std::future::pending()).await;
            }
        })
        .map_err(fail)?;
        Ok(DemoTarget {
            addr,
            _server: server,
        })
    }

    /// The WebSocket URL to soak.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}
