//! `iocsync init`: write the commented starter config.

use anyhow::{Context, bail};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes the starter config to `path`, refusing to overwrite unless `force`.
pub fn run(path: &Path, force: bool) -> anyhow::Result<PathBuf> {
    if path.exists() && !force {
        bail!("{} already exists: pass --force to overwrite it", path.display());
    }
    // Private (0600): the file may later hold feed URLs with keys in them.
    let mut file = crate::fsutil::private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    crate::fsutil::tighten(&file, path)?;
    file.write_all(crate::config::STARTER_CONFIG.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_owned())
}
