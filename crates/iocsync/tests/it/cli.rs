//! Commands that need no tenant: parse, init, config errors, and the exit codes around them.

use assert_cmd::Command;

fn iocsync() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
    c.env_remove("RUST_LOG").env_remove("IOCSYNC_CONFIG").env_remove("STATE_DIRECTORY");
    // Configs without `state` here never write to the real state folder.
    c.env("XDG_STATE_HOME", std::env::temp_dir().join(format!("iocsync-it-state-{}", std::process::id())));
    c
}

fn shared(path: &str) -> String {
    format!("{}/../../../shared/feeds/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn parse_prints_the_design_json_shape() {
    let out = iocsync()
        .args([
            "--output",
            "json",
            "parse",
            &shared("abusech-feodotracker/ipblocklist.csv"),
            "--format",
            "csv",
            "--column",
            "dst_ip",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["source", "format", "lines", "accepted", "rejected", "duplicates", "indicators"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["format"], "csv");
    let accepted = v["accepted"]["IpAddress"].as_u64().unwrap();
    assert_eq!(accepted as usize, v["indicators"].as_array().unwrap().len());
    let first = &v["indicators"][0];
    assert!(first.get("type").is_some() && first.get("value").is_some() && first.get("line").is_some());
}

#[test]
fn parse_text_output_shows_reasons_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mixed.txt");
    std::fs::write(&f, "8.8.4.4\n10.0.0.1\n45.1.2.3/24\nhxxps://evil[.]com/a?b=c\n").unwrap();
    let out = iocsync().args(["parse", f.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("private-address"), "{text}");
    assert!(text.contains("cidr-not-supported"), "{text}");
    assert!(text.contains("line      2"), "{text}");
    assert!(text.contains("https://evil.com/a?b=c"), "{text}");
}

#[test]
fn parse_counts_canonical_url_merges_in_text_only() {
    // Line 2 (`%5e`) and line 3 (`:80`, `%5E`) are line 1 once canonical: 2 merges; line 4 repeats
    // line 1's spelling: a plain duplicate. Line 5 was cut short by its publisher.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("urls.txt");
    std::fs::write(
        &f,
        "http://x.com/a^b\nhttp://x.com/a%5eb\nhttp://x.com:80/a%5Eb\nhttp://x.com/a^b\nhttp://x.com/b\u{2026}\n",
    )
    .unwrap();
    let out = iocsync().args(["parse", f.to_str().unwrap(), "--show", "5"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("duplicates: 3"), "{text}");
    assert!(text.contains("merged by the canonical URL form: 2"), "{text}");
    assert!(text.contains("truncated-value"), "{text}");
    assert!(text.contains("http://x.com/a%5Eb"), "{text}");
    // The JSON document keeps exactly DESIGN.md's keys.
    let out = iocsync().args(["--output", "json", "parse", f.to_str().unwrap()]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["accepted", "duplicates", "format", "indicators", "lines", "rejected", "source"]);
    assert_eq!(v["duplicates"], 3);
    assert_eq!(v["rejected"]["truncated-value"], 1);
}

#[test]
fn a_missing_file_is_a_clear_error_with_exit_1() {
    let out = iocsync().args(["parse", "/nonexistent/feed.txt"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/feed.txt"), "{err}");
}

#[test]
fn init_writes_a_config_that_validates_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("iocsync.toml");
    iocsync().args(["--config", cfg.to_str().unwrap(), "init"]).assert().success();
    assert!(cfg.exists());
    iocsync().args(["--config", cfg.to_str().unwrap(), "init"]).assert().failure().code(1);
    // The starter config parses: `history` loads it and finds no runs.
    let out = iocsync().args(["--config", cfg.to_str().unwrap(), "history"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_config_problem_is_listed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("iocsync.toml");
    std::fs::write(&cfg, "[defender]\nemulator = true\n[sync]\ncapacity = 99999\nheadroon = 3\n[[feeds]]\nsource = \"ftp://x\"\n").unwrap();
    let out =
        iocsync().args(["--config", cfg.to_str().unwrap(), "--output", "json", "plan"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = v["error"].as_str().unwrap();
    for needle in ["sync.capacity", "sync.headroon", "headroom", "feeds[0].name", "feeds[0].source"] {
        assert!(msg.contains(needle), "{needle} not in {msg}");
    }
}

#[test]
fn a_usage_error_exits_1_not_2_and_is_json_when_asked() {
    let out = iocsync().args(["plan", "--detailed-exitcod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "2 means changes pending, never a typo");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--detailed-exitcode"), "clap suggests the flag");
    let out = iocsync().args(["--output", "json", "plan", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("--bogus"), "{v}");
    iocsync().arg("--help").assert().success();
}

#[test]
fn single_tenant_commands_refuse_to_guess_between_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("iocsync.toml");
    std::fs::write(
        &cfg,
        "[[tenants]]\nname = \"a\"\nemulator = true\n[[tenants]]\nname = \"b\"\nemulator = true\n",
    )
    .unwrap();
    let out = iocsync().args(["--config", cfg.to_str().unwrap(), "purge"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tenant") && err.contains("a, b"), "{err}");
}

#[test]
fn completions_and_the_man_page_are_generated() {
    let out = iocsync().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("_iocsync()") && script.contains("sync"), "{script}");
    let out = iocsync().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH iocsync") && page.contains("daemon"), "{page}");
}
