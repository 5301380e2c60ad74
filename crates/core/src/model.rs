//! The indicator model shared by policy, merge, allowlist and plan: actions, severities, the
//! desired indicator and the record of a value that is skipped.

use chrono::{DateTime, Utc};
use iocsync_ioc::{IndicatorType, Reason};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Defender `action` of an indicator, under its current wire names.
///
/// The derived order (`Allowed` < … < `BlockAndRemediate`) is only used to sort outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Action {
    /// Allow: overrides blocks of the same value (used for exclusions).
    Allowed,
    /// Detect only and raise an alert (`generateAlert` must be true).
    Audit,
    /// Warn the user, who may bypass (network kinds and files).
    Warn,
    /// Block.
    Block,
    /// Block and remediate (file hashes and certificates only).
    BlockAndRemediate,
}

impl Action {
    /// Every action, in wire-documentation order.
    pub const ALL: [Action; 5] =
        [Action::Allowed, Action::Audit, Action::Warn, Action::Block, Action::BlockAndRemediate];

    /// The wire name, e.g. `"BlockAndRemediate"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allowed => "Allowed",
            Action::Audit => "Audit",
            Action::Warn => "Warn",
            Action::Block => "Block",
            Action::BlockAndRemediate => "BlockAndRemediate",
        }
    }

    /// Parses an action read from the tenant or a portal CSV: the current names plus the legacy
    /// `Alert` (now `Audit`) and `AlertAndBlock` (now `BlockAndRemediate`), case-insensitively.
    ///
    /// iocsync never sends a legacy name; see [`Action::is_legacy_name`].
    pub fn from_tenant(s: &str) -> Option<Action> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("Alert") {
            return Some(Action::Audit);
        }
        if s.eq_ignore_ascii_case("AlertAndBlock") {
            return Some(Action::BlockAndRemediate);
        }
        s.parse().ok()
    }

    /// True for the legacy names `Alert` and `AlertAndBlock` (an old indicator carrying one is
    /// replaced rather than updated, because Defender keys upserts on the action string).
    pub fn is_legacy_name(s: &str) -> bool {
        let s = s.trim();
        s.eq_ignore_ascii_case("Alert") || s.eq_ignore_ascii_case("AlertAndBlock")
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an action or severity name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected one of: {expected})")]
pub struct UnknownName {
    /// `"action"` or `"severity"`.
    pub what: &'static str,
    /// The value as given.
    pub value: String,
    /// The accepted names, comma-separated.
    pub expected: &'static str,
}

impl FromStr for Action {
    type Err = UnknownName;
    /// Accepts the five current names, case-insensitively (config and CLI input).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Action::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(t)).ok_or_else(|| UnknownName {
            what: "action",
            value: s.to_owned(),
            expected: "Allowed, Audit, Warn, Block, BlockAndRemediate",
        })
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Defender `severity`, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// Informational (Defender's default when omitted).
    Informational,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

impl Severity {
    /// Every severity, least severe first.
    pub const ALL: [Severity; 4] = [Severity::Informational, Severity::Low, Severity::Medium, Severity::High];

    /// The wire name, e.g. `"High"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = UnknownName;
    /// Accepts the four names, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Severity::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(t)).ok_or_else(|| UnknownName {
            what: "severity",
            value: s.to_owned(),
            expected: "Informational, Low, Medium, High",
        })
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether Defender accepts `action` for indicators of `kind` (spec §7).
///
/// File hashes take all five actions; IP, domain and URL all but `BlockAndRemediate`;
/// certificate thumbprints only `Allowed` and `BlockAndRemediate`.
pub fn action_allowed(kind: IndicatorType, action: Action) -> bool {
    match kind {
        IndicatorType::FileSha1 | IndicatorType::FileSha256 | IndicatorType::FileMd5 => true,
        IndicatorType::IpAddress | IndicatorType::DomainName | IndicatorType::Url => {
            action != Action::BlockAndRemediate
        }
        IndicatorType::CertificateThumbprint => matches!(action, Action::Allowed | Action::BlockAndRemediate),
    }
}

