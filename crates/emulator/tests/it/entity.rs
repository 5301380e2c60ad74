//! Full entities, server fields, timestamps, upsert semantics and id allocation.

use serde_json::json;

use crate::common::*;

const KEYS: &[&str] = &[
    "id",
    "indicatorValue",
    "indicatorType",
    "action",
    "createdBy",
    "severity",
    "category",
    "application",
    "educateUrl",
    "bypassDurationHours",
    "title",
    "description",
    "recommendedActions",
    "creationTimeDateTimeUtc",
    "expirationTime",
    "lastUpdateTime",
    "lastUpdatedBy",
    "rbacGroupNames",
    "rbacGroupIds",
    "notificationId",
    "notificationBody",
    "version",
    "mitreTechniques",
    "historicalDetection",
    "lookBackPeriod",
    "generateAlert",
    "additionalInfo",
    "createdByDisplayName",
    "externalId",
    "createdBySource",
    "certificateInfo",
];

fn is_ts7(s: &str) -> bool {
    // 2025-06-01T12:00:00.0000000Z
    s.len() == 28
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && s[20..27].bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn submit_returns_full_entity_with_server_fields() {
    let env = env().await;
    let mut body = ip(7);
    body["expirationTime"] = json!("2026-01-31T00:00:00.123Z");
    let r = env.post("/api/indicators", &body).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["@odata.context"], env.url("/api/$metadata#Indicators/$entity"));
    for k in KEYS {
        assert!(v.get(*k).is_some(), "key {k} missing");
    }
    assert!(v.get("source").is_none() && v.get("sourceType").is_none());
    assert_eq!(v["application"], json!(null));
    assert_eq!(v["rbacGroupNames"], json!([]));
    assert_eq!(v["mitreTechniques"], json!([]));
    assert_eq!(v["lastUpdatedBy"], json!(null));
    assert_eq!(v["createdBy"], iocsync_emulator::DEFAULT_CLIENT_ID);
    assert_eq!(v["createdByDisplayName"], iocsync_emulator::DEFAULT_APP_NAME);
    assert_eq!(v["createdBySource"], "PublicApi");
    assert_eq!(v["expirationTime"], "2026-01-31T00:00:00Z");
    assert!(is_ts7(v["creationTimeDateTimeUtc"].as_str().unwrap()), "{}", v["creationTimeDateTimeUtc"]);
    assert!(is_ts7(v["lastUpdateTime"].as_str().unwrap()));
    assert_eq!(v["severity"], "High");
    // Same entity from the list and from get.
    let id = v["id"].as_str().unwrap();
    let g = env.get(&format!("/api/indicators/{id}")).await.json();
    assert_eq!(g["@odata.context"], env.url("/api/$metadata#Indicators/$entity"));
    assert_eq!(g["indicatorValue"], v["indicatorValue"]);
}

#[tokio::test]
async fn upsert_keeps_id_and_creation_freezes_create_only_fields() {
    let env = env().await;
    let mut body = ip(9);
    body["application"] = json!("first-app");
    body["version"] = json!("1");
    let first = env.post("/api/indicators", &body).await.json();
    env.clock.advance(chrono::Duration::seconds(30));
    body["severity"] = json!("Low");
    body["title"] = json!("new title");
    body["application"] = json!("second-app");
    body["version"] = json!("2");
    let second = env.post("/api/indicators", &body).await.json();
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["creationTimeDateTimeUtc"], first["creationTimeDateTimeUtc"]);
    assert_ne!(second["lastUpdateTime"], first["lastUpdateTime"]);
    assert_eq!(second["lastUpdatedBy"], iocsync_emulator::DEFAULT_CLIENT_ID);
    assert_eq!(second["severity"], "Low");
    assert_eq!(second["title"], "new title");
    assert_eq!(second["application"], "first-app");
    assert_eq!(second["version"], "1");
    assert_eq!(env.emu.indicators().len(), 1);
    // A different action is a separate indicator.
    body["action"] = json!("Allowed");
    let third = env.post("/api/indicators", &body).await.json();
    assert_ne!(third["id"], first["id"]);
    assert_eq!(env.emu.indicators().len(), 2);
}

#[tokio::test]
async fn ids_increase_and_are_never_reused() {
    let env = env().await;
    let a: u64 = env.post("/api/indicators", &ip(1)).await.json()["id"].as_str().unwrap().parse().unwrap();
    let b: u64 = env.post("/api/indicators", &ip(2)).await.json()["id"].as_str().unwrap().parse().unwrap();
    assert!(b > a);
    assert_eq!(env.delete(&format!("/api/indicators/{b}")).await.status, 204);
    let c: u64 = env.post("/api/indicators", &ip(2)).await.json()["id"].as_str().unwrap().parse().unwrap();
    assert!(c > b, "id {c} reused after deleting {b}");
    assert_eq!(env.delete(&format!("/api/indicators/{b}")).await.status, 404);
}
