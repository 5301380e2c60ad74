//! Switches for the behaviours the spec marks uncertain.

use iocsync_emulator::Behaviour;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn empty_list_404_switch() {
    let env = env().await;
    assert_eq!(env.get("/api/indicators").await.status, 200);
    env.emu.set_behaviour(Behaviour { empty_list_404: true, ..Behaviour::default() });
    assert_eq!(env.get("/api/indicators").await.status, 404);
}

#[tokio::test]
async fn source_fields_switch() {
    let env = env().await;
    env.emu.set_behaviour(Behaviour { include_source_fields: true, ..Behaviour::default() });
    let v = env.post("/api/indicators", &ip(1)).await.json();
    assert_eq!(v["sourceType"], "AadApp");
    assert!(v["source"].is_string());
}

#[tokio::test]
async fn action_matrix_switches() {
    let env = env().await;
    let url = json!({"indicatorValue": "https://evil.example/x", "indicatorType": "Url", "action": "BlockAndRemediate", "title": "t", "description": "d"});
    assert_eq!(env.post("/api/indicators", &url).await.status, 400);
    let legacy = json!({"indicatorValue": md5(1), "indicatorType": "FileMd5", "action": "AlertAndBlock", "title": "t", "description": "d"});
    assert_eq!(env.post("/api/indicators", &legacy).await.status, 400);
    let warn_file = json!({"indicatorValue": md5(2), "indicatorType": "FileMd5", "action": "Warn", "title": "t", "description": "d"});
    assert_eq!(env.post("/api/indicators", &warn_file).await.status, 200);
    let mut doc = ip(0);
    doc["indicatorValue"] = json!("198.51.100.7");
    assert_eq!(env.post("/api/indicators", &doc).await.status, 200);
    env.emu.set_behaviour(Behaviour {
        block_and_remediate_on_url: true,
        accept_legacy_actions: true,
        warn_on_files: false,
        documentation_ranges_private: true,
        ..Behaviour::default()
    });
    assert_eq!(env.post("/api/indicators", &url).await.status, 200);
    assert_eq!(env.post("/api/indicators", &legacy).await.status, 200);
    let mut warn3 = warn_file.clone();
    warn3["indicatorValue"] = json!(md5(3));
    assert_eq!(env.post("/api/indicators", &warn3).await.status, 400);
    doc["indicatorValue"] = json!("198.51.100.8");
    assert_eq!(env.post("/api/indicators", &doc).await.status, 400);
}

#[tokio::test]
async fn import_odata_context_switch() {
    let env = env().await;
    assert!(env.import(vec![ip(1)]).await.json().get("@odata.context").is_none());
    env.emu.set_behaviour(Behaviour { import_odata_context: true, ..Behaviour::default() });
    assert!(env.import(vec![ip(1)]).await.json()["@odata.context"].is_string());
}