/// The actions allowed for `kind`, for error messages.
pub fn allowed_actions(kind: IndicatorType) -> Vec<Action> {
    Action::ALL.into_iter().filter(|a| action_allowed(kind, *a)).collect()
}

/// One indicator iocsync wants the tenant to hold: the result of applying a feed's policy to
/// one value (then merged across feeds and filtered by the allowlist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// Defender `indicatorType`.
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    /// Normalised value (as produced by `iocsync-ioc`).
    pub value: String,
    /// Action to set.
    pub action: Action,
    /// Severity to set.
    pub severity: Severity,
    /// Rendered alert title.
    pub title: String,
    /// Rendered description.
    pub description: String,
    /// Recommended actions text.
    pub recommended_actions: Option<String>,
    /// Device-group names, sorted and deduplicated (`[]` = all devices).
    pub rbac_groups: Vec<String>,
    /// Whether Defender raises an alert (always true for `Audit`).
    pub generate_alert: bool,
    /// Category name (portal name; Defender echoes an undocumented number).
    pub category: Option<String>,
    /// MITRE ATT&CK technique ids, sorted and deduplicated.
    pub mitre_techniques: Vec<String>,
    /// End-user notification link (network kinds only).
    pub educate_url: Option<String>,
    /// Rendered `application`: the text Defender shows end users in block notifications in place
    /// of the blocked file or domain (create-only; never the owner tag). `None` = not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// The `externalId` sent: the ownership marker `iocsync:{owner_tag}` (`None` when the marker
    /// goes into the description, `[sync] marker_field = "description"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// When the indicator expires, at whole-second precision (Defender echoes seconds).
    pub expiration: DateTime<Utc>,
    /// Feed priority; higher wins merges and capacity cuts.
    pub priority: i32,
    /// Freshness within the feed (higher = more recent); tie-breaker for capacity cuts.
    pub recency: i64,
    /// The feeds that carry this value (provenance): the feed whose copy won the merge first, then
    /// the others sorted, no repeats.
    pub feeds: Vec<String>,
}

impl Desired {
    /// A stable hex digest of the metadata an update would change (action and everything but
    /// the expiration, which moves on every renewal).
    ///
    /// The app stores it with a permanent rejection so the value is not resent "unless the value's
    /// metadata changes".
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |name: &str, v: &str| {
            // Length-prefixed fields: no two different inputs give the same byte stream.
            h.update(name.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        };
        field("type", self.kind.as_str());
        field("value", &self.value);
        field("action", self.action.as_str());
        field("severity", self.severity.as_str());
        field("title", &self.title);
        field("description", &self.description);
        field("recommended_actions", self.recommended_actions.as_deref().unwrap_or(""));
        field("rbac_groups", &sorted_join(&self.rbac_groups));
        field("generate_alert", if self.generate_alert { "true" } else { "false" });
        field("category", self.category.as_deref().unwrap_or(""));
        field("mitre_techniques", &sorted_join(&self.mitre_techniques));
        field("educate_url", self.educate_url.as_deref().unwrap_or(""));
        // Only when set, so fingerprints remembered before `application` existed stay valid.
        if let Some(a) = &self.application {
            field("application", a);
        }
        hex::encode(&h.finalize()[..16])
    }

    /// The (type, value, action) key, the unit Defender upserts on.
    pub fn key(&self) -> (IndicatorType, &str, Action) {
        (self.kind, &self.value, self.action)
    }
}

fn sorted_join(v: &[String]) -> String {
    let mut v: Vec<&str> = v.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v.join("\u{1f}")
}

