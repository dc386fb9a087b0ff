//! What every session of a run shares behind one `Arc`: the transport, the scenario's
//! messages with their weights, the reply fields to read, and the run's timings.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::data::UserData;
use crate::engine::connect::Dialer;
use crate::engine::correlate::message_id;
use crate::engine::fields::Fields;
use crate::metrics::Recorder;
use crate::profile::resolve::{MessageConfig, RunConfig};
use crate::profile::spec::Model;
use crate::template::{Template, Vars};
use bytes::BytesMut;

/// How users reach the target.
#[derive(Debug)]
pub enum Transport {
    /// Each user holds a WebSocket connection.
    WebSocket(Dialer),
    /// Each user holds a Socket.IO connection (Engine.IO over a WebSocket).
    SocketIo(Dialer, Arc<crate::engine::transport::socketio::SocketIo>),
    /// Each user is a simulated Telegram user chatting with the bot through the mock.
    Telegram(TelegramUsers),
    /// Each user connects to a unit test's stand-in server over channels.
    #[cfg(test)]
    Memory(crate::engine::transport::memory::Server),
}

/// The mock Telegram Bot API the simulated users talk through, and the bot's token.
#[derive(Debug)]
pub struct TelegramUsers {
    /// The mock.
    pub mock: Arc<soak_mocks::telegram::Telegram>,
    /// The bot's token.
    pub token: String,
}

/// What every session shares, behind one `Arc`.
#[derive(Debug)]
pub struct SessionConfig {
    /// How users reach the target.
    pub transport: Transport,
    /// The scenario's messages.
    pub messages: Vec<MessageConfig>,
    /// Running sum of the weights, for picking a message.
    cumulative: Vec<u32>,
    /// The fields read from each reply: correlation and completion pointers.
    pub(super) fields: Fields,
    /// The correlation pointers' fields, tried in order for a reply's id.
    pub(super) ids: Vec<usize>,
    /// Per message: the field its completion rule looks at.
    pub(super) complete_at: Vec<Option<usize>>,
    /// The connect-time steps.
    pub steps: crate::engine::steps::Steps,
    /// Users per room (`[rooms] size`); 0: no rooms.
    pub room_size: u32,
    /// Fan-out measured in rooms (`[rooms] deliver`).
    pub fanout: Option<crate::engine::fanout::Fanout>,
    /// The push rules, each with the field it looks at.
    pub(super) pushes: Vec<(crate::engine::complete::Complete, usize)>,
    /// Open or closed model.
    pub model: Model,
    /// Open model: time between sends; `None` sends nothing.
    pub period: Option<Duration>,
    /// Closed model: pause after each complete reply.
    pub think: Duration,
    /// A reply not complete within this is a `timeout`.
    pub reply_timeout: Duration,
    /// Per-user CSV rows.
    pub data: UserData,
    /// Close and reopen connections after this long.
    pub lifetime: Option<Duration>,
    /// `session.alternate`: from when, and how long each talk or churn window lasts.
    pub alternate: Option<(Instant, Duration)>,
    /// Reconnect back-off bounds.
    pub reconnect: (Duration, Duration),
    /// Whether any template needs the wall clock.
    uses_clock: bool,
    /// Where samples go.
    pub recorder: Recorder,
    /// The run's root token: Ctrl-C, SIGTERM, the target's death. Stops at once, without
    /// waiting for replies in flight.
    pub stop_now: CancellationToken,
}

