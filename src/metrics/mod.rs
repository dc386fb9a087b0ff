//! What sessions report: small `Copy` samples sent to the one aggregator through a `Recorder`.
//!
//! Sessions never read metrics back. A sample that does not fit in the bounded channel is
//! dropped and counted (zero in a healthy run), so a slow aggregator can never stall a
//! session and make the tester itself the bottleneck it is measuring.

pub mod aggregator;
pub mod events;
pub mod run_data;
pub mod snapshot;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::mpsc;

/// Samples in flight between sessions and the aggregator. 24 bytes each, so 1.5 MiB: room for
/// well over a second of 100,000 messages per second if the aggregator is briefly late.
pub const CHANNEL_CAPACITY: usize = 64 * 1024;

/// Why something failed. A closed set, counted in an array indexed by the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The TCP connection was refused (nothing listening).
    ConnectRefused,
    /// TCP connect or WebSocket handshake did not finish in time.
    ConnectTimeout,
    /// The server answered the upgrade with something other than 101, or garbled it.
    Handshake,
    /// Another I/O error while connecting (unreachable network, DNS, …).
    ConnectIo,
    /// The TLS handshake failed (untrusted or invalid certificate, protocol mismatch).
    Tls,
    /// A reply did not arrive within the reply timeout.
    Timeout,
    /// The server closed the connection (close frame or end of stream).
    Closed,
    /// The connection broke (reset, broken pipe, I/O error).
    Reset,
    /// The server broke the WebSocket protocol (bad frame, oversized message, bad UTF-8).
    Protocol,
    /// A reply was not JSON, or had no usable id at the correlation pointer.
    Unparsable,
    /// A reply's id matched no request of this user.
    Unmatched,
    /// A binary frame arrived: soak reads replies from text frames only.
    Binary,
    /// A second complete reply to a request already answered (a server bug).
    Duplicate,
    /// A send could not be handed to the connection within the reply timeout (the server
    /// stopped reading: its receive window and soak's buffer are full).
    SendTimeout,
    /// A connect-time step (`session.on_connect`) failed: its `fail` rule matched, the
    /// server closed the connection, or no frame met its `expect` rule in time.
    JoinFailed,
    /// A Socket.IO server disconnected the socket from its namespace (`io server
    /// disconnect`).
    Kicked,
    /// A Socket.IO server sent no ping within `pingInterval + pingTimeout` (`ping
    /// timeout`): the connection is taken as dead, as the socket.io client does.
    Heartbeat,
}

impl ErrorKind {
    /// Every kind, in the order of the counter array.
    pub const ALL: [ErrorKind; 17] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::Handshake,
        ErrorKind::ConnectIo,
        ErrorKind::Tls,
        ErrorKind::Timeout,
        ErrorKind::Closed,
        ErrorKind::Reset,
        ErrorKind::Protocol,
        ErrorKind::Unparsable,
        ErrorKind::Unmatched,
        ErrorKind::Binary,
        ErrorKind::Duplicate,
        ErrorKind::SendTimeout,
        ErrorKind::JoinFailed,
        ErrorKind::Kicked,
        ErrorKind::Heartbeat,
    ];

    /// The name used in files.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Handshake => "handshake",
            ErrorKind::ConnectIo => "connect_io",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Closed => "closed",
            ErrorKind::Reset => "reset",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Unparsable => "unparsable",
            ErrorKind::Unmatched => "unmatched",
            ErrorKind::Binary => "binary",
            ErrorKind::Duplicate => "duplicate",
            ErrorKind::SendTimeout => "send_timeout",
            ErrorKind::JoinFailed => "join_failed",
            ErrorKind::Kicked => "kicked",
            ErrorKind::Heartbeat => "heartbeat_timeout",
        }
    }

    /// Position in the counter array.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The plan stopped the user (ramp-down or end of run): a normal close by soak.
    Stopped,
    /// The connection reached its lifetime and soak closed it to reopen it (churn).
    Churned,
    /// The server closed it, or it broke: the error kind says which.
    Lost(ErrorKind),
}

