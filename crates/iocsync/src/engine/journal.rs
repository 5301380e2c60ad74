//! The change journal as the apply sees it: for each planned write, the row to append once
//! Defender confirms it (kind, before/after fields, feeds, reason). Nothing is journaled before
//! the answer, so the journal equals the confirmed writes even when a run stops midway.

use crate::state::{JournalEntry, StateStore};
use chrono::{DateTime, Utc};
use iocsync_core::model::Desired;
use iocsync_core::plan::{Existing, Plan, match_value};
use iocsync_ioc::IndicatorType;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Journal reason codes (stable, kebab-case, like the skip reason codes).
pub mod reason {
    /// A feed brought a value the tenant did not hold.
    pub const NEW_IN_FEED: &str = "new-in-feed";
    /// No feed carries the value any more.
    pub const LEFT_FEED: &str = "left-feed";
    /// Metadata or the action of a held value changed.
    pub const METADATA_CHANGED: &str = "metadata-changed";
    /// The expiry was pushed forward.
    pub const RENEWAL: &str = "renewal";
    /// The value is allowlisted now.
    pub const ALLOWLISTED: &str = "allowlisted";
    /// Cut by the capacity limit.
    pub const OVER_CAPACITY: &str = "over-capacity";
    /// An extra owned copy of one (type, value, action), left by a crash.
    pub const DUPLICATE: &str = "duplicate";
    /// `iocsync undo`.
    pub const UNDO: &str = "undo";
    /// `iocsync purge`.
    pub const PURGE: &str = "purge";
    /// `iocsync adopt`.
    pub const ADOPT: &str = "adopt";
    /// A person's explicit request (reserved for manual changes recorded by hand).
    pub const MANUAL: &str = "manual";
}

/// A tenant row in wire field names: the `before` of a journal row, and what a saved plan was
/// planned against (compared field by field to detect drift).
pub fn existing_json(e: &Existing) -> Value {
    json!({
        "id": e.id,
        "indicatorType": e.raw_type,
        "indicatorValue": e.value,
        "action": e.raw_action,
        "createdBy": e.created_by,
        "application": e.application,
        "externalId": e.external_id,
        "severity": e.severity.map(|s| s.as_str()),
        "title": e.title,
        "description": e.description,
        "recommendedActions": e.recommended_actions,
        "rbacGroupNames": e.rbac_groups,
        "generateAlert": e.generate_alert,
        "category": e.category,
        "mitreTechniques": e.mitre_techniques,
        "educateUrl": e.educate_url,
        "expirationTime": e.expiration.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    })
}

/// The payload sent for a desired indicator, in wire field names.
pub fn payload_json(d: &Desired) -> Value {
    serde_json::to_value(super::apply::import_item(d)).unwrap_or(Value::Null)
}

/// Where confirmed changes go: the state database, under one run.
#[derive(Debug, Clone)]
pub struct JournalSink {
    /// The state database.
    pub store: Arc<Mutex<StateStore>>,
    /// Tenant name.
    pub tenant: String,
    /// The run id.
    pub run: i64,
    /// The run's injected clock, if any (else the system clock at each write).
    pub clock: Option<DateTime<Utc>>,
}

impl JournalSink {
    /// Appends entries (and logs each at INFO with the run id); a database error is logged, not
    /// fatal: the write already happened, and Defender stays the source of truth.
    pub fn append(&self, entries: &[JournalEntry]) {
        for e in entries {
            tracing::info!(
                run = self.run,
                tenant = %self.tenant,
                kind = %e.kind,
                indicator_id = e.id.as_deref().unwrap_or(""),
                indicator_type = %e.indicator_type,
                value = %e.value,
                action = %e.action,
                reason = %e.reason,
                feeds = %e.feeds.join(","),
                "journal"
            );
        }
        let at = self.clock.unwrap_or_else(Utc::now);
        if let Err(e) = super::lock(&self.store).append_journal(self.run, &self.tenant, at, entries) {
            tracing::error!(run = self.run, "could not append {} rows to the journal: {e}", entries.len());
        }
    }

    /// Records what the next call sends, before it is sent (see [`reconcile`]).
    pub fn intend(&self, entries: &[JournalEntry]) {
        if let Err(e) = super::lock(&self.store).intend_journal(self.run, &self.tenant, entries) {
            tracing::warn!(run = self.run, "could not record the writes about to be sent: {e}");
        }
    }
}

