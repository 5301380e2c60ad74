//! The run report: the JSON document of `plan` / `sync --output json` (key names are a public
//! interface, see DESIGN.md) plus a few non-JSON extras for the human output.

use crate::model::Skip;
use crate::plan::Plan;
use iocsync_ioc::{IndicatorType, Reason};
use serde::Serialize;
use std::collections::BTreeMap;

/// How many example values per reason code the human output keeps.
pub const EXAMPLES_PER_REASON: usize = 3;

/// Number of indicators per planned operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// New indicators.
    pub create: usize,
    /// Metadata changes (same id, same action).
    pub update: usize,
    /// Expiry pushed forward, nothing else changed.
    pub renew: usize,
    /// Action changes: delete the old id, create the new indicator.
    pub replace: usize,
    /// Owned indicators removed.
    pub delete: usize,
    /// Owned indicators left as they are.
    pub unchanged: usize,
}

/// The tenant cap and how it is shared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Capacity {
    /// Tenant cap (15,000 by default).
    pub limit: usize,
    /// Visible indicators not owned by iocsync.
    pub foreign: usize,
    /// Owned indicators before the run.
    pub owned_before: usize,
    /// Owned indicators once the plan is applied.
    pub owned_after: usize,
}

/// Status of one feed in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedStatus {
    /// Fetched and parsed; its content is used.
    Ok,
    /// The server said not modified; the cached copy is used.
    NotModified,
    /// Fetch failed or looked broken; the last good copy (within `max_age`) is used.
    LastGood,
    /// Failed, and the last good copy is older than `max_age`: its values are protected, not pushed.
    Stale,
    /// Failed with no last good copy: its values are protected, not pushed.
    Failed,
}

/// One feed's line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedReport {
    /// Feed name from the config.
    pub name: String,
    /// What happened to it.
    pub status: FeedStatus,
    /// Values accepted by the parser.
    pub accepted: u64,
    /// Values rejected by the parser.
    pub rejected: u64,
}

/// API calls made, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApiCalls {
    /// Token requests.
    pub token: u64,
    /// List pages.
    pub list: u64,
    /// Import calls.
    pub import: u64,
    /// BatchDelete calls.
    pub batch_delete: u64,
}

/// An item Defender refused or that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failed {
    /// Indicator type.
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    /// Value.
    pub value: String,
    /// Why (Defender's `failureReason`, or the error).
    pub reason: String,
}

/// The report of one `plan` or `sync` run (one JSON document with `--output json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Tenant name (`default` for a single `[defender]` block).
    pub tenant: String,
    /// True for `plan` and `sync --dry-run`.
    pub dry_run: bool,
    /// Planned (or applied) operations.
    pub counts: Counts,
    /// Skipped values per reason code.
    pub skipped: BTreeMap<String, u64>,
    /// Cap usage.
    pub capacity: Capacity,
    /// One line per feed, in config order.
    pub feeds: Vec<FeedReport>,
    /// API calls made.
    pub api_calls: ApiCalls,
    /// 429 responses received.
    pub throttled: u64,
    /// Items that failed.
    pub failed: Vec<Failed>,
    /// Why the plan was refused, when the brake engaged.
    pub brake: Option<String>,
    /// The impact check's summary (`null` when `[impact]` is off).
    pub impact: Option<ImpactSummary>,
    /// Hits counted this run and each feed's yield (`null` when `[hits]` is off).
    pub hits: Option<HitsSummary>,
    /// Up to [`EXAMPLES_PER_REASON`] skipped values per reason, for the human output (not JSON).
    #[serde(skip)]
    pub skipped_examples: BTreeMap<Reason, Vec<Skip>>,
    /// Notes for the human output (not JSON), e.g. limited visibility of foreign indicators.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// What the impact check did in one run (spec §13.13).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImpactSummary {
    /// Values about to be blocked that were checked (from the cache or by a query).
    pub checked: u64,
    /// Held: not pushed (`would-block-active`).
    pub held: u64,
    /// Pushed as `Audit` instead of blocking.
    pub downgraded: u64,
    /// Pushed as planned, with their hits reported.
    pub reported: u64,
    /// Values whose check did not complete this run.
    pub unknown: u64,
    /// Hunting queries sent this run.
    pub queries: u64,
    /// Values answered from the cache (`cache_for`) without a query.
    pub cached: u64,
    /// The values that were seen on `hold_devices` or more devices, with what was done.
    pub values: Vec<ImpactValue>,
}

