//! The Socket.IO transport: Engine.IO v4 over a WebSocket (the `websocket` transport, no
//! long-polling) and Socket.IO v5 packets inside it. The open packet's `pingInterval` and
//! `pingTimeout` are honoured, server pings answered at once and their lateness reported;
//! events, acks, namespace connects and disconnects are decoded without a JSON tree: an
//! event's name and first argument, an ack's id and first argument, are spans of the frame.

use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::engine::connect::{Ws, classify};
use crate::engine::transport::{ABNORMAL_CLOSE, Arrival};
use crate::metrics::ErrorKind;

/// Most distinct event names counted apart as pushes; later names count as the last.
pub const MAX_EVENT_NAMES: usize = 8;

/// How the run speaks Socket.IO, shared by every user.
#[derive(Debug)]
pub struct SocketIo {
    /// `""` for the main namespace, else `/name,` (the prefix of every packet).
    pub nsp_prefix: String,
    /// The namespace, as the server names it (`/`, `/chat`).
    pub namespace: String,
    /// The event whose data carries replies (correlated by pointer), when not by ack.
    pub reply_event: Option<String>,
    /// Names of the events the server emitted that were neither acks nor replies.
    pub names: EventNames,
    /// The messages of the namespace's `connect_error`s.
    pub refusals: EventNames,
    /// The namespace connect packet (`40[/nsp,][auth]`), rendered per user.
    pub connect: crate::template::Template,
}

/// The event names pushes are counted under: filled in as they first arrive, without a lock.
#[derive(Debug, Default)]
pub struct EventNames {
    slots: [OnceLock<Box<str>>; MAX_EVENT_NAMES],
}

impl EventNames {
    /// The index `name` is counted under (the last slot holds every name past the first
    /// `MAX_EVENT_NAMES - 1`).
    pub fn index(&self, name: &str) -> u8 {
        let last = MAX_EVENT_NAMES - 1;
        for (i, slot) in self.slots[..last].iter().enumerate() {
            match slot.get() {
                Some(n) if &**n == name => return i as u8,
                Some(_) => {}
                None => {
                    // Taken by another user meanwhile: its name may be this one.
                    let _ = slot.set(name.into());
                    if slot.get().is_some_and(|n| &**n == name) {
                        return i as u8;
                    }
                }
            }
        }
        let _ = self.slots[last].set("(other events)".into());
        last as u8
    }

    /// The names so far, by index.
    pub fn names(&self) -> Vec<String> {
        self.slots
            .iter()
            .map_while(|s| s.get().map(|n| n.to_string()))
            .collect()
    }
}

/// The heartbeat settings of the open packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// How often the server pings.
    pub interval: Duration,
    /// How long past an interval the server's ping may be before the connection is dead.
    pub timeout: Duration,
}

/// One Engine.IO packet of a text frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Engine<'a> {
    /// `0{…}`: the handshake, with its JSON.
    Open(&'a str),
    /// `1`: the server closes the session.
    Close,
    /// `2`: a heartbeat ping (the server's, in v4).
    Ping,
    /// `3`.
    Pong,
    /// `4…`: a message: a Socket.IO packet.
    Message(&'a str),
    /// `5`, `6`: upgrade and noop (polling only).
    Other,
}

/// Decodes an Engine.IO text frame.
pub fn engine(text: &str) -> Option<Engine<'_>> {
    let (kind, rest) = (text.as_bytes().first()?, text.get(1..)?);
    Some(match kind {
        b'0' => Engine::Open(rest),
        b'1' => Engine::Close,
        b'2' => Engine::Ping,
        b'3' => Engine::Pong,
        b'4' => Engine::Message(rest),
        b'5' | b'6' => Engine::Other,
        _ => return None,
    })
}

/// Reads the heartbeat settings from the open packet's JSON.
pub fn heartbeat(open: &str) -> Option<Heartbeat> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Open {
        ping_interval: u64,
        ping_timeout: u64,
    }
    let o: Open = serde_json::from_str(open).ok()?;
    Some(Heartbeat {
        interval: Duration::from_millis(o.ping_interval),
        timeout: Duration::from_millis(o.ping_timeout),
    })
}

/// A Socket.IO packet's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `0`: connected to a namespace (from the server) or connecting (from a client).
    Connect,
    /// `1`: left a namespace (the server kicked the socket).
    Disconnect,
    /// `2`: an event.
    Event,
    /// `3`: an acknowledgement.
    Ack,
    /// `4`: the namespace refused the connection.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

/// One Socket.IO packet, as spans of its text.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Its type.
    pub kind: Kind,
    /// Binary attachments that follow in their own frames.
    pub attachments: u32,
    /// The namespace (`/` when absent).
    pub nsp: &'a str,
    /// The ack id.
    pub id: Option<u64>,
    /// The JSON payload (may be empty).
    pub data: &'a str,
}

