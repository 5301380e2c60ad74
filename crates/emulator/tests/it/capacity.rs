//! The 15,000 active-indicator cap across all creators.

use iocsync_emulator::SeedIndicator;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn documented_cap_counts_portal_rows() {
    let env = env().await;
    let seeds =
        (0..15_000u32).map(|n| SeedIndicator::portal("FileMd5", &md5(n), "Block", "analyst@contoso.example"));
    assert_eq!(env.emu.seed_many(seeds).len(), 15_000);
    let r = env.post("/api/indicators", &ip(1)).await;
    assert_eq!((r.status, r.code().as_str()), (400, "BadRequest"));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("15000"));
}

#[tokio::test]
async fn import_overflow_items_fail_and_upserts_do_not_count() {
    let (mut cfg, clock) = config();
    cfg.capacity = 5;
    let env = env_with((cfg, clock)).await;
    env.emu.seed(SeedIndicator::portal("DomainName", "manual.example", "Block", "analyst@contoso.example"));
    let r = env.import((1..=3).map(ip).collect()).await.json();
    assert!(r["value"].as_array().unwrap().iter().all(|i| i["isFailed"] == false));
    // 4 used; one more new fits, the rest overflow; an update of an existing one still works.
    let mut update = ip(1);
    update["severity"] = json!("Low");
    let r = env.import(vec![ip(10), ip(11), update, ip(12)]).await.json();
    let failed: Vec<bool> =
        r["value"].as_array().unwrap().iter().map(|i| i["isFailed"].as_bool().unwrap()).collect();
    assert_eq!(failed, vec![false, true, false, true]);
    assert!(r["value"][1]["failureReason"].as_str().unwrap().contains("maximum number"));
    assert_eq!(env.emu.indicators().len(), 5);
    let mut again = ip(2);
    again["title"] = json!("renamed");
    assert_eq!(env.post("/api/indicators", &again).await.status, 200);
    assert_eq!(env.post("/api/indicators", &ip(13)).await.status, 400);
}

#[tokio::test]
async fn deleted_slots_can_be_held_for_a_while() {
    let (mut cfg, clock) = config();
    cfg.capacity = 2;
    cfg.behaviour.capacity_release_lag = std::time::Duration::from_secs(20);
    let env = env_with((cfg, clock)).await;
    let r = env.import(vec![ip(1), ip(2)]).await.json();
    let id = r["value"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(env.post("/api/indicators/BatchDelete", &json!({"IndicatorIds": [id]})).await.status, 204);
    assert_eq!(env.post("/api/indicators", &ip(3)).await.status, 400, "slot not yet released");
    env.clock.advance(chrono::Duration::seconds(20));
    assert_eq!(env.post("/api/indicators", &ip(3)).await.status, 200);
}
