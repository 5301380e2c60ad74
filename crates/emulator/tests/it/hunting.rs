//! Advanced hunting over HTTP (spec §13.13): both APIs, their tokens and permissions, the rate
//! window, the CPU-quota error, and the KQL subset over seeded events.

use base64::Engine as _;
use iocsync_emulator::Clock as _;
use iocsync_emulator::{
    CPU_QUOTA_MESSAGE, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EndpointFamily, HuntingApi, HuntingGrants,
    RateLimits, Window, parse_events_jsonl,
};
use serde_json::{Value, json};

use crate::common::{Env, config, env, env_with};

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const GRAPH_PATH: &str = "/v1.0/security/runHuntingQuery";
const MDE_PATH: &str = "/api/advancedqueries/run";

async fn graph_token(env: &Env, id: &str, secret: &str) -> String {
    let url = format!("{}/{}/oauth2/v2.0/token", env.emu.base_url(), env.emu.tenant_id());
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("scope", GRAPH_SCOPE),
    ];
    let v: Value = env.http.post(url).form(&form).send().await.unwrap().json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

fn roles_of(token: &str) -> Vec<String> {
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap())
            .unwrap();
    claims["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect()
}

async fn seeded() -> Env {
    let env = env().await;
    let events = parse_events_jsonl(
        r#"{"Table": "DeviceNetworkEvents", "Timestamp": "-1d", "DeviceId": "d1", "RemoteIP": "198.51.100.7"}
{"Table": "DeviceNetworkEvents", "Timestamp": "-2d", "DeviceId": "d2", "RemoteIP": "198.51.100.7"}
{"Table": "DeviceNetworkEvents", "Timestamp": "-45d", "DeviceId": "d3", "RemoteIP": "198.51.100.7"}
{"Table": "DeviceFileEvents", "Timestamp": "-3h", "DeviceId": "d4", "SHA256": "0000000000000000000000000000000000000000000000000000000000000001"}"#,
        env.clock.now(),
    )
    .unwrap();
    env.emu.add_hunting_events(events);
    env
}

const SUMMARY: &str = "DeviceNetworkEvents | where Timestamp > ago(30d) | where RemoteIP in (\"198.51.100.7\") \
                       | summarize Devices = dcount(DeviceId), Events = count(), LastSeen = max(Timestamp) by RemoteIP";

#[tokio::test]
async fn graph_and_mde_answer_the_same_query_in_their_own_shapes() {
    let env = seeded().await;
    let graph = graph_token(&env, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    assert_eq!(roles_of(&graph), ["ThreatHunting.Read.All"], "a Graph token carries only Graph roles");
    assert!(roles_of(&env.token).contains(&"AdvancedQuery.Read.All".to_owned()));

    let r = env.call_as(&graph, reqwest::Method::POST, GRAPH_PATH, Some(&json!({"Query": SUMMARY}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(
        v["results"],
        json!([{"RemoteIP": "198.51.100.7", "Devices": 2, "Events": 2, "LastSeen": v["results"][0]["LastSeen"]}])
    );
    assert_eq!(v["schema"][1], json!({"name": "Devices", "type": "Int64"}));

    let r = env.post(MDE_PATH, &json!({"Query": SUMMARY})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["Results"][0]["Devices"], 2);
    assert_eq!(r.json()["Schema"][0], json!({"Name": "RemoteIP", "Type": "String"}));
    assert_eq!(env.emu.hunting_queries(), [SUMMARY, SUMMARY]);
}

#[tokio::test]
async fn each_api_wants_its_own_audience_and_permission() {
    let env = seeded().await;
    let graph = graph_token(&env, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let body = json!({"Query": SUMMARY});
    // A Defender token on Graph, and a Graph token on the Defender API, are refused.
    let r = env.post(GRAPH_PATH, &body).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("graph.microsoft.com/.default"), "{}", r.text);
    let r = env.call_as(&graph, reqwest::Method::POST, MDE_PATH, Some(&body)).await;
    assert_eq!(r.status, 401, "{}", r.text);
    // Without the permission: 403 naming it, and the token no longer carries the role.
    env.emu.set_hunting_grants(HuntingGrants::Only(vec![(DEFAULT_CLIENT_ID.to_owned(), HuntingApi::Mde)]));
    let graph = graph_token(&env, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    assert!(roles_of(&graph).is_empty());
    let r = env.call_as(&graph, reqwest::Method::POST, GRAPH_PATH, Some(&body)).await;
    assert_eq!((r.status, r.code()), (403, "Forbidden".to_owned()));
    assert!(r.text.contains("ThreatHunting.Read.All"), "{}", r.text);
    assert_eq!(env.post(MDE_PATH, &body).await.status, 200);
    // Only POST.
    let r = env.get(MDE_PATH).await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn syntax_errors_and_unknown_columns_get_the_service_text() {
    let env = seeded().await;
    for (q, want) in [
        ("DeviceNetworkEvents | extend x = 1", "Query could not be parsed at 'extend'"),
        (
            "DeviceNetworkEvents | where RemoteIP in (\"x\nunion DeviceFileEvents\")",
            "Query could not be parsed",
        ),
        ("DeviceNetworkEvents | where Nope == \"x\"", "Failed to resolve scalar expression named 'Nope'"),
    ] {
        let r = env.post(MDE_PATH, &json!({"Query": q})).await;
        assert_eq!((r.status, r.code()), (400, "BadRequest".to_owned()), "{q}");
        assert!(r.json()["error"]["message"].as_str().unwrap().starts_with(want), "{q}: {}", r.text);
    }
    let r = env.post(MDE_PATH, &json!({"Nothing": 1})).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn cpu_quota_errors_are_429_with_retry_after_and_then_clear() {
    let env = seeded().await;
    env.emu.exhaust_hunting_quota(2);
    for _ in 0..2 {
        let r = env.post(MDE_PATH, &json!({"Query": SUMMARY})).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.json()["error"]["message"], CPU_QUOTA_MESSAGE);
        assert!(r.headers.get("retry-after").is_some());
    }
    assert_eq!(env.post(MDE_PATH, &json!({"Query": SUMMARY})).await.status, 200);
}

#[tokio::test]
async fn the_hunting_rate_window_is_45_per_minute_per_api() {
    let documented = RateLimits::documented().hunting;
    assert_eq!(documented.per_minute, Window { limit: 45, length: std::time::Duration::from_secs(60) });
    assert_eq!(documented.per_hour.limit, 1500);
    let (mut cfg, clock) = config();
    cfg.rate_limits = RateLimits { hunting: documented, ..RateLimits::unlimited() };
    let env = env_with((cfg, clock)).await;
    let body = json!({"Query": "DeviceNetworkEvents | take 1"});
    for _ in 0..45 {
        assert_eq!(env.post(MDE_PATH, &body).await.status, 200);
    }
    let r = env.post(MDE_PATH, &body).await;
    assert_eq!(r.status, 429);
    // Graph has its own window.
    let graph = graph_token(&env, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    assert_eq!(env.call_as(&graph, reqwest::Method::POST, GRAPH_PATH, Some(&body)).await.status, 200);
    env.clock.advance(chrono::Duration::seconds(60));
    assert_eq!(env.post(MDE_PATH, &body).await.status, 200);
    let calls = env.emu.calls();
    assert_eq!(calls.iter().filter(|c| c.family == EndpointFamily::AdvancedQueries).count(), 47);
    assert_eq!(calls.iter().filter(|c| c.family == EndpointFamily::RunHuntingQuery).count(), 1);
}
