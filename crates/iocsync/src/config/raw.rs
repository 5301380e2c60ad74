//! The configuration file as written: every key optional, unknown keys captured so that
//! validation can report them all at once instead of stopping at the first.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Keys nobody recognised, by name (kept to report typos).
pub type Unknown = BTreeMap<String, toml::Value>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    pub defender: Option<RawTenant>,
    pub tenants: Option<Vec<RawTenant>>,
    pub sync: Option<RawSync>,
    pub defaults: Option<RawPolicy>,
    pub feeds: Option<Vec<RawFeed>>,
    pub allowlist: Option<RawAllowlist>,
    pub daemon: Option<RawDaemon>,
    pub impact: Option<RawImpact>,
    pub hits: Option<RawHits>,
    pub console: Option<super::console::RawConsole>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A secret reference: `{ env = "VAR" }`, `{ file = "/path" }` or `{ credential = "NAME" }`.
#[derive(Debug, Default, Deserialize)]
pub struct RawSecret {
    pub env: Option<String>,
    pub file: Option<String>,
    pub credential: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A certificate credential: the private key file and the certificate (or its thumbprint).
#[derive(Debug, Default, Deserialize)]
pub struct RawCertificate {
    pub key_file: Option<String>,
    pub cert_file: Option<String>,
    pub thumbprint: Option<String>,
    pub algorithm: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `[defender]` or one `[[tenants]]` block.
#[derive(Debug, Default, Deserialize)]
pub struct RawTenant {
    pub name: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    /// Kept untyped so that a secret written inline is never echoed by a type error.
    pub client_secret: Option<toml::Value>,
    pub client_certificate: Option<RawCertificate>,
    pub cloud: Option<String>,
    pub api_base: Option<String>,
    pub authority: Option<String>,
    pub scope: Option<String>,
    pub emulator: Option<bool>,
    pub time_scale: Option<f64>,
    /// Subset of feed names for this tenant (all when absent).
    pub feeds: Option<Vec<String>>,
    pub allowlist: Option<RawAllowlist>,
    pub defaults: Option<RawPolicy>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `[sync]`.
#[derive(Debug, Default, Deserialize)]
pub struct RawSync {
    pub owner_tag: Option<String>,
    pub marker_field: Option<String>,
    pub capacity: Option<i64>,
    pub headroom: Option<i64>,
    pub max_delete_fraction: Option<f64>,
    pub expire_days: Option<i64>,
    pub renew_before_days: Option<i64>,
    pub state: Option<String>,
    pub max_feed_bytes: Option<i64>,
    pub feed_timeout: Option<String>,
    pub max_shrink_fraction: Option<f64>,
    pub max_reject_fraction: Option<f64>,
    pub brake_window: Option<String>,
    pub accept_shrink_after: Option<String>,
    pub journal_retention: Option<String>,
    pub approval: Option<bool>,
    pub four_eyes: Option<bool>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// Indicator policy keys, in `[defaults]` and on each feed.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawPolicy {
    pub action: Option<String>,
    pub severity: Option<String>,
    pub generate_alert: Option<bool>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub recommended_actions: Option<String>,
    pub rbac_groups: Option<Vec<String>>,
    pub category: Option<String>,
    pub mitre_techniques: Option<Vec<String>>,
    pub educate_url: Option<String>,
    pub application: Option<String>,
    pub expire_days: Option<i64>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// One `[[feeds]]` block.
#[derive(Debug, Default, Deserialize)]
pub struct RawFeed {
    pub name: Option<String>,
    pub source: Option<String>,
    pub format: Option<String>,
    pub column: Option<toml::Value>,
    pub type_column: Option<toml::Value>,
    pub types: Option<Vec<String>>,
    #[serde(rename = "type")]
    pub type_hint: Option<String>,
    pub priority: Option<i64>,
    pub max_age: Option<String>,
    pub refang: Option<bool>,
    pub enabled: Option<bool>,
    /// `{ bearer_env = "VAR" }` or `{ username = "u", password_env = "VAR" }`.
    pub auth: Option<toml::Value>,
    pub row_policy: Option<bool>,
    pub row_actions: Option<Vec<String>>,
    #[serde(flatten)]
    pub policy: RawPolicy,
}

/// `[allowlist]`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawAllowlist {
    pub values: Option<Vec<String>>,
    pub files: Option<Vec<String>>,
    pub builtin: Option<bool>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
pub struct RawDaemon {
    pub schedule: Option<String>,
    pub interval: Option<String>,
    pub jitter: Option<String>,
    pub listen: Option<String>,
    pub tz: Option<String>,
    pub max_staleness: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `[impact]`.
#[derive(Debug, Default, Deserialize)]
pub struct RawImpact {
    pub enabled: Option<bool>,
    pub lookback_days: Option<i64>,
    pub hold_devices: Option<i64>,
    pub on_hit: Option<String>,
    pub on_unknown: Option<String>,
    pub cache_for: Option<String>,
    pub backend: Option<String>,
    pub graph_base: Option<String>,
    pub max_queries: Option<i64>,
    pub max_query_chars: Option<i64>,
    pub max_duration: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `[hits]`.
#[derive(Debug, Default, Deserialize)]
pub struct RawHits {
    pub enabled: Option<bool>,
    pub boost_for: Option<String>,
    pub first_lookback: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}
