//! The WebSocket upgrade (RFC 6455 §4), on a plain or TLS stream, with a small read buffer.
//!
//! tungstenite's own client handshake reads the server's response through a fixed 4 KiB
//! buffer and hands that buffer on as the connection's read buffer, whatever
//! `read_buffer_size` says: 4 KiB for every idle connection, 76 MiB at 19,000. Here the
//! request is still written by tungstenite (`generate_request`) and the response parsed by
//! it (`TryParse`); only the reading and the checks of §4.1 are ours, so the connection
//! starts with [`READ_BUFFER_BYTES`] instead. A TLS stream is boxed inside [`Stream`], so a
//! plain connection does not carry the size of rustls's state.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response, generate_request};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::handshake::machine::TryParse;
use tokio_tungstenite::tungstenite::http::{HeaderMap, StatusCode};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// Each connection's read buffer: the unit of one socket read, not a limit (a larger frame
/// grows it). Chat frames are a few hundred bytes; 1 KiB holds several, and 19,000 idle
/// connections hold 19 MiB of it instead of 76 MiB (tungstenite's handshake buffer) or
/// 2.4 GiB (its 128 KiB default).
pub const READ_BUFFER_BYTES: usize = 1024;

/// The longest upgrade response accepted (status line and headers).
const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// A client connection's byte stream: TCP, or TLS over TCP (boxed: rustls's state is large).
#[derive(Debug)]
pub enum Stream {
    /// `ws://`
    Plain(TcpStream),
    /// `wss://`
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why an upgrade failed.
#[derive(Debug)]
pub enum Failed {
    /// The socket failed (or TLS did, inside it).
    Io(io::Error),
    /// The server answered, but not with a valid upgrade.
    Refused(String),
}

/// Sends the upgrade `request` on `stream` and checks the answer; the open connection
/// keeps any frame bytes that came with the response.
pub async fn upgrade(
    mut stream: Stream,
    request: Request,
    config: WebSocketConfig,
) -> Result<WebSocketStream<Stream>, Failed> {
    let offered = header_list(request.headers(), "sec-websocket-protocol");
    let (bytes, key) = generate_request(request).map_err(|e| Failed::Refused(e.to_string()))?;
    stream.write_all(&bytes).await.map_err(Failed::Io)?;
    stream.flush().await.map_err(Failed::Io)?;
    let mut read = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let (used, response) = loop {
        let n = stream.read(&mut chunk).await.map_err(Failed::Io)?;
        if n == 0 {
            return Err(Failed::Refused("the server closed before answering".into()));
        }
        read.extend_from_slice(&chunk[..n]);
        match Response::try_parse(&read) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) if read.len() < MAX_RESPONSE_BYTES => {}
            Ok(None) => return Err(Failed::Refused("the response headers are too long".into())),
            Err(e) => return Err(Failed::Refused(format!("unreadable response: {e}"))),
        }
    };
    check(&response, &derive_accept_key(key.as_bytes()), &offered).map_err(Failed::Refused)?;
    let tail = read.split_off(used);
    Ok(WebSocketStream::from_partially_read(stream, tail, Role::Client, Some(config)).await)
}

/// The client's checks of RFC 6455 §4.1 on the server's response.
fn check(response: &Response, accept: &str, offered: &[String]) -> Result<(), String> {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // `HTTP 500 Internal Server Error`, and where a redirect points (`ws://` URLs are
        // not followed: the server wants a different URL, and the user should know which).
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| format!(" (Location: {})", crate::redact::url(l)))
            .unwrap_or_default();
        return Err(format!(
            "HTTP {} instead of 101{location}",
            response.status()
        ));
    }
    let headers = response.headers();
    let has = |name: &str, token: &str| {
        header_list(headers, name)
            .iter()
            .any(|v| v.eq_ignore_ascii_case(token))
    };
    if !has("upgrade", "websocket") {
        return Err("no `Upgrade: websocket`".into());
    }
    if !has("connection", "upgrade") {
        return Err("no `Connection: Upgrade`".into());
    }
    if headers
        .get("sec-websocket-accept")
        .is_none_or(|v| v.as_bytes() != accept.as_bytes())
    {
        return Err("a wrong or missing Sec-WebSocket-Accept".into());
    }
    match (headers.get("sec-websocket-protocol"), offered.is_empty()) {
        (None, true) => Ok(()),
        (None, false) => Err("no subprotocol chosen from those offered".into()),
        (Some(chosen), _) => match chosen.to_str() {
            Ok(chosen) if offered.iter().any(|o| o == chosen) => Ok(()),
            _ => Err("a subprotocol that was not offered".into()),
        },
    }
}

