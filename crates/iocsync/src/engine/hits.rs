//! Hits after blocking (`[hits]`, spec §13.13): at each run, one hunting query per `DeviceEvents`
//! column counts the events where Defender acted on an owned indicator since the last count; the
//! counts are kept per indicator in the state database, rank values under the cap, and give each
//! feed its yield. Like the impact check, a failure here is logged and never fails the sync.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use iocsync_core::impact::{self, Sighting};
use iocsync_core::report::{FeedYield, HitsSummary};
use iocsync_ioc::IndicatorType;

use super::impact::Hunter;
use crate::config::Config;
use crate::state::HitRecord;

/// Runs the hit queries for the events after `since` and folds them into per-indicator records
/// for the `owned` values. `None` when a query failed (the window is then counted again next run).
pub(crate) async fn count(
    hunter: &Hunter,
    owned: &BTreeSet<(IndicatorType, String)>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    summary: &mut HitsSummary,
) -> Option<Vec<HitRecord>> {
    let mut seen: BTreeMap<(IndicatorType, String), Sighting> = BTreeMap::new();
    for (column, query) in impact::hit_queries(since, until) {
        summary.queries += 1;
        match hunter.query(&query).await {
            Ok(rows) => impact::read_hit_rows(column, &rows, owned, &mut seen),
            Err(e) => {
                tracing::warn!("hits not counted this run (the window is counted again next run): {e}");
                return None;
            }
        }
    }
    summary.events = seen.values().map(|s| s.events).sum();
    summary.indicators_hit = seen.len() as u64;
    Some(
        seen.into_iter()
            .map(|((kind, value), s)| HitRecord {
                indicator_type: kind.to_string(),
                value,
                hits: s.events,
                devices: s.devices,
                first_hit: s.last_seen,
                last_hit: s.last_seen,
            })
            .collect(),
    )
}

/// Events reach advanced hunting minutes after they happen: each count stops this far before the
/// run's clock, and the next one starts there, so a late event is counted once, never lost.
pub(crate) const INGESTION_LAG: chrono::Duration = chrono::Duration::minutes(30);

/// Values Defender acted on within `[hits] boost_for`, in the plan's match form: they rank above
/// silent ones under the cap.
pub(crate) fn hot(
    config: &Config,
    records: &[HitRecord],
    now: DateTime<Utc>,
) -> BTreeSet<(IndicatorType, String)> {
    let since = now - chrono::Duration::from_std(config.hits.boost_for).unwrap_or(chrono::Duration::days(30));
    records
        .iter()
        .filter(|r| r.last_hit.is_some_and(|t| t >= since))
        .filter_map(|r| {
            let kind: IndicatorType = r.indicator_type.parse().ok()?;
            Some((kind, iocsync_core::plan::match_value(kind, &r.value)))
        })
        .collect()
}

/// Each feed's yield: of the owned values it brought (provenance), how many Defender ever acted
/// on, how many recently, and the events counted.
pub(crate) fn feed_yield(
    records: &[HitRecord],
    provenance: &BTreeMap<(IndicatorType, String), BTreeSet<String>>,
    hot: &BTreeSet<(IndicatorType, String)>,
    feeds: &[String],
) -> Vec<FeedYield> {
    let by_value: BTreeMap<(IndicatorType, String), &HitRecord> =
        records.iter().filter_map(|r| Some(((r.indicator_type.parse().ok()?, r.value.clone()), r))).collect();
    feeds
        .iter()
        .map(|feed| {
            let mut y = FeedYield { name: feed.clone(), ..FeedYield::default() };
            for (key, from) in provenance {
                if !from.contains(feed) {
                    continue;
                }
                y.values += 1;
                if let Some(r) = by_value.get(key).filter(|r| r.hits > 0) {
                    y.values_hit += 1;
                    y.hits += r.hits;
                }
                if hot.contains(&(key.0, iocsync_core::plan::match_value(key.0, &key.1))) {
                    y.values_hit_recently += 1;
                }
            }
            y
        })
        .collect()
}
