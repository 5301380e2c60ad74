//! Real-service behaviours the friendly emulator hid (issue #11 items 3 and 6), each with its
//! emulator switch on: a batch refused as a whole is split until the bad items stand alone; a
//! listing that ignores `$skip`, shifts, carries odd foreign rows, or 404s with an HTML page.

use iocsync_defender::{ErrorKind, ImportItem};
use iocsync_emulator::{Behaviour, EmulatorConfig, EndpointFamily, MAX_FIELD_LEN, RateLimits, SeedIndicator};

use crate::common::{calls_of, client_for, emulator, sha_item};

/// 2·⌈log2(500)⌉: the most extra calls isolating one bad item in a batch of 500 may take.
const PER_BAD_ITEM: usize = 18;

fn strict_import() -> EmulatorConfig {
    EmulatorConfig {
        behaviour: Behaviour { whole_request_400: true, ..Behaviour::default() },
        rate_limits: RateLimits::unlimited(),
        ..EmulatorConfig::default()
    }
}

fn bad_enum(n: usize) -> ImportItem {
    ImportItem { severity: Some("Severe".into()), ..sha_item(n) }
}

fn long_title(n: usize) -> ImportItem {
    ImportItem { title: "t".repeat(MAX_FIELD_LEN + 1), ..sha_item(n) }
}

fn portal(n: usize) -> SeedIndicator {
    SeedIndicator::portal("DomainName", &format!("portal{n}.example.net"), "Block", "analyst@contoso.example")
}

#[tokio::test]
async fn one_bad_item_in_500_is_split_out_and_the_other_499_land() {
    let emu = emulator(strict_import()).await;
    let client = client_for(&emu);
    let mut items: Vec<_> = (0..500).map(sha_item).collect();
    items[137] = bad_enum(137);
    let out = client.import(&items).await.expect("a refused batch is split, not an error");
    assert_eq!(out.len(), 500);
    let failed: Vec<usize> = (0..500).filter(|&n| out[n].is_failed).collect();
    assert_eq!(failed, vec![137]);
    let reason = out[137].failure_reason.as_deref().unwrap();
    assert!(reason.contains("Severe") && reason.contains("severity"), "the server's text: {reason}");
    assert!(out.iter().enumerate().all(|(n, o)| n == 137 || o.id.is_some()));
    assert_eq!(emu.indicators().len(), 499);
    let calls = calls_of(&emu, EndpointFamily::Import).len();
    // Measured: 19 (the refused call, then 2 per halving level: 9 levels from 500 to 1).
    assert!(calls <= 1 + PER_BAD_ITEM, "{calls} import calls");
}

#[tokio::test]
async fn several_bad_items_are_all_isolated_and_the_rest_lands() {
    let emu = emulator(strict_import()).await;
    let client = client_for(&emu);
    let mut items: Vec<_> = (0..500).map(sha_item).collect();
    let bad = [3, 250, 251, 499];
    items[3] = bad_enum(3);
    items[250] = long_title(250);
    items[251] = ImportItem { indicator_type: "FileSha512".into(), ..sha_item(251) };
    items[499] = bad_enum(499);
    let out = client.import(&items).await.unwrap();
    let failed: Vec<usize> = (0..500).filter(|&n| out[n].is_failed).collect();
    assert_eq!(failed, bad.to_vec());
    assert!(out[250].failure_reason.as_deref().unwrap().contains("maximum length"));
    assert!(out[251].failure_reason.as_deref().unwrap().contains("FileSha512"));
    assert_eq!(emu.indicators().len(), 496);
    let calls = calls_of(&emu, EndpointFamily::Import).len();
    // Measured: 49 (bad items sharing halves share calls).
    assert!(calls <= 1 + bad.len() * PER_BAD_ITEM, "{calls} import calls");
    // Per-item failures inside a 200 stay per item alongside a whole-request refusal.
    let mut items: Vec<_> = (600..610).map(sha_item).collect();
    items[2] = ImportItem { indicator_value: "not-a-hash".into(), ..sha_item(602) };
    items[7] = bad_enum(607);
    let out = client.import(&items).await.unwrap();
    let failed: Vec<usize> = (0..10).filter(|&n| out[n].is_failed).collect();
    assert_eq!(failed, vec![2, 7]);
    assert_eq!(emu.indicators().len(), 504);
}

