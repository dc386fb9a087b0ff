//! Opening one WebSocket connection: per-connection buffer sizes, timeouts, error kinds.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::metrics::ErrorKind;

/// tungstenite allocates its read buffer eagerly, 128 KiB by default: ≈2.4 GiB at 19,000
/// connections before a frame arrives. Chat frames are small, so 4 KiB is enough; a larger
/// frame still arrives whole, the buffer is only the unit of each socket read.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Bytes queued before tungstenite writes to the socket. Every send here is followed by a
/// flush, so this only bounds the (lazily grown) write buffer.
pub const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// Largest message accepted from the server. tungstenite's default (64 MiB) lets one bad
/// reply cost a lot of memory per connection; a chat reply above 1 MiB is a protocol error.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// TCP connect plus WebSocket handshake must finish within this, or the attempt counts as
/// `connect_timeout` (a server that accepts and never upgrades must not hang a user).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An open client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// The target, looked up once so 19,000 connects do not make 19,000 DNS queries.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL as given (used for the upgrade request's path and Host header).
    pub url: String,
    /// The address connected to.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Looks up the URL's host (a `ws://` URL, checked by the profile resolver).
    pub async fn resolve(url: &str) -> Result<Endpoint, String> {
        let rest = url.strip_prefix("ws://").unwrap_or(url);
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let with_port = if has_port(authority) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let mut addrs = tokio::net::lookup_host(with_port.as_str())
            .await
            .map_err(|err| format!("cannot resolve `{authority}`: {err}"))?;
        let addr = addrs
            .next()
            .ok_or_else(|| format!("`{authority}` resolves to no address"))?;
        Ok(Endpoint {
            url: url.to_string(),
            addr,
        })
    }
}

fn has_port(authority: &str) -> bool {
    match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'), // `[::1]` has colons but no port
        None => false,
    }
}

/// The WebSocket settings of every client connection (see the constants above).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES.max(MAX_MESSAGE_BYTES) * 2)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// Opens one connection: TCP with Nagle off, then the upgrade, all within the timeout.
pub async fn connect(endpoint: &Endpoint) -> Result<Ws, ErrorKind> {
    let attempt = async {
        let tcp = TcpStream::connect(endpoint.addr)
            .await
            .map_err(|err| classify_io(&err))?;
        // Chat messages are small and latency is what we measure: never wait to coalesce.
        tcp.set_nodelay(true).map_err(|_| ErrorKind::ConnectIo)?;
        let (ws, _response) =
            client_async_with_config(endpoint.url.as_str(), tcp, Some(ws_config()))
                .await
                .map_err(|err| match err {
                    WsError::Io(io) => classify_io(&io),
                    _ => ErrorKind::Handshake,
                })?;
        Ok(ws)
    };
    timeout(HANDSHAKE_TIMEOUT, attempt)
        .await
        .unwrap_or(Err(ErrorKind::ConnectTimeout))
}

fn classify_io(err: &io::Error) -> ErrorKind {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ErrorKind::Reset,
        _ => ErrorKind::ConnectIo,
    }
}

/// The kind of an error on an open connection.
pub fn classify(err: &WsError) -> ErrorKind {
    match err {
        WsError::ConnectionClosed | WsError::AlreadyClosed => ErrorKind::Closed,
        WsError::Io(io) => match classify_io(io) {
            ErrorKind::ConnectIo | ErrorKind::ConnectRefused | ErrorKind::ConnectTimeout => {
                ErrorKind::Reset
            }
            kind => kind,
        },
        _ => ErrorKind::Protocol,
    }
}

/// A human-readable reason for a failed first connection (the exit-3 message).
pub fn describe(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ConnectRefused => "connection refused (is the server running on that port?)",
        ErrorKind::ConnectTimeout => "no WebSocket handshake within 10 s",
        ErrorKind::Handshake => "the server did not accept the WebSocket upgrade",
        _ => "the connection failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_found_in_authorities() {
        assert!(has_port("127.0.0.1:80"));
        assert!(has_port("[::1]:80"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("localhost"));
    }

    #[tokio::test]
    async fn resolve_defaults_to_port_80() {
        let ep = Endpoint::resolve("ws://127.0.0.1/chat").await.unwrap();
        assert_eq!(ep.addr.port(), 80);
        let ep = Endpoint::resolve("ws://127.0.0.1:9001/").await.unwrap();
        assert_eq!(ep.addr.port(), 9001);
    }
}
