//! Pure sync logic of iocsync: policy, merge, allowlist, plan, capacity, batching, pacing, report.
//!
//! The data path of one run, in this crate's terms:
//! [`policy::apply_policy`] per feed -> [`merge::merge`] across feeds -> [`Allowlist::filter`] ->
//! [`plan::plan`] against the tenant's rows -> apply (by the app, in [`batch`]-sized calls) ->
//! [`report::RunReport`].
//!
//! Nothing here does IO, and every function is deterministic: same input, same output, with
//! every output list sorted (by type, value, action).

pub mod allowlist;
pub mod batch;
pub mod feed_health;
pub mod impact;
pub mod marker;
pub mod merge;
pub mod model;
pub mod pacing;
pub mod plan;
pub mod policy;
pub mod report;

#[cfg(test)]
mod testutil;

pub use allowlist::Allowlist;
pub use feed_health::{FeedStats, Health, HealthRules, judge, looks_like_html};
pub use marker::{Marker, MarkerField};
pub use merge::merge;
pub use model::{Action, Desired, Severity, Skip, action_allowed};
pub use plan::{Change, Existing, IndicatorRef, Owner, Plan, PlanSettings, Replace, plan};
pub use policy::{FeedPolicy, PolicyOutcome, apply_policy, apply_policy_noted};
pub use report::{ApiCalls, Capacity, Counts, Failed, FeedReport, FeedStatus, RunReport};
