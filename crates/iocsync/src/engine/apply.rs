//! Applying a plan through a write port: deletes first (freeing room under the cap), then imports,
//! in batches of 500. `--dry-run` is the same code path with a port that writes nothing.

use crate::progress;
use crate::state::{ProvenanceRow, RejectRow};
use chrono::{DateTime, Utc};
use iocsync_core::batch::{DELETE_BATCH, IMPORT_BATCH};
use iocsync_core::model::Desired;
use iocsync_core::plan::{Existing, Plan};
use iocsync_core::report::Failed;
use iocsync_defender::{
    DefenderClient, FailureClass, FailureContext, ImportItem, ImportOutcome, classify_failure,
};
use iocsync_ioc::IndicatorType;
use std::collections::BTreeMap;

/// The writes the engine makes to a tenant (the port between the plan and the Defender API).
pub trait WritePort {
    /// Creates or updates up to 500 indicators; one outcome per item, in order.
    fn import(
        &self,
        items: &[ImportItem],
    ) -> impl Future<Output = Result<Vec<ImportOutcome>, iocsync_defender::Error>> + Send;
    /// Deletes up to 500 indicators by id; returns the ids this call deleted (not the ones
    /// already gone, refused or left for the next run).
    fn batch_delete(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<String>, iocsync_defender::Error>> + Send;
}

/// Writes to the real tenant (or the emulator).
#[derive(Debug)]
pub struct LiveWrites<'a>(pub &'a DefenderClient);

impl WritePort for LiveWrites<'_> {
    async fn import(&self, items: &[ImportItem]) -> Result<Vec<ImportOutcome>, iocsync_defender::Error> {
        self.0.import(items).await
    }
    async fn batch_delete(&self, ids: &[String]) -> Result<Vec<String>, iocsync_defender::Error> {
        let out = self.0.batch_delete(ids).await?;
        for (id, reason) in &out.rejected {
            tracing::warn!("Defender refused to delete indicator {id}: {reason}");
        }
        if !out.not_attempted.is_empty() {
            tracing::warn!("{} deletes left for the next run (split budget spent)", out.not_attempted.len());
        }
        Ok(out.deleted)
    }
}

/// Writes nothing (dry-run and `plan`): every import "succeeds" without an id.
#[derive(Debug, Default)]
pub struct DryRunWrites;

impl WritePort for DryRunWrites {
    async fn import(&self, items: &[ImportItem]) -> Result<Vec<ImportOutcome>, iocsync_defender::Error> {
        Ok(items
            .iter()
            .map(|i| ImportOutcome { indicator: i.indicator_value.clone(), ..ImportOutcome::default() })
            .collect())
    }
    async fn batch_delete(&self, ids: &[String]) -> Result<Vec<String>, iocsync_defender::Error> {
        Ok(ids.to_vec())
    }
}

/// What applying a plan did.
#[derive(Debug, Clone, Default)]
pub struct ApplyResult {
    /// Items Defender refused, or that a failed call left unapplied.
    pub failed: Vec<Failed>,
    /// Refusals that will not change by retrying (remembered so they are not resent every run).
    pub permanent_rejects: Vec<RejectRow>,
    /// Defender ids of imported items, by (type, value, action).
    pub ids: BTreeMap<(String, String, String), String>,
    /// False when a call failed and the rest of the plan was not attempted.
    pub complete: bool,
    /// The error that stopped the apply, if any.
    pub error: Option<String>,
}

