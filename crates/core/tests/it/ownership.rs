//! Ownership through the plan: the `externalId` marker, the description fallback, legacy rows
//! tagged in `application`, and rows that look like ours but are not.

use chrono::{Duration, TimeZone, Utc};
use iocsync_core::{Existing, FeedPolicy, Marker, MarkerField, Owner, PlanSettings, apply_policy, plan};
use iocsync_ioc::{IndicatorType, Ioc, Reason};

const ME: &str = "11111111-2222-3333-4444-555555555555";

fn setup(marker: MarkerField) -> (Vec<iocsync_core::Desired>, PlanSettings) {
    let now = Utc.with_ymd_and_hms(2026, 2, 1, 8, 0, 0).unwrap();
    let mut p = FeedPolicy::new("f");
    p.marker = Some(Marker::new(marker, "iocsync"));
    let iocs: Vec<Ioc> =
        (1..=8).map(|i| Ioc::new(IndicatorType::DomainName, format!("d{i}.example"), i as u64)).collect();
    let (desired, _) = apply_policy(&p, &iocs, now);
    let mut s = PlanSettings::new(Owner { client_id: ME.into(), tag: "iocsync".into() }, now);
    s.max_delete_fraction = 0.5;
    (desired, s)
}

#[test]
fn legacy_rows_stay_owned_and_take_the_marker_when_updated() {
    let (desired, s) = setup(MarkerField::ExternalId);
    let mut rows: Vec<Existing> = desired
        .iter()
        .enumerate()
        .map(|(i, d)| Existing::from_desired((i + 1).to_string(), d, &s.owner))
        .collect();
    // Row 1: made by an earlier version (owner tag in application, no marker), stale expiry.
    rows[0].external_id = None;
    rows[0].application = Some("iocsync".into());
    rows[0].expiration = Some(s.now + Duration::days(2));
    // Row 2: legacy and no longer in the feed.
    let mut gone = rows[1].clone();
    gone.id = "99".into();
    gone.value = "left-the-feed.example".into();
    gone.external_id = Some("some-other-correlation-id".into());
    gone.application = Some("iocsync".into());
    rows.push(gone);
    // A feed brought it (known provenance), and the brake is not under test here.
    let mut s = s;
    s.provenance.insert((IndicatorType::DomainName, "left-the-feed.example".into()), ["f".to_owned()].into());
    s.max_delete_fraction = 1.0;
    let p = plan(desired, &rows, &s);
    assert_eq!(p.renews.len(), 1, "{p:?}");
    assert_eq!(p.renews[0].id, "1");
    assert_eq!(
        p.renews[0].desired.external_id.as_deref(),
        Some("iocsync:iocsync"),
        "renewal carries the marker"
    );
    assert_eq!(p.renews[0].desired.application, None, "never the owner tag");
    assert_eq!(p.delete_ids(), vec!["99".to_owned()]);
    assert_eq!(p.capacity.foreign, 0);
}

#[test]
fn look_alikes_are_foreign() {
    let (desired, s) = setup(MarkerField::ExternalId);
    // Our marker, another creator.
    let mut theirs = Existing::from_desired("1", &desired[0], &s.owner);
    theirs.created_by = Some("99999999-0000-4000-8000-000000000000".into());
    // Our creator, no marker (another tool sharing the app registration).
    let mut unmarked = Existing::from_desired("2", &desired[1], &s.owner);
    unmarked.external_id = None;
    // Neither in the feed: never deleted.
    let mut theirs_gone = theirs.clone();
    theirs_gone.id = "3".into();
    theirs_gone.value = "x.example".into();
    let mut unmarked_gone = unmarked.clone();
    unmarked_gone.id = "4".into();
    unmarked_gone.value = "y.example".into();
    let rows = [theirs, unmarked, theirs_gone, unmarked_gone];
    assert!(rows.iter().all(|e| !s.owner.owns(e)));
    let p = plan(desired, &rows, &s);
    assert!(p.delete_ids().is_empty());
    assert!(p.updates.is_empty() && p.renews.is_empty());
    assert_eq!(p.capacity.foreign, 4);
    let foreign: Vec<&str> =
        p.skipped.iter().filter(|k| k.reason == Reason::ForeignIndicator).map(|k| k.value.as_str()).collect();
    assert_eq!(foreign, ["d1.example", "d2.example"]);
}

#[test]
fn description_marker_owns_and_converges() {
    let (desired, s) = setup(MarkerField::Description);
    assert!(desired.iter().all(|d| d.external_id.is_none() && d.description.ends_with(" [iocsync:iocsync]")));
    let rows: Vec<Existing> = desired
        .iter()
        .enumerate()
        .map(|(i, d)| Existing::from_desired((i + 1).to_string(), d, &s.owner))
        .collect();
    assert!(rows.iter().all(|e| s.owner.owns(e)));
    let p = plan(desired.clone(), &rows, &s);
    assert!(!p.has_changes());
    // Rows written under the externalId marker stay owned after a switch, and get the suffix.
    let (ext_desired, _) = setup(MarkerField::ExternalId);
    let old: Vec<Existing> = ext_desired
        .iter()
        .enumerate()
        .map(|(i, d)| Existing::from_desired((i + 1).to_string(), d, &s.owner))
        .collect();
    let p = plan(desired, &old, &s);
    assert_eq!(p.updates.len(), 8);
    assert!(p.creates.is_empty() && p.delete_ids().is_empty());
}
