//! Faults: 5xx, dropped connections, malformed bodies, 429 storms; pacing and its history.

use iocsync_defender::{CallFamily, DefenderClient, ErrorKind, PacingLimits, RetryPolicy};
use iocsync_emulator::{EmulatorConfig, EndpointFamily, Fault, FaultRule, RateLimits, Trigger};

use crate::common::{
    TAG, assert_each_once, calls_of, client_for, config_for, emulator, max_accepted_in_window, sha_item,
};

fn rule(family: EndpointFamily, fault: Fault, trigger: Trigger) -> FaultRule {
    FaultRule::new(Some(family), fault, trigger)
}

#[tokio::test]
async fn server_errors_are_retried_and_items_land_exactly_once() {
    let emu = emulator(EmulatorConfig::default()).await;
    emu.inject(rule(EndpointFamily::Import, Fault::Status(503), Trigger::FirstN(2)));
    emu.inject(rule(EndpointFamily::Import, Fault::Status(500), Trigger::Nth(4)));
    emu.inject(rule(EndpointFamily::List, Fault::Status(502), Trigger::Nth(1)));
    emu.inject(rule(EndpointFamily::BatchDelete, Fault::Status(504), Trigger::Nth(1)));
    let client = client_for(&emu);
    let items: Vec<_> = (0..30).map(sha_item).collect();
    let mut ids = Vec::new();
    for chunk in items.chunks(10) {
        let out = client.import(chunk).await.unwrap();
        assert!(out.iter().all(|o| !o.is_failed));
        ids.extend(out.into_iter().filter_map(|o| o.id));
    }
    let values: Vec<String> = items.iter().map(|i| i.indicator_value.clone()).collect();
    assert_each_once(&emu, &values);
    assert_eq!(client.list_owned(TAG).await.unwrap().len(), 30);
    // 3 imports + 2 x 503 + 1 x 500; 1 list + 1 x 502.
    assert_eq!(client.stats().import, 6);
    assert_eq!(client.stats().list, 2);
    let out = client.batch_delete(&ids).await.unwrap();
    assert_eq!(out.deleted.len(), 30);
    assert!(emu.indicators().is_empty());
}

#[tokio::test]
async fn dropped_connections_and_truncated_bodies_are_retried_without_duplicates() {
    let emu = emulator(EmulatorConfig { page_size: 7, ..EmulatorConfig::default() }).await;
    emu.inject(rule(EndpointFamily::Import, Fault::Drop, Trigger::Nth(1)));
    emu.inject(rule(EndpointFamily::Import, Fault::DropAfterCommit, Trigger::Nth(3)));
    emu.inject(rule(EndpointFamily::Import, Fault::Malformed, Trigger::Nth(5)));
    emu.inject(rule(EndpointFamily::List, Fault::Malformed, Trigger::Nth(2)));
    emu.inject(rule(EndpointFamily::List, Fault::Drop, Trigger::Nth(3)));
    let client = client_for(&emu);
    let items: Vec<_> = (0..20).map(sha_item).collect();
    let mut ids = Vec::new();
    for chunk in items.chunks(5) {
        let out = client.import(chunk).await.unwrap();
        assert!(out.iter().all(|o| !o.is_failed), "{out:?}");
        ids.extend(out.into_iter().filter_map(|o| o.id));
    }
    let values: Vec<String> = items.iter().map(|i| i.indicator_value.clone()).collect();
    assert_each_once(&emu, &values);
    assert_eq!(emu.indicators().len(), 20);
    assert_eq!(ids.len(), 20);
    let listed = client.list_all().await.unwrap();
    assert_eq!(listed.len(), 20);

    // The delete is applied but the answer lost: the retry gets 404 and finds them gone.
    emu.inject(rule(EndpointFamily::BatchDelete, Fault::DropAfterCommit, Trigger::Nth(1)));
    let out = client.batch_delete(&ids[..4]).await.unwrap();
    assert_eq!(out.deleted.len() + out.already_gone.len(), 4);
    assert_eq!(emu.indicators().len(), 16);
}

