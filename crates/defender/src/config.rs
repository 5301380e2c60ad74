//! Client configuration: cloud, credentials, endpoints, pacing limits, retry policy, timeouts.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use iocsync_core::pacing::PacingLimits;
use secrecy::SecretString;
use url::{Host, Url};

use crate::error::Error;

/// Microsoft cloud the tenant lives in; sets the token authority, the API host and the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// Commercial (worldwide) cloud.
    #[default]
    Commercial,
    /// US Government Community Cloud.
    Gcc,
    /// US Government GCC High.
    GccHigh,
    /// US Department of Defense.
    Dod,
}

impl Cloud {
    /// Config spelling: `commercial`, `gcc`, `gcc-high`, `dod`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Commercial => "commercial",
            Cloud::Gcc => "gcc",
            Cloud::GccHigh => "gcc-high",
            Cloud::Dod => "dod",
        }
    }

    /// Entra ID authority (token host) of this cloud (spec §1).
    pub fn authority(self) -> &'static str {
        match self {
            Cloud::Commercial | Cloud::Gcc => "https://login.microsoftonline.com",
            Cloud::GccHigh | Cloud::Dod => "https://login.microsoftonline.us",
        }
    }

    /// Defender API base URL of this cloud (spec §1).
    pub fn api_base(self) -> &'static str {
        match self {
            Cloud::Commercial => "https://api.securitycenter.microsoft.com",
            Cloud::Gcc => "https://api-gcc.securitycenter.microsoft.us",
            Cloud::GccHigh | Cloud::Dod => "https://api-gov.securitycenter.microsoft.us",
        }
    }

    /// OAuth scope requested for the Defender API in this cloud (spec §2.1).
    pub fn scope(self) -> &'static str {
        match self {
            Cloud::Commercial => "https://api.securitycenter.microsoft.com/.default",
            Cloud::Gcc => "https://api-gcc.securitycenter.microsoft.us/.default",
            // Spec §13.4: what public clients use for GCC High and DoD (the api-gov resource is
            // used by none of them and is UNCERTAIN).
            Cloud::GccHigh | Cloud::Dod => "https://securitycenter.onmicrosoft.us/windowsatpservice/.default",
        }
    }

    /// Microsoft Graph's base URL in this cloud, for advanced hunting through `runHuntingQuery`
    /// (GCC uses the commercial Graph host).
    pub fn graph_base(self) -> &'static str {
        match self {
            Cloud::Commercial | Cloud::Gcc => "https://graph.microsoft.com",
            Cloud::GccHigh => "https://graph.microsoft.us",
            Cloud::Dod => "https://dod-graph.microsoft.us",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cloud {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "commercial" => Ok(Cloud::Commercial),
            "gcc" => Ok(Cloud::Gcc),
            "gcc-high" | "gcchigh" | "gcc_high" => Ok(Cloud::GccHigh),
            "dod" => Ok(Cloud::Dod),
            other => Err(Error::config(format!(
                "unknown cloud {other:?}: use one of commercial, gcc, gcc-high, dod"
            ))),
        }
    }
}

/// How the app proves its identity to Entra ID.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A client secret (read by the app from an environment variable or a file).
    Secret(SecretString),
    /// A certificate: the PEM private key (PKCS#8 or PKCS#1) signs a client-assertion JWT. PS256
    /// assertions carry `x5t#S256` (the certificate's SHA-256 thumbprint), RS256 ones `x5t`
    /// (SHA-1); see [`certificate_thumbprints`](crate::certificate_thumbprints).
    Certificate {
        /// PEM-encoded RSA private key (2048 to 4096 bits).
        private_key_pem: SecretString,
        /// SHA-1 thumbprint of the DER certificate, hex (colons and spaces tolerated); RS256 needs it.
        thumbprint_sha1_hex: Option<String>,
        /// SHA-256 thumbprint of the DER certificate, hex; PS256 needs it.
        thumbprint_sha256_hex: Option<String>,
        /// Signature algorithm of the assertion.
        algorithm: AssertionAlgorithm,
    },
}