/// The comma-separated values of header `name`, over all its lines, trimmed.
fn header_list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    use super::*;

    /// Builds a server's answer from the request's Sec-WebSocket-Key.
    type Respond = fn(&str) -> String;

    /// A server that reads the request and answers with `respond(key)`, then sends `then`.
    async fn server(respond: Respond, then: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut reader = tokio::io::BufReader::new(socket);
            let mut key = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                if let Some(k) = line.to_ascii_lowercase().strip_prefix("sec-websocket-key:") {
                    key = line[line.len() - k.len()..].trim().to_string();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut socket = reader.into_inner();
            let mut answer = respond(&key).into_bytes();
            if answer.is_empty() {
                return; // closes the connection unanswered
            }
            answer.extend_from_slice(then);
            socket.write_all(&answer).await.unwrap();
            // Hold the socket open until the client is done.
            let _ = socket.read(&mut [0u8; 1]).await;
        });
        format!("ws://{addr}/chat")
    }

    fn accepting(key: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
    }

    async fn connect(
        url: &str,
        protocols: Option<&str>,
    ) -> Result<WebSocketStream<Stream>, Failed> {
        let addr = url.trim_start_matches("ws://").trim_end_matches("/chat");
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut request = url.into_client_request().unwrap();
        if let Some(p) = protocols {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", p.parse().unwrap());
        }
        upgrade(Stream::Plain(tcp), request, WebSocketConfig::default()).await
    }

    #[tokio::test]
    async fn a_valid_upgrade_opens_and_keeps_a_frame_sent_with_it() {
        use futures_util::StreamExt;
        // An unmasked text frame "hi" right behind the headers, in the same write.
        let url = server(accepting, b"\x81\x02hi").await;
        let mut ws = connect(&url, None).await.unwrap();
        let frame = ws.next().await.unwrap().unwrap();
        assert_eq!(frame.into_text().unwrap().as_str(), "hi");
    }

    #[tokio::test]
    async fn refusals_say_what_was_wrong() {
        let cases: [(Respond, &str); 4] = [
            (
                |_| "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".into(),
                "403",
            ),
            (
                |k| accepting(k).replace("Upgrade: WebSocket\r\n", ""),
                "Upgrade",
            ),
            (
                |k| accepting(k).replace("keep-alive, Upgrade", "keep-alive"),
                "Connection",
            ),
            (|_| accepting("another key"), "Sec-WebSocket-Accept"),
        ];
        for (respond, says) in cases {
            let url = server(respond, b"").await;
            match connect(&url, None).await {
                Err(Failed::Refused(why)) => assert!(why.contains(says), "{says}: {why}"),
                other => panic!("{says}: {:?}", other.map(|_| ())),
            }
        }
    }

    #[tokio::test]
    async fn subprotocols_must_be_one_of_those_offered() {
        fn chose_v2(k: &str) -> String {
            accepting(k).replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: v2\r\n\r\n")
        }
        let url = server(chose_v2, b"").await;
        assert!(connect(&url, Some("chat, v2")).await.is_ok());
        let url = server(chose_v2, b"").await;
        assert!(matches!(
            connect(&url, Some("chat")).await,
            Err(Failed::Refused(_))
        ));
        let url = server(chose_v2, b"").await;
        assert!(matches!(connect(&url, None).await, Err(Failed::Refused(_))));
        let url = server(accepting, b"").await;
        assert!(matches!(
            connect(&url, Some("chat")).await,
            Err(Failed::Refused(_))
        ));
    }

    #[tokio::test]
    async fn a_server_that_closes_or_babbles_is_refused() {
        let url = server(|_| String::new(), b"").await;
        assert!(matches!(connect(&url, None).await, Err(Failed::Refused(_))));
        let url = server(|_| "garbage\r\n\r\n".into(), b"").await;
        assert!(matches!(connect(&url, None).await, Err(Failed::Refused(_))));
    }
}
