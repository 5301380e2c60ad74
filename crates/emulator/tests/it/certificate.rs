//! Certificate credential: PS256 (`x5t#S256`) and RS256 (`x5t`) client assertions verified with
//! the registered public key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iocsync_emulator::{ClientCredential, Role};
use ring::signature::RsaKeyPair;
use rustls_pki_types::PrivatePkcs1KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};

use crate::common::*;

const CERT_APP: &str = "44444444-4444-4444-8444-444444444444";
const X5T: &str = "c29tZS10aHVtYnByaW50LW9mLXRoZS1jZXJ0";
const X5T_S256: &str = "c29tZS1zaGEyNTYtdGh1bWJwcmludC1vZi10aGUtY2VydC1kZXI";

/// Signs with the test-only fixture key, with RSASSA-PSS for `PS256` and PKCS#1 v1.5 otherwise.
fn sign(header: &Value, claims: &Value) -> String {
    let der = PrivatePkcs1KeyDer::from_pem_slice(include_bytes!("fixtures/test_client_key.pem")).unwrap();
    let key = RsaKeyPair::from_der(der.secret_pkcs1_der()).unwrap();
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let padding: &'static dyn ring::signature::RsaEncoding = if header["alg"] == "PS256" {
        &ring::signature::RSA_PSS_SHA256
    } else {
        &ring::signature::RSA_PKCS1_SHA256
    };
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(padding, &ring::rand::SystemRandom::new(), msg.as_bytes(), &mut sig).unwrap();
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
}

async fn cert_env(pub_pem: &str) -> Env {
    let (mut cfg, clock) = config();
    cfg.clients.push(
        ClientCredential::with_certificate(CERT_APP, pub_pem, Some(X5T), Role::ReadWriteAll, "Cert-App")
            .with_x5t_s256(X5T_S256),
    );
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
    for header in [
        json!({"alg": "PS256", "typ": "JWT", "x5t#S256": X5T_S256}),
        json!({"alg": "RS256", "typ": "JWT", "x5t": X5T}),
    ] {
        let a = sign(&header, &claims(&env, None, 600));
        let (s, v) = request(&env, &a).await;
        assert_eq!(s, 200, "{header}: {v}");
        let tok = v["access_token"].as_str().unwrap();
        assert_eq!(env.call_as(tok, reqwest::Method::GET, "/api/indicators", None).await.status, 200);
    }
}

#[tokio::test]
async fn each_algorithm_checks_its_own_thumbprint_and_padding() {
    let env = cert_env(include_str!("fixtures/test_client_pub.pem")).await;
    let c = claims(&env, None, 600);
    // PS256 with a wrong x5t#S256, or with only the SHA-1 x5t: refused.
    for header in [
        json!({"alg": "PS256", "x5t#S256": "other"}),
        json!({"alg": "PS256", "x5t": X5T}),
        json!({"alg": "RS256", "x5t#S256": X5T_S256}),
    ] {
        let (s, v) = request(&env, &sign(&header, &c)).await;
        assert_eq!((s, v["error_codes"][0].as_u64().unwrap()), (401, 700027), "{header}");
    }
    // A PKCS#1 v1.5 signature presented as PS256 does not verify.
    let rs = sign(&json!({"alg": "RS256", "x5t#S256": X5T_S256}), &c);
    let ps_header = URL_SAFE_NO_PAD.encode(json!({"alg": "PS256", "x5t#S256": X5T_S256}).to_string());
    let parts: Vec<&str> = rs.split('.').collect();
    let (s, v) = request(&env, &format!("{ps_header}.{}.{}", parts[1], parts[2])).await;
    assert_eq!((s, v["error_codes"][0].as_u64().unwrap()), (401, 700027), "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("invalid signature"), "{v}");
    // Other algorithms are refused by name.
    let (s, v) = request(&env, &sign(&json!({"alg": "HS256"}), &c)).await;
    assert_eq!((s, v["error_codes"][0].as_u64().unwrap()), (401, 5002738));
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
    for header in [json!({"alg": "RS256", "x5t": X5T}), json!({"alg": "PS256", "x5t#S256": X5T_S256})] {
        let a = sign(&header, &claims(&env, None, 600));
        let (s, v) = request(&env, &a).await;
        assert_eq!((s, v["error_codes"][0].as_u64().unwrap()), (401, 700027), "{header}");
    }
}