/// Decodes a Socket.IO packet (`<type>[<attachments>-][<nsp>,][<id>][<json>]`); `None`
/// when it is malformed.
pub fn packet(text: &str) -> Option<Packet<'_>> {
    let b = text.as_bytes();
    let kind = match b.first()? {
        b'0' => Kind::Connect,
        b'1' => Kind::Disconnect,
        b'2' => Kind::Event,
        b'3' => Kind::Ack,
        b'4' => Kind::ConnectError,
        b'5' => Kind::BinaryEvent,
        b'6' => Kind::BinaryAck,
        _ => return None,
    };
    let mut i = 1;
    let mut attachments = 0;
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        attachments = text.get(i..i + digits)?.parse().ok()?;
        i += digits;
        if b.get(i) != Some(&b'-') {
            return None;
        }
        i += 1;
    }
    let mut nsp = "/";
    if b.get(i) == Some(&b'/') {
        let end = b[i..]
            .iter()
            .position(|&c| c == b',')
            .map_or(b.len(), |p| i + p);
        nsp = &text[i..end];
        i = (end + 1).min(b.len());
    }
    let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let id = if digits > 0 {
        Some(text.get(i..i + digits)?.parse().ok()?)
    } else {
        None
    };
    i += digits;
    let data = &text[i..];
    let shape = data.trim_start().as_bytes().first().copied();
    let fits = match kind {
        Kind::Event | Kind::BinaryEvent => shape == Some(b'[') && event(data).is_some(),
        Kind::Ack | Kind::BinaryAck => shape == Some(b'[') && id.is_some(),
        Kind::Connect => matches!(shape, None | Some(b'{')),
        Kind::ConnectError => matches!(shape, Some(b'{' | b'"')),
        Kind::Disconnect => shape.is_none(),
    };
    fits.then_some(Packet {
        kind,
        attachments,
        nsp,
        id,
        data,
    })
}

/// An event's name and the span of its first argument (empty without one), from its
/// `["name", arg, …]` array; `None` unless the array starts with a string.
pub fn event(data: &str) -> Option<(&str, Range<usize>)> {
    let b = data.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let name_end = value_end(b, i)?;
    let name = &data[i + 1..name_end - 1];
    Some((name, first_after(b, name_end)?))
}

/// The span of an ack's first argument (empty without one), from its `[arg, …]` array.
pub fn ack_data(data: &str) -> Option<Range<usize>> {
    let b = data.as_bytes();
    let i = skip_ws(b, 0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Some(i..i);
    }
    let end = value_end(b, i)?;
    Some(i..end)
}

