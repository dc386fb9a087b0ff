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
        Self::serve(listener, config).map_err(fail)
    }

    /// The same on a port other processes may listen on too (`SO_REUSEPORT`): the kernel
    /// spreads the connections over them, so several demo targets hold more connections
    /// on one port than one process's open-file limit allows.
    pub fn start_shared(addr: SocketAddr, config: DemoConfig) -> Result<DemoTarget, SoakError> {
        let fail = |err: std::io::Error| {
            could_not_run(format!(
                "cannot start the demo target on {addr} (shared): {err}"
            ))
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .map_err(fail)?;
        socket.set_reuse_port(true).map_err(fail)?;
        socket.set_reuse_address(true).map_err(fail)?;
        socket.bind(&addr.into()).map_err(fail)?;
        socket.listen(4096).map_err(fail)?;
        Self::serve(socket.into(), config).map_err(fail)
    }

    fn serve(listener: TcpListener, config: DemoConfig) -> std::io::Result<DemoTarget> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let server = OwnThread::spawn("soak-demo-target", move || async move {
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                let _ = demo::serve(listener, config, std::future::pending()).await;
            }
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_demo_targets_listen_on_one_port_and_a_plain_one_cannot() {
        let first = DemoTarget::start_shared("127.0.0.1:0".parse().unwrap(), DemoConfig::default())
            .unwrap();
        let second = DemoTarget::start_shared(first.addr, DemoConfig::default()).unwrap();
        assert_eq!(first.url(), second.url());
        assert!(DemoTarget::start_on(first.addr, DemoConfig::default()).is_err());
        // Either process answers a connection on the shared port.
        let tcp = std::net::TcpStream::connect(first.addr).unwrap();
        drop(tcp);
    }
}
