//! Log setup: human lines on stderr (never stdout, which carries results), plus an optional
//! log file with timestamped lines; `--log-format json` writes one JSON object per line instead.

use crate::cli::{GlobalArgs, LogFormat};
use std::fs::OpenOptions;
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
    let installed = match (&global.log_file, global.log_format) {
        // One JSON object per line (timestamp, level, message and fields such as the journal's
        // run id), for a SIEM; to stderr and, when asked, the log file.
        (path, LogFormat::Json) => {
            let file = path.as_deref().map(open_log).transpose()?;
            let builder = tracing_subscriber::fmt().json().with_env_filter(filter).with_current_span(false);
            match file {
                Some(file) => builder.with_writer(stderr.and(Mutex::new(file))).try_init(),
                None => builder.with_writer(stderr).try_init(),
            }
        }
        (Some(path), LogFormat::Text) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(stderr.and(Mutex::new(open_log(path)?)))
            .try_init(),
        (None, LogFormat::Text) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(stderr)
            .without_time()
            .with_target(false)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install logger: {e}"))?;
    Ok(())
}

fn open_log(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open log file {}: {e}", path.display()))
}
