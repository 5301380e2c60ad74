//! Files iocsync creates (log file, lock file, starter config) are private to their owner:
//! mode 0600 on Unix, whatever the umask. The state database does the same in `state`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Options that create a file with mode 0600 on Unix (the platform default elsewhere).
pub fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o
}

/// Tightens an existing file that is group or world accessible to mode 0600 (Unix only).
pub fn tighten(file: &File, path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "file was group/world accessible; setting mode 0600");
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

/// Opens `path` for appending, creating it private, and tightens an existing file.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    let file = private_options().create(true).append(true).open(path)?;
    tighten(&file, path)?;
    Ok(file)
}

/// Creates `dir` and its missing parents; the ones it creates are mode 0700 on Unix.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
}
