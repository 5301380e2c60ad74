//! The `iocsync` binary: parse the command line, run, map the outcome to an exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = iocsync::cli::Cli::parse();
    let code = iocsync::run(cli);
    ExitCode::from(code)
}
