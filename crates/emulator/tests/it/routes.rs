//! All six routes with and without /api/v1.0, 405 + Allow + empty body, OData headers, error envelope.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn six_routes_with_and_without_version() {
    let env = env().await;
    for prefix in ["/api", "/api/v1.0"] {
        let r = env.post(&format!("{prefix}/indicators"), &ip(1)).await;
        assert_eq!(r.status, 200, "{prefix}: {}", r.text);
        let id = r.json()["id"].as_str().unwrap().to_owned();
        assert_eq!(env.get(&format!("{prefix}/indicators")).await.status, 200);
        assert_eq!(env.get(&format!("{prefix}/indicators/{id}")).await.status, 200);
        assert_eq!(env.delete(&format!("{prefix}/indicators/{id}")).await.status, 204);
        let r = env.post(&format!("{prefix}/indicators/import"), &json!({"Indicators": [ip(2)]})).await;
        assert_eq!(r.status, 200);
        let id2 = r.json()["value"][0]["id"].as_str().unwrap().to_owned();
        let r = env.post(&format!("{prefix}/indicators/BatchDelete"), &json!({"IndicatorIds": [id2]})).await;
        assert_eq!(r.status, 204, "{}", r.text);
        assert!(r.text.is_empty());
    }
    assert!(env.emu.indicators().is_empty());
}

#[tokio::test]
async fn wrong_method_is_405_with_allow_and_empty_body() {
    let env = env().await;
    for (m, path, allow) in [
        (Method::PUT, "/api/indicators", "GET, POST"),
        (Method::PATCH, "/api/v1.0/indicators/5", "GET, DELETE"),
        (Method::GET, "/api/indicators/import", "POST"),
        (Method::DELETE, "/api/indicators/BatchDelete", "POST"),
        (Method::GET, &format!("/{}/oauth2/v2.0/token", env.emu.tenant_id()), "POST"),
    ] {
        let r = env.call(m.clone(), path, None).await;
        assert_eq!(r.status, 405, "{m} {path}");
        assert_eq!(r.headers["allow"], allow);
        assert!(r.text.is_empty());
    }
}

#[tokio::test]
async fn odata_headers_and_error_envelope() {
    let env = env().await;
    let r = env.get("/api/indicators").await;
    assert_eq!(r.headers["odata-version"], "4.0");
    assert_eq!(
        r.headers["content-type"],
        "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
    );
    let v = r.json();
    assert_eq!(v["@odata.context"], env.url("/api/$metadata#Indicators"));
    assert_eq!(v["value"], json!([]));
    let a = env.get("/api/indicators/999").await;
    let b = env.get("/api/indicators/999").await;
    assert_eq!((a.status, a.code().as_str()), (404, "ResourceNotFound"));
    let (ta, tb) = (a.json()["error"]["target"].clone(), b.json()["error"]["target"].clone());
    assert_ne!(ta, tb, "target must be a fresh GUID per request");
    assert_eq!(ta.as_str().unwrap().len(), 36);
    assert!(a.json()["error"]["message"].is_string());
    assert_eq!(env.get("/api/machines").await.status, 404);
}
