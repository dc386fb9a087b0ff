//! The `soak` binary: parse the command line, run it, and turn the result into an exit code.

use std::process::ExitCode;

use clap::Parser;
use soak::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse(); // clap's own usage errors already exit with 2
    match soak::runtime().and_then(|rt| rt.block_on(soak::run(cli))) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("soak: {err}");
            err.exit_code()
        }
    }
}
