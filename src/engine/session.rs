//! One simulated user: connect, one `select!` loop over cancel / replies / timeouts / sends,
//! and reconnect with back-off when the connection is lost.
//!
//! Memory budget per session (×19,000 connections): the socket with 4 KiB read and write
//! buffers (`connect.rs`), an `Arc` of the shared config, a child token, the pending table
//! (a ring of 16-byte slots sized to the requests in flight, 4 to start) and one send buffer
//! sized once from the template. No histogram, no per-session allocation per message
//! beyond the frame tungstenite sends.

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::time::{
    Instant, Interval, MissedTickBehavior, interval_at, sleep, sleep_until, timeout,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use crate::engine::connect::{Endpoint, Ws, classify, connect};
use crate::engine::correlate::{Match, Pending, message_id, reply_id, split_id};
use crate::metrics::{ErrorKind, Recorder, Sample};
use crate::template::{Template, Vars};

/// How long a stopping user waits to hand its close frame to the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// First reconnect delay; doubled per failed attempt up to [`BACKOFF_MAX`], with ±50 % jitter
/// so a server restart is not answered by every user reconnecting in the same millisecond.
const BACKOFF_START: Duration = Duration::from_millis(100);

/// Longest wait between reconnect attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What every session shares, behind one `Arc`.
#[derive(Debug)]
pub struct SessionConfig {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// The message template.
    pub template: Template,
    /// JSON pointer to the reply's id.
    pub correlate: String,
    /// Time between sends; `None` sends nothing.
    pub period: Option<Duration>,
    /// A reply later than this is a `timeout`.
    pub reply_timeout: Duration,
    /// Where samples go.
    pub recorder: Recorder,
}

/// Why a connection's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The plan stopped the user (or the run ended).
    Stopped,
    /// The connection was lost; reconnect.
    Lost,
}

/// One user's state that outlives its connections.
struct Session {
    user: u32,
    seq: u64,
    pending: Pending,
    buf: String,
}

/// Runs user `user` until `cancel` fires.
pub async fn run(user: u32, config: Arc<SessionConfig>, cancel: CancellationToken) {
    let rec = &config.recorder;
    rec.record(Sample::UserStarted);
    let mut session = Session {
        user,
        seq: 0,
        pending: Pending::with_capacity(4),
        buf: String::with_capacity(config.template.capacity_hint()),
    };
    let mut backoff = Backoff::new(user);
    loop {
        rec.record(Sample::ConnectAttempt);
        let began = Instant::now();
        let attempt = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            attempt = connect(&config.endpoint) => attempt,
        };
        match attempt {
            Ok(ws) => {
                rec.record(Sample::Connected {
                    micros: micros(began.elapsed()),
                });
                backoff.reset();
                let end = session.converse(ws, &config, &cancel).await;
                rec.record(Sample::Disconnected);
                let abandoned = session.pending.clear();
                if abandoned > 0 {
                    rec.record(Sample::Abandoned { count: abandoned });
                }
                if end == End::Stopped {
                    break;
                }
            }
            Err(kind) => rec.record(Sample::Error(kind)),
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = sleep(backoff.next_delay()) => {}
        }
    }
    rec.record(Sample::UserStopped);
}

