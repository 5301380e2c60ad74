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

/// `parse --output json` on `feed` with `args`: the one JSON document it printed.
fn parse_json(feed: &str, args: &[&str]) -> serde_json::Value {
    let out = iocsync().args(["--output", "json", "parse", feed]).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // `from_slice` accepts exactly one JSON value (trailing whitespace only).
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not one JSON document: {e}"))
}

#[test]
fn parse_json_is_streamed_with_the_same_content_as_the_parser_on_real_feeds() {
    // The document the parser's result gives (the shape `parse` printed before it streamed).
    for (path, format, args) in [
        ("tweetfeed/blocklists/urls.txt", iocsync_ioc::Format::Text, &["--format", "text"][..]),
        ("blocklistproject/ransomware.txt", iocsync_ioc::Format::Hosts, &["--format", "hosts"][..]),
        ("stamparm-ipsum/ipsum.txt", iocsync_ioc::Format::Text, &[][..]),
        (
            "abusech-urlhaus/urlhaus.csv",
            iocsync_ioc::Format::Csv,
            &["--format", "csv", "--column", "url"][..],
        ),
    ] {
        let bytes = std::fs::read(shared(path)).unwrap();
        let mut opts = iocsync_ioc::ParseOptions::new(format, chrono::Utc::now());
        if format == iocsync_ioc::Format::Csv {
            opts.column = Some(iocsync_ioc::formats::Column::Name("url".into()));
        }
        let p = iocsync_ioc::parse(&bytes, &opts).unwrap();
        let mut accepted = serde_json::Map::new();
        for i in &p.iocs {
            let n = accepted.get(i.kind.as_str()).and_then(serde_json::Value::as_u64).unwrap_or(0);
            accepted.insert(i.kind.as_str().to_owned(), (n + 1).into());
        }
        let mut rejected = serde_json::Map::new();
        for r in &p.rejections {
            let n = rejected.get(r.reason.code()).and_then(serde_json::Value::as_u64).unwrap_or(0);
            rejected.insert(r.reason.code().to_owned(), (n + 1).into());
        }
        let want = serde_json::json!({
            "source": shared(path),
            "format": format.as_str(),
            "lines": p.lines,
            "accepted": accepted,
            "rejected": rejected,
            "duplicates": p.duplicates,
            "indicators": p.iocs.iter().map(|i| serde_json::json!({"type": i.kind.as_str(), "value": i.value, "line": i.line})).collect::<Vec<_>>(),
        });
        let got = parse_json(&shared(path), args);
        assert!(!p.iocs.is_empty(), "{path}");
        assert_eq!(got, want, "{path}");
    }
}

#[test]
fn parse_json_of_a_feed_with_no_value_is_still_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("empty.txt");
    std::fs::write(&f, "# nothing\n10.0.0.1\n").unwrap();
    let v = parse_json(f.to_str().unwrap(), &[]);
    assert_eq!(v["indicators"], serde_json::json!([]));
    assert_eq!(v["rejected"]["private-address"], 1);
    assert_eq!(v["lines"], 2);
}

#[test]
fn parse_json_that_fails_midway_closes_its_document_with_the_error() {
    use std::io::Write;
    // Two values, then a gzip bomb: the values are printed before the 64 MiB cap is hit while
    // reading; the document then ends with an `error` key, exit 1, and stays one JSON value.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bomb.txt.gz");
    let gz = |text: &[u8]| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text).unwrap();
        enc.finish().unwrap()
    };
    let mut file = gz(b"1.1.1.1\n8.8.4.4\n9.9.9.9\n");
    // Then 1 MiB comment lines (cheap to parse), 65 of them: past the 64 MiB cap.
    let mut comment = vec![b'#'; 1 << 20];
    comment[(1 << 20) - 1] = b'\n';
    let member = gz(&comment);
    for _ in 0..65 {
        file.extend_from_slice(&member);
    }
    std::fs::write(&f, &file).unwrap();
    let text = ["--format", "text"];
    let out = iocsync().args(["--output", "json", "parse", f.to_str().unwrap()]).args(text).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("limit"), "{error}");
    let values: Vec<_> = v["indicators"].as_array().unwrap().iter().map(|i| i["value"].clone()).collect();
    assert_eq!(values, ["1.1.1.1", "8.8.4.4", "9.9.9.9"]);
    // Text output: the same error on stderr, nothing on stdout.
    let out = iocsync().args(["parse", f.to_str().unwrap()]).args(text).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("limit"));
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
