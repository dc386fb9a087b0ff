//! Probe connections: apart from the users, each sends a WebSocket ping (or an app-level
//! message) on a fixed schedule and times the answer from the intended send instant.
//!
//! Probes are what every healthy server answers at once, so their lateness is the target's
//! event loop, not its business logic. They are spread over one period (probe `k` of `n`
//! starts `k/n` of a period in), so a stall of any length meets several of them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::engine::correlate::{message_id, split_id};
use crate::engine::fields::{Fields, Frame};
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
    (started, stop_at): (Instant, Instant),
    cancel: CancellationToken,
) {
    let rec = &shared.recorder;
    let Some(dialer) = shared.dialer() else {
        return;
    };
    let user = PROBE_USER_BASE - k;
    let mut seq = 0u64;
    // Like a session's: rendered in place, shared with the frame, reclaimed after it is sent.
    let mut out = BytesMut::new();
    let mut fields = Fields::default();
    let id_field = probes.message.as_ref().and_then(|(_, p)| fields.add(p));
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
        let mut ws = ws; // not split: see `session.rs`
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
                frame = ws.next() => {
                    let now = Instant::now();
                    let answered = match frame {
                        Some(Ok(Message::Pong(payload))) if probes.message.is_none() => {
                            payload.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
                        }
                        Some(Ok(Message::Text(text))) => id_field.and_then(|i| {
                            let mut read = Frame::default();
                            fields.read(&text, &mut read).ok()?;
                            split_id(read[i].id()?).filter(|(u, _)| *u == user).map(|(_, s)| s)
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
                    // From the load's end soak is closing its own connections (all at once
                    // without a ramp-down): a probe then would time soak's shutdown, not the
                    // server (a 354 ms "stall" closing 19,000 connections, 2026-11-23).
                    if intended >= stop_at {
                        write_off(&mut outstanding, started, rec);
                        return;
                    }
                    seq += 1;
                    out.reserve(256);
                    let frame = match &probes.message {
                        None => {
                            out.put_u64(seq);
                            Message::Ping(out.split().freeze())
                        }
                        Some((template, _)) => {
                            let vars = Vars { user, seq, id: message_id(user, seq), now_ms: 0, random: seq, row: &[] };
                            template.render_into(vars, &mut out);
                            // Rendered from `&str` pieces only, so always UTF-8.
                            Message::Text(Utf8Bytes::try_from(out.split().freeze()).unwrap_or_default())
                        }
                    };
                    outstanding.push_back((seq, intended));
                    if outstanding.len() > MAX_OUTSTANDING
                        && let Some((_, oldest)) = outstanding.pop_front()
                    {
                        record(rec, started, oldest, Instant::now());
                    }
                    if ws.send(frame).await.is_err() {
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
