//! `iocsync man --dir DIR`: one roff page per command (`iocsync.1`, `iocsync-sync.1`, ...).

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Writes the page of `cmd` and of each of its commands into `dir`; returns the files written.
pub fn write_pages(mut cmd: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    // Building propagates the global options and names subcommands `iocsync-<name>`.
    cmd.build();
    let mut written = Vec::new();
    let mut pages = vec![cmd.clone()];
    pages.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help").cloned());
    for page in pages {
        let name = page.get_display_name().unwrap_or_else(|| page.get_name()).to_owned();
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
