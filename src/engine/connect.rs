//! Opening connections: per-connection buffer sizes, TLS, headers, timeouts, the connect-rate
//! cap, and the error kind of every failure.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rustls::pki_types::ServerName;

use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;

use crate::error::{SoakError, could_not_run, usage};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::engine::local_ips::LocalIps;
use crate::engine::tls;
pub use crate::engine::upgrade::READ_BUFFER_BYTES;
use crate::engine::upgrade::{Failed, Stream, upgrade};
use crate::metrics::ErrorKind;
use crate::profile::resolve::ConnectionConfig;
use crate::units::Rate;

/// Bytes queued before tungstenite writes to the socket. Every send here is followed by a
/// flush, so this only bounds the (lazily grown) write buffer.
pub const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// Largest message accepted from the server. tungstenite's default (64 MiB) lets one bad
/// reply cost a lot of memory per connection; a chat reply above 1 MiB is a protocol error.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// An open client connection.
pub type Ws = WebSocketStream<Stream>;

/// The placeholder a URL may carry for the user's room (`[rooms] size`).
pub const ROOM: &str = "{{room}}";

/// Everything needed to open connections to one target, built once and shared by all
/// sessions: the address looked up once (19,000 connects make no DNS queries), the TLS
/// config built once, the headers parsed once, and the connect-rate limiter.
pub struct Dialer {
    url: String,
    addr: SocketAddr,
    /// `wss://`: the TLS connector and the name the certificate must carry.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    handshake_timeout: Duration,
    limiter: DefaultDirectRateLimiter,
    /// `--local-ips`: the source addresses, taken in turn.
    local: LocalIps,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("url", &crate::redact::url(&self.url))
            .field("addr", &self.addr)
            .finish()
    }
}

impl Dialer {
    /// Checks the URL and headers, looks up the target and prepares TLS; errors are one
    /// line: bad usage (a bad port, header or URL: exit 2) before a failed lookup (exit 3).
    pub async fn new(
        url: &str,
        config: &ConnectionConfig,
        connect_rate: Rate,
    ) -> Result<Dialer, SoakError> {
        let (secure, rest) = match url.strip_prefix("wss://") {
            Some(rest) => (true, rest),
            None => (false, url.strip_prefix("ws://").unwrap_or(url)),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let host = host_of(authority);
        if has_port(authority) {
            let port = authority.rsplit(':').next().unwrap_or_default();
            if !port.parse::<u16>().is_ok_and(|p| p > 0) {
                return Err(usage(format!(
                    "`{}`: the port `{port}` is not a port number (1 to 65535)",
                    crate::redact::url(url)
                )));
            }
        }
        let with_port = if has_port(authority) {
            authority.to_string()
        } else {
            format!("{authority}:{}", if secure { 443 } else { 80 })
        };
        let mut headers = Vec::new();
        for (name, value) in &config.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| usage(format!("`{name}` is not a valid header name")))?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|_| {
                usage(format!(
                    "the value of header `{name}` has characters a header cannot carry"
                ))
            })?;
            headers.push((name, value));
        }
        if !config.subprotocols.is_empty() {
            let value = HeaderValue::try_from(config.subprotocols.join(", "))
                .map_err(|_| usage("subprotocols have characters a header cannot carry"))?;
            headers.push((HeaderName::from_static("sec-websocket-protocol"), value));
        }
        // Check the URL once, so a connect can only fail for reasons the server controls
        // (a `{{room}}` in it is checked as room 0).
        url.replace(ROOM, "0")
            .into_client_request()
            .map_err(|err| usage(format!("`{}`: {err}", crate::redact::url(url))))?;
        let addr = tokio::net::lookup_host(with_port.as_str())
            .await
            .map_err(|err| could_not_run(format!("cannot resolve `{authority}`: {err}")))?
            .next()
            .ok_or_else(|| could_not_run(format!("`{authority}` resolves to no address")))?;
        let tls = if secure {
            let name = ServerName::try_from(host.to_string()).map_err(|_| {
                usage(format!(
                    "`{host}` is not a name a TLS certificate can carry"
                ))
            })?;
            Some((
                TlsConnector::from(tls::client_config(config.insecure)),
                name,
            ))
        } else {
            None
        };
        let local = LocalIps::new(config.local_ips.clone(), addr).map_err(usage)?;
        Ok(Dialer {
            url: url.to_string(),
            addr,
            tls,
            headers,
            handshake_timeout: config.handshake_timeout,
            limiter: limiter(connect_rate),
            local,
        })
    }

    /// The target URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How long opening one connection may take.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Waits until the connect-rate cap allows one more attempt.
    pub async fn wait_turn(&self) {
        self.limiter.until_ready().await;
    }

    /// Opens one connection for a user of `room` (filled into a `{{room}}` in the URL's
    /// path): TCP with Nagle off, TLS for `wss://`, then the upgrade, all within the
    /// handshake timeout.
    pub async fn dial(&self, room: u32) -> Result<Box<Ws>, ErrorKind> {
        self.dial_explained(room).await.map_err(|(kind, _)| kind)
    }

    /// [`Dialer::dial`], with what went wrong in words (the server's status and reason
    /// when it refused the upgrade): for the pre-flight connection's exit-3 message.
    pub async fn dial_explained(&self, room: u32) -> Result<Box<Ws>, (ErrorKind, String)> {
        let plain = |kind: ErrorKind| (kind, describe(kind).to_string());
        let attempt = async {
            let tcp = self
                .local
                .connect(self.addr)
                .await
                .map_err(|err| plain(classify_io(&err)))?;
            // Chat messages are small and latency is what we measure: never wait to coalesce.
            tcp.set_nodelay(true)
                .map_err(|_| plain(ErrorKind::ConnectIo))?;
            let stream = match &self.tls {
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|err| plain(classify_io(&err)))?;
                    Stream::Tls(Box::new(tls))
                }
                None => Stream::Plain(tcp),
            };
            let request = self.request(room).map_err(plain)?;
            let ws =
                upgrade(stream, request, ws_config())
                    .await
                    .map_err(|failed| match failed {
                        Failed::Io(err) => plain(classify_io(&err)),
                        Failed::Refused(why) => (
                            ErrorKind::Handshake,
                            format!("the server did not accept the WebSocket upgrade: {why}"),
                        ),
                    })?;
            // Boxed: a session holds it for its whole life, so it stays out of the future.
            Ok(Box::new(ws))
        };
        timeout(self.handshake_timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(plain(ErrorKind::ConnectTimeout)))
    }

    fn request(&self, room: u32) -> Result<Request, ErrorKind> {
        let url = if self.url.contains(ROOM) {
            std::borrow::Cow::Owned(self.url.replace(ROOM, &room.to_string()))
        } else {
            std::borrow::Cow::Borrowed(self.url.as_str())
        };
        let mut request = url
            .as_ref()
            .into_client_request()
            .map_err(|_| ErrorKind::Handshake)?;
        for (name, value) in &self.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        Ok(request)
    }
}