/// Journals what a run that died mid-call really did: its last call's intents, checked against
/// the tenant as listed now (a create landed when an owned row holds its type, value and action; a
/// delete when its id is gone; an update when the row carries the payload's fields). Runs at the
/// start of the next sync, before it plans, so the journal shows exactly which writes landed.
pub fn reconcile(
    store: &Arc<Mutex<StateStore>>,
    tenant: &str,
    current_run: Option<i64>,
    existing: &[Existing],
    owner: &iocsync_core::plan::Owner,
    now: DateTime<Utc>,
) {
    let pending = match super::lock(store).pending_journal(tenant, current_run) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("could not read the writes a stopped run left unanswered: {e}");
            return;
        }
    };
    let by_id: HashMap<&str, &Existing> = existing.iter().map(|e| (e.id.as_str(), e)).collect();
    for (run, intents) in pending {
        let landed: Vec<JournalEntry> = intents
            .into_iter()
            .filter_map(|mut e| {
                let kind = e.indicator_type.parse::<IndicatorType>().ok()?;
                match e.kind.as_str() {
                    "delete" => e.id.as_deref().is_some_and(|id| !by_id.contains_key(id)).then_some(e),
                    "create" => {
                        let mv = match_value(kind, &e.value);
                        let row = existing.iter().find(|x| {
                            x.kind == Some(kind)
                                && match_value(kind, &x.value) == mv
                                && x.raw_action == e.action
                                && owner.owns(x)
                        })?;
                        e.id = Some(row.id.clone());
                        Some(e)
                    }
                    _ => {
                        let row = by_id.get(e.id.as_deref()?)?;
                        carries(row, e.after.as_ref()?).then_some(e)
                    }
                }
            })
            .collect();
        for e in &landed {
            tracing::info!(run, value = %e.value, kind = %e.kind, "journal: a stopped run's write found in the tenant");
        }
        if let Err(e) = super::lock(store).settle_pending(run, tenant, now, &landed) {
            tracing::warn!(run, "could not journal a stopped run's last writes: {e}");
        }
    }
}

/// Whether a tenant row carries the fields an update sent (the ones Defender echoes).
fn carries(row: &Existing, after: &Value) -> bool {
    let now = existing_json(row);
    ["severity", "title", "description", "expirationTime", "action"]
        .iter()
        .all(|k| after.get(*k).is_none_or(|v| v.is_null() || now.get(*k) == Some(v)))
}

impl JournalSink {
    /// Begins a run for a command that writes outside `sync` (`purge`, `adopt`), so its changes
    /// are journaled under a run id like any other.
    pub fn begin(config: &crate::config::Config, tenant: &str) -> anyhow::Result<JournalSink> {
        let store = super::open_store(config)?;
        let run = super::lock(&store).begin_run(tenant, false, Utc::now())?;
        Ok(JournalSink { store, tenant: tenant.to_owned(), run, clock: None })
    }

    /// Records the end of a run begun with [`JournalSink::begin`].
    pub fn finish(&self, status: &str, exit: crate::Exit, report: &impl serde::Serialize) {
        let json = serde_json::to_string(report).unwrap_or_default();
        if let Err(e) = super::lock(&self.store).finish_run(self.run, status, exit as i32, &json, Utc::now())
        {
            tracing::warn!("could not record the run in the state database: {e}");
        }
    }

    /// Journals rows for indicators as listed (`purge` and `adopt` deletes; `adopt` re-creates).
    pub fn listed(
        &self,
        kind: &str,
        reason: &str,
        rows: &[(&iocsync_defender::Indicator, Option<Value>, Option<String>)],
    ) {
        let entries: Vec<JournalEntry> = rows
            .iter()
            .map(|(i, after, id)| {
                let e = super::to_existing(i);
                JournalEntry {
                    kind: kind.to_owned(),
                    id: id.clone().or_else(|| Some(e.id.clone())),
                    indicator_type: e.raw_type.clone(),
                    value: e.value.clone(),
                    action: if kind == "delete" {
                        e.raw_action.clone()
                    } else {
                        after.as_ref().and_then(|a| a["action"].as_str()).unwrap_or(&e.raw_action).to_owned()
                    },
                    before: (kind == "delete").then(|| existing_json(&e)),
                    after: after.clone(),
                    feeds: Vec::new(),
                    reason: reason.to_owned(),
                    actor: None,
                }
            })
            .collect();
        self.append(&entries);
    }
}

