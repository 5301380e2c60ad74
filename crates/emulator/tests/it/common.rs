//! Shared helpers: start an emulator, get tokens, call the API.

use std::sync::Arc;

use iocsync_emulator::{
    ClientCredential, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, EmulatorConfig, ManualClock,
    RateLimits, Role,
};
use serde_json::{Value, json};

pub const OWN_APP: &str = "22222222-2222-4222-8222-222222222222";
pub const OWN_SECRET: &str = "own-secret";
pub const NOROLE_APP: &str = "33333333-3333-4333-8333-333333333333";
pub const SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";

pub fn t0() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z").unwrap().with_timezone(&chrono::Utc)
}

/// A config with a manual clock, no rate limits, and three clients (all, own-only, no role).
pub fn config() -> (EmulatorConfig, Arc<ManualClock>) {
    let clock = ManualClock::new(t0());
    let mut cfg = EmulatorConfig {
        clock: clock.clone(),
        rate_limits: RateLimits::unlimited(),
        ..EmulatorConfig::default()
    };
    cfg.clients.push(ClientCredential::with_secret(OWN_APP, OWN_SECRET, Role::ReadWrite, "Own-App"));
    cfg.clients.push(ClientCredential::with_secret(NOROLE_APP, "norole", Role::None, "No-Role"));
    (cfg, clock)
}

pub struct Env {
    pub emu: Emulator,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn env() -> Env {
    env_with(config()).await
}

pub async fn env_with((cfg, clock): (EmulatorConfig, Arc<ManualClock>)) -> Env {
    let emu = iocsync_emulator::start(cfg).await.unwrap();
    let http = loopback_http();
    let token = token_for(&http, &emu, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    Env { emu, clock, http, token }
}

/// A plain-HTTP client for the loopback emulator: reqwest is built without a TLS provider of its
/// own, so it gets a rustls config (ring, no trust anchors: no TLS is spoken here).
pub fn loopback_http() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls).build().unwrap()
}

pub async fn token_for(http: &reqwest::Client, emu: &Emulator, id: &str, secret: &str) -> String {
    let url = format!("{}/{}/oauth2/v2.0/token", emu.base_url(), emu.tenant_id());
    let resp = http
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Resp {
        let mut rb = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        Resp { status, headers, text }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Resp {
        self.call_as(&self.token.clone(), method, path, body).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    pub async fn import(&self, items: Vec<Value>) -> Resp {
        self.post("/api/indicators/import", &json!({ "Indicators": items })).await
    }
}

/// A valid indicator body for a public IPv4 derived from `n`.
pub fn ip(n: u32) -> Value {
    json!({
        "indicatorValue": format!("8.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
        "indicatorType": "IpAddress",
        "action": "Block",
        "title": format!("ip {n}"),
        "description": "test",
        "severity": "High",
    })
}

pub fn md5(n: u32) -> String {
    format!("{n:032x}")
}
