//! How late soak's own timers fire: a ticker on the tester's runtime, as jHiccup does it.
//!
//! Every [`TICK`] the ticker asks to wake at a planned instant and records how late it
//! actually woke. A loaded tester (too many connections for its cores, a slow disk write
//! on the runtime) shows here; stalls that coincide with it are not blamed on the target.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Recorder, Sample};

/// The ticker's period: fine enough to see a 50 ms stall many times over, coarse enough to
/// cost nothing (200 samples a second). Tokio's timer has 1 ms resolution, so up to about
/// 1 ms of every reading is the timer's granularity, not lag.
pub const TICK: Duration = Duration::from_millis(5);

/// Runs until `cancel` fires.
pub async fn run(started: Instant, recorder: Recorder, cancel: CancellationToken) {
    let mut ticks = interval(TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            due = ticks.tick() => {
                let late = Instant::now().saturating_duration_since(due);
                let at_ms = u32::try_from(due.saturating_duration_since(started).as_millis()).unwrap_or(u32::MAX);
                let lag_us = u32::try_from(late.as_micros()).unwrap_or(u32::MAX);
                recorder.record(Sample::Lag { at_ms, lag_us });
            }
        }
    }
}
