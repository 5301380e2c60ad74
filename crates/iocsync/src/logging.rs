//! Log setup: human lines on stderr (never stdout, which carries results), plus an optional
//! log file with timestamped lines.

use crate::cli::GlobalArgs;
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// Installs the global subscriber. `RUST_LOG` overrides the level chosen by `-v`/`-q`.
pub fn init(global: &GlobalArgs) -> anyhow::Result<()> {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let directive = format!("{level},hyper=warn,reqwest=warn,rustls=warn,h2=warn,axum=warn,tower=warn");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&directive));
    let stderr = std::io::stderr.with_max_level(tracing::Level::TRACE);
    match &global.log_file {
        Some(path) => {
            let file = crate::fsutil::open_private_append(path)
                .map_err(|e| anyhow::anyhow!("cannot open log file {}: {e}", path.display()))?;
            let file = Mutex::new(file);
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(stderr.and(file))
                .try_init()
                .map_err(|e| anyhow::anyhow!("cannot install logger: {e}"))?;
        }
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(stderr)
                .without_time()
                .with_target(false)
                .try_init()
                .map_err(|e| anyhow::anyhow!("cannot install logger: {e}"))?;
        }
    }
    Ok(())
}
