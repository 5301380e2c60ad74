//! Entra ID client-credentials token source: secret or certificate assertion, cached and
//! refreshed before expiry.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::RsaKeyPair;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer};
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use crate::config::{AssertionAlgorithm, Credential};
use crate::error::{Error, ErrorKind};

/// Lifetime of a client assertion JWT (the Microsoft identity platform accepts up to 10 min).
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// An access token; its `Debug` never shows the value.
#[derive(Clone)]
pub(crate) struct AccessToken(pub(crate) SecretString);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([REDACTED])")
    }
}

/// A cached token and when to stop using it.
#[derive(Debug)]
pub(crate) struct CachedToken {
    pub(crate) token: AccessToken,
    pub(crate) refresh_at: Instant,
    /// Increases with each fetched token; lets a 401 invalidate only the token it was sent with.
    pub(crate) generation: u64,
}

/// When to refresh a token that lives `lifetime`: at 90 % of it or 5 minutes before expiry,
/// whichever is earlier, but never before half of it (very short-lived tokens).
pub(crate) fn refresh_after(lifetime: Duration) -> Duration {
    let ninety = lifetime.mul_f64(0.9);
    let margin = lifetime.saturating_sub(Duration::from_secs(300));
    ninety.min(margin).max(lifetime / 2)
}

/// The private part of a certificate credential; `Debug` shows only the algorithm and thumbprint.
pub(crate) struct CertificateKey {
    key: RsaKeyPair,
    algorithm: AssertionAlgorithm,
    /// The thumbprint header: `("x5t#S256", base64url SHA-256)` for PS256, `("x5t", base64url
    /// SHA-1)` for RS256.
    thumbprint_header: (&'static str, String),
}

impl std::fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateKey")
            .field("algorithm", &self.algorithm)
            .field(self.thumbprint_header.0, &self.thumbprint_header.1)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// Hex thumbprint to bytes of `len` (colons, spaces and dashes tolerated).
fn thumbprint_bytes(hex_text: &str, len: usize) -> Option<Vec<u8>> {
    let cleaned: String = hex_text.chars().filter(|c| !matches!(c, ':' | ' ' | '-')).collect();
    hex::decode(cleaned).ok().filter(|b| b.len() == len)
}

impl CertificateKey {
    /// Parse the PEM private key (PKCS#8 or PKCS#1, RSA 2048 to 4096 bits) and take the
    /// thumbprint the algorithm needs: SHA-256 for PS256, SHA-1 for RS256.
    pub(crate) fn new(
        private_key_pem: &SecretString,
        sha1_hex: Option<&str>,
        sha256_hex: Option<&str>,
        algorithm: AssertionAlgorithm,
    ) -> Result<Self, Error> {
        const NOT_A_KEY: &str = "the certificate private key is not a PEM RSA private key \
             (expected -----BEGIN PRIVATE KEY----- (PKCS#8, unencrypted) or -----BEGIN RSA PRIVATE KEY-----)";
        let der = PrivateKeyDer::from_pem_slice(private_key_pem.expose_secret().trim().as_bytes())
            .map_err(|_| Error::config(NOT_A_KEY))?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(Error::config(NOT_A_KEY)),
        }
        .map_err(|e| {
            Error::config(format!(
                "the certificate private key cannot sign RS256/PS256 ({e}): it must be an RSA key of 2048 to 4096 bits"
            ))
        })?;
        let thumbprint_header = match algorithm {
            AssertionAlgorithm::Ps256 => {
                let hex_text = sha256_hex.ok_or_else(|| {
                    Error::config(
                        "PS256 assertions need the certificate's SHA-256 thumbprint: give cert_file \
                         (or a 64-hex thumbprint), or set algorithm = \"RS256\" to use a SHA-1 thumbprint",
                    )
                })?;
                let bytes = thumbprint_bytes(hex_text, 32).ok_or_else(|| {
                    Error::config(format!(
                        "certificate thumbprint {hex_text:?} is not a SHA-256 thumbprint (64 hex digits)"
                    ))
                })?;
                ("x5t#S256", URL_SAFE_NO_PAD.encode(bytes))
            }
            AssertionAlgorithm::Rs256 => {
                let hex_text = sha1_hex.ok_or_else(|| {
                    Error::config(
                        "RS256 assertions need the certificate's SHA-1 thumbprint: give cert_file \
                         (or a 40-hex thumbprint)",
                    )
                })?;
                let bytes = thumbprint_bytes(hex_text, 20).ok_or_else(|| {
                    Error::config(format!(
                        "certificate thumbprint {hex_text:?} is not a SHA-1 thumbprint (40 hex digits)"
                    ))
                })?;
                ("x5t", URL_SAFE_NO_PAD.encode(bytes))
            }
        };
        Ok(CertificateKey { key, algorithm, thumbprint_header })
    }

