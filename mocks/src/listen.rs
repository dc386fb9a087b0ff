//! Serving a mock or the demo target over HTTP/1.1 with the limits a public server would
//! have: a cap on open connections, a deadline for a request's headers, and an idle
//! timeout — so silent, trickling or piled-up clients cannot hold the server forever.
//!
//! Long polls and streams keep their own bounds (`getUpdates` waits at most its
//! `MAX_POLL_S`; a stream sends or ends): while a response is being produced the
//! connection is not idle by this measure, because nothing is waiting on a read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep, sleep};

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; one more is accepted and closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this of the connection waiting for them.
    pub header_timeout: Duration,
    /// A connection with nothing read or written for this long is closed (`None`: never,
    /// for WebSocket servers, whose connections may rightly be silent for hours).
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl Limits {
    /// For a WebSocket server (the demo target): no idle timeout, room for a 100,000-user
    /// soak's connections.
    pub fn websocket() -> Limits {
        Limits {
            max_connections: 100_000,
            idle_timeout: None,
            ..Limits::default()
        }
    }
}

/// Connections refused because the cap was reached, over every server of the process.
pub static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Serves `router` on `listener` until `shutdown` completes, within `limits`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors and the like: try again, never spin on the error.
                Err(_) => { sleep(Duration::from_millis(50)).await; continue; }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let io = TokioIo::new(Idle::new(tcp, limits.idle_timeout));
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let _ = http.serve_connection(io, service).with_upgrades().await;
            drop(permit);
        });
    }
}

/// A TCP stream that fails with `TimedOut` once nothing has been read or written on it
/// for `limit`.
struct Idle {
    inner: TcpStream,
    /// The limit and its deadline; `None`: no idle timeout.
    deadline: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl Idle {
    fn new(inner: TcpStream, limit: Option<Duration>) -> Idle {
        Idle {
            inner,
            deadline: limit.map(|l| (l, Box::pin(sleep(l)))),
        }
    }

    fn touched(&mut self) {
        if let Some((limit, deadline)) = &mut self.deadline {
            deadline.as_mut().reset(Instant::now() + *limit);
        }
    }

    /// `Pending` from the stream: an error instead once the deadline has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|(_, deadline)| deadline.as_mut().poll(cx).is_ready())
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "idle connection closed")
}

impl AsyncRead for Idle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touched();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Idle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(r) => {
                if r.as_ref().is_ok_and(|n| *n > 0) {
                    self.touched();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn server(limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "hi" }));
        tokio::spawn(serve(listener, router, std::future::pending(), limits));
        addr
    }

    /// Reads until the server closes the connection; the bytes read.
    async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
        let mut all = Vec::new();
        let _ = tcp.read_to_end(&mut all).await;
        all
    }

    const SHORT: Limits = Limits {
        max_connections: 2,
        header_timeout: Duration::from_millis(300),
        idle_timeout: Some(Duration::from_millis(600)),
    };

    #[tokio::test]
    async fn a_silent_client_is_closed_when_idle() {
        let addr = server(SHORT).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        assert!(read_to_close(&mut silent).await.is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_trickling_client_never_finishes_its_headers() {
        let addr = server(SHORT).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        // A byte every 100 ms: never idle, but the headers take longer than allowed.
        for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            sleep(Duration::from_millis(100)).await;
        }
        let _ = slow.write_all(b"\r\n").await;
        let answer = String::from_utf8_lossy(&read_to_close(&mut slow).await).into_owned();
        assert!(
            !answer.contains("hi"),
            "served a trickled request: {answer}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_prompt_client_is_served() {
        let addr = server(SHORT).await;
        let mut ok = TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&read_to_close(&mut ok).await).into_owned();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hi"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_and_counted() {
        let limits = Limits {
            idle_timeout: Some(Duration::from_secs(30)),
            header_timeout: Duration::from_secs(30),
            ..SHORT
        };
        let addr = server(limits).await;
        let before = REFUSED.load(Ordering::Relaxed);
        let _held = [
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        let mut third = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        assert!(read_to_close(&mut third).await.is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "closed at once, not idled out"
        );
        assert!(REFUSED.load(Ordering::Relaxed) > before);
    }
}
