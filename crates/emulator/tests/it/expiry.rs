//! Expired indicators leave the list, after a configurable cleanup lag.

use iocsync_emulator::{Behaviour, PastExpiration};
use serde_json::json;

use crate::common::*;

/// Tokens outlive the clock jumps of these tests.
async fn long_env() -> Env {
    let (mut cfg, clock) = config();
    cfg.token_lifetime = std::time::Duration::from_secs(86_400);
    env_with((cfg, clock)).await
}

fn expiring(n: u32, at: &str) -> serde_json::Value {
    let mut b = ip(n);
    b["expirationTime"] = json!(at);
    b
}

#[tokio::test]
async fn expired_rows_leave_the_list() {
    let env = long_env().await;
    let r = env.post("/api/indicators", &expiring(1, "2025-06-01T13:00:00Z")).await;
    let id = r.json()["id"].as_str().unwrap().to_owned();
    env.post("/api/indicators", &ip(2)).await;
    assert_eq!(env.get("/api/indicators").await.json()["value"].as_array().unwrap().len(), 2);
    env.clock.advance(chrono::Duration::hours(1));
    let v = env.get("/api/indicators").await.json();
    assert_eq!(v["value"].as_array().unwrap().len(), 1);
    assert_eq!(env.get(&format!("/api/indicators/{id}")).await.status, 404);
    assert_eq!(env.emu.indicators().len(), 1);
}

#[tokio::test]
async fn cleanup_lag_keeps_them_listed_for_a_while() {
    let env = long_env().await;
    env.emu.set_behaviour(Behaviour {
        expiry_cleanup_lag: std::time::Duration::from_secs(3600),
        ..Behaviour::default()
    });
    env.post("/api/indicators", &expiring(1, "2025-06-01T13:00:00Z")).await;
    env.clock.advance(chrono::Duration::minutes(90));
    assert_eq!(env.get("/api/indicators").await.json()["value"].as_array().unwrap().len(), 1);
    env.clock.advance(chrono::Duration::minutes(31));
    assert_eq!(env.get("/api/indicators").await.json()["value"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn past_expiration_accept_or_reject() {
    let env = long_env().await;
    let r = env.post("/api/indicators", &expiring(1, "2025-01-01T00:00:00Z")).await;
    assert_eq!(r.status, 200);
    assert_eq!(env.get("/api/indicators").await.json()["value"].as_array().unwrap().len(), 0);
    env.emu.set_behaviour(Behaviour { past_expiration: PastExpiration::Reject, ..Behaviour::default() });
    let r = env.post("/api/indicators", &expiring(2, "2025-01-01T00:00:00Z")).await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidInput"));
}