/// Signature algorithm of a certificate's client assertion (spec §13.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256 and the `x5t#S256` header: what Entra's current page asks for.
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and the `x5t` (SHA-1) header: older pages; still accepted.
    Rs256,
}

impl AssertionAlgorithm {
    /// The JWT `alg` value (`PS256` or `RS256`), also the config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AssertionAlgorithm::Ps256 => "PS256",
            AssertionAlgorithm::Rs256 => "RS256",
        }
    }
}

impl FromStr for AssertionAlgorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PS256" => Ok(AssertionAlgorithm::Ps256),
            "RS256" => Ok(AssertionAlgorithm::Rs256),
            other => Err(Error::config(format!("unknown assertion algorithm {other:?}: use PS256 or RS256"))),
        }
    }
}

/// Retry behaviour for throttling (429), transient server errors (500/502/503/504) and network
/// failures. Other 4xx answers are never retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Maximum number of attempts per request, the first included (>= 1).
    pub max_attempts: u32,
    /// Give up when the next wait would end later than this after the first attempt.
    pub max_elapsed: Duration,
    /// First backoff delay; doubles with each attempt (with jitter).
    pub initial_backoff: Duration,
    /// Upper bound of one backoff delay.
    pub max_backoff: Duration,
    /// Upper bound applied to a server's `Retry-After`.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts within 5 minutes, backoff 500 ms doubling up to 30 s, `Retry-After` capped at 5 min.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            max_elapsed: Duration::from_secs(300),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (each request is tried once).
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// Backoff before attempt `attempt + 1` (attempt is 1-based): exponential with "equal
    /// jitter", i.e. uniformly random in `[d/2, d]` where `d = initial * 2^(attempt-1)` capped.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        use rand::RngExt as _;
        let exp = attempt.saturating_sub(1).min(30);
        let d = self.initial_backoff.saturating_mul(1u32 << exp).min(self.max_backoff);
        let half = d / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 { 0 } else { rand::rng().random_range(0..=nanos) };
        half + Duration::from_nanos(jitter)
    }
}

/// Regional prefixes of the unified API host `api.security.microsoft.com` (spec §13.10).
pub const REGIONAL_HOSTS: &[&str] = &["us", "eu", "uk", "au", "swa", "ina", "aea"];

/// Geo prefixes of the `api-XX.` host forms: `api-us.security.microsoft.com` (XDR page) and
/// `api-us.securitycenter.microsoft.com` (older pages) (spec §1).
const DASH_REGIONS_UNIFIED: &[&str] = &["us", "eu", "uk"];
const DASH_REGIONS_LEGACY: &[&str] = &["us", "eu", "uk", "au"];

/// Whether `host` is the unified API host or one of its regional hosts
/// (`eu.api.security.microsoft.com`, `api-eu.security.microsoft.com`).
fn is_unified_host(host: &str) -> bool {
    host == "api.security.microsoft.com"
        || host.strip_suffix(".api.security.microsoft.com").is_some_and(|r| REGIONAL_HOSTS.contains(&r))
        || host
            .strip_prefix("api-")
            .and_then(|h| h.strip_suffix(".security.microsoft.com"))
            .is_some_and(|r| DASH_REGIONS_UNIFIED.contains(&r))
}

/// Whether `host` is a Defender API host the documentation lists (spec §1, §13.10): the unified
/// host and its regional hosts, the legacy `securitycenter` hosts and their `api-XX.` forms, and
/// the US Government hosts.
pub fn is_known_api_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    is_unified_host(&host)
        || matches!(
            host.as_str(),
            "api.securitycenter.microsoft.com"
                | "api.securitycenter.windows.com"
                | "api-gcc.securitycenter.microsoft.us"
                | "api-gov.securitycenter.microsoft.us"
        )
        || host
            .strip_prefix("api-")
            .and_then(|h| h.strip_suffix(".securitycenter.microsoft.com"))
            .is_some_and(|r| DASH_REGIONS_LEGACY.contains(&r))
}

