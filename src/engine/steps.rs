//! Connect-time steps (`[[session.on_connect]]`): what a user sends as soon as its
//! connection opens — an auth message with its token, a join — each optionally waiting for
//! the frame that says it passed (`expect`) and watching for the one that says it failed
//! (`fail`), within its timeout. A user is connected only once every step has passed;
//! frames that meet neither rule meanwhile (a welcome banner, presence) are let pass.

use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::engine::complete::Complete;
use crate::engine::fields::{Fields, Found, Frame};
use crate::engine::session::{SessionConfig, Transport};
use crate::engine::transport::{Arrival, Link};
use crate::template::Template;

/// One step, compiled against the steps' own fields.
#[derive(Debug)]
pub struct Step {
    /// The message.
    pub template: Template,
    /// The rule that passes it, with the field it reads.
    pub expect: Option<(Complete, usize)>,
    /// The rule that fails it, with the field it reads.
    pub fail: Option<(Complete, usize)>,
    /// How long it may wait for its `expect` frame.
    pub timeout: Duration,
    /// A Socket.IO step emitted with ack id 0: it waits for that ack, whose first argument
    /// its rules read.
    pub ack: bool,
}

/// The Socket.IO namespace connect's step index in `join_failed` events.
pub const CONNECT_STEP: u8 = u8::MAX;

/// How long a Socket.IO namespace connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The steps of a run and the fields their rules read.
#[derive(Debug, Default)]
pub struct Steps {
    /// In order.
    pub steps: Vec<Step>,
    /// The pointers the rules look at.
    pub fields: Fields,
}

impl Steps {
    /// Compiles `config`'s steps (validated when the profile was resolved).
    pub fn new(config: &[crate::profile::config::StepConfig]) -> Steps {
        let mut fields = Fields::default();
        let mut with_field = |rule: &Option<Complete>| {
            let rule = rule.as_ref()?;
            Some((rule.clone(), fields.add(rule.pointer()?)?))
        };
        let steps = config
            .iter()
            .map(|s| Step {
                template: s.template.clone(),
                expect: with_field(&s.expect),
                fail: with_field(&s.fail),
                timeout: s.timeout,
                ack: s.ack,
            })
            .collect();
        Steps { steps, fields }
    }

    /// Whether there is any step.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// How joining went.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// Every step passed, this long after the handshake.
    Passed(Duration),
    /// Step `step` failed; the close code when the server closed the connection.
    Failed {
        /// Index of the step ([`CONNECT_STEP`]: the Socket.IO namespace connect).
        step: u8,
        /// Close code, 0 without one.
        code: u16,
        /// The server's message (a Socket.IO `connect_error`).
        reason: Option<String>,
    },
    /// The user was stopped while joining.
    Stopped,
}

/// Runs the steps (with `steps`; a Socket.IO link's namespace connect always) on a freshly
/// opened `link` for `user`, rendering into `out`.
pub(crate) async fn join(
    link: &mut Link,
    out: &mut BytesMut,
    (user, steps): (u32, bool),
    config: &SessionConfig,
    cancel: &CancellationToken,
) -> Joined {
    let began = Instant::now();
    if let Link::SocketIo(_) = link
        && let Some(failed) = connect_namespace(link, out, user, config, cancel).await
    {
        return failed;
    }
    let run = if steps { &config.steps.steps[..] } else { &[] };
    let steps = &config.steps;
    for (i, step) in run.iter().enumerate() {
        let failed = |code| Joined::Failed {
            step: u8::try_from(i).unwrap_or(u8::MAX - 1),
            code,
            reason: None,
        };
        config.render_step(&step.template, user, out);
        match link.send(out, 0, config, cancel).await {
            Ok(true) => {}
            Ok(false) => return Joined::Stopped,
            Err(_) => return failed(0),
        }
        if step.expect.is_none() && !step.ack {
            continue; // passes once sent
        }
        let deadline = Instant::now() + step.timeout;
        loop {
            let arrival = tokio::select! {
                biased;
                () = config.stop_now.cancelled() => return Joined::Stopped,
                () = cancel.cancelled() => return Joined::Stopped,
                () = sleep_until(deadline) => return failed(0),
                arrival = link.next() => arrival,
            };
            let (text, range) = match arrival {
                Arrival::Text(text) => {
                    let all = 0..text.len() as u32;
                    (text, all)
                }
                Arrival::Ack { id: 0, text, range } if step.ack => (text, range),
                Arrival::Event { text, range, .. } if !step.ack => (text, range),
                Arrival::Closed(_, code) => return failed(code),
                _ => continue,
            };
            let data = text
                .get(range.start as usize..range.end as usize)
                .unwrap_or_default();
            let mut frame = Frame::default();
            let read = steps.fields.read(data, &mut frame).is_ok();
            let meets = |(rule, at): &(Complete, usize)| rule.is_complete(field(&frame, *at), 1);
            if read && step.fail.as_ref().is_some_and(meets) {
                return failed(0);
            }
            let passed = step.expect.as_ref().is_none_or(|e| read && meets(e));
            if passed {
                break;
            }
            if step.ack {
                return failed(0); // its ack came, and does not say it passed
            }
        }
    }
    Joined::Passed(began.elapsed())
}

/// Connects a Socket.IO link to the run's namespace (with the auth payload): `None` once
/// the server said it connected, else how it failed.
async fn connect_namespace(
    link: &mut Link,
    out: &mut BytesMut,
    user: u32,
    config: &SessionConfig,
    cancel: &CancellationToken,
) -> Option<Joined> {
    let Transport::SocketIo(_, sio) = &config.transport else {
        return None;
    };
    let failed = |code, reason| {
        Some(Joined::Failed {
            step: CONNECT_STEP,
            code,
            reason,
        })
    };
    config.render_step(&sio.connect, user, out);
    match link.send(out, 0, config, cancel).await {
        Ok(true) => {}
        Ok(false) => return Some(Joined::Stopped),
        Err(_) => return failed(0, None),
    }
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let arrival = tokio::select! {
            biased;
            () = config.stop_now.cancelled() => return Some(Joined::Stopped),
            () = cancel.cancelled() => return Some(Joined::Stopped),
            () = sleep_until(deadline) => return failed(0, Some("no connect from the server in time".into())),
            arrival = link.next() => arrival,
        };
        match arrival {
            Arrival::Connected => return None,
            Arrival::Refused(message) => return failed(0, Some(message)),
            Arrival::Closed(_, code) => return failed(code, None),
            _ => {}
        }
    }
}

fn field<'a, 'b>(frame: &'b Frame<'a>, at: usize) -> &'b Found<'a> {
    frame.get(at).unwrap_or(&Found::Missing)
}