impl Session {
    /// The loop over one open connection.
    async fn converse(
        &mut self,
        ws: Ws,
        config: &SessionConfig,
        cancel: &CancellationToken,
    ) -> End {
        let rec = &config.recorder;
        let (mut sink, mut stream) = ws.split();
        let mut pacing = pacing(config.period, self.user);
        let expiry = sleep_until(Instant::now());
        tokio::pin!(expiry);
        let mut armed: Option<Instant> = None;
        let end = loop {
            let deadline = self.pending.next_deadline(config.reply_timeout);
            if deadline != armed {
                if let Some(at) = deadline {
                    expiry.as_mut().reset(at);
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break End::Stopped,
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.on_reply(&text, config, Instant::now()),
                    Some(Ok(Message::Close(_))) | None => {
                        rec.record(Sample::Error(ErrorKind::Closed));
                        break End::Lost;
                    }
                    Some(Ok(_)) => {} // pongs, binary and raw frames carry no reply
                    Some(Err(err)) => {
                        rec.record(Sample::Error(classify(&err)));
                        break End::Lost;
                    }
                },
                () = &mut expiry, if armed.is_some() => {
                    let expired = self.pending.expire(Instant::now(), config.reply_timeout);
                    for _ in 0..expired {
                        rec.record(Sample::Error(ErrorKind::Timeout));
                    }
                    armed = None;
                }
                intended = next_send(&mut pacing) => {
                    if let Err(kind) = self.send(intended, &mut sink, config).await {
                        rec.record(Sample::Error(kind));
                        break End::Lost;
                    }
                }
            }
        };
        if end == End::Stopped {
            let close = Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "soak: user stopped".into(),
            }));
            let _ = timeout(CLOSE_GRACE, sink.send(close)).await;
        }
        end
    }

    /// Sends the next message, due at `intended` (latency is measured from there).
    async fn send(
        &mut self,
        intended: Instant,
        sink: &mut SplitSink<Ws, Message>,
        config: &SessionConfig,
    ) -> Result<(), ErrorKind> {
        self.seq += 1;
        let vars = Vars {
            user: self.user,
            seq: self.seq,
            id: message_id(self.user, self.seq),
        };
        config.template.render(vars, &mut self.buf);
        self.pending.push(self.seq, intended);
        sink.send(Message::text(self.buf.as_str()))
            .await
            .map_err(|err| classify(&err))?;
        config.recorder.record(Sample::Sent);
        Ok(())
    }

    /// Attributes one text frame received at `now`.
    fn on_reply(&mut self, text: &str, config: &SessionConfig, now: Instant) {
        let rec = &config.recorder;
        let Some(id) = reply_id(text, &config.correlate) else {
            rec.record(Sample::Error(ErrorKind::Unparsable));
            return;
        };
        let sample = match split_id(id) {
            Some((user, seq)) if user == self.user => match self.pending.take(seq) {
                Match::Pending(at) => Sample::Reply {
                    micros: micros(now.saturating_duration_since(at)),
                },
                Match::Late => Sample::LateReply,
                Match::Unknown => Sample::Error(ErrorKind::Unmatched),
            },
            _ => Sample::Error(ErrorKind::Unmatched),
        };
        rec.record(sample);
    }
}

/// The open-model schedule: a fixed period from the connection's start, offset per user by
/// a golden-ratio fraction of the period so users that start together do not send together.
/// Missed ticks burst (tokio's `Burst`): each send keeps its own intended instant, so a
/// late tester or a stalled socket shows up as latency, never as fewer measurements.
fn pacing(period: Option<Duration>, user: u32) -> Option<Interval> {
    let period = period?;
    let spread = (f64::from(user) * 0.618_033_988_749_895).fract();
    let mut interval = interval_at(Instant::now() + period.mul_f64(spread), period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    Some(interval)
}

/// The next intended send instant; never ready when the user sends nothing.
async fn next_send(pacing: &mut Option<Interval>) -> Instant {
    match pacing {
        Some(interval) => interval.tick().await,
        None => pending().await,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Exponential back-off with jitter from a small per-user generator (no shared RNG).
struct Backoff {
    attempt: u32,
    state: u64,
}

impl Backoff {
    fn new(user: u32) -> Backoff {
        Backoff {
            attempt: 0,
            state: u64::from(user).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next_delay(&mut self) -> Duration {
        // xorshift64: plenty for spreading reconnects.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let base = BACKOFF_START
            .saturating_mul(1 << self.attempt.min(16))
            .min(BACKOFF_MAX);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = 0.5 + (self.state % 1000) as f64 / 1000.0;
        base.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new(7);
        let delays: Vec<_> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= BACKOFF_START / 2 && delays[0] <= BACKOFF_START * 3 / 2);
        assert!(delays[3] > delays[0]);
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX * 3 / 2));
        assert!(delays[11] >= BACKOFF_MAX / 2);
        b.reset();
        assert!(b.next_delay() <= BACKOFF_START * 3 / 2);
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_keeps_intended_instants_when_late() {
        let period = Duration::from_millis(100);
        let mut p = pacing(Some(period), 0);
        let first = next_send(&mut p).await;
        tokio::time::sleep(Duration::from_millis(350)).await; // the tester falls behind
        let burst = [
            next_send(&mut p).await,
            next_send(&mut p).await,
            next_send(&mut p).await,
        ];
        assert_eq!(burst[0] - first, period);
        assert_eq!(burst[2] - first, period * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn no_rate_never_sends() {
        let mut p = pacing(None, 3);
        let sent = timeout(Duration::from_secs(3600), next_send(&mut p)).await;
        assert!(sent.is_err());
    }
}
