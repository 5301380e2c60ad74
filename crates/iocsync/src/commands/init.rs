//! `iocsync init`: write the commented starter config.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// Writes the starter config to `path`, refusing to overwrite unless `force`.
pub fn run(path: &Path, force: bool) -> anyhow::Result<PathBuf> {
    if path.exists() && !force {
        bail!("{} already exists: pass --force to overwrite it", path.display());
    }
    std::fs::write(path, crate::config::STARTER_CONFIG)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_owned())
}
