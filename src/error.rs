//! How a command ended, and the one place that turns it into a process exit code.

use std::process::ExitCode;

/// A command that ran to its end (whatever the verdict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done and every gate passed: exit 0.
    Passed,
    /// The run completed but a gate failed: exit 1.
    GateFailed,
    /// Ctrl-C or SIGTERM stopped the run early; results were still written: exit 130.
    Interrupted,
}

impl Outcome {
    /// The exit code DESIGN.md assigns to this outcome.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Passed => ExitCode::SUCCESS,
            Outcome::GateFailed => ExitCode::from(1),
            Outcome::Interrupted => ExitCode::from(130),
        }
    }
}

/// A command that could not do its job. The message is one line saying what was wrong and
/// what would be right.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// Bad flags, a bad profile or data file: nothing was sent. Exit 2.
    #[error("{0}")]
    Usage(String),
    /// The run could not start or go on (target unreachable, results not writable). Exit 3.
    #[error("{0}")]
    CouldNotRun(String),
}

impl SoakError {
    /// The exit code DESIGN.md assigns to this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SoakError::Usage(_) => ExitCode::from(2),
            SoakError::CouldNotRun(_) => ExitCode::from(3),
        }
    }
}

/// Shorthand for a usage error built with `format!`.
pub(crate) fn usage(msg: impl Into<String>) -> SoakError {
    SoakError::Usage(msg.into())
}

/// Shorthand for a could-not-run error built with `format!`.
pub(crate) fn could_not_run(msg: impl Into<String>) -> SoakError {
    SoakError::CouldNotRun(msg.into())
}