#[tokio::test]
async fn retries_stop_at_the_attempt_budget_and_4xx_is_not_retried() {
    let emu = emulator(EmulatorConfig::default()).await;
    emu.inject(rule(EndpointFamily::Import, Fault::Status(503), Trigger::Always));
    let mut cfg = config_for(&emu);
    cfg.retry = RetryPolicy { max_attempts: 3, ..crate::common::fast_retry() };
    let client = DefenderClient::new(cfg).unwrap();
    let err = client.import(&[sha_item(1)]).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.status(), Some(503));
    assert_eq!(calls_of(&emu, EndpointFamily::Import).len(), 3);
    emu.clear_faults();

    // A malformed id is a 400 from BatchDelete: rejected with the server's text, one call.
    emu.clear_calls();
    let out = client.batch_delete(&["not-a-number".to_owned()]).await.unwrap();
    assert_eq!(out.rejected.len(), 1);
    assert!(out.rejected[0].1.contains("not-a-number"), "{:?}", out.rejected);
    assert_eq!(calls_of(&emu, EndpointFamily::BatchDelete).len(), 1);
    // Other 4xx answers are errors, permanent, one call.
    emu.inject(rule(EndpointFamily::BatchDelete, Fault::Status(409), Trigger::Always));
    emu.clear_calls();
    let err = client.batch_delete(&["12".to_owned()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Api);
    assert!(!err.is_retryable());
    assert_eq!(calls_of(&emu, EndpointFamily::BatchDelete).len(), 1);
}

/// A 429 storm: the client does no pacing, the emulator enforces the documented limits scaled by
/// 60 (a minute lasts 1 s). Every 429 is honoured, no window is ever exceeded, every item lands.
#[tokio::test]
async fn a_429_storm_is_ridden_out() {
    let limits = RateLimits::documented().scaled(60.0);
    let emu = emulator(EmulatorConfig { rate_limits: limits, ..EmulatorConfig::default() }).await;
    let client = client_for(&emu);
    assert_eq!(client.stats().throttled, 0);
    let mut tasks = tokio::task::JoinSet::new();
    for batch in 0..40 {
        let client = client.clone();
        tasks.spawn(async move {
            let items: Vec<_> = (batch * 3..batch * 3 + 3).map(sha_item).collect();
            client.import(&items).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        let out = r.unwrap().unwrap();
        assert!(out.iter().all(|o| !o.is_failed));
    }
    let s = client.stats();
    assert!(s.throttled > 0, "the storm produced 429s: {s:?}");
    let throttled = calls_of(&emu, EndpointFamily::Import).iter().filter(|c| c.status == 429).count();
    assert_eq!(u64::try_from(throttled).unwrap(), s.throttled);
    assert_eq!(s.import, 40 + s.throttled);
    assert!(max_accepted_in_window(&emu, EndpointFamily::Import, limits.import.per_minute.length) <= 30);
    let values: Vec<String> = (0..120).map(|n| sha_item(n).indicator_value).collect();
    assert_each_once(&emu, &values);
}

/// With client pacing matching the emulator's limits, the same burst causes no 429 at all.
#[tokio::test]
async fn client_pacing_prevents_throttling() {
    let emu = emulator(EmulatorConfig {
        rate_limits: RateLimits::documented().scaled(60.0),
        ..EmulatorConfig::default()
    })
    .await;
    let mut cfg = config_for(&emu);
    cfg.limits = PacingLimits::documented().scaled(60.0);
    let client = DefenderClient::new(cfg).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for batch in 0..35 {
        let client = client.clone();
        tasks.spawn(async move { client.import(&[sha_item(batch)]).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(client.stats().throttled, 0);
    assert_eq!(calls_of(&emu, EndpointFamily::Import).len(), 35);
    assert_eq!(emu.indicators().len(), 35);
}

/// A second client (the next cron run) loading the first one's history waits for the window.
#[tokio::test]
async fn call_history_carries_the_budget_across_clients() {
    let emu = emulator(EmulatorConfig::default()).await;
    let mut cfg = config_for(&emu);
    // Two imports per 300 ms.
    cfg.limits = PacingLimits::unlimited()
        .with_family(CallFamily::Import, vec![iocsync_core::pacing::Window::new(2, 300)]);
    let first = DefenderClient::new(cfg.clone()).unwrap();
    first.import(&[sha_item(1)]).await.unwrap();
    first.import(&[sha_item(2)]).await.unwrap();
    let history = first.export_call_history().await;
    assert_eq!(history.iter().filter(|s| s.family == CallFamily::Import).count(), 2);

    let second = DefenderClient::new(cfg).unwrap();
    second.load_call_history(history).await;
    second.import(&[sha_item(3)]).await.unwrap();
    let imports = calls_of(&emu, EndpointFamily::Import);
    assert_eq!(imports.len(), 3);
    let gap = imports[2].at - imports[0].at;
    assert!(gap >= chrono::Duration::milliseconds(300), "third import only {gap} after the first");
}
