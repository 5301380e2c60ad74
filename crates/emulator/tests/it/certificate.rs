//! Certificate credential: RS256 client assertions verified with the registered public key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iocsync_emulator::{ClientCredential, Role};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use serde_json::{Value, json};

use crate::common::*;

const CERT_APP: &str = "44444444-4444-4444-8444-444444444444";
const X5T: &str = "c29tZS10aHVtYnByaW50LW9mLXRoZS1jZXJ0";

fn sign(header: &Value, claims: &Value) -> String {
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(include_str!("fixtures/test_client_key.pem")).unwrap();
    let signing = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = signing.sign(msg.as_bytes()).to_bytes();
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
}

async fn cert_env(pub_pem: &str) -> Env {
    let (mut cfg, clock) = config();
    cfg.clients.push(ClientCredential::with_certificate(
        CERT_APP,
        pub_pem,
        Some(X5T),
        Role::ReadWriteAll,
        "Cert-App",
    ));
    env_with((cfg, clock)).await
}

async fn request(env: &Env, assertion: &str) -> (u16, Value) {
    let url = env.url(&format!("/{}/oauth2/v2.0/token", env.emu.tenant_id()));
    let r = env
        .http
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CERT_APP),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

fn claims(env: &Env, aud: Option<String>, exp_offset: i64) -> Value {
    let now = t0().timestamp();
    json!({
        "aud": aud.unwrap_or_else(|| env.url(&format!("/{}/oauth2/v2.0/token", env.emu.tenant_id()))),
        "iss": CERT_APP, "sub": CERT_APP, "jti": "j1", "nbf": now - 10, "exp": now + exp_offset,
    })
}

#[tokio::test]
async fn valid_assertion_gets_a_working_token() {
    let env = cert_env(include_str!("fixtures/test_client_pub.pem")).await;
    let a = sign(&json!({"alg": "RS256", "typ": "JWT", "x5t": X5T}), &claims(&env, None, 600));
    let (s, v) = request(&env, &a).await;
    assert_eq!(s, 200, "{v}");
    let tok = v["access_token"].as_str().unwrap();
    assert_eq!(env.call_as(tok, reqwest::Method::GET, "/api/indicators", None).await.status, 200);
}

#[tokio::test]
async fn bad_assertions_are_rejected() {
    let env = cert_env(include_str!("fixtures/test_client_pub.pem")).await;
    let header = json!({"alg": "RS256", "typ": "JWT", "x5t": X5T});
    // Wrong x5t.
    let a = sign(&json!({"alg": "RS256", "x5t": "other"}), &claims(&env, None, 600));
    assert_eq!(request(&env, &a).await.0, 401);
    // Wrong audience.
    let a = sign(
        &header,
        &claims(&env, Some("https://login.microsoftonline.com/x/oauth2/v2.0/token".into()), 600),
    );
    assert_eq!(request(&env, &a).await.0, 401);
    // Expired.
    let a = sign(&header, &claims(&env, None, -3600));
    let (s, v) = request(&env, &a).await;
    assert_eq!((s, v["error_codes"][0].as_u64().unwrap()), (401, 700024));
    // Tampered payload (signature no longer matches).
    let good = sign(&header, &claims(&env, None, 600));
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims(&env, None, 600);
    c["sub"] = json!("someone-else");
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(c.to_string()), parts[2]);
    let (s, v) = request(&env, &tampered).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (401, "invalid_client"));
    // iss != client id.
    let mut c = claims(&env, None, 600);
    c["iss"] = json!("x");
    assert_eq!(request(&env, &sign(&header, &c)).await.0, 401);
}

#[tokio::test]
async fn signature_checked_against_registered_key() {
    let env = cert_env(include_str!("fixtures/other_pub.pem")).await;
    let a = sign(&json!({"alg": "RS256", "x5t": X5T}), &claims(&env, None, 600));
    let (s, v) = request(&env, &a).await;
    assert_eq!((s, v["error_codes"][0].as_u64().unwrap()), (401, 700027));
}
