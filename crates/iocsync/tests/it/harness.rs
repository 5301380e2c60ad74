//! A small harness: an emulator on 127.0.0.1:0, a temp directory with a config and feed files,
//! and the real `iocsync` binary driven against them.

use iocsync_emulator::{ClientCredential, Emulator, EmulatorConfig, EndpointFamily, Role};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The client secret the tests use: it must never appear in any output or file.
pub const SECRET: &str = "Sup3r-S3cret-Value-For-Tests-7f3a9";
/// The test app's client id.
pub const CLIENT_ID: &str = "2b1f4c3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

/// One test environment.
pub struct Env {
    pub emu: Emulator,
    pub dir: tempfile::TempDir,
}

/// Options for [`Env::start`].
pub struct EnvOptions {
    pub role: Role,
    pub capacity: usize,
    pub behaviour: iocsync_emulator::Behaviour,
}

impl Default for EnvOptions {
    fn default() -> Self {
        // CI runs the sync suites a second time with IOCSYNC_EMULATOR_PROFILE=strict.
        let profile = std::env::var("IOCSYNC_EMULATOR_PROFILE").unwrap_or_default();
        EnvOptions {
            role: Role::ReadWriteAll,
            capacity: 15_000,
            behaviour: iocsync_emulator::Behaviour::profile(&profile)
                .expect("IOCSYNC_EMULATOR_PROFILE: default or strict"),
        }
    }
}

impl Env {
    /// Starts an emulator that accepts the test app.
    pub async fn start(opts: EnvOptions) -> Env {
        let config = EmulatorConfig {
            clients: vec![ClientCredential::with_secret(CLIENT_ID, SECRET, opts.role, "iocsync-test")],
            capacity: opts.capacity,
            behaviour: opts.behaviour,
            ..EmulatorConfig::default()
        };
        let emu = iocsync_emulator::start(config).await.expect("emulator starts");
        Env { emu, dir: tempfile::tempdir().unwrap() }
    }

    /// Path inside the temp directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file into the temp directory.
    pub fn write(&self, name: &str, content: &str) {
        let p = self.path(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(p, content).unwrap();
    }

    /// Writes `iocsync.toml`: the `[defender]` block pointing at the emulator, then `rest`.
    pub fn config(&self, rest: &str) {
        let base = self.emu.base_url();
        let text = format!(
            "[defender]\ntenant_id = \"{tenant}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = {{ env = \"IOCSYNC_TEST_SECRET\" }}\napi_base = \"{base}\"\nauthority = \"{base}\"\n\n{rest}",
            tenant = self.emu.tenant_id(),
        );
        self.write("iocsync.toml", &text);
    }

    /// Runs the binary with the config and the secret in the environment (blocking, off the runtime).
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[]).await
    }

    /// [`Env::run`] with extra (or overriding) environment variables.
    pub async fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
        cmd.arg("--config").arg(self.path("iocsync.toml")).args(args);
        cmd.env("IOCSYNC_TEST_SECRET", SECRET).env_remove("RUST_LOG").env("NO_COLOR", "1");
        isolate_state(&mut cmd, self.dir.path());
        cmd.envs(vars.iter().copied());
        cmd.current_dir(self.dir.path());
        tokio::task::spawn_blocking(move || cmd.output().expect("iocsync runs")).await.unwrap()
    }

    /// Runs with `--output json` and parses stdout; panics with stderr when it is not JSON.
    pub async fn run_json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let out = self.run(&all).await;
        let code = out.status.code().unwrap_or(-1);
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}); exit {code}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, json)
    }

    /// Indicators created by the test app.
    pub fn owned(&self) -> Vec<iocsync_emulator::wire::Indicator> {
        self.emu.indicators().into_iter().filter(|i| i.created_by == CLIENT_ID).collect()
    }

    /// Write calls (import, submit, delete, batch delete) the emulator has seen.
    pub fn write_calls(&self) -> usize {
        self.emu
            .calls()
            .iter()
            .filter(|c| {
                matches!(
                    c.family,
                    EndpointFamily::Import
                        | EndpointFamily::Submit
                        | EndpointFamily::Delete
                        | EndpointFamily::BatchDelete
                )
            })
            .count()
    }

    /// Calls of one family.
    pub fn calls_of(&self, family: EndpointFamily) -> usize {
        self.emu.calls().iter().filter(|c| c.family == family).count()
    }
}

/// Points the default state folder (used when a config sets no `state`) inside `dir`, so that
/// no test writes to the real `$XDG_STATE_HOME`, `~/.local/state` or `/var/lib/iocsync`.
pub fn isolate_state(cmd: &mut std::process::Command, dir: &Path) {
    cmd.env("XDG_STATE_HOME", dir.join("xdg-state")).env_remove("STATE_DIRECTORY");
}

/// `n` distinct public IPv4 addresses (in 45.0.0.0/8, outside every reserved range).
pub fn public_ips(n: usize, offset: usize) -> Vec<String> {
    (offset..offset + n)
        .map(|i| format!("45.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff))
        .collect()
}

/// A text feed of lines.
pub fn text_feed(values: &[String]) -> String {
    let mut s = String::from("# test feed\n");
    for v in values {
        s.push_str(v);
        s.push('\n');
    }
    s
}

/// Writes a file only its owner can read (a secret file: the credential reader refuses others).
pub fn write_private(path: &Path, content: &str) {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).unwrap().write_all(content.as_bytes()).unwrap();
}

/// Reads every file under `dir` (recursively) as bytes.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}
