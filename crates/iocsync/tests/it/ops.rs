//! Operations (issue 13): what an operator sees and what iocsync leaves on disk: terminal-safe
//! text output, private file modes, help and man pages, log formats, and the files in contrib/.

use crate::harness::{Env, EnvOptions, public_ips, text_feed};
use assert_cmd::Command;

fn iocsync() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
    c.env_remove("RUST_LOG").env_remove("IOCSYNC_CONFIG").env_remove("JOURNAL_STREAM");
    c
}

#[test]
fn text_output_never_passes_terminal_control_characters_through() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("hostile.txt");
    std::fs::write(&f, "45.0.0.1\n\x1b]0;owned\x07evil\x1b[2J.example\n\u{202e}moc.live\u{9b}31m\n").unwrap();
    let out = iocsync().args(["parse", "--show", "5", f.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for bad in ['\x1b', '\x07', '\u{202e}', '\u{9b}'] {
        assert!(!text.contains(bad), "{bad:?} reached the terminal: {text:?}");
    }
    assert!(text.contains("\\u{1b}"), "the escape is shown, not dropped silently: {text}");

    // An error message carrying a control character (here from a path) is escaped too.
    let out = iocsync().args(["parse", "/nonexistent/\x1b[31mred.txt"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("red.txt") && !err.contains('\x1b'), "{err:?}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn every_file_iocsync_creates_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::start(EnvOptions::default()).await;
    env.write("a.txt", &text_feed(&public_ips(3, 70_000)));
    env.config("[sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"a\"\nsource = \"a.txt\"\nformat = \"text\"\n");
    // A log file that exists with a loose mode is tightened.
    env.write("loose.log", "");
    std::fs::set_permissions(env.path("loose.log"), std::fs::Permissions::from_mode(0o644)).unwrap();
    for log in ["iocsync.log", "loose.log"] {
        let out = env.run(&["--log-file", env.path(log).to_str().unwrap(), "sync"]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = iocsync().current_dir(env.dir.path()).args(["--config", "new.toml", "init"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The embedded emulator's snapshot (emulator = true) is a file iocsync creates as well.
    env.write("emu/iocsync.toml", "[defender]\nemulator = true\n[sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"a\"\nsource = \"../a.txt\"\nformat = \"text\"\n");
    let out = iocsync()
        .args(["--config", env.path("emu/iocsync.toml").to_str().unwrap(), "sync"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut checked = Vec::new();
    for (path, _) in crate::harness::all_files(env.dir.path()) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "iocsync.toml" || name == "a.txt" {
            continue; // written by this test
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
        checked.push(name);
    }
    for want in ["iocsync.db", "iocsync.lock", "iocsync.log", "loose.log", "new.toml"] {
        assert!(checked.iter().any(|n| n == want), "{want} not created: {checked:?}");
    }
    assert!(checked.len() >= 7, "the emulator snapshot and the WAL files are checked too: {checked:?}");
}
