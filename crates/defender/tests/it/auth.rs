//! Tokens: expiry mid-run, 401 recovery, wrong secrets, certificate assertions, secrecy.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iocsync_defender::{AssertionAlgorithm, Credential, DefenderClient, ErrorKind};
use iocsync_emulator::{ClientCredential, EmulatorConfig, EndpointFamily, Role};
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
    // With a single registered dispatcher, tracing-core computes a callsite's interest from the
    // registering thread's default only: a callsite another test's thread hits first would be
    // cached as "never". A second registered dispatcher makes it consult every one.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
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
    assert!(logs.contains("Defender API call"), "debug logs were captured: {logs}");
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

/// Test-only key material shared with the emulator's tests (the private key is public).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../emulator/tests/it/fixtures");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// A certificate credential from the fixture key and certificate.
fn cert_credential(algorithm: AssertionAlgorithm) -> Credential {
    let t = iocsync_defender::certificate_thumbprints(&fixture("test_client_cert.pem")).unwrap();
    Credential::Certificate {
        private_key_pem: SecretString::from(fixture("test_client_key.pem")),
        thumbprint_sha1_hex: Some(t.sha1.to_uppercase()),
        thumbprint_sha256_hex: Some(t.sha256),
        algorithm,
    }
}

/// Whether a certificate client with `algorithm` gets a token from an emulator that expects the
/// given `x5t` and `x5t#S256` headers.
async fn cert_token_accepted(
    x5t: &str,
    x5t_s256: &str,
    algorithm: AssertionAlgorithm,
) -> Result<(), ErrorKind> {
    let mut cfg = EmulatorConfig::default();
    cfg.clients.push(
        ClientCredential::with_certificate(
            "cert-app",
            &fixture("test_client_pub.pem"),
            Some(x5t),
            Role::ReadWriteAll,
            "certapp",
        )
        .with_x5t_s256(x5t_s256),
    );
    let emu = emulator(cfg).await;
    let mut c = config_for(&emu);
    c.client_id = "cert-app".into();
    c.credential = cert_credential(algorithm);
    let client = DefenderClient::new(c).unwrap();
    let result = client.fetch_token().await.map(|_| ()).map_err(|e| {
        assert!(!format!("{e:?}").contains("PRIVATE KEY"));
        e.kind()
    });
    if result.is_ok() {
        let out = client.import(&[sha_item(7)]).await.unwrap();
        assert!(!out[0].is_failed);
        assert_eq!(emu.indicators()[0].created_by, "cert-app");
    }
    assert!(!format!("{client:?}").contains("PRIVATE KEY"));
    result
}

#[tokio::test]
async fn certificate_assertions_are_ps256_by_default_and_rs256_when_switched() {
    let t = iocsync_defender::certificate_thumbprints(&fixture("test_client_cert.pem")).unwrap();
    let x5t = URL_SAFE_NO_PAD.encode(hex::decode(&t.sha1).unwrap());
    let x5t_s256 = URL_SAFE_NO_PAD.encode(hex::decode(&t.sha256).unwrap());
    let wrong = URL_SAFE_NO_PAD.encode([0u8; 20]);
    assert_eq!(AssertionAlgorithm::default(), AssertionAlgorithm::Ps256);
    // Both headers right: both algorithms get a token and can write.
    cert_token_accepted(&x5t, &x5t_s256, AssertionAlgorithm::default()).await.unwrap();
    cert_token_accepted(&x5t, &x5t_s256, AssertionAlgorithm::Rs256).await.unwrap();
    // The default sends x5t#S256 (a wrong SHA-1 x5t does not matter to it) ...
    cert_token_accepted(&wrong, &x5t_s256, AssertionAlgorithm::default()).await.unwrap();
    assert_eq!(cert_token_accepted(&wrong, &x5t_s256, AssertionAlgorithm::Rs256).await, Err(ErrorKind::Auth));
    // ... and RS256 sends x5t: a wrong SHA-256 is refused only for PS256.
    cert_token_accepted(&x5t, &wrong, AssertionAlgorithm::Rs256).await.unwrap();
    assert_eq!(cert_token_accepted(&x5t, &wrong, AssertionAlgorithm::default()).await, Err(ErrorKind::Auth));
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
