//! Stand-ins for what a chat server talks to, and a chat server to soak: the demo target.
//!
//! Every server here follows one shape: `router(config)` builds an axum `Router` that tests
//! can drive without a socket, and `serve(listener, config, shutdown)` runs it on a listener
//! the caller has already bound (so a client may connect the moment `serve` is spawned) until
//! the caller's `shutdown` future completes. The crate never depends on the soak engine.
//!
//! Layout:
//! - [`demo`]: the demo chat target (`{"id", "text"}` in, `{"id", "reply"}` out).

pub mod demo;
pub mod listen;
pub mod llm;
pub mod telegram;