/// Applies a plan: deletes (pure deletes and the old side of replaces) first, then imports.
/// A failed call stops the apply; the next run completes it (Defender is the source of truth).
/// Each confirmed write is journaled through `journal` as soon as its call returns.
pub async fn apply(
    plan: &Plan,
    port: &impl WritePort,
    stop: &super::StopFlag,
    journal: &super::journal::Journaler,
) -> ApplyResult {
    let mut result = ApplyResult { complete: true, ..ApplyResult::default() };
    let delete_ids = plan.delete_ids();
    let bar = progress::batch_bar("deleting", delete_ids.len() as u64);
    for chunk in delete_ids.chunks(DELETE_BATCH) {
        if stop.is_requested() {
            return stopped(result, &bar, &plan.import_items());
        }
        journal.intend_deletes(chunk);
        match port.batch_delete(chunk).await {
            Ok(deleted) => journal.deleted(&deleted),
            Err(e) => {
                tracing::error!("batch delete failed: {e}");
                result.complete = false;
                result.error = Some(format!("batch delete failed: {e}"));
                bar.finish();
                return result;
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();

    let items: Vec<&Desired> = plan.import_items();
    // Free slots under the cap as the listing counted them; room freed by this run's deletes is
    // not counted (Defender may keep a deleted indicator's slot for a while).
    let c = &plan.capacity;
    let mut room = c.limit as i64 - (c.foreign + c.owned_before) as i64;
    let creates: std::collections::BTreeSet<_> =
        plan.creates.iter().chain(plan.replaces.iter().map(|r| &r.new)).map(Desired::key).collect();
    let bar = progress::batch_bar("importing", items.len() as u64);
    for (n, chunk) in items.chunks(IMPORT_BATCH).enumerate() {
        if stop.is_requested() {
            return stopped(result, &bar, &items[n * IMPORT_BATCH..]);
        }
        let wire: Vec<ImportItem> = chunk.iter().map(|d| import_item(d)).collect();
        journal.intend_imports(chunk.iter().copied());
        match port.import(&wire).await {
            Ok(outcomes) => {
                journal.imported(
                    chunk
                        .iter()
                        .zip(outcomes.iter())
                        .filter(|(_, o)| !o.is_failed)
                        .filter_map(|(d, o)| Some((*d, o.id.as_deref()?))),
                );
                for (d, o) in chunk.iter().zip(outcomes.iter()) {
                    let is_create = creates.contains(&d.key());
                    if o.is_failed {
                        let reason = o.failure_reason.clone().unwrap_or_else(|| "no reason given".to_owned());
                        let class = classify_failure(
                            o,
                            &d.value,
                            FailureContext { creates: is_create, room_left: Some(room) },
                        );
                        result.failed.push(Failed {
                            kind: d.kind,
                            value: d.value.clone(),
                            reason: match class {
                                FailureClass::OverCapacity => format!("over-capacity: {reason}"),
                                _ => reason.clone(),
                            },
                        });
                        if class == FailureClass::Rejected {
                            result.permanent_rejects.push(RejectRow {
                                indicator_type: d.kind.as_str().to_owned(),
                                value: d.value.clone(),
                                action: d.action.as_str().to_owned(),
                                fingerprint: d.fingerprint(),
                                reason: "rejected-by-defender".to_owned(),
                                detail: Some(reason),
                            });
                        }
                    } else if let Some(id) = &o.id {
                        if is_create {
                            room -= 1;
                        }
                        result.ids.insert(
                            (d.kind.as_str().to_owned(), d.value.clone(), d.action.as_str().to_owned()),
                            id.clone(),
                        );
                    }
                }
            }
            Err(e) => {
                tracing::error!("import batch {} failed: {e}", n + 1);
                result.complete = false;
                result.error = Some(format!("import failed: {e}"));
                let done = n * IMPORT_BATCH;
                for d in &items[done..] {
                    result.failed.push(Failed {
                        kind: d.kind,
                        value: d.value.clone(),
                        reason: "not applied: an earlier import call failed; the next run retries it"
                            .to_owned(),
                    });
                }
                bar.finish();
                return result;
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    result
}

/// Ends an apply interrupted by a stop request: what was not sent is reported as not applied.
fn stopped(mut result: ApplyResult, bar: &indicatif::ProgressBar, left: &[&Desired]) -> ApplyResult {
    bar.finish();
    result.complete = false;
    result.error =
        Some("stopped by a signal before the plan was fully applied; the next run completes it".to_owned());
    for d in left {
        result.failed.push(Failed {
            kind: d.kind,
            value: d.value.clone(),
            reason: "not applied: stopped by a signal; the next run applies it".to_owned(),
        });
    }
    result
}

/// The wire item for one desired indicator: `externalId` carries the ownership marker (or the
/// description its suffix); `application` is the feed's user-facing text, if any (create-only:
/// Defender ignores it on update, so a row made by an earlier version keeps the owner tag there
/// while the update gives it the marker).
pub fn import_item(d: &Desired) -> ImportItem {
    ImportItem {
        indicator_value: d.value.clone(),
        indicator_type: d.kind.as_str().to_owned(),
        action: iocsync_defender::Action::parse(d.action.as_str()),
        title: d.title.clone(),
        description: d.description.clone(),
        severity: Some(d.severity.as_str().to_owned()),
        expiration_time: Some(d.expiration),
        recommended_actions: d.recommended_actions.clone(),
        // Only fields that apply (spec §13.8): no generateAlert on Allowed.
        generate_alert: (d.action != iocsync_core::model::Action::Allowed).then_some(d.generate_alert),
        rbac_group_names: d.rbac_groups.clone(),
        mitre_techniques: d.mitre_techniques.clone(),
        educate_url: d.educate_url.clone(),
        application: d.application.clone(),
        external_id: d.external_id.clone(),
    }
}

/// Owned indicators once the plan is applied, by (indicatorType, action): unchanged and kept rows,
/// updates and renews, plus creates and replacements that Defender did not refuse.
pub fn owned_by_type_and_action(plan: &Plan, applied: &ApplyResult) -> BTreeMap<(String, String), u64> {
    let failed: std::collections::BTreeSet<(IndicatorType, String)> =
        applied.failed.iter().map(|f| (f.kind, f.value.to_ascii_lowercase())).collect();
    let mut out: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut add = |t: &str, a: &str| *out.entry((t.to_owned(), a.to_owned())).or_insert(0) += 1;
    for r in plan.unchanged.iter().chain(&plan.kept) {
        add(&r.raw_type, &r.raw_action);
    }
    for c in plan.updates.iter().chain(&plan.renews) {
        add(c.desired.kind.as_str(), c.desired.action.as_str());
    }
    for d in plan.creates.iter().chain(plan.replaces.iter().map(|r| &r.new)) {
        if !failed.contains(&(d.kind, d.value.to_ascii_lowercase())) {
            add(d.kind.as_str(), d.action.as_str());
        }
    }
    out
}

/// The provenance to remember after a run: every desired value the plan did not skip and
/// Defender did not refuse, with its feeds and id; plus the owned rows the plan kept without a
/// feed this run (protected feeds), with their previous provenance.
pub fn provenance_rows(
    plan: &Plan,
    desired: &[Desired],
    applied: &ApplyResult,
    existing: &[Existing],
    old: &BTreeMap<(String, String), std::collections::BTreeSet<String>>,
    not_fresh: &std::collections::BTreeSet<String>,
    now: DateTime<Utc>,
) -> Vec<ProvenanceRow> {
    let old_lc: BTreeMap<(String, String), &std::collections::BTreeSet<String>> =
        old.iter().map(|((t, v), f)| ((t.clone(), v.to_ascii_lowercase()), f)).collect();
    // Matched in the match form: the tenant may list a value in another spelling than was sent.
    let key = |t: &str, v: &str, a: &str| {
        let mv = t
            .parse::<IndicatorType>()
            .map_or_else(|_| v.to_ascii_lowercase(), |k| iocsync_core::plan::match_value(k, v));
        (t.to_owned(), mv, a.to_owned())
    };
    let mut ids: BTreeMap<(String, String, String), String> = existing
        .iter()
        .filter_map(|e| Some((key(e.kind?.as_str(), &e.value, e.action?.as_str()), e.id.clone())))
        .collect();
    for ((t, v, a), id) in &applied.ids {
        ids.insert(key(t, v, a), id.clone());
    }
    let skipped: std::collections::BTreeSet<(Option<IndicatorType>, String)> =
        plan.skipped.iter().map(|s| (s.kind, s.value.to_ascii_lowercase())).collect();
    let failed: std::collections::BTreeSet<(IndicatorType, String)> =
        applied.failed.iter().map(|f| (f.kind, f.value.to_ascii_lowercase())).collect();
    let mut rows: Vec<ProvenanceRow> = desired
        .iter()
        .filter(|d| !skipped.contains(&(Some(d.kind), d.value.to_ascii_lowercase())))
        .filter(|d| !failed.contains(&(d.kind, d.value.to_ascii_lowercase())))
        .map(|d| ProvenanceRow {
            indicator_type: d.kind.as_str().to_owned(),
            value: d.value.clone(),
            action: d.action.as_str().to_owned(),
            defender_id: ids.get(&key(d.kind.as_str(), &d.value, d.action.as_str())).cloned(),
            // A feed that is not fresh this run keeps its claim: once it carried the value, the
            // value stays protected while that feed is broken, whatever the other feeds do.
            feeds: d
                .feeds
                .iter()
                .cloned()
                .chain(
                    old_lc
                        .get(&(d.kind.as_str().to_owned(), d.value.to_ascii_lowercase()))
                        .into_iter()
                        .flat_map(|f| f.iter())
                        .filter(|f| not_fresh.contains(*f))
                        .cloned(),
                )
                .collect(),
            first_seen: now,
            last_pushed: now,
        })
        .collect();
    // Kept rows carry their previous provenance over; a row of unknown origin stays unknown (no
    // row), so a later run still protects it.
    for k in &plan.kept {
        let Some(feeds) =
            old_lc.get(&(k.raw_type.clone(), k.value.to_ascii_lowercase())).filter(|f| !f.is_empty())
        else {
            continue;
        };
        let feeds = (*feeds).clone();
        rows.push(ProvenanceRow {
            indicator_type: k.raw_type.clone(),
            value: k.value.clone(),
            action: k.raw_action.clone(),
            defender_id: Some(k.id.clone()),
            feeds,
            first_seen: now,
            last_pushed: now,
        });
    }
    rows
}

/// The updates to remember after a run: each update applied now, counted once more when the
/// last run sent the same payload (a run in between without it starts the count again), and the
/// ones the plan held back as `update-not-kept` (so they stay held until their payload changes).
pub fn sent_update_rows(
    plan: &Plan,
    applied: &ApplyResult,
    old: &[crate::state::SentUpdate],
) -> Vec<crate::state::SentUpdate> {
    let key = |t: &str, v: &str, a: &str| (t.to_owned(), v.to_ascii_lowercase(), a.to_owned());
    let old_by_key: BTreeMap<(String, String, String), &crate::state::SentUpdate> =
        old.iter().map(|u| (key(&u.indicator_type, &u.value, &u.action), u)).collect();
    let failed: std::collections::BTreeSet<(IndicatorType, String)> =
        applied.failed.iter().map(|f| (f.kind, f.value.to_ascii_lowercase())).collect();
    let mut out = Vec::new();
    for c in &plan.updates {
        let d = &c.desired;
        if failed.contains(&(d.kind, d.value.to_ascii_lowercase())) {
            continue;
        }
        let fingerprint = d.fingerprint();
        let k = key(d.kind.as_str(), &d.value, d.action.as_str());
        let times = match old_by_key.get(&k) {
            Some(u) if u.fingerprint == fingerprint => u.times.saturating_add(1),
            _ => 1,
        };
        out.push(crate::state::SentUpdate {
            indicator_type: d.kind.as_str().to_owned(),
            value: d.value.clone(),
            action: d.action.as_str().to_owned(),
            fingerprint,
            times,
        });
    }
    for s in plan.skipped.iter().filter(|s| s.reason == iocsync_ioc::Reason::UpdateNotKept) {
        let Some(kind) = s.kind else { continue };
        let held = old.iter().find(|u| {
            u.indicator_type == kind.as_str() && u.value.eq_ignore_ascii_case(&s.value) && u.times >= 2
        });
        if let Some(u) = held {
            out.push(u.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use iocsync_core::model::{Action, Severity};
    use iocsync_core::plan::IndicatorRef;
    use iocsync_core::report::Capacity;
    use std::sync::Mutex;

    fn desired(value: &str) -> Desired {
        Desired {
            kind: IndicatorType::DomainName,
            value: value.to_owned(),
            action: Action::Block,
            severity: Severity::High,
            title: "t".into(),
            description: "d".into(),
            recommended_actions: None,
            rbac_groups: Vec::new(),
            generate_alert: true,
            category: None,
            mitre_techniques: Vec::new(),
            educate_url: None,
            expiration: DateTime::from_timestamp(2_000_000_000, 0).unwrap(),
            priority: 0,
            recency: 0,
            feeds: vec!["f".into()],
            application: None,
            external_id: None,
        }
    }

    fn plan(creates: Vec<Desired>, capacity: Capacity) -> Plan {
        Plan {
            creates,
            updates: Vec::new(),
            renews: Vec::new(),
            replaces: Vec::new(),
            deletes: Vec::<IndicatorRef>::new(),
            duplicate_deletes: 0,
            unchanged: Vec::new(),
            kept: Vec::new(),
            brake_counted: 0,
            brake_held: 0,
            skipped: Vec::new(),
            capacity,
            brake: None,
            notes: Vec::new(),
        }
    }

    /// Refuses every item with one text; records nothing else.
    struct Refusing(&'static str, Mutex<usize>);

    impl WritePort for Refusing {
        async fn import(&self, items: &[ImportItem]) -> Result<Vec<ImportOutcome>, iocsync_defender::Error> {
            *self.1.lock().unwrap() += 1;
            Ok(items
                .iter()
                .map(|i| ImportOutcome {
                    indicator: i.indicator_value.clone(),
                    is_failed: true,
                    failure_reason: Some(self.0.to_owned()),
                    ..ImportOutcome::default()
                })
                .collect())
        }
        async fn batch_delete(&self, ids: &[String]) -> Result<Vec<String>, iocsync_defender::Error> {
            Ok(ids.to_vec())
        }
    }

    #[tokio::test]
    async fn a_full_tenant_by_count_is_never_a_permanent_reject_whatever_the_text() {
        let port = Refusing("The request cannot be completed for this tenant.", Mutex::new(0));
        // The listing counted 10 of 10 slots used: no room, whatever the text says.
        let full = Capacity { limit: 10, foreign: 4, owned_before: 6, owned_after: 8 };
        let p = plan(vec![desired("a.example"), desired("b.example")], full);
        let r = apply(&p, &port, &crate::engine::StopFlag::default(), &Default::default()).await;
        assert_eq!(r.failed.len(), 2);
        assert!(r.failed.iter().all(|f| f.reason.starts_with("over-capacity: ")), "{:?}", r.failed);
        assert!(r.permanent_rejects.is_empty(), "over-capacity is never remembered");
        // With room to spare, the same text is about the items: remembered.
        let roomy = Capacity { limit: 100, foreign: 4, owned_before: 6, owned_after: 8 };
        let r =
            apply(&plan(vec![desired("a.example")], roomy), &port, &Default::default(), &Default::default())
                .await;
        assert_eq!(r.permanent_rejects.len(), 1);
        assert_eq!(r.permanent_rejects[0].detail.as_deref(), Some(port.0));
    }

    #[tokio::test]
    async fn a_cap_text_is_over_capacity_even_when_the_count_says_room() {
        let port = Refusing("Tenant reached the limit of 15000 active indicators", Mutex::new(0));
        let roomy = Capacity { limit: 15_000, foreign: 0, owned_before: 0, owned_after: 1 };
        let r =
            apply(&plan(vec![desired("a.example")], roomy), &port, &Default::default(), &Default::default())
                .await;
        assert!(r.permanent_rejects.is_empty());
        let port = Refusing("Domain name limited-offer.com is invalid.", Mutex::new(0));
        let r = apply(
            &plan(vec![desired("limited-offer.com")], roomy),
            &port,
            &Default::default(),
            &Default::default(),
        )
        .await;
        assert_eq!(r.permanent_rejects.len(), 1, "the value in the text is not read as a limit");
    }
}
