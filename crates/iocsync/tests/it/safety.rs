//! The safety contract (DESIGN principles 2–5), one regression test per hole an attacker who
//! controls one feed, or a feed that misbehaves over weeks, found in the first round. Each goes
//! through the binary against the emulator.

use crate::harness::{Env, EnvOptions, public_ips, text_feed};
use chrono::{Duration, Utc};
use iocsync::state::StateStore;

const BASE: &str = "[sync]\nstate = \"state/iocsync.db\"\nheadroom = 500\nmax_delete_fraction = 1.0\n";

fn feed(name: &str, file: &str, extra: &str) -> String {
    format!("[[feeds]]\nname = \"{name}\"\nsource = \"{file}\"\n{extra}\n")
}

/// Makes the last good copy of `feed` look `hours` older (no test waits for the real clock).
fn age_last_good_copy(env: &Env, feed: &str, hours: i64) {
    let st = StateStore::open(&env.path("state/iocsync.db")).unwrap();
    let mut c = st.feed_cache(feed).unwrap().expect("a last good copy");
    c.good_at -= Duration::hours(hours);
    c.fetched_at -= Duration::hours(hours);
    st.save_good_feed(&c).unwrap();
}

/// A portal CSV (what `auto` detects as `defender-csv`) whose rows ask for `action` and more.
fn portal_csv(hashes: &[String], action: &str) -> String {
    let exp = (Utc::now() + Duration::hours(3)).format("%Y-%m-%dT%H:%M:%SZ");
    let mut s = String::from(
        "IndicatorType,IndicatorValue,ExpirationTime,Action,Severity,Title,Description,RecommendedActions,RbacGroups,Category,MitreTechniques,GenerateAlert\n",
    );
    for h in hashes {
        s.push_str(&format!("FileSha256,{h},{exp},{action},Informational,t,d,,NoSuchGroup,,,False\n"));
    }
    s
}

