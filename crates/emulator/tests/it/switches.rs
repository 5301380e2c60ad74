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

#[tokio::test]
async fn match_key_switches() {
    let env = env().await;
    let lower = json!({"indicatorValue": md5(0xabc), "indicatorType": "FileMd5", "action": "Block", "title": "t", "description": "d"});
    let mut upper = lower.clone();
    upper["indicatorValue"] = json!(md5(0xabc).to_uppercase());
    let a = env.post("/api/indicators", &lower).await.json()["id"].clone();
    let b = env.post("/api/indicators", &upper).await.json()["id"].clone();
    assert_ne!(a, b, "exact-case matching by default");
    env.emu.set_behaviour(Behaviour { case_insensitive_match: true, ..Behaviour::default() });
    let c = env.post("/api/indicators", &upper).await.json()["id"].clone();
    assert!(c == a || c == b, "{a} {b} {c}");
    assert_eq!(env.emu.indicators().len(), 2);

    let mut scoped = ip(1);
    let first = env.post("/api/indicators", &scoped).await.json()["id"].clone();
    scoped["rbacGroupNames"] = json!(["Servers"]);
    assert_eq!(env.post("/api/indicators", &scoped).await.json()["id"], first);
    env.emu.set_behaviour(Behaviour { rbac_in_match_key: true, ..Behaviour::default() });
    scoped["rbacGroupNames"] = json!(["Laptops"]);
    assert_ne!(env.post("/api/indicators", &scoped).await.json()["id"], first);
}

#[tokio::test]
async fn device_groups_unauthorized_body_and_skip_token() {
    let (mut cfg, clock) = config();
    cfg.page_size = 2;
    let env = env_with((cfg, clock)).await;
    env.emu.set_behaviour(Behaviour {
        known_device_groups: Some(vec!["Servers".into()]),
        unauthorized_empty_body: true,
        next_link_skip_token: true,
        ..Behaviour::default()
    });
    let mut b = ip(1);
    b["rbacGroupNames"] = json!(["Nope"]);
    let r = env.post("/api/indicators", &b).await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidInput"));
    b["rbacGroupNames"] = json!(["Servers"]);
    assert_eq!(env.post("/api/indicators", &b).await.status, 200);

    let r = env.call_as("garbage", reqwest::Method::GET, "/api/indicators", None).await;
    assert_eq!(r.status, 401);
    assert!(r.text.is_empty());
    assert!(r.headers.contains_key("www-authenticate"));

    env.import((2..=5).map(ip).collect()).await;
    let v = env.get("/api/indicators").await.json();
    let next = v["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(next.contains("$skiptoken=") && !next.contains("$skip="), "{next}");
    let r = env.http.get(&next).bearer_auth(&env.token).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["value"][0]["indicatorValue"], "8.0.0.3");
}