/// A value that is not pushed, with its stable reason code: the unit of the report's `skipped`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Skip {
    /// The indicator type, when known.
    #[serde(rename = "type")]
    pub kind: Option<IndicatorType>,
    /// The value.
    pub value: String,
    /// Stable reason code.
    pub reason: Reason,
    /// The feed the value came from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
    /// Human detail, e.g. "matched microsoft.com (built-in)".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Skip {
    /// A skip of a desired indicator, attributed to its first feed.
    pub fn of(d: &Desired, reason: Reason, detail: impl Into<String>) -> Skip {
        Skip {
            kind: Some(d.kind),
            value: d.value.clone(),
            reason,
            feed: d.feeds.first().cloned(),
            detail: Some(detail.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip_and_legacy_maps() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
            assert_eq!(a.to_string(), a.as_str());
            assert_eq!(Action::from_tenant(a.as_str()), Some(a));
        }
        assert_eq!("block".parse::<Action>().unwrap(), Action::Block);
        assert!("Alert".parse::<Action>().is_err());
        assert_eq!(Action::from_tenant("Alert"), Some(Action::Audit));
        assert_eq!(Action::from_tenant("AlertAndBlock"), Some(Action::BlockAndRemediate));
        assert_eq!(Action::from_tenant("Nope"), None);
        assert!(Action::is_legacy_name("alert"));
        assert!(!Action::is_legacy_name("Audit"));
        let e = "Blok".parse::<Action>().unwrap_err().to_string();
        assert!(e.contains("Blok") && e.contains("BlockAndRemediate"), "{e}");
    }

    #[test]
    fn action_serde_uses_defender_names() {
        assert_eq!(serde_json::to_string(&Action::BlockAndRemediate).unwrap(), "\"BlockAndRemediate\"");
        let a: Action = serde_json::from_str("\"warn\"").unwrap();
        assert_eq!(a, Action::Warn);
        assert!(serde_json::from_str::<Action>("\"Alert\"").is_err());
    }

    #[test]
    fn severity_is_ordered_and_parses() {
        assert!(Severity::Informational < Severity::Low);
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::Medium < Severity::High);
        assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::High);
        assert_eq!(serde_json::to_string(&Severity::Medium).unwrap(), "\"Medium\"");
        assert!("Critical".parse::<Severity>().is_err());
    }

    #[test]
    fn action_matrix_follows_spec_section_7() {
        use IndicatorType::*;
        for k in [FileSha1, FileSha256, FileMd5] {
            assert!(Action::ALL.iter().all(|a| action_allowed(k, *a)));
        }
        for k in [IpAddress, DomainName, Url] {
            assert!(!action_allowed(k, Action::BlockAndRemediate));
            assert!(action_allowed(k, Action::Allowed));
            assert!(action_allowed(k, Action::Audit));
            assert!(action_allowed(k, Action::Warn));
            assert!(action_allowed(k, Action::Block));
        }
        assert_eq!(allowed_actions(CertificateThumbprint), vec![Action::Allowed, Action::BlockAndRemediate]);
    }

    #[test]
    fn fingerprint_tracks_metadata_not_expiry() {
        let d = crate::testutil::desired(IndicatorType::DomainName, "evil.example", Action::Block);
        let f = d.fingerprint();
        assert_eq!(f.len(), 32);
        let mut e = d.clone();
        e.expiration += chrono::Duration::days(3);
        e.recency = 99;
        assert_eq!(e.fingerprint(), f, "expiry and recency are not metadata");
        let mut s = d.clone();
        s.severity = Severity::Low;
        assert_ne!(s.fingerprint(), f);
        let mut t = d.clone();
        t.title.push('!');
        assert_ne!(t.fingerprint(), f);
        let mut g = d.clone();
        g.rbac_groups = vec!["b".into(), "a".into()];
        let mut g2 = d;
        g2.rbac_groups = vec!["a".into(), "b".into()];
        assert_eq!(g.fingerprint(), g2.fingerprint(), "groups compare as a set");
        assert_ne!(g.fingerprint(), f);
    }
}
