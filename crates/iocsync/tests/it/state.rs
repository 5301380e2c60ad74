//! The SQLite state store: migrations, persistence, round trips, file mode, no secrets.

use chrono::{DateTime, TimeZone, Utc};
use iocsync::fetch::Validators;
use iocsync::state::{
    CachedFeed, MIGRATIONS, ProvenanceRow, RejectRecord, RejectRow, StateError, StateStore,
};
use std::collections::{BTreeMap, BTreeSet};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
}

fn db_path() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    (dir, path)
}

#[test]
fn migrates_an_empty_file() {
    let (_dir, path) = db_path();
    std::fs::write(&path, b"").unwrap();
    let s = StateStore::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as u32);
    assert!(s.runs(None, 10).unwrap().is_empty());
}

#[test]
fn reopen_keeps_data() {
    let (_dir, path) = db_path();
    {
        let s = StateStore::open(&path).unwrap();
        s.set_cursor("taxii:coll-1", "2026-08-22T00:00:00Z").unwrap();
        let id = s.begin_run("prod", false, t(0)).unwrap();
        s.finish_run(id, "ok", 0, "{}", t(5)).unwrap();
    }
    let s = StateStore::open(&path).unwrap();
    assert_eq!(s.cursor("taxii:coll-1").unwrap().as_deref(), Some("2026-08-22T00:00:00Z"));
    assert_eq!(s.runs(Some("prod"), 10).unwrap().len(), 1);
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as u32);
}

#[test]
fn newer_schema_is_refused() {
    let (_dir, path) = db_path();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 999;").unwrap();
    }
    let err = StateStore::open(&path).unwrap_err();
    assert!(matches!(err, StateError::TooNew { found: 999, .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("999") && msg.contains("upgrade iocsync"), "{msg}");
    // The file was not touched.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 999);
}

#[test]
fn not_a_database_is_an_error() {
    let (_dir, path) = db_path();
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = StateStore::open(&path).unwrap_err();
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn missing_directory_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("state.db");
    let err = StateStore::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("does not exist") && msg.contains("sync.state"), "{msg}");
}

