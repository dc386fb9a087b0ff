//! soak: a WebSocket and chat-bot soak tester.
//!
//! Layout:
//! - [`cli`]: clap definitions; [`app`]: one short function per command; [`error`]: exit codes.
//! - [`profile`]: profile TOML → `ProfileSpec` → (flags laid over it) → `RunConfig`.
//! - [`plan`]: pure load shape — when each user starts and stops, the phase of each instant.
//! - [`template`]: message templates compiled once, rendered into a reused buffer.
//! - [`engine`]: scheduler, user sessions, connections, reply correlation.
//! - [`metrics`]: `Sample`s from sessions, the one aggregator owning the histograms.
//! - [`report`]: the results folder and its files; [`progress`]: the live view.
//! - [`demo_target`]: the built-in demo chat target on its own thread ([`own_thread`]);
//!   [`redact`]: secrets; [`files`]: the files a user names, read safely.
//!
//! Data flows one way:
//!
//! ```text
//! profile + flags ─> RunConfig ─> Plan ─> engine::scheduler ─> sessions ──(Sample, try_send)─┐
//!                                                       metrics::aggregator (one task) <────┘
//!   each interval ─> IntervalSnapshot + RunTotals ─> sinks: writer thread (timeseries.csv,
//!                    summary.json checkpoint), progress thread (the live view)
//!   at the end    ─> RunData (run-data.json) + RunTotals ─> summary.json ─> Outcome ─> exit code
//!   soak merge    ─> RunData + RunData + … ─> analysis::totals ─> one run folder
//! ```

pub mod analysis;
pub mod app;
pub mod cli;
pub mod data;
pub mod demo_target;
pub mod engine;
pub mod error;
pub mod files;
pub mod live;
pub mod merge;
pub mod metrics;
pub mod mocks;
pub mod own_thread;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod redact;
pub mod report;
pub mod runner;
pub mod sampler;
pub mod segment;
pub mod signals;
pub mod template;
pub mod units;

pub use error::{Outcome, SoakError};

use cli::{Cli, Command};

/// Runs one command line to its end. The run's future is boxed: it is large (it holds the
/// whole run's state machine) and lives once per process, so it belongs on the heap.
pub async fn run(cli: Cli) -> Result<Outcome, SoakError> {
    match cli.command {
        None => Box::pin(app::run(cli.run)).await,
        Some(Command::Run(args)) => Box::pin(app::run(args)).await,
        Some(Command::Mock(args)) => app::mock(args).await,
        Some(Command::Report { run_dir }) => app::report(&run_dir),
        Some(Command::Merge { segments, out }) => merge::merge(&segments, &out),
        Some(Command::Compare {
            baseline,
            candidate,
            tolerance,
        }) => app::compare(&baseline, &candidate, tolerance),
        Some(Command::Lock {
            run_dir,
            margin,
            accept_current,
        }) => app::lock(&run_dir, margin, accept_current),
        Some(Command::Profiles { action: None }) => app::profiles(),
        Some(Command::Profiles {
            action: Some(cli::ProfilesAction::Show { name }),
        }) => app::show_profile(&name),
        Some(Command::Completions { shell }) => {
            app::completions(shell);
            Ok(Outcome::Passed)
        }
    }
}

/// The runtime soak runs on: one worker per core, so the tester can use the whole machine.
pub fn runtime() -> Result<tokio::runtime::Runtime, SoakError> {
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|err| {
            error::SoakError::CouldNotRun(format!("cannot start the async runtime: {err}"))
        })
}
