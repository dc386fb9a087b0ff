//! The single integration-test binary: one link step for every end-to-end test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod artefacts;
mod channels;
mod cli;
mod clients;
mod common;
mod conversations;
mod hostile;
mod kubernetes;
mod live;
mod memory;
mod morning;
mod props;
mod remote;
mod run;
mod segments;
mod sessions;
mod socketio;
mod stalls;
mod telegram;
mod tls;