fn sha256s(n: usize, seed: u8) -> Vec<String> {
    (0..n).map(|i| format!("{:02x}{:062x}", seed, i + 1)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn hole_1_a_feed_cannot_make_indicators_allowed() {
    let env = Env::start(EnvOptions::default()).await;
    let hashes = sha256s(5, 0xab);
    // `format` left at auto: the body's portal headers make it defender-csv.
    env.write("bad.csv", &portal_csv(&hashes, "Allowed"));
    env.config(&format!("{BASE}{}", feed("blocklist", "bad.csv", "action = \"Block\"")));
    let out = env.run(&["sync"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let owned = env.owned();
    assert_eq!(owned.len(), 5);
    for i in &owned {
        assert_eq!(i.action, "Block", "{i:?}");
        assert_eq!(i.severity, "High", "row severity ignored");
        assert!(i.rbac_group_names.is_empty(), "row device groups ignored");
        let exp = i.expiration_time.clone().unwrap();
        assert!(exp > (Utc::now() + Duration::days(29)).to_rfc3339(), "row expiry ignored: {exp}");
    }
    assert!(text.contains("row_policy"), "the report says rows were not honoured: {text}");

    // Opting in honours rows only within row_actions: Allowed is still refused, with a note.
    env.config(&format!(
        "{BASE}{}",
        feed(
            "blocklist",
            "bad.csv",
            "action = \"Block\"\nrow_policy = true\nrow_actions = [\"Audit\", \"Block\"]\nexpire_days = 30"
        )
    ));
    let out = env.run(&["sync"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("`Allowed`") && text.contains("row_actions"), "{text}");
    assert!(env.owned().iter().all(|i| i.action == "Block"));
    assert!(env.emu.indicators().iter().all(|i| i.action != "Allowed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hole_2_a_stale_feeds_values_outlive_other_feeds_dropping_them() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(12, 7000);
    let x = ips[0].clone();
    env.write("a.txt", &text_feed(&ips[..6]));
    env.write("b.txt", &text_feed(&[&ips[..1], &ips[6..]].concat()));
    env.config(&format!(
        "{BASE}{}{}",
        feed("a", "a.txt", "format = \"text\"\nmax_age = \"48h\""),
        feed("b", "b.txt", "format = \"text\"")
    ));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    assert_eq!(env.owned().len(), 12);

    // A breaks (an error page) and its last good copy is three days old: stale. B still has X.
    env.write("a.txt", "<html><body>502 Bad Gateway</body></html>\n");
    age_last_good_copy(&env, "a", 72);
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["feeds"][0]["status"], "stale", "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    // Then B drops X: X is in A's last good copy, so it stays, whatever B says.
    env.write("b.txt", &text_feed(&ips[6..]));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert!(env.owned().iter().any(|i| i.indicator_value == x), "X was deleted");
    // A comes back without X: now X goes.
    env.write("a.txt", &text_feed(&ips[1..6]));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["delete"], 1, "{report}");
    assert!(!env.owned().iter().any(|i| i.indicator_value == x));
}

#[tokio::test(flavor = "multi_thread")]
async fn hole_2_renamed_feed_values_are_of_unknown_provenance_and_kept() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(8, 7100);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed("old-name", "a.txt", "format = \"text\"")));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    // Renamed, and the renamed feed lost half its values: their origin is unknown now (the old
    // name is not configured), so they are kept and left to expire, never deleted.
    env.write("a.txt", &text_feed(&ips[..4]));
    env.config(&format!(
        "{BASE}max_shrink_fraction = 0.9\n{}",
        feed("new-name", "a.txt", "format = \"text\"")
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(env.owned().len(), 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn hole_4_a_lasting_shrink_becomes_the_baseline() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(40, 7200);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "format = \"text\"")));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    // The feed really shrank to 10 values: three runs fall back to the last good copy…
    env.write("a.txt", &text_feed(&ips[..10]));
    for run in 1..=3 {
        let (code, report) = env.run_json(&["sync"]).await;
        assert_eq!(code, 3, "run {run}: {report}");
        assert_eq!(report["feeds"][0]["status"], "last-good", "run {run}: {report}");
        assert_eq!(report["counts"]["delete"], 0);
    }
    // …and once the shrink has held for 3 runs and 24 h, the smaller size is the new baseline.
    let st = StateStore::open(&env.path("state/iocsync.db")).unwrap();
    let (src, mut b) = st.feed_baseline("a").unwrap().expect("a baseline");
    assert_eq!((b.accepted, b.shrink_runs), (40, 3));
    b.shrink_since = b.shrink_since.map(|t| t - Duration::hours(25));
    st.set_feed_baseline("a", &src, &b).unwrap();
    drop(st);
    let out = env.run(&["sync"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("new baseline"), "{text}");
    assert_eq!(env.owned().len(), 10);
    // Quiet afterwards.
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["feeds"][0]["status"], "ok", "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hole_5_a_new_source_starts_clean_and_the_old_copy_protects() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(10, 7300);
    env.write("old.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed("a", "old.txt", "format = \"text\"")));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    // The config now names another source, which is broken: the old copy does not stand in
    // for it (it is another source's content), but its values are not deleted.
    env.write("new.txt", "<html><body>login</body></html>\n");
    env.config(&format!("{BASE}{}", feed("a", "new.txt", "format = \"text\"")));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["feeds"][0]["status"], "failed", "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(env.owned().len(), 10);
    // Once the new source is good, it alone decides.
    let fresh = public_ips(3, 7400);
    env.write("new.txt", &text_feed(&[&ips[..7], &fresh[..]].concat()));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        (report["counts"]["delete"].as_u64(), report["counts"]["create"].as_u64()),
        (Some(3), Some(3))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allowlisting_a_held_value_removes_it_outside_the_brake() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(8, 7500);
    env.write("a.txt", &text_feed(&ips));
    let strict = "[sync]\nstate = \"state/iocsync.db\"\nheadroom = 500\nmax_delete_fraction = 0.1\n";
    env.config(&format!("{strict}{}", feed("a", "a.txt", "format = \"text\"")));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    // Half the values are allowlisted now: removing them is the user's own word, not a feed's,
    // so the brake (0.1 of 8 = 0 deletes) does not hold it.
    let values: Vec<String> = ips[..4].iter().map(|v| format!("\"{v}\"")).collect();
    env.config(&format!(
        "{strict}{}[allowlist]\nvalues = [{}]\n",
        feed("a", "a.txt", "format = \"text\""),
        values.join(", ")
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["delete"], 4, "{report}");
    assert_eq!(report["brake"], serde_json::Value::Null);
}
