//! Bounds on the client's own effort: the split budget, the response-size cap, and what a
//! BatchDelete refused as a whole comes back as.

use iocsync_defender::{DefenderClient, ErrorKind, FailureOrigin, ImportItem};
use iocsync_emulator::{Behaviour, EmulatorConfig, EndpointFamily, RateLimits, SeedIndicator};

use crate::common::{calls_of, client_for, config_for, emulator, sha_item};

#[tokio::test]
async fn a_spent_split_budget_leaves_the_rest_retryable_not_rejected() {
    let emu = emulator(EmulatorConfig {
        behaviour: Behaviour { whole_request_400: true, ..Behaviour::default() },
        rate_limits: RateLimits::unlimited(),
        ..EmulatorConfig::default()
    })
    .await;
    let mut cfg = config_for(&emu);
    cfg.split_budget = 4;
    let client = DefenderClient::new(cfg).unwrap();
    let mut items: Vec<_> = (0..500).map(sha_item).collect();
    items[0] = ImportItem { severity: Some("Severe".into()), ..sha_item(0) };
    let out = client.import(&items).await.unwrap();
    // 1 refused call, then [0,250) refused + [250,500) lands, then [0,125) refused + [125,250)
    // lands: the budget of 4 is spent and [0,125) is left unjudged.
    assert_eq!(calls_of(&emu, EndpointFamily::Import).len(), 5);
    assert_eq!(emu.indicators().len(), 375);
    let unjudged: Vec<_> = out.iter().filter(|o| o.is_failed).collect();
    assert_eq!(unjudged.len(), 125);
    assert!(unjudged.iter().all(|o| o.origin == FailureOrigin::NotJudged), "never rejected");
    assert!(unjudged[0].failure_reason.as_deref().unwrap().contains("next run"));
    assert!(out.iter().all(|o| o.origin != FailureOrigin::RequestRefused));
    // The budget is per client: a second refused batch is not split at all.
    let out = client.import(&items[..10]).await.unwrap();
    assert!(out.iter().all(|o| o.is_failed && o.origin == FailureOrigin::NotJudged));
    assert_eq!(calls_of(&emu, EndpointFamily::Import).len(), 6);
}

#[tokio::test]
async fn isolated_items_are_marked_refused_by_request() {
    let emu = emulator(EmulatorConfig {
        behaviour: Behaviour { whole_request_400: true, ..Behaviour::default() },
        rate_limits: RateLimits::unlimited(),
        ..EmulatorConfig::default()
    })
    .await;
    let client = client_for(&emu);
    let items = vec![sha_item(1), ImportItem { severity: Some("Severe".into()), ..sha_item(2) }];
    let out = client.import(&items).await.unwrap();
    assert_eq!(out[0].origin, FailureOrigin::ItemResult);
    assert!(!out[0].is_failed);
    assert_eq!(out[1].origin, FailureOrigin::RequestRefused);
}

#[tokio::test]
async fn a_response_larger_than_the_cap_is_refused() {
    let emu =
        emulator(EmulatorConfig { rate_limits: RateLimits::unlimited(), ..EmulatorConfig::default() }).await;
    emu.seed_many((0..200).map(|n| {
        SeedIndicator::portal("DomainName", &format!("p{n}.example.net"), "Block", "analyst@contoso.example")
    }));
    let mut cfg = config_for(&emu);
    cfg.max_response_bytes = 64 * 1024;
    let client = DefenderClient::new(cfg).unwrap();
    let err = client.list_all().await.expect_err("a 200-row page is larger than 64 KiB");
    assert_eq!(err.kind(), ErrorKind::Api);
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("max_response_bytes"), "{err}");
    assert_eq!(calls_of(&emu, EndpointFamily::List).len(), 1, "not retried");
    assert_eq!(iocsync_defender::MAX_RESPONSE_BYTES, 32 * 1024 * 1024);
}

#[tokio::test]
async fn batch_delete_splits_out_a_malformed_id_and_deletes_the_rest() {
    let emu =
        emulator(EmulatorConfig { rate_limits: RateLimits::unlimited(), ..EmulatorConfig::default() }).await;
    let client = client_for(&emu);
    let out = client.import(&(0..6).map(sha_item).collect::<Vec<_>>()).await.unwrap();
    let mut ids: Vec<String> = out.iter().map(|o| o.id.clone().unwrap()).collect();
    ids.insert(2, "12x".into());
    let done = client.batch_delete(&ids).await.expect("a refused BatchDelete is split, not an error");
    assert_eq!(done.deleted.len(), 6);
    assert_eq!(done.rejected.len(), 1);
    assert_eq!(done.rejected[0].0, "12x");
    assert!(done.rejected[0].1.contains("12x"), "the server's text: {:?}", done.rejected[0]);
    assert!(emu.indicators().is_empty());
    assert!(calls_of(&emu, EndpointFamily::BatchDelete).len() <= 1 + 2 * 3);
}
