//! Stable, kebab-case, append-only reason codes for values that are not pushed.
//!
//! The codes are part of the public interface (JSON reports, README); never rename one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was not (or could not be) pushed to Defender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Not a valid value of any (or of the declared) kind.
    InvalidValue,
    /// A CIDR range wider than one address; Defender takes single addresses only.
    CidrNotSupported,
    /// Private, loopback, link-local, CGNAT, multicast, unspecified or ULA address.
    PrivateAddress,
    /// Other reserved or documentation address ranges.
    ReservedAddress,
    /// A bare public suffix such as `co.uk`: blocking it would block a whole registry.
    PublicSuffix,
    /// On the built-in, user or warninglist allowlist.
    Allowlisted,
    /// A type the source names that Defender indicators cannot hold (e.g. a filename).
    UnsupportedType,
    /// The configured action is not allowed for this indicator type.
    ActionNotAllowed,
    /// The same type and value appeared earlier (in this feed or a higher-priority one).
    Duplicate,
    /// Left out because the tenant cap (minus foreign indicators and headroom) is reached.
    OverCapacity,
    /// Defender refused the value on import.
    RejectedByDefender,
    /// The feed failed and its last good copy is older than `max_age`.
    FeedStale,
    /// The feed could not be fetched or parsed and has no usable last good copy.
    FeedFailed,
    /// A STIX pattern outside the supported subset.
    UnsupportedPattern,
    /// The tenant already holds this type, value and action under another creator.
    ForeignIndicator,
    /// A value cut short by the tool that published it: it ends in `…` (U+2026), or a URL's
    /// path or query (or a host name) ends in `...`, or a URL ends inside a run of
    /// percent-escapes. The full value is unknown, and the stub
    /// would block more (or something else) than the publisher meant.
    TruncatedValue,
    /// Defender did not keep an update: the same payload was sent on two runs in a row and the
    /// row still differs on read-back; it is not resent until the desired payload changes.
    UpdateNotKept,
    /// The impact check found recent traffic to (or runs of) the value on `hold_devices` or more
    /// devices: not blocked, held for a human to review.
    WouldBlockActive,
    /// The impact check could not run for the value (quota, permission, error) and
    /// `[impact] on_unknown = "wait"`: not pushed this run, checked again next run.
    ImpactUnknown,
}

impl Reason {
    /// Every code, in documentation order.
    pub const ALL: [Reason; 19] = [
        Reason::InvalidValue,
        Reason::CidrNotSupported,
        Reason::PrivateAddress,
        Reason::ReservedAddress,
        Reason::PublicSuffix,
        Reason::Allowlisted,
        Reason::UnsupportedType,
        Reason::ActionNotAllowed,
        Reason::Duplicate,
        Reason::OverCapacity,
        Reason::RejectedByDefender,
        Reason::FeedStale,
        Reason::FeedFailed,
        Reason::UnsupportedPattern,
        Reason::ForeignIndicator,
        Reason::TruncatedValue,
        Reason::UpdateNotKept,
        Reason::WouldBlockActive,
        Reason::ImpactUnknown,
    ];

    /// The kebab-case code, e.g. `"cidr-not-supported"`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::InvalidValue => "invalid-value",
            Reason::CidrNotSupported => "cidr-not-supported",
            Reason::PrivateAddress => "private-address",
            Reason::ReservedAddress => "reserved-address",
            Reason::PublicSuffix => "public-suffix",
            Reason::Allowlisted => "allowlisted",
            Reason::UnsupportedType => "unsupported-type",
            Reason::ActionNotAllowed => "action-not-allowed",
            Reason::Duplicate => "duplicate",
            Reason::OverCapacity => "over-capacity",
            Reason::RejectedByDefender => "rejected-by-defender",
            Reason::FeedStale => "feed-stale",
            Reason::FeedFailed => "feed-failed",
            Reason::UnsupportedPattern => "unsupported-pattern",
            Reason::ForeignIndicator => "foreign-indicator",
            Reason::TruncatedValue => "truncated-value",
            Reason::UpdateNotKept => "update-not-kept",
            Reason::WouldBlockActive => "would-block-active",
            Reason::ImpactUnknown => "impact-unknown",
        }
    }

    /// One-line description, used by the README table and `--help` texts.
    pub fn description(self) -> &'static str {
        match self {
            Reason::InvalidValue => {
                "not a valid IP, domain, URL, hash or thumbprint (or not of the declared type)"
            }
            Reason::CidrNotSupported => {
                "a CIDR range wider than one address; Defender takes single addresses"
            }
            Reason::PrivateAddress => {
                "private, loopback, link-local, CGNAT, multicast, unspecified or ULA address"
            }
            Reason::ReservedAddress => "reserved or documentation address range",
            Reason::PublicSuffix => "a public suffix (e.g. co.uk) with no registrable domain",
            Reason::Allowlisted => "on the built-in, user or warninglist allowlist",
            Reason::UnsupportedType => "a type Defender indicators cannot hold (e.g. filename, email)",
            Reason::ActionNotAllowed => "the action is not allowed for this indicator type",
            Reason::Duplicate => "the same type and value was seen earlier",
            Reason::OverCapacity => {
                "left out: the tenant cap minus foreign indicators and headroom is reached"
            }
            Reason::RejectedByDefender => "Defender refused the value on import",
            Reason::FeedStale => "the feed failed and its last good copy is older than max_age",
            Reason::FeedFailed => "the feed failed and has no usable last good copy",
            Reason::UnsupportedPattern => "a STIX pattern outside the supported subset",
            Reason::ForeignIndicator => {
                "the tenant holds this type, value and action under another creator; left alone"
            }
            Reason::TruncatedValue => {
                "a value cut short by its publisher (ends in `…`, or a URL in `...` or mid-escape)"
            }
            Reason::UpdateNotKept => {
                "Defender did not keep the same update sent on two runs in a row; not resent until it changes"
            }
            Reason::WouldBlockActive => {
                "the impact check saw recent traffic to it on many devices; held for review, not blocked"
            }
            Reason::ImpactUnknown => {
                "the impact check could not run for it and on_unknown = \"wait\"; checked again next run"
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
