//! Probe connections: apart from the users, each sends a WebSocket ping (or an app-level
//! message) on a fixed schedule and times the answer from the intended send instant.
//!
//! Probes are what every healthy server answers at once, so their lateness is the target's
//! event loop, not its business logic. They are spread over one period (probe `k` of `n`
//! starts `k/n` of a period in), so a stall of any length meets several of them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, sleep};
use tokio_util::sync::CancellationToken;

use crate::engine::connect::Dialer;
use crate::engine::correlate::{message_id, split_id};
use crate::engine::fields::{Fields, Frame};
use crate::engine::session::{SessionConfig, Transport};
use crate::engine::steps::{Joined, join};
use crate::engine::transport::socketio::Socket;
use crate::engine::transport::{Arrival, Link};
use crate::metrics::{ErrorKind, Recorder, Sample};
use crate::profile::resolve::ProbeConfig;
use crate::template::Vars;

/// Probes reuse the message-id scheme with user numbers from here down, far from users.
pub const PROBE_USER_BASE: u32 = 9_000_000;

/// Unanswered probes kept before the oldest is written off as late (a minute at 10 Hz).
const MAX_OUTSTANDING: usize = crate::analysis::stall::LATEST_PERIODS;

/// Runs probe `k` until `cancel` fires or the load ends (`stop_at`), reconnecting after a
/// pause if its connection is lost.
pub async fn run(
    k: u32,
    probes: Arc<ProbeConfig>,
    shared: Arc<SessionConfig>,
    (started, stop_at): (Instant, Instant),
    cancel: CancellationToken,
) {
    let Some(dialer) = shared.dialer() else {
        return;
    };
    let mut prober = Prober::new(PROBE_USER_BASE - k, &probes, &shared.recorder, started);
    // Probe k of n starts k/n of a period in.
    let offset = probes
        .every
        .mul_f64(f64::from(k) / f64::from(probes.count.max(1)));
    loop {
        let link = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            link = open(dialer, &shared) => link,
        };
        // Probes run the connect-time steps when the profile says so (a server that
        // closes unauthenticated sockets must still be probed), and a Socket.IO probe
        // always connects to the namespace. A probe's steps render as its own user, above
        // every load user's number.
        let link = match link {
            Ok(mut link)
                if matches!(link, Link::SocketIo(_))
                    || (probes.on_connect && !shared.steps.is_empty()) =>
            {
                let steps = (prober.user, probes.on_connect);
                let joined =
                    Box::pin(join(&mut link, &mut prober.out, steps, &shared, &cancel)).await;
                match joined {
                    Joined::Passed(_) => Ok(link),
                    Joined::Stopped => return,
                    Joined::Failed { .. } => Err(()),
                }
            }
            Ok(link) => Ok(link),
            Err(_) => Err(()),
        };
        let Ok(mut link) = link else {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = sleep(Duration::from_millis(500)) => continue,
            }
        };
        let ticks = interval_at(Instant::now() + offset, probes.every);
        let stopped = prober
            .converse(&mut link, ticks, stop_at, &shared, &cancel)
            .await;
        prober.write_off();
        if stopped {
            return;
        }
    }
}

/// Opens a probe's connection: a WebSocket, or a Socket.IO link when the run speaks it.
async fn open(dialer: &Dialer, shared: &SessionConfig) -> Result<Link, ErrorKind> {
    let ws = dialer.dial(0).await?;
    match &shared.transport {
        Transport::SocketIo(_, sio) => {
            let socket = Socket::open(ws, Arc::clone(sio), dialer.handshake_timeout()).await?;
            Ok(Link::SocketIo(Box::new(socket)))
        }
        _ => Ok(Link::Ws(ws)),
    }
}

/// What a probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A WebSocket ping, answered by a pong with the same payload.
    Ping,
    /// An app-level message, answered by a frame carrying its id.
    Message,
    /// A Socket.IO event, answered by its ack.
    Event,
}

/// One probe's state, kept across its connections.
struct Prober<'a> {
    probes: &'a ProbeConfig,
    rec: &'a Recorder,
    started: Instant,
    user: u32,
    seq: u64,
    /// Like a session's: rendered in place, shared with the frame, reclaimed once it is sent.
    out: BytesMut,
    /// The app-level probe's id pointer, read from each text frame.
    fields: Fields,
    id_field: Option<usize>,
    /// Probes sent and not yet answered: seq and intended send instant.
    outstanding: VecDeque<(u64, Instant)>,
}

