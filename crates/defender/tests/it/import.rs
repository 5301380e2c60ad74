//! Import: per-item outcomes, partial failures, the tenant cap, batch limits, upserts.

use iocsync_defender::{Action, ErrorKind, ImportItem};
use iocsync_emulator::{EmulatorConfig, EndpointFamily, SeedIndicator};

use crate::common::{calls_of, client_for, domain_item, emulator, sha_item};

#[tokio::test]
async fn partial_failures_are_surfaced_item_by_item() {
    let emu = emulator(EmulatorConfig::default()).await;
    let client = client_for(&emu);
    let bad_hash = ImportItem { indicator_value: "not-a-hash".into(), ..sha_item(0) };
    let private_ip =
        ImportItem { indicator_value: "10.1.2.3".into(), indicator_type: "IpAddress".into(), ..sha_item(0) };
    let items = vec![sha_item(1), bad_hash, domain_item("bad.example.org"), private_ip, sha_item(2)];
    let out = client.import(&items).await.unwrap();
    assert_eq!(out.len(), 5);
    let failed: Vec<bool> = out.iter().map(|o| o.is_failed).collect();
    assert_eq!(failed, vec![false, true, false, true, false]);
    for (o, i) in out.iter().zip(&items) {
        assert!(o.indicator.eq_ignore_ascii_case(&i.indicator_value));
        if o.is_failed {
            assert!(o.failure_reason.as_deref().is_some_and(|r| !r.is_empty()), "{o:?}");
            assert_eq!(o.id, None);
        } else {
            assert!(o.id.is_some());
        }
    }
    assert_eq!(emu.indicators().len(), 3);
}

#[tokio::test]
async fn the_tenant_cap_fails_overflow_items_with_a_reason() {
    let emu = emulator(EmulatorConfig { capacity: 10, ..EmulatorConfig::default() }).await;
    emu.seed_many((0..4).map(|n| {
        SeedIndicator::portal("DomainName", &format!("p{n}.example.net"), "Block", "a@contoso.example")
    }));
    let client = client_for(&emu);
    let items: Vec<_> = (0..8).map(sha_item).collect();
    let out = client.import(&items).await.unwrap();
    let ok = out.iter().filter(|o| !o.is_failed).count();
    assert_eq!(ok, 6);
    for o in out.iter().filter(|o| o.is_failed) {
        let reason = o.failure_reason.as_deref().unwrap_or_default();
        assert!(reason.contains("10") || reason.to_lowercase().contains("limit"), "{reason}");
    }
    assert_eq!(emu.indicators().len(), 10);
}

#[tokio::test]
async fn oversized_and_empty_batches_are_handled_without_a_call() {
    let emu = emulator(EmulatorConfig::default()).await;
    let client = client_for(&emu);
    let items: Vec<_> = (0..501).map(sha_item).collect();
    let err = client.import(&items).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("at most 500"), "{err}");
    assert!(client.import(&[]).await.unwrap().is_empty());
    let ids: Vec<String> = (0..501).map(|n| n.to_string()).collect();
    assert_eq!(client.batch_delete(&ids).await.unwrap_err().kind(), ErrorKind::Config);
    assert!(client.batch_delete(&[]).await.unwrap().deleted.is_empty());
    assert!(calls_of(&emu, EndpointFamily::Import).is_empty());
    assert!(calls_of(&emu, EndpointFamily::BatchDelete).is_empty());
    assert_eq!(client.stats().token, 0);
}

#[tokio::test]
async fn reimport_updates_in_place_and_a_new_action_is_a_new_indicator() {
    let emu = emulator(EmulatorConfig::default()).await;
    let client = client_for(&emu);
    let first = client.import(&[sha_item(5)]).await.unwrap();
    let again = client.import(&[ImportItem { title: "renamed".into(), ..sha_item(5) }]).await.unwrap();
    assert_eq!(first[0].id, again[0].id);
    let audit = client.import(&[ImportItem { action: Action::Audit, ..sha_item(5) }]).await.unwrap();
    assert_ne!(audit[0].id, first[0].id);
    let got = client.get(first[0].id.as_deref().unwrap()).await.unwrap().unwrap();
    assert_eq!(got.title.as_deref(), Some("renamed"));
    assert_eq!(got.action, Action::Block);
    assert!(got.last_updated_by.is_some());
    assert_eq!(emu.indicators().len(), 2);
}
