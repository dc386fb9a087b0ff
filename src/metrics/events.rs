//! `events.jsonl` records, bounded: the first few of each kind are logged one by one, then
//! repeats are counted and logged as one `repeated` record per minute, so a 4-hour run with
//! a flapping server cannot fill the disk.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

/// Records of one kind logged one by one before repeats are only counted.
pub const FIRST_EACH: u32 = 10;

/// How often counted repeats are written out.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A connection opened.
    Connect {
        /// The user.
        user: u32,
        /// Handshake time, ms.
        connect_ms: f64,
        /// Whether the user had been connected before.
        reconnect: bool,
    },
    /// A connection ended.
    Disconnect {
        /// The user.
        user: u32,
        /// `stopped`, `churned`, or the error kind (`closed`, `reset`, `protocol`, …).
        reason: &'static str,
        /// The server's close code, if it sent one.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
    },
    /// Something failed (connects, unreadable replies, timeouts).
    Error {
        /// The error kind.
        kind: &'static str,
        /// The user, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<u32>,
        /// The scenario message, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A connect-time step failed (`join_failed`).
    JoinFailed {
        /// The user.
        user: u32,
        /// The step's name.
        step: String,
        /// The server's close code, when it closed the connection.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
        /// The server's message (a Socket.IO `connect_error`).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The target process ended during the run.
    TargetExit {
        /// How it ended (exit status or signal).
        how: String,
    },
    /// Readings of the target began failing (a metrics scrape): the first of a run of gaps.
    TargetGap {
        /// Why the reading failed.
        why: String,
    },
    /// A stall: most probes late at once (written when the run ends).
    Stall(crate::analysis::stall::Stall),
    /// Repeats of one kind of record, counted instead of logged.
    Repeated {
        /// Which kind: `connect`, `disconnect closed 1011`, `error timeout`, …
        what: String,
        /// How many were not logged one by one.
        count: u64,
        /// Offset of the first, s.
        from_s: f64,
        /// Offset of this record, s.
        to_s: f64,
    },
}

/// An event and when it happened (offset from the run's start).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Offset from the run's start.
    pub at: Duration,
    /// What happened.
    pub event: Event,
}

#[derive(Debug, Default)]
struct KeyState {
    logged: u32,
    repeats: u64,
    since: Duration,
}

/// The bounded log: decides what is logged and what is counted.
#[derive(Debug, Default)]
pub struct EventLog {
    keys: HashMap<(&'static str, &'static str, u16), KeyState>,
    /// Records ready to be written.
    pub out: Vec<Record>,
}

impl EventLog {
    /// Logs `event` at `at`, or counts it when its kind (`what`, `detail`, `code`) is repeating.
    pub fn push(
        &mut self,
        at: Duration,
        what: (&'static str, &'static str, u16),
        event: impl FnOnce() -> Event,
    ) {
        let state = self.keys.entry(what).or_default();
        if state.logged < FIRST_EACH {
            state.logged += 1;
            self.out.push(Record { at, event: event() });
        } else {
            if state.repeats == 0 {
                state.since = at;
            }
            state.repeats += 1;
        }
    }

    /// Writes out counted repeats older than the window (all of them when `all`).
    pub fn flush_repeats(&mut self, now: Duration, all: bool) {
        let mut due: Vec<_> = self
            .keys
            .iter_mut()
            .filter(|(_, s)| s.repeats > 0 && (all || now.saturating_sub(s.since) >= REPEAT_WINDOW))
            .map(|(key, s)| {
                let record = Record {
                    at: now,
                    event: Event::Repeated {
                        what: describe(*key),
                        count: s.repeats,
                        from_s: s.since.as_secs_f64(),
                        to_s: now.as_secs_f64(),
                    },
                };
                s.repeats = 0;
                record
            })
            .collect();
        due.sort_by(|a, b| format!("{:?}", a.event).cmp(&format!("{:?}", b.event)));
        self.out.extend(due);
    }
}

fn describe((what, detail, code): (&'static str, &'static str, u16)) -> String {
    let mut s = String::from(what);
    if !detail.is_empty() {
        s.push(' ');
        s.push_str(detail);
    }
    if code != 0 {
        s.push_str(&format!(" {code}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(user: u32) -> Event {
        Event::Error {
            kind: "timeout",
            user: Some(user),
            message: None,
        }
    }

    #[test]
    fn repeats_beyond_the_first_few_are_counted_once_a_minute() {
        let mut log = EventLog::default();
        let key = ("error", "timeout", 0);
        for i in 0..1000 {
            log.push(Duration::from_millis(i * 100), key, || err(i as u32));
        }
        assert_eq!(log.out.len(), FIRST_EACH as usize);
        log.flush_repeats(Duration::from_secs(30), false);
        assert_eq!(log.out.len(), FIRST_EACH as usize, "not a minute yet");
        log.flush_repeats(Duration::from_secs(100), false);
        let last = log.out.last().unwrap();
        assert_eq!(
            last.event,
            Event::Repeated {
                what: "error timeout".into(),
                count: 990,
                from_s: 1.0,
                to_s: 100.0
            }
        );
        log.flush_repeats(Duration::from_secs(200), true);
        assert_eq!(
            log.out.len(),
            FIRST_EACH as usize + 1,
            "nothing new to count"
        );
    }

    #[test]
    fn kinds_are_counted_apart() {
        let mut log = EventLog::default();
        for i in 0..20 {
            log.push(Duration::ZERO, ("disconnect", "closed", 1011), || err(i));
            log.push(Duration::ZERO, ("disconnect", "closed", 1006), || err(i));
        }
        assert_eq!(log.out.len(), 20);
        log.flush_repeats(Duration::from_secs(1), true);
        let whats: Vec<_> = log.out[20..]
            .iter()
            .map(|r| match &r.event {
                Event::Repeated { what, count, .. } => (what.clone(), *count),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            whats,
            [
                ("disconnect closed 1006".into(), 10),
                ("disconnect closed 1011".into(), 10)
            ]
        );
    }
}
