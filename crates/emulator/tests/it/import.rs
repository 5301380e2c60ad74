//! Import: per-item results in request order, partial commit, batch limits, wrapper key case.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn per_item_results_in_order_and_valid_items_committed() {
    let env = env().await;
    let bad_ip = json!({"indicatorValue": "10.0.0.1", "indicatorType": "IpAddress", "action": "Block", "title": "t", "description": "d"});
    let audit = json!({"indicatorValue": md5(5), "indicatorType": "FileMd5", "action": "Audit", "generateAlert": true, "title": "t", "description": "d"});
    let r = env.import(vec![ip(1), bad_ip, audit, ip(1)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json()["value"].clone();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["indicator"], "8.0.0.1");
    assert_eq!(items[0]["isFailed"], false);
    assert_eq!(items[0]["failureReason"], json!(null));
    assert_eq!(items[1]["indicator"], "10.0.0.1");
    assert_eq!(items[1]["isFailed"], true);
    assert_eq!(items[1]["id"], json!(null));
    assert!(items[1]["failureReason"].as_str().unwrap().contains("10.0.0.1"));
    assert_eq!(items[2]["isFailed"], false);
    // The duplicate in the same batch updates the first.
    assert_eq!(items[3]["id"], items[0]["id"]);
    assert_eq!(env.emu.indicators().len(), 2);
}

#[tokio::test]
async fn batch_limits() {
    let env = env().await;
    let r = env.import(vec![]).await;
    assert_eq!(r.status, 400);
    let r = env.import((0..501).map(ip).collect()).await;
    assert_eq!((r.status, r.code().as_str()), (400, "MaximumBatchSizeExceeded"));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("Received: 501, allowed: 500"));
    assert!(env.emu.indicators().is_empty());
    let r = env.import((0..500).map(ip).collect()).await;
    assert_eq!(r.status, 200);
    assert_eq!(env.emu.indicators().len(), 500);
}

#[tokio::test]
async fn wrapper_key_is_case_sensitive() {
    let env = env().await;
    let r = env.post("/api/indicators/import", &json!({"indicators": [ip(1)]})).await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidRequestBody"));
    let r = env.post("/api/indicators/import", &json!({})).await;
    assert_eq!((r.status, r.code().as_str()), (400, "MissingRequiredParameter"));
    let r = env.import(vec![json!({"IndicatorValue": "8.8.8.8", "indicatorType": "IpAddress", "action": "Block", "title": "t", "description": "d"})]).await;
    assert_eq!(r.json()["value"][0]["isFailed"], true);
}
