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
use crate::engine::session::SessionConfig;
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
}

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
        /// Index of the step.
        step: u8,
        /// Close code, 0 without one.
        code: u16,
    },
    /// The user was stopped while joining.
    Stopped,
}

/// Runs the steps on a freshly opened `link` for `user`, rendering into `out`.
pub(crate) async fn join(
    link: &mut Link,
    out: &mut BytesMut,
    user: u32,
    config: &SessionConfig,
    cancel: &CancellationToken,
) -> Joined {
    let began = Instant::now();
    let steps = &config.steps;
    for (i, step) in steps.steps.iter().enumerate() {
        let failed = |code| Joined::Failed {
            step: u8::try_from(i).unwrap_or(u8::MAX),
            code,
        };
        config.render_step(&step.template, user, out);
        match link.send(out, 0, config, cancel).await {
            Ok(true) => {}
            Ok(false) => return Joined::Stopped,
            Err(_) => return failed(0),
        }
        let Some((expect, at)) = &step.expect else {
            continue;
        };
        let deadline = Instant::now() + step.timeout;
        loop {
            let arrival = tokio::select! {
                biased;
                () = config.stop_now.cancelled() => return Joined::Stopped,
                () = cancel.cancelled() => return Joined::Stopped,
                () = sleep_until(deadline) => return failed(0),
                arrival = link.next() => arrival,
            };
            match arrival {
                Arrival::Text(text) => {
                    let mut frame = Frame::default();
                    if steps.fields.read(&text, &mut frame).is_err() {
                        continue; // not JSON: neither rule can meet it
                    }
                    let meets =
                        |(rule, at): &(Complete, usize)| rule.is_complete(field(&frame, *at), 1);
                    if step.fail.as_ref().is_some_and(meets) {
                        return failed(0);
                    }
                    if expect.is_complete(field(&frame, *at), 1) {
                        break;
                    }
                }
                Arrival::Closed(_, code) => return failed(code),
                Arrival::Bot(_) | Arrival::Settled | Arrival::Binary | Arrival::Nothing => {}
            }
        }
    }
    Joined::Passed(began.elapsed())
}

fn field<'a, 'b>(frame: &'b Frame<'a>, at: usize) -> &'b Found<'a> {
    frame.get(at).unwrap_or(&Found::Missing)
}
