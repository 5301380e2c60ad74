//! A TAXII 2.1 collection as a feed: three pages with `next`, bearer auth from the environment,
//! and a second run that asks only for what was added after the first.

use crate::harness::{Env, EnvOptions};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "taxii-bearer-token-0d9c";

#[derive(Default)]
struct Collection {
    /// (date_added, STIX indicator object)
    objects: Vec<(String, serde_json::Value)>,
    /// `added_after` of every request, in order (None when absent).
    asked: Vec<Option<String>>,
    page_size: usize,
}

fn indicator(n: usize, ip: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "indicator", "spec_version": "2.1", "id": format!("indicator--00000000-0000-4000-8000-{n:012}"),
        "created": "2026-11-01T00:00:00.000Z", "modified": "2026-11-01T00:00:00.000Z",
        "pattern": format!("[ipv4-addr:value = '{ip}']"), "pattern_type": "stix", "valid_from": "2026-11-01T00:00:00Z"
    })
}

async fn objects(
    State(c): State<Arc<Mutex<Collection>>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut c = c.lock().unwrap();
    c.asked.push(q.get("added_after").cloned());
    let after = q.get("added_after").cloned().unwrap_or_default();
    let matching: Vec<&(String, serde_json::Value)> = c.objects.iter().filter(|(d, _)| *d > after).collect();
    let start: usize = q.get("next").and_then(|n| n.parse().ok()).unwrap_or(0);
    let page: Vec<_> = matching.iter().skip(start).take(c.page_size).collect();
    let more = start + page.len() < matching.len();
    let mut body = serde_json::json!({ "more": more, "objects": page.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>() });
    if more {
        body["next"] = serde_json::Value::String((start + page.len()).to_string());
    }
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/taxii+json;version=2.1"));
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        h.insert("x-taxii-date-added-first", HeaderValue::from_str(&first.0).unwrap());
        h.insert("x-taxii-date-added-last", HeaderValue::from_str(&last.0).unwrap());
    }
    (h, body.to_string()).into_response()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taxii_collection_is_paged_and_only_new_objects_are_asked_for_next_time() {
    let coll = Arc::new(Mutex::new(Collection { page_size: 2, ..Collection::default() }));
    {
        let mut c = coll.lock().unwrap();
        for i in 0..6 {
            c.objects.push((
                format!("2026-11-0{}T00:00:00.000Z", i + 1),
                indicator(i, &format!("45.10.0.{}", i + 1)),
            ));
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/api1/collections/abc/objects/", get(objects)).with_state(coll.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let env = Env::start(EnvOptions::default()).await;
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"taxii\"\nsource = \"http://{addr}/api1/collections/abc/objects/\"\nformat = \"taxii\"\nauth = {{ bearer_env = \"IOCSYNC_TEST_TAXII_TOKEN\" }}\n"
    ));
    let vars = [("IOCSYNC_TEST_TAXII_TOKEN", TOKEN)];
    let out = env.run_with(&["--output", "json", "sync"], &vars).await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report["counts"]["create"], 6, "{report}");
    {
        let c = coll.lock().unwrap();
        assert_eq!(c.asked.len(), 3, "three pages of two objects");
        assert!(c.asked.iter().all(Option::is_none), "the first run asks for everything: {:?}", c.asked);
    }

    // Two objects are added; the next run asks only for what came after the newest one it saw.
    {
        let mut c = coll.lock().unwrap();
        c.objects.push(("2026-11-07T00:00:00.000Z".into(), indicator(6, "45.10.0.7")));
        c.objects.push(("2026-11-08T00:00:00.000Z".into(), indicator(7, "45.10.0.8")));
        c.asked.clear();
    }
    let out = env.run_with(&["--output", "json", "sync"], &vars).await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["counts"]["create"], 2, "{report}");
    assert_eq!(report["counts"]["unchanged"], 6, "objects seen before stay desired: {report}");
    let c = coll.lock().unwrap();
    assert_eq!(c.asked, vec![Some("2026-11-06T00:00:00.000Z".to_owned())]);
    drop(c);
    assert_eq!(env.owned().len(), 8);

    // The token never reaches the output.
    assert!(!String::from_utf8_lossy(&out.stderr).contains(TOKEN));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(TOKEN));
}