/// Hits counted in one run (events where Defender acted on an owned indicator), and each feed's
/// yield from every count so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HitsSummary {
    /// Hunting queries sent (0 in a dry run: hits are counted only by `sync`).
    pub queries: u64,
    /// Events counted this run.
    pub events: u64,
    /// Owned indicators with at least one event this run.
    pub indicators_hit: u64,
    /// Per configured feed, in config order.
    pub feeds: Vec<FeedYield>,
    /// The most hit owned indicators (at most 10), most hit first, from every count so far.
    pub top: Vec<TopHit>,
}

/// One of the most hit indicators.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopHit {
    /// Defender `indicatorType` name.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value.
    pub value: String,
    /// Events counted on it.
    pub hits: u64,
}

/// What one feed's values caught.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FeedYield {
    /// Feed name.
    pub name: String,
    /// Owned values this feed brought.
    pub values: u64,
    /// Of them, values Defender ever acted on (since hits were first counted).
    pub values_hit: u64,
    /// Of them, values acted on within `[hits] boost_for`.
    pub values_hit_recently: u64,
    /// Events counted on this feed's values since hits were first counted.
    pub hits: u64,
}

/// One value the impact check found in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImpactValue {
    /// Defender `indicatorType`.
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    /// The value.
    pub value: String,
    /// `hold`, `audit` or `report`.
    pub verdict: String,
    /// Distinct devices with traffic or runs in the lookback window.
    pub devices: u64,
    /// Events.
    pub events: u64,
    /// Latest event (RFC 3339).
    pub last_seen: Option<String>,
}

impl RunReport {
    /// An empty report for `tenant`.
    pub fn new(tenant: impl Into<String>, dry_run: bool) -> Self {
        RunReport { tenant: tenant.into(), dry_run, ..Default::default() }
    }

    /// Counts `skips` under their reason codes and keeps the first few as examples.
    pub fn add_skips<'a>(&mut self, skips: impl IntoIterator<Item = &'a Skip>) {
        for s in skips {
            *self.skipped.entry(s.reason.code().to_owned()).or_insert(0) += 1;
            let ex = self.skipped_examples.entry(s.reason).or_default();
            if ex.len() < EXAMPLES_PER_REASON {
                ex.push(s.clone());
            }
        }
    }

    /// Counts a number of skips of one reason without examples (e.g. parser rejections).
    pub fn add_skip_count(&mut self, reason: Reason, n: u64) {
        if n > 0 {
            *self.skipped.entry(reason.code().to_owned()).or_insert(0) += n;
        }
    }

    /// Takes counts, capacity, brake, notes and skips from `plan`.
    pub fn set_plan(&mut self, plan: &Plan) {
        self.counts = plan.counts();
        self.capacity = plan.capacity;
        self.brake.clone_from(&plan.brake);
        self.notes.extend(plan.notes.iter().cloned());
        self.add_skips(&plan.skipped);
    }

    /// Total of skipped values over all reasons.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_match_design() {
        let mut r = RunReport::new("default", true);
        r.feeds.push(FeedReport {
            name: "feodo".into(),
            status: FeedStatus::LastGood,
            accepted: 3,
            rejected: 1,
        });
        r.failed.push(Failed {
            kind: IndicatorType::Url,
            value: "http://x.example/".into(),
            reason: "nope".into(),
        });
        let skip = Skip {
            kind: Some(IndicatorType::DomainName),
            value: "a.example".into(),
            reason: Reason::Allowlisted,
            feed: None,
            detail: None,
        };
        r.add_skips(std::iter::repeat_n(&skip, 5));
        r.add_skip_count(Reason::InvalidValue, 2);
        let v = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "api_calls",
                "brake",
                "capacity",
                "counts",
                "dry_run",
                "failed",
                "feeds",
                "hits",
                "impact",
                "skipped",
                "tenant",
                "throttled"
            ]
        );
        assert!(v["impact"].is_null() && v["hits"].is_null(), "null while the checks are off");
        assert_eq!(v["counts"].as_object().unwrap().len(), 6);
        for k in ["create", "update", "renew", "replace", "delete", "unchanged"] {
            assert!(v["counts"].get(k).is_some(), "{k}");
        }
        for k in ["limit", "foreign", "owned_before", "owned_after"] {
            assert!(v["capacity"].get(k).is_some(), "{k}");
        }
        for k in ["token", "list", "import", "batch_delete"] {
            assert!(v["api_calls"].get(k).is_some(), "{k}");
        }
        assert_eq!(v["feeds"][0]["status"], "last-good");
        assert_eq!(v["failed"][0]["type"], "Url");
        assert_eq!(v["skipped"]["allowlisted"], 5);
        assert_eq!(v["skipped"]["invalid-value"], 2);
        assert!(v["brake"].is_null());
        assert_eq!(r.skipped_examples[&Reason::Allowlisted].len(), EXAMPLES_PER_REASON);
        assert_eq!(r.skipped_total(), 7);
    }
}
