//! Token endpoints v1/v2, Entra-style errors, bearer validation, lifetime and forced expiry.

use iocsync_emulator::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::Value;

use crate::common::*;

async fn token_req(env: &Env, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = env.http.post(env.url(path)).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn v2(env: &Env) -> String {
    format!("/{}/oauth2/v2.0/token", env.emu.tenant_id())
}

#[tokio::test]
async fn v2_token_has_numeric_expiry_and_jwt_shape() {
    let env = env().await;
    let (s, v) = token_req(
        &env,
        &v2(&env),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    let tok = v["access_token"].as_str().unwrap();
    let parts: Vec<&str> = tok.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine as _;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap())
            .unwrap();
    assert_eq!(claims["aud"], "https://api.securitycenter.microsoft.com");
    assert_eq!(claims["appid"], DEFAULT_CLIENT_ID);
    assert_eq!(claims["tid"], env.emu.tenant_id());
    assert_eq!(claims["roles"][0], "Ti.ReadWrite.All");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3599);
}

#[tokio::test]
async fn v1_token_has_string_expiry_and_resource() {
    let env = env().await;
    let path = format!("/{}/oauth2/token", env.emu.tenant_id());
    let (s, v) = token_req(
        &env,
        &path,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("resource", "https://api.securitycenter.microsoft.com"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["expires_in"], "3599");
    assert!(v["expires_on"].is_string() && v["not_before"].is_string());
    assert_eq!(v["resource"], "https://api.securitycenter.microsoft.com");
    // The v1 token works on the API.
    let tok = v["access_token"].as_str().unwrap();
    assert_eq!(env.call_as(tok, reqwest::Method::GET, "/api/indicators", None).await.status, 200);
}

#[tokio::test]
async fn entra_errors() {
    let env = env().await;
    let path = v2(&env);
    let base = [("grant_type", "client_credentials"), ("scope", SCOPE)];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    let (s, v) =
        token_req(&env, &path, &with(&[("client_id", DEFAULT_CLIENT_ID), ("client_secret", "wrong")])).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (401, "invalid_client"));
    assert_eq!(v["error_codes"][0], 7000215);
    for k in ["error_description", "timestamp", "trace_id", "correlation_id"] {
        assert!(v[k].is_string(), "{k} missing: {v}");
    }
    assert!(!v.to_string().contains("wrong"), "secret echoed");
    let (s, v) = token_req(&env, &path, &with(&[("client_id", "nope"), ("client_secret", "x")])).await;
    assert_eq!((s, v["error_codes"][0].as_u64().unwrap()), (400, 700016));
    let (s, v) = token_req(
        &env,
        &path,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", "https://unknown.example/.default"),
        ],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap(), v["error_codes"][0].as_u64().unwrap()),
        (400, "invalid_scope", 70011)
    );
    let (s, v) = token_req(
        &env,
        "/99999999-0000-0000-0000-000000000000/oauth2/v2.0/token",
        &with(&[("client_id", DEFAULT_CLIENT_ID), ("client_secret", DEFAULT_CLIENT_SECRET)]),
    )
    .await;
    assert_eq!((s, v["error_codes"][0].as_u64().unwrap()), (400, 90002));
    let (s, v) =
        token_req(&env, &path, &[("grant_type", "password"), ("client_id", DEFAULT_CLIENT_ID)]).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "unsupported_grant_type"));
}

#[tokio::test]
async fn bearer_missing_garbage_expired_forced() {
    let env = env().await;
    let r = env.http.get(env.url("/api/indicators")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = env.call_as("garbage.token.here", reqwest::Method::GET, "/api/indicators", None).await;
    assert_eq!((r.status, r.code().as_str()), (401, "Unauthorized"));
    assert_eq!(env.get("/api/indicators").await.status, 200);
    // Lifetime: expires after 3599 s of emulator time.
    env.clock.advance(chrono::Duration::seconds(3598));
    assert_eq!(env.get("/api/indicators").await.status, 200);
    env.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(env.get("/api/indicators").await.status, 401);
    // Forced expiry.
    let fresh = token_for(&env.http, &env.emu, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    assert_eq!(env.call_as(&fresh, reqwest::Method::GET, "/api/indicators", None).await.status, 200);
    env.emu.expire_tokens();
    assert_eq!(env.call_as(&fresh, reqwest::Method::GET, "/api/indicators", None).await.status, 401);
}

#[tokio::test]
async fn configurable_lifetime() {
    let (mut cfg, clock) = config();
    cfg.token_lifetime = std::time::Duration::from_secs(60);
    let env = env_with((cfg, clock)).await;
    env.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(env.get("/api/indicators").await.status, 401);
}

#[tokio::test]
async fn wrong_audience_and_no_role() {
    let env = env().await;
    let (s, v) = token_req(
        &env,
        &v2(&env),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    let graph = v["access_token"].as_str().unwrap();
    assert_eq!(env.call_as(graph, reqwest::Method::GET, "/api/indicators", None).await.status, 401);
    let norole = token_for(&env.http, &env.emu, NOROLE_APP, "norole").await;
    let r = env.call_as(&norole, reqwest::Method::GET, "/api/indicators", None).await;
    assert_eq!((r.status, r.code().as_str()), (403, "Forbidden"));
}

#[tokio::test]
async fn client_secret_basic_is_accepted() {
    let env = env().await;
    let r = env
        .http
        .post(env.url(&v2(&env)))
        .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = env
        .http
        .post(env.url(&v2(&env)))
        .basic_auth(DEFAULT_CLIENT_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
