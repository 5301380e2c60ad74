//! Entra ID client-credentials token source: secret or certificate assertion, cached and
//! refreshed before expiry.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer};
use sha1::{Digest as _, Sha1};

use crate::config::Credential;
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

/// The private part of a certificate credential; `Debug` shows only the thumbprint.
pub(crate) struct CertificateKey {
    key: RsaPrivateKey,
    /// base64url (no padding) of the SHA-1 thumbprint bytes, the JWT `x5t` header.
    x5t: String,
}

impl std::fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateKey").field("x5t", &self.x5t).field("key", &"[REDACTED]").finish()
    }
}

impl CertificateKey {
    /// Parse the PEM private key (PKCS#8 or PKCS#1) and the SHA-1 thumbprint hex.
    pub(crate) fn new(private_key_pem: &SecretString, thumbprint_hex: &str) -> Result<Self, Error> {
        let pem = private_key_pem.expose_secret().trim();
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| {
                Error::config(
                    "the certificate private key is not a PEM RSA private key \
                     (expected -----BEGIN PRIVATE KEY----- (PKCS#8, unencrypted) or -----BEGIN RSA PRIVATE KEY-----)",
                )
            })?;
        let cleaned: String = thumbprint_hex.chars().filter(|c| !matches!(c, ':' | ' ' | '-')).collect();
        let bytes = hex::decode(&cleaned).ok().filter(|b| b.len() == 20).ok_or_else(|| {
            Error::config(format!(
                "certificate thumbprint {thumbprint_hex:?} is not a SHA-1 thumbprint (40 hex digits)"
            ))
        })?;
        Ok(CertificateKey { key, x5t: URL_SAFE_NO_PAD.encode(bytes) })
    }

    /// Build a signed client assertion for `token_url` (RS256, `x5t`, aud/iss/sub/jti/nbf/exp).
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now_unix: i64,
    ) -> Result<SecretString, Error> {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t});
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
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone());
        let signature = signer.try_sign(signing_input.as_bytes()).map_err(|e| {
            Error::new(ErrorKind::Config, false, format!("signing the client assertion failed: {e}"))
        })?;
        Ok(SecretString::from(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))))
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
            Credential::Certificate { private_key_pem, thumbprint_sha1_hex } => Ok(
                PreparedCredential::Certificate(CertificateKey::new(private_key_pem, thumbprint_sha1_hex)?),
            ),
        }
    }
}

/// SHA-1 thumbprint (lower-case hex) of the first certificate in a PEM file, computed over its
/// DER encoding; this is the value Entra shows and the client assertion's `x5t` encodes.
pub fn thumbprint_from_certificate_pem(pem: &str) -> Result<String, Error> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem
        .find(BEGIN)
        .ok_or_else(|| Error::config("no -----BEGIN CERTIFICATE----- block found in the certificate PEM"))?;
    let rest = &pem[start + BEGIN.len()..];
    let end = rest
        .find(END)
        .ok_or_else(|| Error::config("the certificate PEM has no -----END CERTIFICATE----- line"))?;
    let b64: String = rest[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|e| Error::config(format!("the certificate PEM is not valid base64: {e}")))?;
    if der.is_empty() {
        return Err(Error::config("the certificate PEM block is empty"));
    }
    Ok(hex::encode(Sha1::digest(&der)))
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
    use rsa::pkcs1v15::VerifyingKey;
    use rsa::pkcs8::EncodePrivateKey as _;
    use rsa::signature::Verifier as _;

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

    #[test]
    fn assertion_is_a_verifiable_rs256_jwt() {
        let mut rng = rand::thread_rng();
        let key = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let pem = SecretString::from(key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string());
        let thumb = "0123456789abcdef0123456789ABCDEF01234567";
        let ck = CertificateKey::new(&pem, thumb).unwrap();
        assert!(!format!("{ck:?}").contains("PRIVATE"));
        let jwt =
            ck.assertion("client-1", "https://login.example/t/oauth2/v2.0/token", 1_700_000_000).unwrap();
        let jwt = jwt.expose_secret();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header["x5t"].as_str().unwrap()).unwrap(),
            hex::decode(thumb.to_lowercase()).unwrap()
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://login.example/t/oauth2/v2.0/token");
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["exp"], 1_700_000_600);
        assert_eq!(claims["nbf"], 1_700_000_000);
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
        let sig =
            rsa::pkcs1v15::Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        let vk = VerifyingKey::<sha2::Sha256>::new(key.to_public_key());
        vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
    }

    #[test]
    fn bad_key_or_thumbprint_is_a_config_error() {
        let e = CertificateKey::new(&SecretString::from("not a key"), "00").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("PEM RSA private key"));
    }

    #[test]
    fn thumbprint_of_a_pem_is_sha1_of_der() {
        let der = b"pretend this is DER";
        let pem =
            format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", STANDARD.encode(der));
        assert_eq!(thumbprint_from_certificate_pem(&pem).unwrap(), hex::encode(Sha1::digest(der)));
        assert!(thumbprint_from_certificate_pem("nothing").is_err());
    }
}
