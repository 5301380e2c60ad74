//! IoC kinds, refanging, normalisation and validation, and the feed-format parsers of iocsync.
//!
//! This crate is pure: no IO, no async runtime, no HTTP. Everything takes bytes or strings and
//! returns values, so it can be tested exhaustively and fuzzed.
//!
//! Entry points:
//! - [`parse`] (`formats::parse`): one feed document -> [`Parsed`] (accepted [`Ioc`]s, first
//!   occurrence only, [`Rejection`]s with reason codes and lines, duplicate count);
//!   [`formats::sniff`] guesses the format for `Format::Auto`.
//! - [`parse_stream`]: the same from a reader into a [`Sink`], value by value; text and hosts
//!   bodies are read line by line, so memory holds the distinct accepted values (kept compactly:
//!   one arena, IPs as integers, hashes as bytes), not the document.
//! - [`normalize::normalize`]: one raw value -> `(IndicatorType, normalised value)` or a reason;
//!   [`normalize::ip_class`], [`normalize::registrable_domain`], [`normalize::domain_within`] and
//!   [`normalize::url_host`] serve the allowlist.
//! - [`formats::misp::parse_manifest`]: the event list of a MISP feed directory;
//!   [`formats::stix::parse_pattern`]: the STIX pattern subset on its own.

pub mod formats;
pub mod kind;
pub mod normalize;
pub mod reason;
pub mod refang;
mod seen;

pub use formats::{Format, FormatError, ParseOptions, Parsed, Sink, StreamError, Tally, parse, parse_stream};
pub use kind::{IndicatorType, TypeHint};
pub use reason::Reason;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One accepted indicator value, normalised to the form Defender stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ioc {
    /// Defender `indicatorType`.
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    /// Normalised value (lower-case hashes and hosts, compressed IPv6, punycode domains).
    pub value: String,
    /// 1-based line (or CSV row start line, or JSON object ordinal) the value came from.
    pub line: u64,
    /// When the source says the value stops being valid (STIX `valid_until`): caps the expiry.
    #[serde(skip)]
    pub valid_until: Option<DateTime<Utc>>,
    /// Per-value attributes carried by the source itself (portal CSV rows); `None` for most feeds.
    #[serde(skip)]
    pub attrs: Option<Box<SourceAttrs>>,
}

impl Ioc {
    /// An indicator with no source attributes and no validity limit.
    pub fn new(kind: IndicatorType, value: impl Into<String>, line: u64) -> Self {
        Ioc { kind, value: value.into(), line, valid_until: None, attrs: None }
    }
}

/// Indicator attributes a feed may carry per value (the Defender portal CSV does); each one,
/// when present, overrides the feed's policy for that value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceAttrs {
    /// Defender `action` name as written in the source (validated later by policy).
    pub action: Option<String>,
    /// Defender `severity` name as written in the source.
    pub severity: Option<String>,
    /// Alert title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Expiration time.
    pub expiration: Option<DateTime<Utc>>,
    /// Recommended actions.
    pub recommended_actions: Option<String>,
    /// Device-group names.
    pub rbac_groups: Vec<String>,
    /// Category name.
    pub category: Option<String>,
    /// MITRE ATT&CK technique ids.
    pub mitre_techniques: Vec<String>,
    /// Whether an alert is generated.
    pub generate_alert: Option<bool>,
}

/// A value that was not accepted, with the reason code and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Stable reason code.
    pub reason: Reason,
    /// The raw value as found in the source (truncated to a few hundred bytes).
    pub value: String,
    /// 1-based line (or CSV row start line, or JSON object ordinal).
    pub line: u64,
    /// Optional human detail, e.g. "CIDR /24 is wider than one address".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
