//! Tokens: expiry mid-run, 401 recovery, wrong secrets, certificate assertions, secrecy.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iocsync_defender::{Credential, DefenderClient, ErrorKind};
use iocsync_emulator::{ClientCredential, EmulatorConfig, EndpointFamily, Role};
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use secrecy::SecretString;

use crate::common::{TAG, calls_of, client_for, config_for, emulator, sha_item};

#[tokio::test]
async fn token_expiry_mid_run_is_recovered_with_one_refresh() {
    let emu = emulator(EmulatorConfig::default()).await;
    let client = client_for(&emu);
    let items: Vec<_> = (0..3).map(sha_item).collect();
    let out = client.import(&items).await.unwrap();
    assert!(out.iter().all(|o| !o.is_failed));
    assert_eq!(client.stats().token, 1);

    emu.expire_tokens();
    let owned = client.list_owned(TAG).await.unwrap();
    assert_eq!(owned.len(), 3);
    // One 401 on the list, a new token, the list again.
    assert_eq!(client.stats().token, 2);
    let lists = calls_of(&emu, EndpointFamily::List);
    assert_eq!(lists.iter().map(|c| c.status).collect::<Vec<_>>(), vec![401, 200]);

    emu.expire_tokens();
    let gone = client.batch_delete(&[out[0].id.clone().unwrap()]).await.unwrap();
    assert_eq!(gone.deleted.len(), 1);
    assert_eq!(client.stats().token, 3);
    assert_eq!(emu.indicators().len(), 2);
}

#[tokio::test]
async fn a_client_without_ti_role_gets_a_permanent_auth_error() {
    let mut cfg = EmulatorConfig::default();
    cfg.clients.push(ClientCredential::with_secret("no-role-app", "no-role-secret", Role::None, "norole"));
    let emu = emulator(cfg).await;
    let mut c = config_for(&emu);
    c.client_id = "no-role-app".into();
    c.credential = Credential::Secret(SecretString::from("no-role-secret"));
    let client = DefenderClient::new(c).unwrap();
    let err = client.list_all().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(err.status(), Some(403));
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("Ti.ReadWrite"), "{err}");
    // Not retried: exactly one list call.
    assert_eq!(client.stats().list, 1);
}

/// A `MakeWriter` that appends to a shared buffer.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_and_tokens_appear_in_no_log_line_and_no_error() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emu = emulator(EmulatorConfig::default()).await;
    let good = client_for(&emu);
    good.import(&[sha_item(1)]).await.unwrap();
    emu.expire_tokens();
    emu.inject(iocsync_emulator::FaultRule::new(
        Some(EndpointFamily::List),
        iocsync_emulator::Fault::Status(503),
        iocsync_emulator::Trigger::Nth(1),
    ));
    assert_eq!(good.list_all().await.unwrap().len(), 1);

    let wrong_secret = "WRONG-secret-value-0123456789";
    let mut c = config_for(&emu);
    c.credential = Credential::Secret(SecretString::from(wrong_secret));
    let bad = DefenderClient::new(c).unwrap();
    let err = bad.fetch_token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(!err.is_retryable());
    assert_eq!(err.code(), Some("invalid_client"));
    assert!(err.request_id().is_some(), "Entra trace id kept: {err:?}");
    let err_list = bad.list_all().await.unwrap_err();

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("Defender API call"), "debug logs were captured");
    assert!(logs.contains("refreshing the access token"), "the 401 was logged");
    let texts = [
        logs,
        format!("{err}"),
        format!("{err:?}"),
        format!("{err_list}"),
        format!("{err_list:?}"),
        format!("{good:?}"),
        format!("{bad:?}"),
        format!("{:?}", config_for(&emu)),
    ];
    for t in &texts {
        assert!(!t.contains(iocsync_emulator::DEFAULT_CLIENT_SECRET), "secret leaked: {t}");
        assert!(!t.contains(wrong_secret), "wrong secret leaked: {t}");
        // Emulator tokens are JWTs: base64url of `{"` starts with eyJ.
        assert!(!t.contains("eyJ"), "token leaked: {t}");
        assert!(!t.contains("Bearer "), "authorization header leaked: {t}");
    }
}

#[tokio::test]
async fn certificate_credential_signs_an_accepted_client_assertion() {
    let mut rng = rand::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public_pem = key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let thumb = "5a0e6bdbd3e54a57cd0b8d6ce1a1d3e1c2b3a4f5";
    let x5t = URL_SAFE_NO_PAD.encode(hex::decode(thumb).unwrap());

    let mut cfg = EmulatorConfig::default();
    cfg.clients.push(ClientCredential::with_certificate(
        "cert-app",
        &public_pem,
        Some(&x5t),
        Role::ReadWriteAll,
        "certapp",
    ));
    let emu = emulator(cfg).await;

    let mut c = config_for(&emu);
    c.client_id = "cert-app".into();
    c.credential = Credential::Certificate {
        private_key_pem: SecretString::from(private_pem.clone()),
        thumbprint_sha1_hex: thumb.to_uppercase(),
    };
    let client = DefenderClient::new(c.clone()).unwrap();
    client.fetch_token().await.unwrap();
    let out = client.import(&[sha_item(7)]).await.unwrap();
    assert!(!out[0].is_failed);
    assert_eq!(emu.indicators()[0].created_by, "cert-app");

    // A wrong thumbprint is refused by Entra: permanent auth error without key material.
    c.credential = Credential::Certificate {
        private_key_pem: SecretString::from(private_pem.clone()),
        thumbprint_sha1_hex: "00".repeat(20),
    };
    let err = DefenderClient::new(c).unwrap().fetch_token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(!format!("{err:?}").contains("PRIVATE KEY"));
    assert!(!format!("{client:?}").contains("PRIVATE KEY"));
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_at_construction() {
    let emu = emulator(EmulatorConfig::default()).await;
    let mut c = config_for(&emu);
    c.api_base = Some("http://api.securitycenter.microsoft.com".into());
    let err = DefenderClient::new(c).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("https is required"), "{err}");
    let mut c = config_for(&emu);
    c.credential = Credential::Secret(SecretString::from("  "));
    assert_eq!(DefenderClient::new(c).unwrap_err().kind(), ErrorKind::Config);
}