    /// Build a signed client assertion for `token_url` (PS256 with `x5t#S256`, or RS256 with
    /// `x5t`; aud/iss/sub/jti/nbf/exp).
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now_unix: i64,
    ) -> Result<SecretString, Error> {
        let mut header = serde_json::json!({"alg": self.algorithm.as_str(), "typ": "JWT"});
        header[self.thumbprint_header.0] = serde_json::Value::String(self.thumbprint_header.1.clone());
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now_unix,
            "iat": now_unix,
            "exp": now_unix + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let padding: &'static dyn ring::signature::RsaEncoding = match self.algorithm {
            AssertionAlgorithm::Ps256 => &ring::signature::RSA_PSS_SHA256,
            AssertionAlgorithm::Rs256 => &ring::signature::RSA_PKCS1_SHA256,
        };
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(padding, &ring::rand::SystemRandom::new(), signing_input.as_bytes(), &mut signature)
            .map_err(|e| {
                Error::new(ErrorKind::Config, false, format!("signing the client assertion failed: {e}"))
            })?;
        Ok(SecretString::from(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))))
    }
}

/// Credential material ready to use.
#[derive(Debug)]
pub(crate) enum PreparedCredential {
    Secret(SecretString),
    Certificate(CertificateKey),
}

impl PreparedCredential {
    pub(crate) fn new(c: &Credential) -> Result<Self, Error> {
        match c {
            Credential::Secret(s) => {
                if s.expose_secret().trim().is_empty() {
                    return Err(Error::config(
                        "the client secret is empty: check the variable or file it is read from",
                    ));
                }
                Ok(PreparedCredential::Secret(s.clone()))
            }
            Credential::Certificate {
                private_key_pem,
                thumbprint_sha1_hex,
                thumbprint_sha256_hex,
                algorithm,
            } => Ok(PreparedCredential::Certificate(CertificateKey::new(
                private_key_pem,
                thumbprint_sha1_hex.as_deref(),
                thumbprint_sha256_hex.as_deref(),
                *algorithm,
            )?)),
        }
    }
}

/// The thumbprints of a certificate (lower-case hex of digests of its DER encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbprints {
    /// SHA-1: what Entra shows, and RS256's `x5t`.
    pub sha1: String,
    /// SHA-256: PS256's `x5t#S256`.
    pub sha256: String,
}

/// The SHA-1 and SHA-256 thumbprints of the first certificate in a PEM file.
pub fn certificate_thumbprints(pem: &str) -> Result<Thumbprints, Error> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::config("no -----BEGIN CERTIFICATE----- block found in the certificate PEM"));
    }
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| Error::config(format!("the certificate PEM cannot be read: {e}")))?;
    if der.is_empty() {
        return Err(Error::config("the certificate PEM block is empty"));
    }
    Ok(Thumbprints { sha1: hex::encode(Sha1::digest(&der)), sha256: hex::encode(Sha256::digest(&der)) })
}

/// SHA-1 thumbprint (lower-case hex) of the first certificate in a PEM file, computed over its
/// DER encoding; this is the value Entra shows and an RS256 assertion's `x5t` encodes.
pub fn thumbprint_from_certificate_pem(pem: &str) -> Result<String, Error> {
    certificate_thumbprints(pem).map(|t| t.sha1)
}

/// Token endpoint success body. `Debug` is hand-written so the token never shows.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: Option<String>,
    #[serde(default, deserialize_with = "secs_number_or_string")]
    pub(crate) expires_in: Option<u64>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token.as_ref().map(|_| "[REDACTED]"))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Entra error body: `{"error", "error_description", "error_codes", "trace_id", "correlation_id"}`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct EntraError {
    pub(crate) error: Option<String>,
    pub(crate) error_description: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) correlation_id: Option<String>,
}