/// One thing that happened in a session. Small and `Copy`: 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// A user's session began (the plan started it).
    UserStarted,
    /// A user's session ended (the plan stopped it, or the run ended).
    UserStopped,
    /// A connection attempt began.
    ConnectAttempt,
    /// A connection was established.
    Connected {
        /// The user.
        user: u32,
        /// TCP connect + TLS + WebSocket handshake, µs.
        micros: u64,
        /// Whether the user had been connected before (a reconnect).
        reconnect: bool,
    },
    /// An open connection ended.
    Disconnected {
        /// The user.
        user: u32,
        /// Why.
        cause: Disconnect,
        /// The server's close code, 0 when there was none.
        code: u16,
    },
    /// Message `msg` (index into the scenario) was written to the socket.
    Sent {
        /// Scenario index.
        msg: u16,
    },
    /// The first frame of a streamed reply to `msg`; latency from the intended send, µs.
    FirstFrame {
        /// Scenario index.
        msg: u16,
        /// Time to first frame, µs.
        micros: u64,
    },
    /// A reply to `msg` is complete; latency from the intended send, µs.
    Reply {
        /// Scenario index.
        msg: u16,
        /// Time to the complete reply, µs.
        micros: u64,
    },
    /// Every connect-time step passed, `micros` after the handshake ended.
    Joined {
        /// Handshake end → last step passed, µs.
        micros: u64,
    },
    /// Connect-time step `step` failed (a `join_failed` error), with the server's close
    /// code when it closed the connection (0 otherwise).
    JoinFailed {
        /// The user.
        user: u32,
        /// Index of the step.
        step: u8,
        /// Close code, 0 without one.
        code: u16,
        /// A Socket.IO `connect_error`'s message: its index + 1 in the run's refusals
        /// (`socketio::SocketIo::refusals`), 0 without one.
        reason: u8,
    },
    /// A Socket.IO server ping, this much later than its `pingInterval`.
    Heartbeat {
        /// Lateness, µs.
        late_us: u32,
    },
    /// A binary attachment of a Socket.IO packet arrived.
    Attachment,
    /// A room message was sent: this many members are expected to get it.
    FanoutSent {
        /// Copies expected.
        expected: u32,
    },
    /// A member got a room message (`[rooms] deliver`).
    Delivery {
        /// From the message's intended send, µs (0 when it could not be timed).
        micros: u64,
        /// Later than the reply timeout (or untimed): counted, not recorded as latency.
        late: bool,
        /// A second copy of a message this member already had.
        duplicate: bool,
        /// Older than a message this member already had from the same sender.
        out_of_order: bool,
        /// To a member that connected after the sender counted its room: not expected.
        unexpected: bool,
        /// The message's first copy delivered in time: the time to its first member.
        first: bool,
    },
    /// Every member expected got a room message in time, the last after `micros` from its
    /// intended send.
    FanoutLast {
        /// Time to the last member, µs.
        micros: u64,
    },
    /// A frame that matched push rule `rule` (`session.push`): not a reply, not an error.
    Push {
        /// Index of the rule.
        rule: u8,
    },
    /// A reply to `msg` was not complete within the reply timeout.
    Timeout {
        /// Scenario index.
        msg: u16,
    },
    /// A reply came for a request already answered or counted as timed out.
    LateReply,
    /// Requests still unanswered when their connection ended (not errors by themselves).
    Abandoned {
        /// How many.
        count: u32,
    },
    /// A probe's answer: intended send offset (ms from the run's start) and round trip
    /// from that intended send (µs).
    Probe {
        /// Intended send, ms from the run's start.
        at_ms: u32,
        /// Round trip from the intended send, µs.
        rtt_us: u32,
    },
    /// How late one of soak's own timer ticks fired (ms from the run's start, µs late).
    Lag {
        /// When the tick was due, ms from the run's start.
        at_ms: u32,
        /// How late it fired, µs.
        lag_us: u32,
    },
    /// Something failed that is not a timeout or a lost connection.
    Error {
        /// What.
        kind: ErrorKind,
        /// The user it happened to.
        user: u32,
    },
}

/// A cheap, cloneable handle that sessions record through.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Sample>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// A recorder and the receiving end for the aggregator.
    pub fn channel() -> (Recorder, mpsc::Receiver<Sample>, Arc<AtomicU64>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let recorder = Recorder {
            tx,
            dropped: Arc::clone(&dropped),
        };
        (recorder, rx, dropped)
    }

    /// Records a sample without waiting; a full channel drops it and counts the drop.
    pub fn record(&self, sample: Sample) {
        if self.tx.try_send(sample).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
