//! Probe connections: apart from the users, each sends a WebSocket ping (or an app-level
//! message) on a fixed schedule and times the answer from the intended send instant.
//!
//! Probes are what every healthy server answers at once, so their lateness is the target's
//! event loop, not its business logic. They are spread over one period (probe `k` of `n`
//! starts `k/n` of a period in), so a stall of any length meets several of them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::engine::correlate::{id_at, message_id, split_id};
use crate::engine::session::SessionConfig;
use crate::metrics::{Recorder, Sample};
use crate::profile::resolve::ProbeConfig;
use crate::template::Vars;

/// Probes reuse the message-id scheme with user numbers from here down, far from users.
pub const PROBE_USER_BASE: u32 = 9_000_000;

/// Unanswered probes kept before the oldest is written off as late (a minute at 10 Hz).
const MAX_OUTSTANDING: usize = 600;

/// Runs probe `k` until `cancel` fires, reconnecting after a pause if its connection is lost.
pub async fn run(
    k: u32,
    probes: Arc<ProbeConfig>,
    shared: Arc<SessionConfig>,
    started: Instant,
    cancel: CancellationToken,
) {
    let rec = &shared.recorder;
    let Some(dialer) = shared.dialer() else {
        return;
    };
    let user = PROBE_USER_BASE - k;
    let mut seq = 0u64;
    let mut buf = String::new();
    loop {
        let ws = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            ws = dialer.dial() => ws,
        };
        let Ok(ws) = ws else {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = sleep(Duration::from_millis(500)) => continue,
            }
        };
        let (mut sink, mut stream) = ws.split();
        let offset = probes
            .every
            .mul_f64(f64::from(k) / f64::from(probes.count.max(1)));
        let mut ticks = interval_at(Instant::now() + offset, probes.every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut outstanding: VecDeque<(u64, Instant)> = VecDeque::with_capacity(16);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    write_off(&mut outstanding, started, rec);
                    return;
                }
                frame = stream.next() => {
                    let now = Instant::now();
                    let answered = match frame {
                        Some(Ok(Message::Pong(payload))) if probes.message.is_none() => {
                            payload.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
                        }
                        Some(Ok(Message::Text(text))) => probes.message.as_ref().and_then(|(_, pointer)| {
                            let value: Value = serde_json::from_str(&text).ok()?;
                            split_id(id_at(&value, pointer)?).filter(|(u, _)| *u == user).map(|(_, s)| s)
                        }),
                        Some(Ok(_)) => None,
                        Some(Err(_)) | None => break,
                    };
                    if let Some(seq) = answered
                        && let Some(i) = outstanding.iter().position(|(s, _)| *s == seq)
                        && let Some((_, intended)) = outstanding.remove(i)
                    {
                        record(rec, started, intended, now);
                    }
                }
                intended = ticks.tick() => {
                    seq += 1;
                    let frame = match &probes.message {
                        None => Message::Ping(seq.to_be_bytes().to_vec().into()),
                        Some((template, _)) => {
                            let vars = Vars { user, seq, id: message_id(user, seq), now_ms: 0, random: seq, row: &[] };
                            template.render(vars, &mut buf);
                            Message::text(buf.as_str())
                        }
                    };
                    outstanding.push_back((seq, intended));
                    if outstanding.len() > MAX_OUTSTANDING
                        && let Some((_, oldest)) = outstanding.pop_front()
                    {
                        record(rec, started, oldest, Instant::now());
                    }
                    if sink.send(frame).await.is_err() {
                        break;
                    }
                }
            }
        }
        write_off(&mut outstanding, started, rec);
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

/// Probes still unanswered when their connection ends count as late as they are now.
fn write_off(outstanding: &mut VecDeque<(u64, Instant)>, started: Instant, rec: &Recorder) {
    let now = Instant::now();
    for (_, intended) in outstanding.drain(..) {
        record(rec, started, intended, now);
    }
}