impl SessionConfig {
    /// The shared session config of a run.
    pub fn new(
        config: &RunConfig,
        transport: Transport,
        recorder: Recorder,
        stop_now: CancellationToken,
    ) -> SessionConfig {
        // The profile allows at most MAX_FIELDS distinct pointers, so every one is added.
        let mut fields = Fields::default();
        let mut ids = Vec::new();
        for m in &config.messages {
            if let Some(i) = fields.add(&m.correlate)
                && !ids.contains(&i)
            {
                ids.push(i);
            }
        }
        let complete_at = config
            .messages
            .iter()
            .map(|m| m.complete.pointer().and_then(|p| fields.add(p)))
            .collect();
        // Checked with the messages' pointers when the profile was resolved.
        let fanout = config
            .fanout
            .as_ref()
            .and_then(|(deliver, include_sender)| {
                let at = fields.add(deliver)?;
                Some(crate::engine::fanout::Fanout::new(
                    config.users,
                    config.room_size,
                    at,
                    *include_sender,
                ))
            });
        let pushes = config
            .pushes
            .iter()
            .filter_map(|rule| Some((rule.clone(), fields.add(rule.pointer()?)?)))
            .collect();
        let cumulative = config
            .messages
            .iter()
            .scan(0u32, |sum, m| {
                *sum = sum.saturating_add(m.weight);
                Some(*sum)
            })
            .collect();
        SessionConfig {
            transport,
            messages: config.messages.clone(),
            cumulative,
            fields,
            ids,
            complete_at,
            pushes,
            steps: crate::engine::steps::Steps::new(&config.on_connect),
            room_size: config.room_size,
            fanout,
            model: config.model,
            period: config.period,
            think: config.think,
            reply_timeout: config.reply_timeout,
            data: config.data.clone(),
            lifetime: config.lifetime,
            alternate: config.alternate.map(|every| (Instant::now(), every)),
            reconnect: (config.reconnect_min, config.reconnect_max),
            uses_clock: config.messages.iter().any(|m| m.template.uses_clock())
                || config.on_connect.iter().any(|s| s.template.uses_clock()),
            recorder,
            stop_now,
        }
    }

    /// Under `session.alternate`: whether users talk (or churn) at `now`, and until when.
    pub(crate) fn window_at(&self, now: Instant) -> Option<(bool, Instant)> {
        let (from, every) = self.alternate?;
        let k = now.saturating_duration_since(from).as_nanos() / every.as_nanos().max(1);
        let until = from + every.saturating_mul(u32::try_from(k + 1).unwrap_or(u32::MAX));
        Some((k.is_multiple_of(2), until))
    }

    /// The WebSocket dialer, unless users are simulated Telegram users.
    pub fn dialer(&self) -> Option<&Dialer> {
        match &self.transport {
            Transport::WebSocket(dialer) | Transport::SocketIo(dialer, _) => Some(dialer),
            Transport::Telegram(_) => None,
            #[cfg(test)]
            Transport::Memory(_) => None,
        }
    }

    /// Appends message `msg` for `user`'s message `seq` to `out`.
    pub(crate) fn render(
        &self,
        msg: u16,
        user: u32,
        seq: u64,
        random: u64,
        out: &mut impl std::fmt::Write,
    ) {
        let now_ms = if self.uses_clock { unix_ms() } else { 0 };
        let vars = Vars {
            user,
            seq,
            id: message_id(user, seq),
            now_ms,
            random: random & 0x7FFF_FFFF_FFFF_FFFF,
            row: self.data.row(user),
            room: self.room_of(user),
        };
        self.messages[usize::from(msg)]
            .template
            .render_into(vars, out);
    }

    /// Renders connect-time step `template` for `user` into `out` (its `{{id}}` is the
    /// user's message 0, which no scenario message uses).
    pub(crate) fn render_step(&self, template: &Template, user: u32, out: &mut BytesMut) {
        let vars = Vars {
            user,
            seq: 0,
            id: message_id(user, 0),
            now_ms: if self.uses_clock { unix_ms() } else { 0 },
            random: 0,
            row: self.data.row(user),
            room: self.room_of(user),
        };
        template.render_into(vars, out);
    }

    /// The room of `user`: `user / rooms.size`, 0 without rooms.
    pub(crate) fn room_of(&self, user: u32) -> u32 {
        user.checked_div(self.room_size).unwrap_or(0)
    }

    /// The message index a random draw picks, by weight.
    pub(crate) fn pick(&self, draw: u64) -> u16 {
        pick(&self.cumulative, draw)
    }
}

/// The index whose share of the cumulative weights a draw falls in.
pub(super) fn pick(cumulative: &[u32], draw: u64) -> u16 {
    let total = cumulative.last().copied().unwrap_or(1).max(1);
    let r = (draw % u64::from(total)) as u32;
    cumulative.iter().position(|&c| r < c).unwrap_or(0) as u16
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