#[tokio::test]
async fn a_server_ignoring_skip_fails_the_listing() {
    let emu = emulator(EmulatorConfig {
        page_size: 4,
        behaviour: Behaviour { list_ignores_skip: true, ..Behaviour::default() },
        rate_limits: RateLimits::unlimited(),
        ..EmulatorConfig::default()
    })
    .await;
    emu.seed_many((0..10).map(portal));
    let client = client_for(&emu);
    let err = client.list_all().await.expect_err("a listing that repeats its first page cannot be complete");
    assert_eq!(err.kind(), ErrorKind::Api);
    assert!(err.to_string().contains("ignores $skip"), "{err}");
    assert_eq!(calls_of(&emu, EndpointFamily::List).len(), 2, "stops at the first repeated page");
}

#[tokio::test]
async fn shifting_offsets_are_deduplicated_by_id() {
    let emu = emulator(EmulatorConfig {
        page_size: 4,
        behaviour: Behaviour { list_shift: 1, ..Behaviour::default() },
        rate_limits: RateLimits::unlimited(),
        ..EmulatorConfig::default()
    })
    .await;
    let mut want = emu.seed_many((0..10).map(portal));
    let client = client_for(&emu);
    let all = client.list_all().await.unwrap();
    let mut got: Vec<String> = all.iter().map(|i| i.id.clone()).collect();
    assert_eq!(got.len(), 10, "each indicator once: {got:?}");
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(calls_of(&emu, EndpointFamily::List).len(), 3);
}

#[tokio::test]
async fn foreign_rows_with_odd_types_are_read_leniently() {
    let emu = emulator(EmulatorConfig {
        page_size: 3,
        behaviour: Behaviour { odd_foreign_fields: true, ..Behaviour::default() },
        rate_limits: RateLimits::unlimited(),
        ..EmulatorConfig::default()
    })
    .await;
    emu.seed_many((0..4).map(portal));
    let client = client_for(&emu);
    client.import(&(0..3).map(sha_item).collect::<Vec<_>>()).await.unwrap();
    let all = client.list_all().await.expect("odd foreign rows never fail the page");
    assert_eq!(all.len(), 7);
    let foreign: Vec<_> = all.iter().filter(|i| i.created_by_source.as_deref() == Some("Portal")).collect();
    assert_eq!(foreign.len(), 4);
    for f in &foreign {
        assert_eq!(f.severity.as_deref(), Some("3"));
        assert_eq!(f.rbac_group_names, vec!["x"]);
        assert_eq!(f.expiration_time, None);
        assert!(f.indicator_value.starts_with("portal"));
    }
    let own: Vec<_> = all.iter().filter(|i| i.created_by_source.as_deref() == Some("PublicApi")).collect();
    assert!(own.iter().all(|i| i.severity.as_deref() == Some("High") && i.title.is_some()));
    let one = client.get(&foreign[0].id).await.unwrap().expect("found");
    assert_eq!(one.severity.as_deref(), Some("3"));
}

#[tokio::test]
async fn a_404_html_page_on_the_list_is_an_error_naming_the_api_base() {
    let emu = emulator(EmulatorConfig {
        behaviour: Behaviour { list_404_html: true, ..Behaviour::default() },
        rate_limits: RateLimits::unlimited(),
        ..EmulatorConfig::default()
    })
    .await;
    let client = client_for(&emu);
    let err = client.list_all().await.expect_err("a proxy's 404 is not an empty tenant");
    assert_eq!(err.status(), Some(404));
    assert!(err.to_string().contains(&emu.base_url()), "{err}");
    assert!(err.to_string().contains("envelope"), "{err}");
    // With Defender's envelope, a 404 is the empty tenant.
    emu.set_behaviour(Behaviour { empty_list_404: true, ..Behaviour::default() });
    assert!(client.list_all().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_listing_longer_than_the_cap_allows_fails() {
    let emu =
        emulator(EmulatorConfig { rate_limits: RateLimits::unlimited(), ..EmulatorConfig::default() }).await;
    // MAX_LISTED_ROWS (15,000 + 5,000 slack) + 1.
    emu.seed_many((0..20_001).map(portal));
    let client = client_for(&emu);
    let err = client.list_all().await.expect_err("more rows than the cap allows");
    assert!(err.to_string().contains("15,000 cap"), "{err}");
    assert_eq!(calls_of(&emu, EndpointFamily::List).len(), 3);
}
