//! Fault injection: statuses without side effects, dropped connections, malformed bodies, triggers.

use iocsync_emulator::{EndpointFamily, Fault, FaultRule, Trigger};
use serde_json::json;

use crate::common::*;

fn rule(family: EndpointFamily, fault: Fault, trigger: Trigger) -> FaultRule {
    FaultRule { family: Some(family), fault, trigger }
}

#[tokio::test]
async fn status_faults_have_no_side_effects() {
    let env = env().await;
    env.emu.inject(rule(EndpointFamily::Import, Fault::Status(503), Trigger::Nth(2)));
    assert_eq!(env.import(vec![ip(1)]).await.status, 200);
    let r = env.import(vec![ip(2)]).await;
    assert_eq!((r.status, r.code().as_str()), (503, "ServiceUnavailable"));
    assert_eq!(env.emu.indicators().len(), 1);
    assert_eq!(env.import(vec![ip(2)]).await.status, 200);
    env.emu.inject(rule(EndpointFamily::Submit, Fault::Status(429), Trigger::FirstN(1)));
    let r = env.post("/api/indicators", &ip(3)).await;
    assert_eq!((r.status, r.headers["retry-after"].to_str().unwrap()), (429, "1"));
    for code in [500, 502, 504] {
        env.emu.clear_faults();
        env.emu.inject(FaultRule { family: None, fault: Fault::Status(code), trigger: Trigger::Always });
        assert_eq!(env.get("/api/indicators").await.status, code);
    }
    env.emu.clear_faults();
    assert_eq!(env.emu.indicators().len(), 2);
}

async fn raw_import(env: &Env, n: u32) -> Result<bytes::Bytes, reqwest::Error> {
    let r = env
        .http
        .post(env.url("/api/indicators/import"))
        .bearer_auth(&env.token)
        .json(&json!({"Indicators": [ip(n)]}))
        .send()
        .await?;
    r.bytes().await
}

#[tokio::test]
async fn dropped_connection_is_a_client_error() {
    let env = env().await;
    env.emu.inject(rule(EndpointFamily::Import, Fault::Drop, Trigger::Nth(1)));
    let err = raw_import(&env, 1).await.unwrap_err();
    // Observed: hyper IncompleteMessage ("connection closed before message completed") at send().
    assert!(err.is_request() || err.is_body(), "expected a connection-level error, got {err:?}");
    assert!(env.emu.indicators().is_empty(), "Drop must not commit");
    env.emu.inject(rule(EndpointFamily::Import, Fault::DropAfterCommit, Trigger::Nth(1)));
    assert!(raw_import(&env, 2).await.is_err());
    assert_eq!(env.emu.indicators().len(), 1, "DropAfterCommit commits");
}

#[tokio::test]
async fn malformed_and_delay() {
    let env = env().await;
    env.emu.inject(rule(EndpointFamily::Import, Fault::Malformed, Trigger::FirstN(1)));
    let body = raw_import(&env, 1).await.unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    assert!(env.emu.indicators().is_empty());
    env.emu.inject(rule(
        EndpointFamily::List,
        Fault::Delay(std::time::Duration::from_millis(20)),
        Trigger::Always,
    ));
    // A delayed call is then handled normally.
    assert_eq!(env.post("/api/indicators", &ip(2)).await.status, 200);
    let r = env.get("/api/indicators").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 1);
    let last = env.emu.calls().pop().unwrap();
    assert_eq!(last.fault, Some(Fault::Delay(std::time::Duration::from_millis(20))));
}

#[tokio::test]
async fn token_faults_and_seeded_probability() {
    let env = env().await;
    env.emu.inject(rule(EndpointFamily::Token, Fault::Status(503), Trigger::FirstN(1)));
    let url = env.url(&format!("/{}/oauth2/v2.0/token", env.emu.tenant_id()));
    let r = env.http.post(&url).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // Same seed, same pattern.
    let mut patterns = Vec::new();
    for _ in 0..2 {
        let (mut cfg, clock) = config();
        cfg.fault_seed = 42;
        let e = env_with((cfg, clock)).await;
        e.emu.inject(FaultRule {
            family: None,
            fault: Fault::Status(500),
            trigger: Trigger::Probability(0.5),
        });
        let mut p = Vec::new();
        for _ in 0..20 {
            p.push(e.get("/api/indicators").await.status);
        }
        patterns.push(p);
    }
    assert_eq!(patterns[0], patterns[1]);
    assert!(patterns[0].contains(&500) && patterns[0].contains(&200));
}