/// The warning for an `api_base` whose host is not a known Defender API host (a typo, a proxy):
/// `None` for a known host or a loopback one (the emulator). It is a warning, not an error, since
/// Microsoft adds regional hosts.
pub fn api_host_warning(api_base: &Url) -> Option<String> {
    let host = api_base.host_str().unwrap_or("");
    if is_known_api_host(host) || api_base.host().is_some_and(|h| is_loopback_host(&h)) {
        return None;
    }
    Some(format!(
        "api_base host {host:?} is not a known Defender API host; known: api.security.microsoft.com and \
         {{{}}}.api.security.microsoft.com, api-{{us,eu,uk}}.security.microsoft.com, \
         api.securitycenter.microsoft.com, api-{{us,eu,uk,au}}.securitycenter.microsoft.com, \
         api.securitycenter.windows.com, api-gcc.securitycenter.microsoft.us, api-gov.securitycenter.microsoft.us",
        REGIONAL_HOSTS.join(",")
    ))
}

/// The OAuth scope for `api_base` in `cloud`: the cloud's default, except that the unified host
/// `api.security.microsoft.com` and its regional hosts (`eu.api.security.microsoft.com`,
/// `api-eu.security.microsoft.com`, ...) take that host's resource,
/// `https://api.security.microsoft.com/.default`.
pub fn scope_for(cloud: Cloud, api_base: &Url) -> String {
    let host = api_base.host_str().unwrap_or("").trim_end_matches('.').to_ascii_lowercase();
    if is_unified_host(&host) && cloud == Cloud::Commercial {
        "https://api.security.microsoft.com/.default".to_owned()
    } else {
        cloud.scope().to_owned()
    }
}

/// Everything needed to build a [`DefenderClient`](crate::DefenderClient).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Entra tenant id (GUID or verified domain).
    pub tenant_id: String,
    /// App registration (client) id; Defender records it as `createdBy`.
    pub client_id: String,
    /// Secret or certificate.
    pub credential: Credential,
    /// Cloud; sets the defaults of `api_base`, `authority` and `scope`.
    pub cloud: Cloud,
    /// Override of the Defender API base URL (regional host, emulator).
    pub api_base: Option<String>,
    /// Override of the Entra authority URL (emulator).
    pub authority: Option<String>,
    /// Override of the OAuth scope.
    pub scope: Option<String>,
    /// Client-side pacing limits, shared by every call of this client.
    pub limits: PacingLimits,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Total timeout of one HTTP request, body included.
    pub request_timeout: Duration,
    /// Extra import/BatchDelete calls this client may spend splitting batches that Defender
    /// refused as a whole (default [`SPLIT_BUDGET`]); past it, the items not yet judged are
    /// reported as not applied (retryable), never as rejected.
    pub split_budget: u32,
    /// Largest response body accepted (default [`MAX_RESPONSE_BYTES`]); a larger one is an error.
    pub max_response_bytes: usize,
}

/// Default [`ClientConfig::split_budget`]: 120 extra calls, four minutes of the import quota
/// (30/min). Isolating one bad item among 500 takes at most 2·⌈log2 500⌉ = 18, so one run always
/// isolates at least six; their rejects are remembered by the app, so the next run gets further.
pub const SPLIT_BUDGET: u32 = 120;

/// Default [`ClientConfig::max_response_bytes`]: 32 MiB. The largest answer is a 10,000-row list
/// page; the emulator's full-entity rows make that 7.7 MB, so 32 MiB leaves room for rows of
/// about 3 KiB (long titles and descriptions) while a runaway or hostile body is cut early.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

