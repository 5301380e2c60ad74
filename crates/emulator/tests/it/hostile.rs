//! Real-service behaviours that a friendly emulator hid (issue #11 items 3, 5, 6): whole-request
//! 400 on model-binding failures, a cap-reached text without the limit, list paging that ignores
//! `$skip` or shifts, foreign rows with odd field types, a 404 HTML page on the list endpoint, and
//! the `strict` profile that turns the hostile ones on together.

use iocsync_emulator::{Behaviour, MAX_FIELD_LEN, STRICT_CAPACITY_MESSAGE, SeedIndicator};
use serde_json::{Value, json};

use crate::common::*;

fn ids(v: &Value) -> Vec<String> {
    v["value"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

fn portal(n: u32) -> SeedIndicator {
    SeedIndicator::portal("FileMd5", &md5(n), "Block", "analyst@contoso.example")
}

#[tokio::test]
async fn whole_request_400_refuses_the_import_for_one_bad_field_and_commits_nothing() {
    let env = env().await;
    let mut wrong_type = ip(2);
    wrong_type["severity"] = json!(3);
    let mut long_title = ip(3);
    long_title["title"] = json!("t".repeat(MAX_FIELD_LEN + 1));
    let mut bad_enum = ip(4);
    bad_enum["action"] = json!("Explode");
    // Off (default): per-item failures in a 200, valid items committed; no length limit.
    let r = env.import(vec![ip(1), wrong_type.clone(), long_title.clone(), bad_enum.clone()]).await;
    assert_eq!(r.status, 200);
    let failed: Vec<bool> =
        r.json()["value"].as_array().unwrap().iter().map(|i| i["isFailed"].as_bool().unwrap()).collect();
    assert_eq!(failed, vec![false, true, false, true]);
    env.emu.set_behaviour(Behaviour { whole_request_400: true, ..Behaviour::default() });
    let before = env.emu.indicators().len();
    for (n, bad) in [wrong_type, long_title, bad_enum].into_iter().enumerate() {
        let value = bad["indicatorValue"].as_str().unwrap().to_owned();
        let r = env.import(vec![ip(10 + n as u32), bad, ip(20 + n as u32)]).await;
        assert_eq!((r.status, r.code().as_str()), (400, "InvalidRequestBody"), "{}", r.text);
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("Indicators[1]") && message.contains(&value), "{message}");
    }
    assert_eq!(env.emu.indicators().len(), before, "nothing committed");
    // Value validation is not model binding: still per item.
    let mut bad_ip = ip(30);
    bad_ip["indicatorValue"] = json!("10.1.2.3");
    let r = env.import(vec![ip(31), bad_ip]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"][1]["isFailed"], true);
}

#[tokio::test]
async fn batch_delete_refuses_the_whole_request_for_a_malformed_id() {
    let env = env().await;
    let id = env.post("/api/indicators", &ip(1)).await.json()["id"].as_str().unwrap().to_owned();
    let r = env.post("/api/indicators/BatchDelete", &json!({"IndicatorIds": [id, "12x"]})).await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidInput"));
    assert_eq!(env.emu.indicators().len(), 1, "nothing deleted");
}

#[tokio::test]
async fn capacity_message_replaces_the_cap_reached_text() {
    let (mut cfg, clock) = config();
    cfg.capacity = 1;
    cfg.behaviour.capacity_message = Some(STRICT_CAPACITY_MESSAGE.to_owned());
    let env = env_with((cfg, clock)).await;
    let r = env.import(vec![ip(1), ip(2)]).await.json();
    assert_eq!(r["value"][0]["isFailed"], false);
    assert_eq!(r["value"][1]["isFailed"], true);
    assert_eq!(r["value"][1]["failureReason"], STRICT_CAPACITY_MESSAGE);
    let r = env.post("/api/indicators", &ip(3)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], STRICT_CAPACITY_MESSAGE);
}

#[tokio::test]
async fn list_ignores_skip_serves_the_first_page_again() {
    let (mut cfg, clock) = config();
    cfg.page_size = 4;
    cfg.behaviour.list_ignores_skip = true;
    let env = env_with((cfg, clock)).await;
    env.emu.seed_many((0..10).map(portal));
    let first = env.get("/api/indicators").await.json();
    let next = first["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(next.contains("$skip=4"), "{next}");
    let second = env.get(next.strip_prefix(&env.emu.base_url()).unwrap()).await.json();
    assert_eq!(ids(&second), ids(&first));
    assert!(second["@odata.nextLink"].as_str().unwrap().contains("$skip=8"));
    let last = env.get("/api/indicators?$skip=8").await.json();
    assert_eq!(ids(&last), ids(&first));
    assert!(last.get("@odata.nextLink").is_none(), "the listing still ends");
}

#[tokio::test]
async fn list_shift_repeats_ids_across_pages_without_losing_any() {
    let (mut cfg, clock) = config();
    cfg.page_size = 4;
    cfg.behaviour.list_shift = 1;
    let env = env_with((cfg, clock)).await;
    let seeded = env.emu.seed_many((0..10).map(portal));
    let mut path = "/api/indicators".to_owned();
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let page = env.get(&path).await.json();
        pages += 1;
        got.extend(ids(&page));
        match page["@odata.nextLink"].as_str() {
            Some(n) => path = n.strip_prefix(&env.emu.base_url()).unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(got.len(), 12, "one repeated row per page after the first: {got:?}");
    assert_eq!(got[3], got[4]);
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    let mut want = seeded;
    want.sort();
    assert_eq!(unique, want, "no row is lost");
}

#[tokio::test]
async fn odd_foreign_fields_change_only_other_creators_rows() {
    let env = env().await;
    let foreign_id = env.emu.seed(portal(1));
    let own_id = env.post("/api/indicators", &ip(1)).await.json()["id"].as_str().unwrap().to_owned();
    env.emu.set_behaviour(Behaviour { odd_foreign_fields: true, ..Behaviour::default() });
    let list = env.get("/api/indicators").await.json();
    let rows = list["value"].as_array().unwrap();
    let foreign = rows.iter().find(|r| r["id"] == foreign_id.as_str()).unwrap();
    assert_eq!(foreign["severity"], 3);
    assert_eq!(foreign["rbacGroupNames"], "x");
    assert_eq!(foreign["expirationTime"], 12);
    let own = rows.iter().find(|r| r["id"] == own_id.as_str()).unwrap();
    assert_eq!(own["severity"], "High");
    assert!(own["rbacGroupNames"].is_array());
    let one = env.get(&format!("/api/indicators/{foreign_id}")).await.json();
    assert_eq!(one["severity"], 3);
    assert!(one["@odata.context"].as_str().unwrap().ends_with("$entity"));
}

#[tokio::test]
async fn list_404_html_answers_a_proxy_page() {
    let env = env().await;
    env.emu.set_behaviour(Behaviour { list_404_html: true, ..Behaviour::default() });
    let r = env.get("/api/indicators").await;
    assert_eq!(r.status, 404);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(serde_json::from_str::<Value>(&r.text).is_err());
    // The envelope version stays available for the empty-tenant case.
    env.emu.set_behaviour(Behaviour { empty_list_404: true, ..Behaviour::default() });
    assert_eq!(env.get("/api/indicators").await.code(), "ResourceNotFound");
}

#[tokio::test]
async fn strict_profile_turns_the_hostile_behaviours_on() {
    let strict = Behaviour::strict();
    assert!(strict.whole_request_400 && strict.odd_foreign_fields);
    assert_eq!(strict.list_shift, 1);
    assert_eq!(strict.capacity_message.as_deref(), Some(STRICT_CAPACITY_MESSAGE));
    assert!(!strict.list_ignores_skip && !strict.list_404_html);
    assert_eq!(Behaviour { ..strict.clone() }.warn_on_files, Behaviour::default().warn_on_files);
    let env = env().await;
    env.emu.set_behaviour(strict);
    let mut bad = ip(2);
    bad["generateAlert"] = json!("yes");
    assert_eq!(env.import(vec![ip(1), bad]).await.status, 400);
}
