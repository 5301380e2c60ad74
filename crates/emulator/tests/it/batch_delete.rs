//! BatchDelete: atomic 404 on unknown ids, partial switch, limits, malformed ids.

use iocsync_emulator::{BatchDeleteMode, Behaviour};
use serde_json::json;

use crate::common::*;

async fn two(env: &Env) -> (String, String) {
    let r = env.import(vec![ip(1), ip(2)]).await.json();
    (r["value"][0]["id"].as_str().unwrap().to_owned(), r["value"][1]["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn unknown_id_is_404_and_nothing_deleted() {
    let env = env().await;
    let (a, b) = two(&env).await;
    let r = env.post("/api/indicators/BatchDelete", &json!({"IndicatorIds": [a, "99999"]})).await;
    assert_eq!((r.status, r.code().as_str()), (404, "ResourceNotFound"));
    assert_eq!(env.emu.indicators().len(), 2);
    let r = env.post("/api/indicators/BatchDelete", &json!({"IndicatorIds": [a, b]})).await;
    assert_eq!(r.status, 204);
    assert!(env.emu.indicators().is_empty());
}

#[tokio::test]
async fn partial_switch_deletes_the_known_ids() {
    let env = env().await;
    env.emu.set_behaviour(Behaviour { batch_delete: BatchDeleteMode::Partial, ..Behaviour::default() });
    let (a, _b) = two(&env).await;
    let r = env.post("/api/indicators/BatchDelete", &json!({"IndicatorIds": [a, "99999"]})).await;
    assert_eq!(r.status, 404);
    assert_eq!(env.emu.indicators().len(), 1);
}

#[tokio::test]
async fn limits_and_malformed_ids() {
    let env = env().await;
    let r = env.post("/api/indicators/BatchDelete", &json!({"IndicatorIds": []})).await;
    assert_eq!(r.status, 400);
    let ids: Vec<String> = (1..=501).map(|n| n.to_string()).collect();
    let r = env.post("/api/indicators/BatchDelete", &json!({"IndicatorIds": ids})).await;
    assert_eq!((r.status, r.code().as_str()), (400, "MaximumBatchSizeExceeded"));
    let r = env.post("/api/indicators/BatchDelete", &json!({"IndicatorIds": ["abc"]})).await;
    assert_eq!(r.status, 400);
    let r = env.post("/api/indicators/BatchDelete", &json!({"indicatorIds": ["1"]})).await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidRequestBody"));
}
