//! An in-memory transport for unit tests of the user loop: each connection is a pair of
//! channels to the test, which plays the server (reads what users send, answers, pushes,
//! closes) on paused time.

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::engine::transport::{ABNORMAL_CLOSE, Arrival};
use crate::metrics::ErrorKind;

/// What the test's server sends a user.
#[derive(Debug)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A close frame with this code.
    Close(u16),
}

/// The server end of one connection, handed to the test.
#[derive(Debug)]
pub struct Peer {
    /// The user connected.
    pub user: u32,
    /// What the user sends.
    pub from_user: mpsc::UnboundedReceiver<String>,
    /// What the server sends back.
    pub to_user: mpsc::UnboundedSender<Frame>,
}

/// The stand-in server: each connect becomes a [`Peer`] on `accepted`, until `refusing`
/// says no.
#[derive(Debug)]
pub struct Server {
    accepted: mpsc::UnboundedSender<Peer>,
    /// Connects to refuse (as a refused TCP connect) before accepting again.
    refusing: std::sync::atomic::AtomicU32,
}

impl Server {
    /// A server and the test's end of its accept queue.
    pub fn new() -> (Server, mpsc::UnboundedReceiver<Peer>) {
        let (accepted, rx) = mpsc::unbounded_channel();
        let server = Server {
            accepted,
            refusing: std::sync::atomic::AtomicU32::new(0),
        };
        (server, rx)
    }

    /// The next `n` connects are refused.
    pub fn refuse(&self, n: u32) {
        self.refusing.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// User `user` connects.
    pub(crate) async fn connect(&self, user: u32) -> Result<Link, ErrorKind> {
        use std::sync::atomic::Ordering::Relaxed;
        if self
            .refusing
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ErrorKind::ConnectRefused);
        }
        let (to_server, from_user) = mpsc::unbounded_channel();
        let (to_user, from_server) = mpsc::unbounded_channel();
        self.accepted
            .send(Peer {
                user,
                from_user,
                to_user,
            })
            .map_err(|_| ErrorKind::ConnectRefused)?;
        Ok(Link {
            to_server: Some(to_server),
            from_server,
        })
    }
}

/// The user's end of one connection.
#[derive(Debug)]
pub(crate) struct Link {
    to_server: Option<mpsc::UnboundedSender<String>>,
    from_server: mpsc::UnboundedReceiver<Frame>,
}

impl Link {
    /// Sends the rendered message; a server that hung up is a reset.
    pub(crate) fn send(&mut self, out: &mut BytesMut) -> Result<bool, ErrorKind> {
        let text = String::from_utf8_lossy(&out.split()).into_owned();
        match &self.to_server {
            Some(tx) if tx.send(text).is_ok() => Ok(true),
            _ => Err(ErrorKind::Reset),
        }
    }

    /// What the server sent next.
    pub(crate) async fn next(&mut self) -> Arrival {
        match self.from_server.recv().await {
            Some(Frame::Text(text)) => Arrival::Text(Utf8Bytes::from(text)),
            Some(Frame::Close(code)) => Arrival::Closed(ErrorKind::Closed, code),
            None => Arrival::Closed(ErrorKind::Closed, ABNORMAL_CLOSE),
        }
    }

    /// The user closes its end.
    pub(crate) fn close(&mut self) {
        self.to_server = None;
    }
}
