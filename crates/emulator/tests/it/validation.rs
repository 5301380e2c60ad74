//! Per-type validation on E3 (error codes) and E4 (failure reasons), the action matrix, Audit rule,
//! case-sensitive property names.

use serde_json::{Value, json};

use crate::common::*;

fn ind(t: &str, v: &str, a: &str) -> Value {
    json!({"indicatorValue": v, "indicatorType": t, "action": a, "title": "t", "description": "d"})
}

#[tokio::test]
async fn submit_error_codes_per_type() {
    let env = env().await;
    for (body, code) in [
        (ind("FileSha1", "abc", "Block"), "InvalidHashValue"),
        (ind("FileSha256", &"z".repeat(64), "Block"), "InvalidHashValue"),
        (ind("FileMd5", &"a".repeat(31), "Block"), "InvalidHashValue"),
        (ind("IpAddress", "192.168.1.1", "Block"), "InvalidIpAddress"),
        (ind("IpAddress", "8.8.8.0/24", "Block"), "InvalidIpAddress"),
        (ind("IpAddress", "::1", "Block"), "InvalidIpAddress"),
        (ind("DomainName", "https://evil.example", "Block"), "InvalidDomainName"),
        (ind("Url", "evil.example/path", "Block"), "InvalidUrl"),
        (ind("Url", "", "Block"), "InvalidInput"),
        (ind("IpAddress", "8.8.8.8", "Explode"), "InvalidRequestBody"),
        (ind("DomainName", "evil.example", "BlockAndRemediate"), "InvalidInput"),
        (ind("CertificateThumbprint", &"a".repeat(40), "Audit"), "InvalidInput"),
        (ind("FileMd5", &"a".repeat(32), "Audit"), "BadRequest"),
        (
            json!({"indicatorValue": "8.8.8.8", "indicatorType": "IpAddress", "Action": "Block", "title": "t", "description": "d"}),
            "InvalidRequestBody",
        ),
        (
            json!({"indicatorValue": "8.8.8.8", "indicatorType": "IpAddress", "title": "t", "description": "d"}),
            "MissingRequiredParameter",
        ),
        (
            json!({"indicatorValue": "8.8.8.8", "indicatorType": "IpAddress", "action": "Block", "title": "t", "description": "d", "externalID": "x"}),
            "InvalidRequestBody",
        ),
        (json!([1, 2]), "InvalidRequestBody"),
    ] {
        let r = env.post("/api/indicators", &body).await;
        assert_eq!((r.status, r.code()), (400, code.to_owned()), "{body}");
    }
    let r = env
        .http
        .post(env.url("/api/indicators"))
        .bearer_auth(&env.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(env.emu.indicators().is_empty());
}

#[tokio::test]
async fn accepted_values_and_audit_with_alert() {
    let env = env().await;
    let mut audit = ind("FileSha256", &"A".repeat(64), "Audit");
    audit["generateAlert"] = json!(true);
    for body in [
        audit,
        ind("CertificateThumbprint", &"b".repeat(40), "BlockAndRemediate"),
        ind("IpAddress", "2001:4860:4860:0:0:0:0:8888", "Block"),
        ind("DomainName", "evil.example", "Warn"),
        ind("Url", "http://evil.example/a/b?c=d", "Allowed"),
    ] {
        let r = env.post("/api/indicators", &body).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text);
        // Values round-trip in the case submitted.
        assert_eq!(r.json()["indicatorValue"], body["indicatorValue"]);
    }
}

#[tokio::test]
async fn import_failure_reasons() {
    let env = env().await;
    let r = env
        .import(vec![
            ind("FileSha1", "abc", "Block"),
            ind("IpAddress", "10.0.0.1", "Block"),
            ind("IpAddress", "8.8.4.4", "Block"),
        ])
        .await
        .json();
    let reasons: Vec<Option<&str>> =
        r["value"].as_array().unwrap().iter().map(|i| i["failureReason"].as_str()).collect();
    assert!(reasons[0].unwrap().contains("SHA-1"));
    assert!(reasons[1].unwrap().contains("external"));
    assert_eq!(reasons[2], None);
}