impl<'a> Prober<'a> {
    fn new(user: u32, probes: &'a ProbeConfig, rec: &'a Recorder, started: Instant) -> Self {
        let mut fields = Fields::default();
        let id_field = probes.message.as_ref().and_then(|(_, p)| fields.add(p));
        Prober {
            probes,
            rec,
            started,
            user,
            seq: 0,
            out: BytesMut::new(),
            fields,
            id_field,
            outstanding: VecDeque::with_capacity(16),
        }
    }

    /// Probes on one connection; `true` when the probe is to stop, `false` when the
    /// connection was lost.
    async fn converse(
        &mut self,
        link: &mut Link, // not split: see `session.rs`
        mut ticks: Interval,
        stop_at: Instant,
        shared: &SessionConfig,
        cancel: &CancellationToken,
    ) -> bool {
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return true,
                arrival = link.next() => {
                    let now = Instant::now();
                    let answered = match arrival {
                        Arrival::Pong(seq) if self.kind() == Kind::Ping => Some(seq),
                        Arrival::Text(text) if self.kind() == Kind::Message => self.seq_in(&text),
                        Arrival::Ack { id, .. } if self.kind() == Kind::Event => Some(id),
                        // A Socket.IO heartbeat is answered by the link; nothing to time.
                        Arrival::Closed(..) => return false,
                        _ => None,
                    };
                    if let Some(seq) = answered {
                        self.answered(seq, now);
                    }
                }
                intended = ticks.tick() => {
                    // From the load's end soak is closing its own connections (all at once
                    // without a ramp-down): a probe then would time soak's shutdown, not the
                    // server (a 354 ms "stall" closing 19,000 connections, 2026-11-23).
                    if intended >= stop_at {
                        return true;
                    }
                    if !self.send(intended, link, shared, cancel).await {
                        return false;
                    }
                }
            }
        }
    }

    /// What this probe sends.
    fn kind(&self) -> Kind {
        match (&self.probes.event, &self.probes.message) {
            (Some(_), _) => Kind::Event,
            (None, Some(_)) => Kind::Message,
            (None, None) => Kind::Ping,
        }
    }

    /// Sends the next probe, due at `intended`: a ping carrying its seq, the message, or
    /// the acked event; `false` when the link failed.
    async fn send(
        &mut self,
        intended: Instant,
        link: &mut Link,
        shared: &SessionConfig,
        cancel: &CancellationToken,
    ) -> bool {
        self.seq += 1;
        let seq = self.seq;
        self.outstanding.push_back((seq, intended));
        if self.outstanding.len() > MAX_OUTSTANDING
            && let Some((_, oldest)) = self.outstanding.pop_front()
        {
            record(self.rec, self.started, oldest, Instant::now());
        }
        let ((Some(template), _) | (None, Some((template, _)))) =
            (&self.probes.event, &self.probes.message)
        else {
            return link.ping(seq).await;
        };
        self.out.reserve(256);
        let vars = Vars {
            user: self.user,
            seq,
            id: message_id(self.user, seq),
            now_ms: 0,
            random: seq,
            row: &[],
            room: 0,
        };
        template.render_into(vars, &mut self.out);
        matches!(
            link.send(&mut self.out, seq, shared, cancel).await,
            Ok(true)
        )
    }

    /// The seq of this probe's message that a text frame answers, if any.
    fn seq_in(&self, text: &str) -> Option<u64> {
        let i = self.id_field?;
        let mut read = Frame::default();
        self.fields.read(text, &mut read).ok()?;
        let (user, seq) = split_id(read[i].id()?)?;
        (user == self.user).then_some(seq)
    }

    /// Probe `seq` was answered at `now`.
    fn answered(&mut self, seq: u64, now: Instant) {
        if let Some(i) = self.outstanding.iter().position(|(s, _)| *s == seq)
            && let Some((_, intended)) = self.outstanding.remove(i)
        {
            record(self.rec, self.started, intended, now);
        }
    }

    /// Probes still unanswered when their connection ends count as late as they are now.
    fn write_off(&mut self) {
        let now = Instant::now();
        for (_, intended) in self.outstanding.drain(..) {
            record(self.rec, self.started, intended, now);
        }
    }
}

/// Records one probe answered (or given up on) at `now`.
fn record(rec: &Recorder, started: Instant, intended: Instant, now: Instant) {
    let at_ms =
        u32::try_from(intended.saturating_duration_since(started).as_millis()).unwrap_or(u32::MAX);
    let rtt_us =
        u32::try_from(now.saturating_duration_since(intended).as_micros()).unwrap_or(u32::MAX);
    rec.record(Sample::Probe { at_ms, rtt_us });
}