/// The journal rows a plan's writes produce, looked up as Defender confirms each write.
#[derive(Debug, Default)]
pub struct Journaler {
    sink: Option<JournalSink>,
    deletes: HashMap<String, JournalEntry>,
    imports: HashMap<(IndicatorType, String, String), JournalEntry>,
}

/// What decides the reasons of a plan's writes.
#[derive(Debug)]
pub struct JournalContext<'a> {
    /// The tenant rows the plan was made against.
    pub existing: &'a [Existing],
    /// The desired state (merged, allowlisted).
    pub desired: &'a [Desired],
    /// Owned values the allowlist covers now.
    pub allowlisted: &'a BTreeSet<(IndicatorType, String)>,
    /// Which feeds carried each value before this run.
    pub provenance: &'a BTreeMap<(String, String), BTreeSet<String>>,
}

impl Journaler {
    /// A journaler that writes nothing (dry runs).
    pub fn none() -> Self {
        Journaler::default()
    }

    /// The rows for every write of `plan`, appended to `sink` as they are confirmed.
    pub fn for_plan(plan: &Plan, cx: &JournalContext<'_>, sink: Option<JournalSink>) -> Self {
        let by_id: HashMap<&str, &Existing> = cx.existing.iter().map(|e| (e.id.as_str(), e)).collect();
        let desired_values: BTreeSet<(IndicatorType, String)> =
            cx.desired.iter().map(|d| (d.kind, match_value(d.kind, &d.value))).collect();
        let held: BTreeSet<(IndicatorType, String)> = plan
            .unchanged
            .iter()
            .chain(&plan.kept)
            .filter_map(|r| Some((r.kind?, match_value(r.kind?, &r.value))))
            .chain(
                plan.updates
                    .iter()
                    .chain(&plan.renews)
                    .map(|c| (c.desired.kind, match_value(c.desired.kind, &c.desired.value))),
            )
            .collect();
        let old_feeds = |t: &str, v: &str| -> Vec<String> {
            cx.provenance
                .iter()
                .filter(|((pt, pv), _)| pt == t && pv.eq_ignore_ascii_case(v))
                .flat_map(|(_, f)| f.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let mut j = Journaler { sink, ..Journaler::default() };
        for r in &plan.deletes {
            let key = r.kind.map(|k| (k, match_value(k, &r.value)));
            let why = match &key {
                Some(k) if cx.allowlisted.contains(&(k.0, r.value.clone())) => reason::ALLOWLISTED,
                Some(k) if held.contains(k) => reason::DUPLICATE,
                Some(k) if desired_values.contains(k) => reason::OVER_CAPACITY,
                _ => reason::LEFT_FEED,
            };
            j.deletes.insert(
                r.id.clone(),
                JournalEntry {
                    kind: "delete".into(),
                    id: Some(r.id.clone()),
                    indicator_type: r.raw_type.clone(),
                    value: r.value.clone(),
                    action: r.raw_action.clone(),
                    before: by_id.get(r.id.as_str()).map(|e| existing_json(e)),
                    after: None,
                    feeds: old_feeds(&r.raw_type, &r.value),
                    reason: why.into(),
                    actor: None,
                },
            );
        }
        for r in &plan.replaces {
            j.deletes.insert(
                r.old.id.clone(),
                JournalEntry {
                    kind: "delete".into(),
                    id: Some(r.old.id.clone()),
                    indicator_type: r.old.raw_type.clone(),
                    value: r.old.value.clone(),
                    action: r.old.raw_action.clone(),
                    before: by_id.get(r.old.id.as_str()).map(|e| existing_json(e)),
                    after: None,
                    feeds: r.new.feeds.clone(),
                    reason: reason::METADATA_CHANGED.into(),
                    actor: None,
                },
            );
            j.add_import("create", &r.new, None, reason::METADATA_CHANGED);
        }
        for d in &plan.creates {
            j.add_import("create", d, None, reason::NEW_IN_FEED);
        }
        for c in &plan.updates {
            let before = by_id.get(c.id.as_str()).map(|e| existing_json(e));
            j.add_import("update", &c.desired, before, reason::METADATA_CHANGED);
        }
        for c in &plan.renews {
            let before = by_id.get(c.id.as_str()).map(|e| existing_json(e));
            j.add_import("renew", &c.desired, before, reason::RENEWAL);
        }
        j
    }

    fn add_import(&mut self, kind: &str, d: &Desired, before: Option<Value>, why: &str) {
        let id = before.as_ref().and_then(|b| b["id"].as_str().map(str::to_owned));
        self.imports.insert(
            (d.kind, d.value.clone(), d.action.as_str().to_owned()),
            JournalEntry {
                kind: kind.into(),
                id,
                indicator_type: d.kind.as_str().to_owned(),
                value: d.value.clone(),
                action: d.action.as_str().to_owned(),
                before,
                after: Some(payload_json(d)),
                feeds: d.feeds.clone(),
                reason: why.into(),
                actor: None,
            },
        );
    }

    /// Every planned row, deletes first (by id) then imports (by type, value, action): the
    /// change set of a saved plan.
    pub fn planned(&self) -> Vec<JournalEntry> {
        let mut deletes: Vec<&JournalEntry> = self.deletes.values().collect();
        deletes.sort_by(|a, b| {
            iocsync_core::plan::id_cmp(a.id.as_deref().unwrap_or(""), b.id.as_deref().unwrap_or(""))
        });
        let mut imports: Vec<(&(IndicatorType, String, String), &JournalEntry)> =
            self.imports.iter().collect();
        imports.sort_by(|a, b| a.0.cmp(b.0));
        deletes.into_iter().cloned().chain(imports.into_iter().map(|(_, e)| e.clone())).collect()
    }

    /// A journaler for a saved change set (`sync --plan`, `undo`): each row is journaled as given.
    pub fn from_entries(entries: &[JournalEntry], sink: Option<JournalSink>) -> Self {
        let mut j = Journaler { sink, ..Journaler::default() };
        for e in entries {
            if e.kind == "delete" {
                if let Some(id) = &e.id {
                    j.deletes.insert(id.clone(), e.clone());
                }
            } else if let Ok(t) = e.indicator_type.parse::<IndicatorType>() {
                j.imports.insert((t, e.value.clone(), e.action.clone()), e.clone());
            }
        }
        j
    }

    /// Records the rows of a BatchDelete about to be sent.
    pub fn intend_deletes(&self, ids: &[String]) {
        let Some(sink) = &self.sink else { return };
        let rows: Vec<JournalEntry> = ids.iter().filter_map(|id| self.deletes.get(id).cloned()).collect();
        sink.intend(&rows);
    }

    /// Records the rows of an import about to be sent.
    pub fn intend_imports<'a>(&self, items: impl IntoIterator<Item = &'a Desired>) {
        let Some(sink) = &self.sink else { return };
        let rows: Vec<JournalEntry> = items
            .into_iter()
            .filter_map(|d| {
                self.imports.get(&(d.kind, d.value.clone(), d.action.as_str().to_owned())).cloned()
            })
            .collect();
        sink.intend(&rows);
    }

    /// Journals the ids one BatchDelete call confirmed deleted.
    pub fn deleted(&self, ids: &[String]) {
        let Some(sink) = &self.sink else { return };
        let rows: Vec<JournalEntry> = ids.iter().filter_map(|id| self.deletes.get(id).cloned()).collect();
        sink.append(&rows);
    }

    /// Journals the items one import call confirmed, with the ids Defender gave them.
    pub fn imported<'a>(&self, landed: impl IntoIterator<Item = (&'a Desired, &'a str)>) {
        let Some(sink) = &self.sink else { return };
        let rows: Vec<JournalEntry> = landed
            .into_iter()
            .filter_map(|(d, id)| {
                let mut e =
                    self.imports.get(&(d.kind, d.value.clone(), d.action.as_str().to_owned()))?.clone();
                e.id = Some(id.to_owned());
                Some(e)
            })
            .collect();
        sink.append(&rows);
    }
}
