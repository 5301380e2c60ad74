//! The pure pipeline end to end: policy per feed -> merge -> allowlist -> plan -> report.

use chrono::{TimeZone, Utc};
use iocsync_core::{
    Action, Allowlist, Existing, FeedPolicy, Owner, PlanSettings, RunReport, apply_policy, merge, plan,
};
use iocsync_ioc::{IndicatorType, Ioc};

#[test]
fn two_feeds_through_the_pipeline() {
    let now = Utc.with_ymd_and_hms(2026, 2, 1, 8, 30, 15).unwrap();
    let mut c2 = FeedPolicy::new("c2");
    c2.priority = 10;
    let mut hashes = FeedPolicy::new("hashes");
    hashes.action = Action::Audit;
    hashes.generate_alert = false;
    let feed_c2 = vec![
        Ioc::new(IndicatorType::IpAddress, "203.0.113.9", 1),
        Ioc::new(IndicatorType::IpAddress, "8.8.8.8", 2),
        Ioc::new(IndicatorType::DomainName, "login.microsoftonline.com", 3),
        Ioc::new(IndicatorType::DomainName, "evil.example", 4),
    ];
    let feed_hashes = vec![
        Ioc::new(IndicatorType::FileMd5, "0f343b0931126a20f133d67c2b018a3b", 1),
        Ioc::new(IndicatorType::FileSha256, "a".repeat(64), 2),
        Ioc::new(IndicatorType::DomainName, "evil.example", 3),
    ];
    let (d1, s1) = apply_policy(&c2, &feed_c2, now);
    let (d2, s2) = apply_policy(&hashes, &feed_hashes, now);
    assert!(s1.is_empty() && s2.is_empty());
    let (merged, dups) = merge(vec![d1, d2]);
    assert_eq!(dups.len(), 1);
    let evil = merged.iter().find(|d| d.value == "evil.example").unwrap();
    assert_eq!(evil.action, Action::Block, "priority 10 feed wins");
    assert_eq!(evil.feeds, vec!["c2".to_owned(), "hashes".to_owned()]);

    let mut allow = Allowlist::builtin();
    allow
        .add_misp_warninglist(&crate::feed("misp-warninglists/common-ioc-false-positive.list.json"))
        .unwrap();
    let (kept, allowed) = allow.filter(merged);
    assert_eq!(allowed.len(), 3, "{allowed:?}");

    let owner = Owner { client_id: "app".into(), tag: "iocsync".into() };
    let s = PlanSettings::new(owner.clone(), now);
    let p = plan(kept.clone(), &[], &s);
    assert_eq!(p.creates.len(), 3);
    let sha = p.creates.iter().find(|d| d.kind == IndicatorType::FileSha256).unwrap();
    assert!(sha.generate_alert, "Audit forces the alert");

    let mut report = RunReport::new("default", true);
    for s in [&s1, &s2, &dups, &allowed] {
        report.add_skips(s.iter());
    }
    report.set_plan(&p);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["counts"]["create"], 3);
    assert_eq!(json["skipped"]["allowlisted"], 3);
    assert_eq!(json["skipped"]["duplicate"], 1);
    assert_eq!(json["capacity"]["owned_after"], 3);

    // Applied: the next run changes nothing.
    let rows: Vec<Existing> = p
        .import_items()
        .iter()
        .enumerate()
        .map(|(i, d)| Existing::from_desired((i + 1).to_string(), d, &owner))
        .collect();
    let again = plan(kept, &rows, &s);
    assert!(!again.has_changes());
    assert_eq!(again.counts().unchanged, 3);
}
