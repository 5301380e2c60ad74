//! Listing: paging, ownership filter, empty tenants, call counts at the 15,000 cap.

use iocsync_defender::{DefenderClient, PacingLimits};
use iocsync_emulator::{Behaviour, EmulatorConfig, EndpointFamily, RateLimits, SeedIndicator};

use crate::common::{TAG, calls_of, client_for, config_for, emulator, sha_item};

fn portal(n: usize) -> SeedIndicator {
    SeedIndicator::portal("DomainName", &format!("portal{n}.example.net"), "Block", "analyst@contoso.example")
}

#[tokio::test]
async fn paging_over_three_pages_follows_next_link() {
    let emu = emulator(EmulatorConfig { page_size: 4, ..EmulatorConfig::default() }).await;
    let ids = emu.seed_many((0..10).map(portal));
    let client = client_for(&emu);
    let all = client.list_all().await.unwrap();
    assert_eq!(all.len(), 10);
    let mut got: Vec<_> = all.iter().map(|i| i.id.clone()).collect();
    got.sort();
    let mut want = ids;
    want.sort();
    assert_eq!(got, want);
    assert_eq!(calls_of(&emu, EndpointFamily::List).len(), 3);
    assert_eq!(client.stats().list, 3);
    assert_eq!(all[0].created_by_source.as_deref(), Some("Portal"));
}

#[tokio::test]
async fn list_owned_returns_only_own_indicators_with_the_tag() {
    let emu = emulator(EmulatorConfig { page_size: 3, ..EmulatorConfig::default() }).await;
    emu.seed_many((0..4).map(portal));
    emu.seed(SeedIndicator::app("FileSha256", &format!("{:064x}", 999), "Block", "other-app-id", TAG));
    // Our own client id, but another application tag: not ours either.
    emu.seed(SeedIndicator::app(
        "FileSha256",
        &format!("{:064x}", 998),
        "Block",
        iocsync_emulator::DEFAULT_CLIENT_ID,
        "legacy-script",
    ));
    let client = client_for(&emu);
    let items: Vec<_> = (0..5).map(sha_item).collect();
    client.import(&items).await.unwrap();
    let owned = client.list_owned(TAG).await.unwrap();
    assert_eq!(owned.len(), 5);
    assert!(owned.iter().all(|i| i.is_owned_by(client.client_id(), TAG)));
    assert_eq!(client.list_all().await.unwrap().len(), 11);
}

#[tokio::test]
async fn an_empty_tenant_answering_404_is_an_empty_list() {
    let behaviour = Behaviour { empty_list_404: true, ..Behaviour::default() };
    let emu = emulator(EmulatorConfig { behaviour, ..EmulatorConfig::default() }).await;
    let client = client_for(&emu);
    assert!(client.list_all().await.unwrap().is_empty());
    assert!(client.list_owned(TAG).await.unwrap().is_empty());
    assert_eq!(calls_of(&emu, EndpointFamily::List).iter().filter(|c| c.status == 404).count(), 2);
}

/// Measured: 15,000 indicators import in 30 calls and list in 2 (page size 10,000), with the
/// emulator enforcing the documented limits scaled by 60 and the client pacing to match.
#[tokio::test]
async fn fifteen_thousand_indicators_take_thirty_imports_and_two_lists() {
    let emu = emulator(EmulatorConfig {
        rate_limits: RateLimits::documented().scaled(60.0),
        ..EmulatorConfig::default()
    })
    .await;
    let mut cfg = config_for(&emu);
    cfg.limits = PacingLimits::documented().scaled(60.0);
    let client = DefenderClient::new(cfg).unwrap();
    let items: Vec<_> = (0..15_000).map(sha_item).collect();
    let mut failed = 0;
    for chunk in items.chunks(iocsync_defender::MAX_BATCH) {
        failed += client.import(chunk).await.unwrap().iter().filter(|o| o.is_failed).count();
    }
    assert_eq!(failed, 0);
    let all = client.list_all().await.unwrap();
    assert_eq!(all.len(), 15_000);
    assert_eq!(calls_of(&emu, EndpointFamily::Import).len(), 30);
    assert_eq!(calls_of(&emu, EndpointFamily::List).len(), 2);
    assert_eq!(calls_of(&emu, EndpointFamily::Token).len(), 1);
    let s = client.stats();
    assert_eq!((s.token, s.import, s.list, s.throttled), (1, 30, 2, 0));
}

#[tokio::test]
async fn list_owned_checks_the_marker_and_keeps_legacy_rows() {
    let emu = emulator(EmulatorConfig::default()).await;
    let me = iocsync_emulator::DEFAULT_CLIENT_ID;
    // Made by an earlier iocsync: the owner tag in application, no marker. Still ours.
    emu.seed(SeedIndicator::app("FileSha256", &format!("{:064x}", 1), "Block", me, TAG));
    // Our client, no marker at all: another tool sharing the app registration.
    let mut unmarked = SeedIndicator::app("FileSha256", &format!("{:064x}", 2), "Block", me, "x");
    unmarked.application = None;
    emu.seed(unmarked);
    // Our marker under another creator.
    let mut theirs = SeedIndicator::app("FileSha256", &format!("{:064x}", 3), "Block", "other-app", "x");
    theirs.external_id = Some(format!("iocsync:{TAG}"));
    emu.seed(theirs);
    let client = client_for(&emu);
    client.import(&[sha_item(4)]).await.unwrap();
    let mut owned: Vec<String> =
        client.list_owned(TAG).await.unwrap().into_iter().map(|i| i.indicator_value).collect();
    owned.sort();
    assert_eq!(owned, [format!("{:064x}", 1), format!("{:064x}", 4)]);
}

#[tokio::test]
async fn submit_returns_the_stored_entity_and_delete_removes_it() {
    let emu = emulator(EmulatorConfig::default()).await;
    let client = client_for(&emu);
    let stored = client.submit(&sha_item(7)).await.unwrap();
    assert_eq!(stored.external_id.as_deref(), Some("iocsync:iocsync"));
    assert_eq!(stored.application, None);
    assert_eq!(calls_of(&emu, EndpointFamily::Submit).len(), 1);
    assert!(client.get(&stored.id).await.unwrap().is_some());
    assert!(client.delete(&stored.id).await.unwrap());
    assert!(!client.delete(&stored.id).await.unwrap(), "already gone: false, not an error");
    assert!(emu.indicators().is_empty());
}