/// `externalId` is stored and echoed by submit, import, list and get (spec §13.2); with
/// `drop_external_id` the tenant silently stores `null` instead, on create and on update.
#[tokio::test]
async fn external_id_is_echoed_and_drop_external_id_switch_drops_it() {
    let env = env().await;
    let mut one = ip(1);
    one["externalId"] = json!("iocsync:iocsync");
    let v = env.post("/api/indicators", &one).await.json();
    assert_eq!(v["externalId"], "iocsync:iocsync", "submit echoes it");
    let mut two = ip(2);
    two["externalId"] = json!("iocsync:other");
    let r = env.import(vec![two]).await.json();
    let id2 = r["value"][0]["id"].as_str().unwrap().to_owned();
    let listed = env.get("/api/indicators").await.json();
    let ext = |list: &serde_json::Value, id: &str| {
        list["value"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap()["externalId"].clone()
    };
    assert_eq!(ext(&listed, v["id"].as_str().unwrap()), json!("iocsync:iocsync"));
    assert_eq!(ext(&listed, &id2), json!("iocsync:other"), "import keeps it too");
    assert_eq!(env.get(&format!("/api/indicators/{id2}")).await.json()["externalId"], "iocsync:other");
    // An update through import can set it on a row created without one (migration of old rows).
    let mut three = ip(3);
    let id3 = env.post("/api/indicators", &three).await.json()["id"].clone();
    assert_eq!(
        env.get(&format!("/api/indicators/{}", id3.as_str().unwrap())).await.json()["externalId"],
        json!(null)
    );
    three["externalId"] = json!("iocsync:iocsync");
    let r = env.import(vec![three.clone()]).await.json();
    assert_eq!(r["value"][0]["id"], id3, "same row updated");
    assert_eq!(
        env.emu.indicators().iter().find(|i| i.id == id3).unwrap().external_id.as_deref(),
        Some("iocsync:iocsync")
    );

    env.emu.set_behaviour(Behaviour { drop_external_id: true, ..Behaviour::default() });
    let mut four = ip(4);
    four["externalId"] = json!("iocsync:iocsync");
    let r = env.post("/api/indicators", &four).await;
    assert_eq!(r.status, 200, "accepted without complaint");
    assert_eq!(r.json()["externalId"], json!(null));
    let mut five = ip(5);
    five["externalId"] = json!("iocsync:iocsync");
    let r = env.import(vec![five, three]).await.json();
    assert!(r["value"].as_array().unwrap().iter().all(|x| x["isFailed"] == false), "{r}");
    let all = env.emu.indicators();
    for value in ["8.0.0.4", "8.0.0.5", "8.0.0.3"] {
        let row = all.iter().find(|i| i.indicator_value == value).unwrap();
        assert_eq!(row.external_id, None, "{value}: dropped on create and on update");
    }
    assert_eq!(
        all.iter().find(|i| i.indicator_value == "8.0.0.1").unwrap().external_id.as_deref(),
        Some("iocsync:iocsync"),
        "rows stored before keep theirs"
    );
}

/// The notification log records the `application` text end users see in place of the blocked
/// file or domain (spec §13.1), for indicators created through submit and import and for seeded
/// ones; rows without `application` show nothing, and an update cannot change the text.
#[tokio::test]
async fn notification_log_switch_records_application_texts() {
    let env = env().await;
    let mut quiet = ip(1);
    quiet["application"] = json!("Before the switch");
    env.post("/api/indicators", &quiet).await;
    assert!(env.emu.notifications().is_empty(), "off by default");

    env.emu.set_behaviour(Behaviour { notification_log: true, ..Behaviour::default() });
    let mut a = ip(2);
    a["application"] = json!("Blocked by Contoso security");
    let id_a = env.post("/api/indicators", &a).await.json()["id"].as_str().unwrap().to_owned();
    let mut b = ip(3);
    b["application"] = json!("Phishing site");
    let plain = ip(4);
    env.import(vec![b, plain]).await;
    // An update of an existing row cannot change what users see (application is create-only).
    a["application"] = json!("Changed later");
    a["severity"] = json!("Low");
    env.post("/api/indicators", &a).await;
    env.emu.seed(iocsync_emulator::SeedIndicator::app(
        "DomainName",
        "legacy.example",
        "Block",
        "some-app",
        "legacy-tag",
    ));

    let log = env.emu.notifications();
    let shown: Vec<&str> = log.iter().map(|n| n.shown.as_str()).collect();
    assert_eq!(shown, ["Blocked by Contoso security", "Phishing site", "legacy-tag"]);
    assert_eq!(log[0].indicator_id, id_a);
    assert_eq!(log[0].indicator_value, "8.0.0.2");
    assert_eq!(log[1].created_by, iocsync_emulator::DEFAULT_CLIENT_ID);
    assert_eq!(
        env.emu.indicators().iter().find(|i| i.id == id_a).unwrap().application.as_deref(),
        Some("Blocked by Contoso security")
    );
    env.emu.clear_notifications();
    assert!(env.emu.notifications().is_empty());
}

/// `normalize_values`: the tenant stores (and lists) its own spelling of a value, and the same
/// value sent again in either spelling updates that row. `drop_optional_fields`: optional fields
/// read back empty.
#[tokio::test]
async fn normalize_values_and_drop_optional_fields_switches() {
    let env = env().await;
    env.emu.set_behaviour(Behaviour {
        normalize_values: true,
        drop_optional_fields: true,
        ..Behaviour::default()
    });
    let row = |t: &str, v: &str| {
        json!({"indicatorType": t, "indicatorValue": v, "action": "Block", "title": "t", "description": "d",
               "severity": "High", "recommendedActions": "isolate", "educateUrl": "https://why.example/",
               "mitreTechniques": ["T1071"], "category": 1})
    };
    let r = env
        .import(vec![row("IpAddress", "2001:db8:0:0:0:0:0:1"), row("Url", "HTTP://Evil.Example")])
        .await
        .json();
    assert!(r["value"].as_array().unwrap().iter().all(|x| x["isFailed"] == false), "{r}");
    let listed = env.get("/api/indicators").await.json();
    let values: Vec<&str> =
        listed["value"].as_array().unwrap().iter().map(|i| i["indicatorValue"].as_str().unwrap()).collect();
    assert_eq!(values, ["2001:db8::1", "http://evil.example/"], "{listed}");
    for i in listed["value"].as_array().unwrap() {
        assert_eq!(i["recommendedActions"], json!(null), "{i}");
        assert_eq!(i["educateUrl"], json!(null), "{i}");
        assert_eq!(i["mitreTechniques"], json!([]), "{i}");
        assert_eq!(i["category"], json!(null), "{i}");
    }
    // Sent again in the other spelling: the same rows, updated.
    let r =
        env.import(vec![row("IpAddress", "2001:db8::1"), row("Url", "http://evil.example/")]).await.json();
    assert!(r["value"].as_array().unwrap().iter().all(|x| x["isFailed"] == false), "{r}");
    assert_eq!(env.emu.indicators().len(), 2);
    // Off: the value is kept as sent.
    env.emu.set_behaviour(Behaviour::default());
    env.import(vec![row("IpAddress", "2001:db8:0:0:0:0:0:2")]).await;
    assert!(env.emu.indicators().iter().any(|i| i.indicator_value == "2001:db8:0:0:0:0:0:2"));
}
