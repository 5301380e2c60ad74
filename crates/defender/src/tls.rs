//! TLS for every HTTP client iocsync builds: rustls with the `ring` provider, the platform's trust
//! store through `rustls-platform-verifier`, and Mozilla's roots (`webpki-roots`) only where the
//! platform has no store (a scratch container).

use std::sync::Arc;

use rustls::ClientConfig as TlsConfig;
use rustls::crypto::CryptoProvider;

/// Where the trust anchors of a [`tls_config`] come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustSource {
    /// The operating system's verifier and store (`rustls-platform-verifier`).
    Platform,
    /// The built-in Mozilla roots (`webpki-roots`): the platform had no usable store.
    BuiltIn,
}

/// The rustls provider iocsync signs and verifies with (`ring`, already in the tree).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration: the platform verifier when the platform has a store, else the
/// built-in roots; also says which one it chose.
pub fn tls_config() -> Result<(TlsConfig, TrustSource), rustls::Error> {
    let provider = crypto_provider();
    match rustls_platform_verifier::Verifier::new(provider.clone()) {
        Ok(verifier) => {
            let config = TlsConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            Ok((config, TrustSource::Platform))
        }
        Err(e) => {
            tracing::debug!(error = %e, "no platform trust store: using the built-in Mozilla roots");
            Ok((builtin_config(provider)?, TrustSource::BuiltIn))
        }
    }
}

/// A configuration trusting only the built-in Mozilla roots.
fn builtin_config(provider: Arc<CryptoProvider>) -> Result<TlsConfig, rustls::Error> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    Ok(TlsConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A `reqwest` client builder with iocsync's TLS ([`tls_config`]) already set: use it for every
/// client, since the `rustls-no-provider` build has no TLS defaults of its own. The platform
/// store is read once per process (reading it takes tens of milliseconds).
pub fn http_client_builder() -> Result<reqwest::ClientBuilder, rustls::Error> {
    static CONFIG: std::sync::OnceLock<Result<TlsConfig, rustls::Error>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| tls_config().map(|(c, _)| c)).clone()?;
    Ok(reqwest::Client::builder().tls_backend_preconfigured(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_trust_sources_make_a_client() {
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 50);
        let builtin = builtin_config(crypto_provider()).unwrap();
        let client = reqwest::Client::builder().tls_backend_preconfigured(builtin).build();
        assert!(client.is_ok(), "{client:?}");
        let client = http_client_builder().unwrap().build();
        assert!(client.is_ok(), "{client:?}");
    }
}