impl ClientConfig {
    /// A configuration with the documented limits, default retries, 10 s connect and 120 s
    /// request timeouts and the cloud's default endpoints.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
        cloud: Cloud,
    ) -> Self {
        ClientConfig {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            credential,
            cloud,
            api_base: None,
            authority: None,
            scope: None,
            limits: PacingLimits::documented(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            split_budget: SPLIT_BUDGET,
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }
}

/// True for `localhost`, 127.0.0.0/8 and ::1.
pub(crate) fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// Parse `raw` as a base URL for `what`; `https` is required except for loopback hosts.
pub fn parse_secure_url(raw: &str, what: &str) -> Result<Url, Error> {
    let url = Url::parse(raw.trim())
        .map_err(|e| Error::config(format!("{what} {raw:?} is not a valid URL: {e}")))?;
    let Some(host) = url.host() else {
        return Err(Error::config(format!("{what} {raw:?} has no host")));
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&host) => {}
        "http" => {
            return Err(Error::config(format!(
                "{what} {raw:?} uses plain http: https is required except for loopback hosts (127.0.0.1, ::1, localhost)"
            )));
        }
        other => {
            return Err(Error::config(format!("{what} {raw:?} has unsupported scheme {other:?}: use https")));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(format!("{what} {raw:?} must not carry a query or fragment")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(format!("{what} must not embed credentials")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_parse_and_set_endpoints() {
        assert_eq!("gcc-high".parse::<Cloud>().unwrap(), Cloud::GccHigh);
        assert_eq!("Commercial".parse::<Cloud>().unwrap(), Cloud::Commercial);
        assert!("china".parse::<Cloud>().unwrap_err().to_string().contains("gcc-high"));
        assert_eq!(Cloud::Dod.authority(), "https://login.microsoftonline.us");
        assert_eq!(Cloud::Gcc.authority(), "https://login.microsoftonline.com");
        assert_eq!(Cloud::Gcc.api_base(), "https://api-gcc.securitycenter.microsoft.us");
        assert_eq!(
            Cloud::GccHigh.scope(),
            "https://securitycenter.onmicrosoft.us/windowsatpservice/.default"
        );
        assert_eq!(Cloud::Dod.scope(), Cloud::GccHigh.scope());
        let url = |s: &str| Url::parse(s).unwrap();
        for region in REGIONAL_HOSTS {
            let base = url(&format!("https://{region}.api.security.microsoft.com"));
            assert_eq!(
                scope_for(Cloud::Commercial, &base),
                "https://api.security.microsoft.com/.default",
                "{region}"
            );
            assert!(parse_secure_url(base.as_str(), "api_base").is_ok());
        }
        assert_eq!(
            scope_for(Cloud::Commercial, &url("https://api.security.microsoft.com")),
            "https://api.security.microsoft.com/.default"
        );
        assert_eq!(
            scope_for(Cloud::Commercial, &url("https://api.securitycenter.microsoft.com")),
            Cloud::Commercial.scope(),
            "the legacy host keeps its resource"
        );
        assert_eq!(
            scope_for(Cloud::Commercial, &url("https://evil.api.security.microsoft.com.example")),
            Cloud::Commercial.scope()
        );
        assert_eq!(Cloud::Commercial.scope(), "https://api.securitycenter.microsoft.com/.default");
        for c in [Cloud::Commercial, Cloud::Gcc, Cloud::GccHigh, Cloud::Dod] {
            assert_eq!(c.as_str().parse::<Cloud>().unwrap(), c);
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn every_documented_host_is_known_with_the_right_scope() {
        let url = |s: &str| Url::parse(s).unwrap();
        let unified = "https://api.security.microsoft.com/.default";
        let legacy = Cloud::Commercial.scope();
        for (base, scope) in [
            ("https://api.security.microsoft.com", unified),
            ("https://us.api.security.microsoft.com", unified),
            ("https://EU.api.security.microsoft.com/", unified),
            ("https://uk.api.security.microsoft.com", unified),
            ("https://au.api.security.microsoft.com", unified),
            ("https://swa.api.security.microsoft.com", unified),
            ("https://ina.api.security.microsoft.com", unified),
            ("https://aea.api.security.microsoft.com", unified),
            ("https://api-us.security.microsoft.com", unified),
            ("https://api-eu.security.microsoft.com", unified),
            ("https://api-uk.security.microsoft.com", unified),
            ("https://api.securitycenter.microsoft.com", legacy),
            ("https://api-us.securitycenter.microsoft.com", legacy),
            ("https://api-eu.securitycenter.microsoft.com", legacy),
            ("https://api-uk.securitycenter.microsoft.com", legacy),
            ("https://api-au.securitycenter.microsoft.com", legacy),
            ("https://api.securitycenter.windows.com", legacy),
        ] {
            let u = url(base);
            assert_eq!(scope_for(Cloud::Commercial, &u), scope, "{base}");
            assert_eq!(api_host_warning(&u), None, "{base}");
            assert!(parse_secure_url(base, "api_base").is_ok(), "{base}");
        }
        // Government hosts keep their cloud's scope, unified-looking or not.
        for (cloud, base) in [
            (Cloud::Gcc, "https://api-gcc.securitycenter.microsoft.us"),
            (Cloud::GccHigh, "https://api-gov.securitycenter.microsoft.us"),
            (Cloud::Dod, "https://api-gov.securitycenter.microsoft.us"),
        ] {
            assert_eq!(scope_for(cloud, &url(base)), cloud.scope(), "{base}");
            assert_eq!(api_host_warning(&url(base)), None);
        }
        assert_eq!(
            scope_for(Cloud::GccHigh, &url("https://api.security.microsoft.com")),
            Cloud::GccHigh.scope()
        );
    }

    #[test]
    fn an_unknown_api_host_gets_a_warning_naming_the_known_ones() {
        let url = |s: &str| Url::parse(s).unwrap();
        for base in [
            "https://xx.api.security.microsoft.com",
            "https://api-swa.securitycenter.microsoft.com",
            "https://api.security.microsoft.com.example",
            "https://defender-proxy.contoso.example",
        ] {
            let w = api_host_warning(&url(base)).unwrap_or_else(|| panic!("{base}: no warning"));
            assert!(w.contains(url(base).host_str().unwrap()), "{w}");
            assert!(w.contains("us,eu,uk,au,swa,ina,aea") && w.contains("api-gov.securitycenter"), "{w}");
            // A warning, not an error: the URL is still accepted.
            assert!(parse_secure_url(base, "api_base").is_ok());
            assert_eq!(scope_for(Cloud::Commercial, &url(base)), Cloud::Commercial.scope(), "{base}");
        }
        for base in ["http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:7"] {
            assert_eq!(api_host_warning(&url(base)), None, "the emulator is not warned about");
        }
    }

    #[test]
    fn http_only_for_loopback() {
        assert!(parse_secure_url("http://127.0.0.1:8080", "api_base").is_ok());
        assert!(parse_secure_url("http://127.1.2.3", "api_base").is_ok());
        assert!(parse_secure_url("http://[::1]:9", "api_base").is_ok());
        assert!(parse_secure_url("http://localhost:9", "api_base").is_ok());
        assert!(parse_secure_url("https://api.securitycenter.microsoft.com", "api_base").is_ok());
        let e = parse_secure_url("http://api.example.com", "api_base").unwrap_err();
        assert!(e.to_string().contains("https is required"), "{e}");
        assert!(parse_secure_url("http://10.0.0.1", "api_base").is_err());
        assert!(parse_secure_url("ftp://127.0.0.1", "api_base").is_err());
        assert!(parse_secure_url("not a url", "api_base").is_err());
        assert!(parse_secure_url("https://u:p@host.example", "api_base").is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1_000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100), "{b1:?}");
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400), "{b3:?}");
            let b40 = p.backoff(40);
            assert!(b40 >= Duration::from_millis(500) && b40 <= Duration::from_millis(1_000), "{b40:?}");
        }
    }
}