#[cfg(unix)]
#[test]
fn database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = db_path();
    let s = StateStore::open(&path).unwrap();
    s.set_cursor("k", "v").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // SQLite gives its WAL side files the database file's mode.
    let wal = path.with_file_name("state.db-wal");
    assert!(wal.exists(), "WAL mode is on");
    assert_eq!(std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777, 0o600);
    drop(s);
    // An existing file with loose permissions is tightened.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _s = StateStore::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn run_history_round_trip() {
    let s = StateStore::open_in_memory().unwrap();
    let a = s.begin_run("prod", false, t(0)).unwrap();
    let b = s.begin_run("lab", true, t(10)).unwrap();
    let c = s.begin_run("prod", true, t(20)).unwrap();
    assert!(a < b && b < c);
    s.finish_run(a, "ok", 0, r#"{"tenant":"prod"}"#, t(5)).unwrap();
    s.finish_run(c, "partial", 3, r#"{"x":1}"#, t(25)).unwrap();

    let all = s.runs(None, 10).unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), vec![c, b, a]);
    let running = &all[1];
    assert_eq!(running.status, "running");
    assert_eq!(running.finished_at, None);
    assert_eq!(running.exit_code, None);
    assert!(running.dry_run);

    let prod = s.runs(Some("prod"), 1).unwrap();
    assert_eq!(prod.len(), 1);
    let last = &prod[0];
    assert_eq!(last.id, c);
    assert_eq!(last.tenant, "prod");
    assert_eq!(last.status, "partial");
    assert_eq!(last.exit_code, Some(3));
    assert_eq!(last.started_at, t(20));
    assert_eq!(last.finished_at, Some(t(25)));
    assert_eq!(last.report_json.as_deref(), Some(r#"{"x":1}"#));
    assert!(matches!(s.finish_run(9999, "ok", 0, "{}", t(0)), Err(StateError::NoSuchRun(9999))));
}

fn prov(kind: &str, value: &str, action: &str, feeds: &[&str], at: i64) -> ProvenanceRow {
    ProvenanceRow {
        indicator_type: kind.into(),
        value: value.into(),
        action: action.into(),
        defender_id: Some(format!("id-{value}")),
        feeds: feeds.iter().map(|f| (*f).to_owned()).collect(),
        first_seen: t(at),
        last_pushed: t(at),
    }
}

#[test]
fn provenance_round_trip_keeps_first_seen() {
    let s = StateStore::open_in_memory().unwrap();
    s.replace_provenance(
        "prod",
        &[
            prov("IpAddress", "45.1.2.3", "Block", &["feodo", "ipsum"], 0),
            prov("DomainName", "evil.example", "Block", &["c2"], 0),
        ],
    )
    .unwrap();
    s.replace_provenance("lab", &[prov("Url", "https://x.example/a", "Audit", &["u"], 0)]).unwrap();
    // Next run: one stays (re-pushed later), one leaves, one is new.
    s.replace_provenance(
        "prod",
        &[
            prov("IpAddress", "45.1.2.3", "Block", &["feodo"], 100),
            prov("FileSha256", &"a".repeat(64), "BlockAndRemediate", &["mb"], 100),
        ],
    )
    .unwrap();
    let rows = s.provenance_rows("prod").unwrap();
    assert_eq!(rows.len(), 2);
    let ip = rows.iter().find(|r| r.value == "45.1.2.3").unwrap();
    assert_eq!(ip.first_seen, t(0), "first_seen survives replacement");
    assert_eq!(ip.last_pushed, t(100));
    assert_eq!(ip.defender_id.as_deref(), Some("id-45.1.2.3"));

    let map = s.provenance("prod").unwrap();
    let mut expected = BTreeMap::new();
    expected.insert(("FileSha256".to_owned(), "a".repeat(64)), BTreeSet::from(["mb".to_owned()]));
    expected.insert(("IpAddress".to_owned(), "45.1.2.3".to_owned()), BTreeSet::from(["feodo".to_owned()]));
    assert_eq!(map, expected);
    assert_eq!(s.provenance("lab").unwrap().len(), 1, "other tenants untouched");
}

#[test]
fn rejects_round_trip() {
    let s = StateStore::open_in_memory().unwrap();
    let mut r = RejectRow {
        indicator_type: "Url".into(),
        value: "https://bad.example/x".into(),
        action: "Block".into(),
        fingerprint: "fp1".into(),
        reason: "rejected-by-defender".into(),
        detail: Some("Invalid url".into()),
    };
    s.record_reject("prod", &r, t(0)).unwrap();
    assert_eq!(s.rejects("prod").unwrap(), vec![r.clone()]);

    r.fingerprint = "fp2".into();
    s.record_reject("prod", &r, t(50)).unwrap();
    let got = s.reject_records("prod").unwrap();
    assert_eq!(
        got,
        vec![RejectRecord { reject: r, first_seen: t(0), last_seen: t(50) }],
        "fingerprint replaced, first_seen kept"
    );
    assert!(s.rejects("lab").unwrap().is_empty());

    assert!(s.clear_reject("prod", "Url", "https://bad.example/x", "Block").unwrap());
    assert!(!s.clear_reject("prod", "Url", "https://bad.example/x", "Block").unwrap());
    assert!(s.rejects("prod").unwrap().is_empty());
}

#[test]
fn api_calls_round_trip_and_prune() {
    let (_dir, path) = db_path();
    let now: i64 = 1_790_000_000_000;
    let hour = 3_600_000;
    let calls = vec![
        ("token".to_owned(), now - 3 * hour),
        ("list".to_owned(), now - hour),
        ("import".to_owned(), now - 10),
        ("import".to_owned(), now - 10),
    ];
    {
        let s = StateStore::open(&path).unwrap();
        s.save_api_calls("prod", "client-a", &calls, now).unwrap();
        s.save_api_calls("prod", "client-b", &[("list".to_owned(), now)], now).unwrap();
    }
    let s = StateStore::open(&path).unwrap();
    assert_eq!(s.load_api_calls("prod", "client-a").unwrap(), calls[1..].to_vec());
    assert_eq!(s.load_api_calls("prod", "client-b").unwrap(), vec![("list".to_owned(), now)]);
    assert!(s.load_api_calls("lab", "client-a").unwrap().is_empty());
}

#[test]
fn feed_cache_round_trip_on_disk() {
    let (_dir, path) = db_path();
    let c = CachedFeed {
        feed: "feodo".into(),
        source: "https://feodotracker.abuse.ch/downloads/ipblocklist.csv".into(),
        body: (0..=255u8).collect(),
        body_len: 256,
        body_sha256: Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            (0..=255u8).collect::<Vec<u8>>(),
        ))),
        validators: Validators {
            etag: Some("W/\"1\"".into()),
            last_modified: Some("Sat, 22 Aug 2026 00:00:00 GMT".into()),
        },
        fetched_at: t(0),
        good_at: t(1),
        bytes: 256,
        accepted: 10,
        rejected: 2,
    };
    StateStore::open(&path).unwrap().save_good_feed(&c).unwrap();
    let s = StateStore::open(&path).unwrap();
    assert_eq!(s.feed_cache("feodo").unwrap(), Some(c));
    assert_eq!(s.feed_cache("other").unwrap(), None);
}

/// DESIGN principle 7: the schema has no place for a secret.
#[test]
fn schema_has_no_secret_shaped_column() {
    let (_dir, path) = db_path();
    drop(StateStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(tables.len() >= 7, "{tables:?}");
    let mut columns = 0;
    for table in &tables {
        let names: Vec<String> = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap()
            .query_map([], |r| r.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for name in names {
            columns += 1;
            let lower = name.to_ascii_lowercase();
            for bad in ["secret", "token", "password", "passwd", "credential", "bearer", "key"] {
                assert!(
                    !lower.contains(bad) || (lower == "key" && table == "cursors"),
                    "column {table}.{name} looks like it could hold a secret"
                );
            }
        }
    }
    assert!(columns > 30);
}
