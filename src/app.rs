//! One short function per command; wiring only, each step owned by its module.

use crate::cli::{MockArgs, RunArgs};
use crate::demo_target::DemoTarget;
use crate::error::{Outcome, SoakError};
use crate::profile::{self, builtin};
use crate::signals::wait_for_signal;

/// `soak run`: see [`crate::runner`].
pub async fn run(args: RunArgs) -> Result<Outcome, SoakError> {
    crate::runner::run(args).await
}

/// `soak mock`: serve the demo target until Ctrl-C, on its own single-threaded event loop
/// (so its blocking modes block the whole server, as in a single-loop chat server).
pub async fn mock(args: MockArgs) -> Result<Outcome, SoakError> {
    let config = soak_mocks::demo::DemoConfig {
        reply_delay: args.demo_delay,
        stream_frames: args.demo_stream,
        frame_gap: args.demo_gap,
        block_for: args.demo_block_for,
        block_every: args.demo_block_every,
        leak_per_message: args.demo_leak_per_message,
        ..soak_mocks::demo::DemoConfig::default()
    };
    let demo = DemoTarget::start_on(args.listen, config)?;
    println!("demo target listening on {} (Ctrl-C stops it)", demo.url());
    wait_for_signal().await;
    drop(demo);
    Ok(Outcome::Passed)
}

/// `soak profiles`: one line per built-in profile.
pub fn profiles() -> Result<Outcome, SoakError> {
    for name in builtin::names() {
        let description = profile::load(Some(name)).map(|p| p.spec.description)?;
        println!("{name:<16} {description}");
    }
    Ok(Outcome::Passed)
}