/// After an array item ending at `i`: the span of the next item, or an empty one at `]`.
fn first_after(b: &[u8], i: usize) -> Option<Range<usize>> {
    let i = skip_ws(b, i);
    match b.get(i)? {
        b']' => Some(i..i),
        b',' => {
            let start = skip_ws(b, i + 1);
            Some(start..value_end(b, start)?)
        }
        _ => None,
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The end of the JSON value starting at `i` (strings, nesting and escapes followed; the
/// value is not otherwise validated: the loop's field reader does that).
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => {
            let mut j = i + 1;
            loop {
                match b.get(j)? {
                    b'\\' => j += 2,
                    b'"' => return Some(j + 1),
                    _ => j += 1,
                }
            }
        }
        b'{' | b'[' => {
            let (mut depth, mut j, mut in_str) = (0usize, i, false);
            loop {
                let c = *b.get(j)?;
                if in_str {
                    match c {
                        b'\\' => j += 1,
                        b'"' => in_str = false,
                        _ => {}
                    }
                } else {
                    match c {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                }
                j += 1;
            }
        }
        _ => {
            let n = b[i..]
                .iter()
                .take_while(|c| !matches!(c, b',' | b']' | b'}') && !c.is_ascii_whitespace())
                .count();
            (n > 0).then_some(i + n)
        }
    }
}

/// The server's message in a `connect_error` payload (`{"message": …}` or a string).
pub fn refusal(data: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Refused {
        message: String,
    }
    serde_json::from_str::<Refused>(data)
        .map(|r| r.message)
        .or_else(|_| serde_json::from_str::<String>(data))
        .unwrap_or_else(|_| data.chars().take(200).collect())
}

/// One user's Socket.IO connection.
pub(crate) struct Socket {
    ws: Box<Ws>,
    sio: Arc<SocketIo>,
    heartbeat: Heartbeat,
    /// The last ping (or the open packet, before the first).
    last_ping: Instant,
    /// A pong owed to the server (sent before reading on).
    pong_due: bool,
    /// Binary frames still to come for the last packet that announced them.
    attachments: u32,
}

impl Socket {
    /// Reads the open packet of a freshly upgraded Engine.IO connection (within `within`).
    pub(crate) async fn open(
        mut ws: Box<Ws>,
        sio: Arc<SocketIo>,
        within: Duration,
    ) -> Result<Socket, ErrorKind> {
        let first = timeout(within, ws.next())
            .await
            .map_err(|_| ErrorKind::ConnectTimeout)?;
        let text = match first {
            Some(Ok(Message::Text(t))) => t,
            Some(Err(e)) => return Err(classify(&e)),
            _ => return Err(ErrorKind::Handshake),
        };
        let Some(Engine::Open(json)) = engine(&text) else {
            return Err(ErrorKind::Handshake);
        };
        let heartbeat = heartbeat(json).ok_or(ErrorKind::Handshake)?;
        Ok(Socket {
            ws,
            sio,
            heartbeat,
            last_ping: Instant::now(),
            pong_due: false,
            attachments: 0,
        })
    }

    /// The connection, to send on.
    pub(crate) fn ws(&mut self) -> &mut Ws {
        &mut self.ws
    }

    /// The next thing the server sent on the run's namespace (cancel-safe).
    pub(crate) async fn next(&mut self) -> Arrival {
        loop {
            if self.pong_due {
                // Cleared only once sent: a read cancelled mid-send sends it again (a second
                // pong is harmless; a missing one would end the session).
                if let Err(e) = self.ws.send(Message::text("3")).await {
                    return Arrival::Closed(classify(&e), ABNORMAL_CLOSE);
                }
                self.pong_due = false;
            }
            let dead = self.last_ping + self.heartbeat.interval + self.heartbeat.timeout;
            let frame = tokio::select! {
                frame = self.ws.next() => frame,
                () = sleep_until(dead) => return Arrival::Closed(ErrorKind::Heartbeat, ABNORMAL_CLOSE),
            };
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Binary(_))) => {
                    if self.attachments > 0 {
                        self.attachments -= 1;
                    }
                    return Arrival::Attachment;
                }
                Some(Ok(Message::Close(frame))) => {
                    return Arrival::Closed(
                        ErrorKind::Closed,
                        frame.map_or(ABNORMAL_CLOSE, |f| u16::from(f.code)),
                    );
                }
                Some(Ok(Message::Pong(p))) => return Arrival::Pong(super::pong_seq(&p)),
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Arrival::Closed(classify(&err), ABNORMAL_CLOSE),
                None => return Arrival::Closed(ErrorKind::Closed, ABNORMAL_CLOSE),
            };
            if let Some(arrival) = self.decode(text) {
                return arrival;
            }
        }
    }

    /// What one Engine.IO text frame is to the loop; `None` for nothing to report.
    fn decode(&mut self, text: Utf8Bytes) -> Option<Arrival> {
        let sio = &*self.sio;
        let Some(e) = engine(&text) else {
            return Some(Arrival::Closed(ErrorKind::Protocol, ABNORMAL_CLOSE));
        };
        let body = match e {
            Engine::Ping => {
                let now = Instant::now();
                let gap = now.saturating_duration_since(self.last_ping);
                self.last_ping = now;
                self.pong_due = true;
                let late = gap.saturating_sub(self.heartbeat.interval);
                return Some(Arrival::Heartbeat(late));
            }
            Engine::Close => return Some(Arrival::Closed(ErrorKind::Closed, 1000)),
            Engine::Message(body) => body,
            Engine::Open(_) | Engine::Pong | Engine::Other => return None,
        };
        // The socket.io client closes the connection on a packet it cannot decode.
        let Some(p) = packet(body) else {
            return Some(Arrival::Closed(ErrorKind::Protocol, ABNORMAL_CLOSE));
        };
        if p.nsp != sio.namespace {
            return None;
        }
        self.attachments = p.attachments;
        let offset = text.len() - p.data.len();
        let shift = |r: Range<usize>| (r.start + offset) as u32..(r.end + offset) as u32;
        Some(match p.kind {
            Kind::Event | Kind::BinaryEvent => {
                let (name, arg) = event(p.data)?;
                let reply = sio.reply_event.as_deref() == Some(name);
                let name = if reply { 0 } else { sio.names.index(name) };
                Arrival::Event {
                    name,
                    reply,
                    range: shift(arg),
                    text,
                }
            }
            Kind::Ack | Kind::BinaryAck => Arrival::Ack {
                id: p.id?,
                range: shift(ack_data(p.data)?),
                text,
            },
            Kind::Connect => Arrival::Connected,
            Kind::ConnectError => Arrival::Refused(refusal(p.data)),
            Kind::Disconnect => Arrival::Closed(ErrorKind::Kicked, 0),
        })
    }

    /// Leaves the namespace and closes the connection, within `grace`.
    pub(crate) async fn close(&mut self, grace: Duration) {
        let leave = format!("41{}", self.sio.nsp_prefix);
        let _ = timeout(grace, async {
            self.ws.send(Message::text(leave)).await?;
            self.ws.send(Message::Close(None)).await
        })
        .await;
    }
}

#[cfg(test)]
mod tests;
