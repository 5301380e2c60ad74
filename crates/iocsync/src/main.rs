//! The `iocsync` binary: parse the command line, run, map the outcome to an exit code.

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    match iocsync::cli::Cli::try_parse() {
        Ok(cli) => ExitCode::from(iocsync::run(cli)),
        // Usage errors exit 1 (2 means "changes pending"); --help and --version exit 0.
        Err(e) => ExitCode::from(iocsync::usage_error(&e)),
    }
}