fn limiter(rate: Rate) -> DefaultDirectRateLimiter {
    let period = rate
        .period()
        .unwrap_or(Duration::from_millis(1))
        .max(Duration::from_nanos(1));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(NonZeroU32::MIN);
    RateLimiter::direct(quota)
}

/// The host of an authority: without the port, and an IPv6 address without its brackets.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, _)) => host,
        None => authority,
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
        .max_write_buffer_size(MAX_MESSAGE_BYTES * 2)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

fn classify_io(err: &io::Error) -> ErrorKind {
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
    {
        return ErrorKind::Tls;
    }
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
        // The stream ending without a close frame is the server closing (or dying), not a
        // protocol violation: counted `closed`, with close code 1006.
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => ErrorKind::Closed,
        WsError::Io(io) => match classify_io(io) {
            ErrorKind::ConnectIo | ErrorKind::ConnectRefused | ErrorKind::ConnectTimeout => {
                ErrorKind::Reset
            }
            kind => kind,
        },
        WsError::Tls(_) => ErrorKind::Tls,
        _ => ErrorKind::Protocol,
    }
}

/// A human-readable reason for a failed first connection (the exit-3 message).
pub fn describe(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ConnectRefused => "connection refused (is the server running on that port?)",
        ErrorKind::ConnectTimeout => "no WebSocket handshake within the handshake timeout",
        ErrorKind::Handshake => "the server did not accept the WebSocket upgrade",
        ErrorKind::Tls => {
            "the TLS handshake failed (for a self-signed certificate, add --insecure)"
        }
        _ => "the connection failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> ConnectionConfig {
        ConnectionConfig {
            headers: vec![],
            subprotocols: vec![],
            insecure: false,
            handshake_timeout: Duration::from_secs(1),
            local_ips: vec![],
        }
    }

    #[test]
    fn ports_are_found_in_authorities() {
        assert!(has_port("127.0.0.1:80"));
        assert!(has_port("[::1]:80"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("localhost"));
        assert_eq!(host_of("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("[::1]"), "::1");
        assert_eq!(host_of("example.test"), "example.test");
    }

    #[tokio::test]
    async fn default_ports_follow_the_scheme() {
        let rate = Rate { per_second: 100.0 };
        let ws = Dialer::new("ws://127.0.0.1/chat", &plain(), rate)
            .await
            .unwrap();
        assert_eq!(ws.addr.port(), 80);
        assert!(ws.tls.is_none());
        let wss = Dialer::new("wss://127.0.0.1/chat", &plain(), rate)
            .await
            .unwrap();
        assert_eq!(wss.addr.port(), 443);
        assert!(wss.tls.is_some());
        let explicit = Dialer::new("ws://127.0.0.1:9001/", &plain(), rate)
            .await
            .unwrap();
        assert_eq!(explicit.addr.port(), 9001);
    }

    #[tokio::test]
    async fn headers_and_subprotocols_go_into_the_request() {
        let config = ConnectionConfig {
            headers: vec![("X-Room".into(), "7".into())],
            subprotocols: vec!["chat".into(), "v2".into()],
            ..plain()
        };
        let dialer = Dialer::new("ws://127.0.0.1:1/", &config, Rate { per_second: 1.0 })
            .await
            .unwrap();
        let request = dialer.request(0).unwrap();
        assert_eq!(request.headers()["x-room"], "7");
        assert_eq!(request.headers()["sec-websocket-protocol"], "chat, v2");
    }

    #[tokio::test]
    async fn a_room_in_the_url_is_filled_per_dial() {
        let url = "ws://127.0.0.1:1/ws/chat/room-{{room}}/";
        let dialer = Dialer::new(url, &plain(), Rate { per_second: 1.0 })
            .await
            .unwrap();
        assert_eq!(dialer.request(0).unwrap().uri().path(), "/ws/chat/room-0/");
        assert_eq!(
            dialer.request(42).unwrap().uri().path(),
            "/ws/chat/room-42/"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_connect_rate_cap_paces_attempts() {
        let dialer = Dialer::new("ws://127.0.0.1:1/", &plain(), Rate { per_second: 10.0 })
            .await
            .unwrap();
        let started = std::time::Instant::now();
        for _ in 0..3 {
            dialer.wait_turn().await;
        }
        // governor keeps its own clock: real time, 2 waits of 100 ms after the first.
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );
    }
}
