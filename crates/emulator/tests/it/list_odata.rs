//! List: OData $filter subset, $top, $skip and @odata.nextLink paging.

use iocsync_emulator::Behaviour;
use serde_json::{Value, json};

use crate::common::*;

fn ids(v: &Value) -> Vec<String> {
    v["value"].as_array().unwrap().iter().map(|i| i["indicatorValue"].as_str().unwrap().to_owned()).collect()
}

async fn fixture(env: &Env) {
    let mut a = ip(1);
    a["title"] = json!("C2 it's bad");
    a["expirationTime"] = json!("2026-01-01T00:00:00Z");
    a["rbacGroupNames"] = json!(["Servers"]);
    let b = json!({"indicatorValue": "evil.example", "indicatorType": "DomainName", "action": "Warn", "title": "phish", "description": "d", "severity": "Low", "application": "feedx"});
    let c = json!({"indicatorValue": md5(3), "indicatorType": "FileMd5", "action": "Audit", "generateAlert": true, "title": "malware", "description": "d"});
    let r = env.import(vec![a, b, c]).await;
    assert_eq!(r.status, 200);
}

async fn filter(env: &Env, f: &str) -> Vec<String> {
    let url = reqwest::Url::parse_with_params(&env.url("/api/indicators"), &[("$filter", f)]).unwrap();
    let r = env.http.get(url).bearer_auth(&env.token).send().await.unwrap();
    assert_eq!(r.status(), 200, "{f}");
    ids(&r.json().await.unwrap())
}

#[tokio::test]
async fn filter_subset() {
    let env = env().await;
    fixture(&env).await;
    let m = md5(3);
    assert_eq!(filter(&env, "indicatorType eq 'IpAddress'").await, ["8.0.0.1"]);
    assert_eq!(filter(&env, "indicatorType ne 'IpAddress'").await, ["evil.example", m.as_str()]);
    assert_eq!(filter(&env, "action eq 'Warn' or severity eq 'High'").await, ["8.0.0.1", "evil.example"]);
    assert_eq!(filter(&env, "contains(title,'it''s') and action eq 'Block'").await, ["8.0.0.1"]);
    assert_eq!(filter(&env, "startswith(indicatorValue,'evil')").await, ["evil.example"]);
    assert_eq!(filter(&env, "expirationTime le 2026-06-01T00:00:00Z").await, ["8.0.0.1"]);
    assert_eq!(filter(&env, "expirationTime gt 2026-06-01T00:00:00Z").await, Vec::<String>::new());
    assert_eq!(filter(&env, "creationTimeDateTimeUtc ge 2025-06-01T00:00:00Z").await.len(), 3);
    assert_eq!(filter(&env, "creationTimeDateTimeUtc lt 2025-06-01T00:00:00Z").await.len(), 0);
    assert_eq!(filter(&env, "generateAlert eq true").await, [m.as_str()]);
    assert_eq!(filter(&env, "application eq 'feedx'").await, ["evil.example"]);
    assert_eq!(filter(&env, "rbacGroupNames eq 'Servers'").await, ["8.0.0.1"]);
    assert_eq!(
        filter(&env, "(severity eq 'Low' or severity eq 'High') and indicatorType ne 'DomainName'").await,
        ["8.0.0.1"]
    );
    assert_eq!(
        filter(&env, "severity eq 'Low' or severity eq 'High' and indicatorType ne 'DomainName'").await.len(),
        2
    );
}

#[tokio::test]
async fn bad_queries_are_odata_errors() {
    let env = env().await;
    for q in [
        "$filter=id%20eq%20'1'",
        "$filter=action%20eq%20Block",
        "$filter=Action%20eq%20'Block'",
        "$filter=action%20in%20('Block')",
        "$filter=(action%20eq%20'Block'",
        "$top=10001",
        "$top=-1",
        "$skip=x",
        "$orderby=title",
    ] {
        let r = env.get(&format!("/api/indicators?{q}")).await;
        assert_eq!((r.status, r.code().as_str()), (400, "ODataError"), "{q}");
    }
    // Spaces as '+' are accepted.
    assert_eq!(env.get("/api/indicators?$filter=action+eq+'Block'&$top=10000").await.status, 200);
}

#[tokio::test]
async fn paging_follows_next_link() {
    let (mut cfg, clock) = config();
    cfg.page_size = 3;
    let env = env_with((cfg, clock)).await;
    env.import((1..=8).map(ip).collect()).await;
    let mut url = env.url("/api/v1.0/indicators");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = env.http.get(&url).bearer_auth(&env.token).send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        seen.extend(ids(&v));
        pages += 1;
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&env.url("/api/v1.0/indicators?")), "{next}");
                assert!(next.contains("$skip="), "{next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 8);
    // $top sizes the page (never above page_size) and $filter/$top are kept in the nextLink, so
    // a client listing with $top=10000 pages on (spec §3 E1: 15,000 rows in 2 calls).
    let v = env.get("/api/indicators?$filter=action%20eq%20'Block'&$top=2").await.json();
    assert_eq!(ids(&v), ["8.0.0.1", "8.0.0.2"]);
    let next = v["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(next.contains("$filter=") && next.contains("$top=2") && next.contains("$skip=2"), "{next}");
    // Strict OData (switch `top_limits_total`): $top bounds the total.
    env.emu.set_behaviour(Behaviour { top_limits_total: true, ..Behaviour::default() });
    let v = env.get("/api/indicators?$filter=action%20eq%20'Block'&$top=5").await.json();
    assert_eq!(ids(&v).len(), 3);
    let next = v["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(next.contains("$filter=") && next.contains("$top=2") && next.contains("$skip=3"), "{next}");
    let r = env.http.get(&next).bearer_auth(&env.token).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(ids(&v), ["8.0.0.4", "8.0.0.5"]);
    assert!(v.get("@odata.nextLink").is_none());
    env.emu.set_behaviour(Behaviour::default());
    // $skip alone.
    let v = env.get("/api/indicators?$skip=7").await.json();
    assert_eq!(ids(&v), ["8.0.0.8"]);
}