fn secs_number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        }
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::SubjectPublicKeyInfoDer;

    /// Test-only key material (the emulator's fixtures; the private key is public).
    const KEY: &str = include_str!("../../emulator/tests/it/fixtures/test_client_key.pem");
    const PUBLIC: &str = include_str!("../../emulator/tests/it/fixtures/test_client_pub.pem");
    const CERT: &str = include_str!("../../emulator/tests/it/fixtures/test_client_cert.pem");

    #[test]
    fn refresh_schedule() {
        // 3599 s: 90 % = 3239 s is earlier than 3599 - 300 = 3299 s.
        assert_eq!(refresh_after(Duration::from_secs(3599)).as_secs(), 3239);
        // 30 min: 5 minutes before expiry (1500 s) is earlier than 90 % (1620 s).
        assert_eq!(refresh_after(Duration::from_secs(1_800)).as_secs(), 1_500);
        // 24 h: 90 % is earlier.
        assert_eq!(refresh_after(Duration::from_secs(86_400)).as_secs(), 77_760);
        // Short tokens: never before half the lifetime.
        assert_eq!(refresh_after(Duration::from_secs(10)), Duration::from_secs(5));
    }

    #[test]
    fn expires_in_as_number_or_string() {
        let a: TokenResponse = serde_json::from_str(r#"{"access_token":"t","expires_in":3599}"#).unwrap();
        let b: TokenResponse = serde_json::from_str(r#"{"access_token":"t","expires_in":"3599"}"#).unwrap();
        assert_eq!(a.expires_in, Some(3599));
        assert_eq!(b.expires_in, Some(3599));
        assert!(!format!("{a:?}").contains("\"t\""));
    }

    /// Splits a JWT and checks its signature with the fixture's public key under `alg`.
    fn verified_parts(
        jwt: &str,
        alg: &dyn rustls_pki_types::SignatureVerificationAlgorithm,
    ) -> (serde_json::Value, serde_json::Value) {
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(PUBLIC.as_bytes()).unwrap();
        let key = webpki::RawPublicKeyEntity::try_from(&spki).unwrap();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        key.verify_signature(alg, format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
        let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        (header, claims)
    }

    #[test]
    fn assertion_is_a_verifiable_ps256_jwt_with_x5t_s256_by_default() {
        let thumbs = certificate_thumbprints(CERT).unwrap();
        let ck = CertificateKey::new(
            &SecretString::from(KEY),
            Some(&thumbs.sha1),
            Some(&thumbs.sha256),
            AssertionAlgorithm::default(),
        )
        .unwrap();
        assert!(!format!("{ck:?}").contains("PRIVATE"));
        let jwt =
            ck.assertion("client-1", "https://login.example/t/oauth2/v2.0/token", 1_700_000_000).unwrap();
        let (header, claims) =
            verified_parts(jwt.expose_secret(), webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY);
        assert_eq!(header["alg"], "PS256");
        assert!(header.get("x5t").is_none(), "{header}");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header["x5t#S256"].as_str().unwrap()).unwrap(),
            hex::decode(&thumbs.sha256).unwrap()
        );
        assert_eq!(claims["aud"], "https://login.example/t/oauth2/v2.0/token");
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["exp"], 1_700_000_600);
        assert_eq!(claims["nbf"], 1_700_000_000);
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn rs256_is_a_switch_and_carries_the_sha1_x5t() {
        let thumb = "0123456789abcdef0123456789ABCDEF01234567";
        let ck = CertificateKey::new(&SecretString::from(KEY), Some(thumb), None, AssertionAlgorithm::Rs256)
            .unwrap();
        let jwt = ck.assertion("client-1", "https://login.example/token", 1_700_000_000).unwrap();
        let (header, _) = verified_parts(jwt.expose_secret(), webpki::ring::RSA_PKCS1_2048_8192_SHA256);
        assert_eq!(header["alg"], "RS256");
        assert!(header.get("x5t#S256").is_none(), "{header}");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header["x5t"].as_str().unwrap()).unwrap(),
            hex::decode(thumb.to_lowercase()).unwrap()
        );
    }

    #[test]
    fn bad_key_or_thumbprint_is_a_config_error() {
        let e = CertificateKey::new(
            &SecretString::from("not a key"),
            None,
            Some(&"00".repeat(32)),
            AssertionAlgorithm::Ps256,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("PEM RSA private key"));
        let key = SecretString::from(KEY);
        // PS256 with only a SHA-1 thumbprint: the message names both ways out.
        let e =
            CertificateKey::new(&key, Some(&"00".repeat(20)), None, AssertionAlgorithm::Ps256).unwrap_err();
        assert!(e.to_string().contains("cert_file") && e.to_string().contains("RS256"), "{e}");
        let e = CertificateKey::new(&key, None, Some("00"), AssertionAlgorithm::Ps256).unwrap_err();
        assert!(e.to_string().contains("64 hex"), "{e}");
        let e = CertificateKey::new(&key, Some("00"), None, AssertionAlgorithm::Rs256).unwrap_err();
        assert!(e.to_string().contains("40 hex"), "{e}");
        assert!(!format!("{e:?}").contains("PRIVATE"));
    }

    #[test]
    fn thumbprints_of_a_pem_are_digests_of_der() {
        let der = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        let t = certificate_thumbprints(CERT).unwrap();
        assert_eq!(t.sha1, hex::encode(Sha1::digest(&der)));
        assert_eq!(t.sha256, hex::encode(Sha256::digest(&der)));
        // What `openssl x509 -fingerprint -sha256` printed for the fixture.
        assert_eq!(t.sha256, "e73245f716f12c25b9c372c8f50cad51aec428f1eb050a92a7c8ad5935420f60");
        assert_eq!(thumbprint_from_certificate_pem(CERT).unwrap(), t.sha1);
        assert!(certificate_thumbprints("nothing").is_err());
    }
}
