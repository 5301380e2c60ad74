//! Saved plans: `plan --out FILE` writes the exact change set with the tenant rows it was
//! planned against and a content hash; `sync --plan FILE` applies that set and nothing else,
//! after checking that the rows it touches did not change, that it is not too old and that its
//! hash matches. Feeds that changed since do not block it: the plan is what was approved. The
//! allowlist, ownership, capacity and the brake are checked again at apply time.

use super::apply::{self, DryRunWrites, LiveWrites};
use super::journal::{JournalContext, JournalSink, Journaler, existing_json};
use super::{SyncRequest, TenantOutcome, lock};
use crate::Exit;
use crate::config::{Config, Tenant};
use crate::feeds::LoadedFeed;
use crate::state::{JournalEntry, ProvenanceRow, StateStore};
use anyhow::Context;
use chrono::{DateTime, Utc};
use iocsync_core::model::Desired;
use iocsync_core::plan::{BrakeEntry, BrakeWindow, Change, Existing, Owner, Plan, match_value};
use iocsync_core::report::{ApiCalls, Capacity, RunReport};
use iocsync_ioc::IndicatorType;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The `format` of a saved plan file this version writes and reads.
pub const FORMAT: &str = "iocsync-plan/1";

/// One feed as the plan saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedFeed {
    /// Feed name.
    pub name: String,
    /// Its status in that run (ok, not-modified, last-good, stale, failed).
    pub status: Value,
    /// SHA-256 of its accepted values (type and value, sorted); `None` when nothing was usable.
    pub content_hash: Option<String>,
}

/// One change of a saved plan: the journal row it will become (kind, id and fields of the
/// tenant row it was planned against, payload, feeds, reason) and, for imports, the indicator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedChange {
    /// The change.
    #[serde(flatten)]
    pub change: JournalEntry,
    /// The indicator to import (create, update, renew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Desired>,
}

/// A saved plan (the file `plan --out` writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    /// [`FORMAT`].
    pub format: String,
    /// Tenant name.
    pub tenant: String,
    /// When the plan was made.
    pub created_at: DateTime<Utc>,
    /// SHA-256 of the config file the plan was made with.
    pub config_hash: String,
    /// The feeds and their content hashes.
    pub feeds: Vec<SavedFeed>,
    /// Changes per kind (create, update, renew, replace, delete).
    pub counts: BTreeMap<String, usize>,
    /// Skipped values per reason code.
    pub skipped: BTreeMap<String, usize>,
    /// Deletes, replaces and expiry cuts counted by the brake.
    pub brake_counted: usize,
    /// The brake's message when it held part of the plan back.
    pub brake: Option<String>,
    /// Capacity before and after.
    pub capacity: Value,
    /// The change set, deletes first.
    pub changes: Vec<SavedChange>,
    /// SHA-256 of this document without this field.
    #[serde(default)]
    pub content_hash: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The content hash of a plan document: SHA-256 of its canonical JSON (sorted keys) without
/// `content_hash`.
fn hash_of(doc: &Value) -> String {
    let mut v = doc.clone();
    if let Value::Object(m) = &mut v {
        m.remove("content_hash");
    }
    sha256_hex(v.to_string().as_bytes())
}

/// SHA-256 of a feed's accepted values (type and value, sorted).
fn feed_hash(f: &LoadedFeed) -> Option<String> {
    let parsed = f.parsed.as_ref()?;
    let mut lines: Vec<String> = parsed.iocs.iter().map(|i| format!("{}\t{}\n", i.kind, i.value)).collect();
    lines.sort();
    Some(sha256_hex(lines.concat().as_bytes()))
}

impl SavedPlan {
    /// The saved form of `plan` (made against `existing`), sealed with its content hash.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        config: &Config,
        tenant: &Tenant,
        plan: &Plan,
        existing: &[Existing],
        desired: &[Desired],
        allowlisted: &BTreeSet<(IndicatorType, String)>,
        provenance: &BTreeMap<(String, String), BTreeSet<String>>,
        loaded: &[LoadedFeed],
        now: DateTime<Utc>,
    ) -> anyhow::Result<SavedPlan> {
        let cx = JournalContext { existing, desired, allowlisted, provenance };
        let journal = Journaler::for_plan(plan, &cx, None);
        let imports: BTreeMap<(String, String, String), &Desired> = plan
            .import_items()
            .into_iter()
            .map(|d| ((d.kind.as_str().to_owned(), d.value.clone(), d.action.as_str().to_owned()), d))
            .collect();
        let changes = journal
            .planned()
            .into_iter()
            .map(|change| {
                let desired = (change.kind != "delete")
                    .then(|| {
                        imports
                            .get(&(
                                change.indicator_type.clone(),
                                change.value.clone(),
                                change.action.clone(),
                            ))
                            .map(|d| (*d).clone())
                    })
                    .flatten();
                SavedChange { change, desired }
            })
            .collect();
        let counts = plan.counts();
        let config_bytes = std::fs::read(&config.path)
            .with_context(|| format!("reading the config {} to hash it", config.path.display()))?;
        let mut skipped = BTreeMap::new();
        for s in &plan.skipped {
            *skipped.entry(s.reason.code().to_owned()).or_insert(0) += 1;
        }
        let c = &plan.capacity;
        let mut saved = SavedPlan {
            format: FORMAT.to_owned(),
            tenant: tenant.name.clone(),
            created_at: now,
            config_hash: sha256_hex(&config_bytes),
            feeds: loaded
                .iter()
                .map(|f| SavedFeed {
                    name: f.name.clone(),
                    status: serde_json::to_value(f.status.report_status()).unwrap_or(Value::Null),
                    content_hash: feed_hash(f),
                })
                .collect(),
            counts: [
                ("create", counts.create),
                ("update", counts.update),
                ("renew", counts.renew),
                ("replace", counts.replace),
                ("delete", counts.delete),
            ]
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect(),
            skipped,
            brake_counted: plan.brake_counted,
            brake: plan.brake.clone(),
            capacity: serde_json::json!({
                "limit": c.limit, "foreign": c.foreign, "owned_before": c.owned_before, "owned_after": c.owned_after,
            }),
            changes,
            content_hash: String::new(),
        };
        saved.content_hash = hash_of(&serde_json::to_value(&saved)?);
        Ok(saved)
    }

    /// The file's text (pretty JSON).
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// Reads a saved plan, refusing one whose content hash does not match or that is older than
    /// `max_age` at `now`.
    pub fn load(path: &Path, max_age: std::time::Duration, now: DateTime<Utc>) -> anyhow::Result<SavedPlan> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the saved plan {}", path.display()))?;
        SavedPlan::from_json(&text, &path.display().to_string(), max_age, now)
    }

    /// [`SavedPlan::load`] from the document's text; `origin` names it in messages (a file, or
    /// a pending plan of the state database).
    pub fn from_json(
        text: &str,
        origin: &str,
        max_age: std::time::Duration,
        now: DateTime<Utc>,
    ) -> anyhow::Result<SavedPlan> {
        let doc: Value =
            serde_json::from_str(text).with_context(|| format!("the saved plan {origin} is not JSON"))?;
        let stored = doc.get("content_hash").and_then(Value::as_str).unwrap_or_default().to_owned();
        let actual = hash_of(&doc);
        if stored != actual {
            anyhow::bail!(
                "refusing the saved plan {origin}: its content hash does not match (file says {stored:?}, content \
                 hashes to {actual}); it was edited or damaged since it was written. Make a new plan"
            );
        }
        let plan: SavedPlan = serde_json::from_value(doc)
            .with_context(|| format!("the saved plan {origin} is not an {FORMAT} document"))?;
        if plan.format != FORMAT {
            anyhow::bail!("refusing the saved plan {origin}: format {:?}, expected {FORMAT}", plan.format);
        }
        let age = now - plan.created_at;
        let max = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::hours(24));
        if age > max {
            anyhow::bail!(
                "refusing the saved plan {origin}: it was made at {} ({} h ago), older than --max-plan-age ({} h). \
                 Make a new plan",
                plan.created_at.to_rfc3339(),
                age.num_hours(),
                max.num_hours()
            );
        }
        if age < -chrono::Duration::minutes(5) {
            anyhow::bail!(
                "refusing the saved plan {origin}: it was made in the future ({})",
                plan.created_at
            );
        }
        Ok(plan)
    }
}

/// The differing wire fields of two rows, as `field: before -> now`.
fn field_diff(before: &Value, now: &Value) -> String {
    let empty = serde_json::Map::new();
    let (a, b) = (before.as_object().unwrap_or(&empty), now.as_object().unwrap_or(&empty));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or_else(|| "absent".to_owned(), Value::to_string);
            format!("{k}: {} -> {}", show(a.get(k)), show(b.get(k)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies a saved plan to one tenant (`sync --plan FILE`).
pub(super) async fn apply_saved(
    config: &Config,
    tenant: &Tenant,
    store: &Arc<Mutex<StateStore>>,
    req: &SyncRequest,
    run_id: Option<i64>,
    saved: &SavedPlan,
) -> anyhow::Result<TenantOutcome> {
    if saved.tenant != tenant.name {
        anyhow::bail!("the saved plan is for tenant {}, not {}", saved.tenant, tenant.name);
    }
    let conn = crate::connect::connect(config, tenant).await?;
    let result = apply_on(config, tenant, store, req, run_id, saved, &conn.client).await;
    conn.close().await;
    result
}

async fn apply_on(
    config: &Config,
    tenant: &Tenant,
    store: &Arc<Mutex<StateStore>>,
    req: &SyncRequest,
    run_id: Option<i64>,
    saved: &SavedPlan,
    client: &iocsync_defender::DefenderClient,
) -> anyhow::Result<TenantOutcome> {
    let now = req.now.unwrap_or_else(Utc::now);
    let listed = client.list_all().await.context("listing the tenant's indicators")?;
    let sees_foreign = match client.token_roles().await {
        Ok(Some(roles)) => roles.iter().any(|r| r == "Ti.ReadWrite.All"),
        _ => true,
    };
    if !sees_foreign && !req.dry_run {
        anyhow::bail!(
            "the app registration of tenant {} holds Ti.ReadWrite but not Ti.ReadWrite.All: it cannot see other \
             creators' indicators, so a write could overwrite one of them",
            tenant.name
        );
    }
    let existing: Vec<Existing> = listed
        .iter()
        .filter(|i| !super::marker::is_own_canary(i, &tenant.client_id))
        .map(super::to_existing)
        .collect();
    let owner = Owner { client_id: tenant.client_id.clone(), tag: config.sync.owner_tag.clone() };
    if !req.dry_run {
        super::journal::reconcile(store, &tenant.name, run_id, &existing, &owner, now);
    }
    let allowlist = super::build_allowlist(&config.allowlist, &tenant.allowlist)?;
    let marker = config.marker();
    let by_id: BTreeMap<&str, &Existing> = existing.iter().map(|e| (e.id.as_str(), e)).collect();

    let mut drift = Vec::new();
    let mut plan = Plan { brake_counted: saved.brake_counted, ..Plan::default() };
    for ch in &saved.changes {
        let c = &ch.change;
        let what = format!("{} {} {} ({})", c.kind, c.indicator_type, c.value, c.action);
        let target = match (&c.before, &c.id) {
            (Some(before), Some(id)) => match by_id.get(id.as_str()) {
                None => {
                    drift.push(format!("{what}: tenant row {id} is gone"));
                    None
                }
                Some(e) if !owner.owns(e) => {
                    drift.push(format!("{what}: tenant row {id} is not iocsync's"));
                    None
                }
                Some(e) => {
                    let now_json = existing_json(e);
                    if now_json != *before {
                        drift.push(format!(
                            "{what}: tenant row {id} changed ({})",
                            field_diff(before, &now_json)
                        ));
                    }
                    Some(*e)
                }
            },
            (Some(_), None) => {
                drift.push(format!("{what}: the plan names no tenant row id"));
                None
            }
            _ => None,
        };
        if c.kind == "delete" {
            if let Some(e) = target {
                plan.deletes.push(e.to_ref());
            } else if c.before.is_none() {
                drift.push(format!("{what}: a delete without the row it was planned against"));
            }
            continue;
        }
        let Some(d) = &ch.desired else {
            drift.push(format!("{what}: no indicator to import"));
            continue;
        };
        if d.kind.as_str() != c.indicator_type || d.value != c.value || d.action.as_str() != c.action {
            drift.push(format!("{what}: the indicator does not match the change"));
            continue;
        }
        // Nothing dangerous is pushed, whatever the file says: the value must be one iocsync
        // itself would produce, under an action its type allows.
        match iocsync_ioc::normalize::normalize(&d.value, Some(iocsync_ioc::TypeHint::Exact(d.kind)), false) {
            Ok((_, v)) if v == d.value => {}
            Ok((_, v)) => drift.push(format!("{what}: not in normalised form (would be {v})")),
            Err((reason, _)) => drift.push(format!("{what}: refused as {}", reason.code())),
        }
        if !iocsync_core::model::action_allowed(d.kind, d.action) {
            drift.push(format!("{what}: action {} is not allowed for {}", d.action, d.kind));
        }
        if let Some(hit) = allowlist.matches(d.kind, &d.value) {
            drift.push(format!("{what}: allowlisted since the plan was made ({hit})"));
        }
        if !marker.carried_by(d.external_id.as_deref(), Some(&d.description)) {
            drift.push(format!("{what}: the payload lacks iocsync's ownership marker"));
        }
        match c.kind.as_str() {
            "create" => {
                let mv = match_value(d.kind, &d.value);
                if let Some(e) = existing.iter().find(|e| {
                    e.kind == Some(d.kind)
                        && match_value(d.kind, &e.value) == mv
                        && e.action == Some(d.action)
                }) {
                    drift.push(format!(
                        "{what}: the tenant holds it now (row {}, created by {})",
                        e.id,
                        e.created_by.as_deref().unwrap_or("unknown")
                    ));
                }
                plan.creates.push(d.clone());
            }
            "update" | "renew" => {
                if let Some(e) = target {
                    let change = Change { id: e.id.clone(), desired: d.clone() };
                    if c.kind == "update" { plan.updates.push(change) } else { plan.renews.push(change) }
                }
            }
            other => drift.push(format!("{what}: unknown change kind {other:?}")),
        }
    }
    if !drift.is_empty() {
        let n = drift.len();
        drift.truncate(50);
        anyhow::bail!(
            "refusing the saved plan {}: {n} of its changes no longer match the tenant, nothing was applied; make a \
             new plan. Drift:\n  - {}",
            saved.content_hash,
            drift.join("\n  - ")
        );
    }
    // Capacity: what the tenant holds now, minus the deletes, plus the creates.
    let owned_before = existing.iter().filter(|e| owner.owns(e)).count();
    let foreign = existing.len() - owned_before;
    let owned_after =
        owned_before + plan.creates.len() - plan.deletes.len().min(owned_before + plan.creates.len());
    plan.capacity = Capacity { limit: config.sync.capacity, foreign, owned_before, owned_after };
    let room = config.sync.capacity.saturating_sub(config.sync.headroom);
    if !plan.creates.is_empty() && foreign + owned_after > room {
        anyhow::bail!(
            "refusing the saved plan {}: the tenant would hold {} indicators, over the capacity {} minus headroom {} \
             (other creators' indicators grew since the plan). Make a new plan",
            saved.content_hash,
            foreign + owned_after,
            config.sync.capacity,
            config.sync.headroom
        );
    }
    let mut report = RunReport::new(&tenant.name, req.dry_run);
    report.set_plan(&plan);
    report.notes.push(format!(
        "applying the saved plan {} made at {}",
        saved.content_hash,
        saved.created_at.to_rfc3339()
    ));
    if let Ok(bytes) = std::fs::read(&config.path)
        && sha256_hex(&bytes) != saved.config_hash
    {
        report
            .notes
            .push("the config changed since the plan was made (the plan is applied as approved)".to_owned());
    }
    // The brake, judged now over its window: a saved plan cannot slip a wipe past it.
    let window = chrono::Duration::from_std(config.sync.brake_window).unwrap_or(chrono::Duration::hours(24));
    let ledger =
        lock(store).brake_ledger(&tenant.name, now - window).context("reading the brake's memory")?;
    let bw = BrakeWindow::from_ledger(&ledger, now, window);
    let peak = bw.peak_owned.max(owned_before);
    let budget = ((config.sync.max_delete_fraction * peak as f64).floor() as usize).saturating_sub(bw.used);
    // Counted from the change set itself, never from the file's own claim: deletes, and updates
    // that bring an expiry earlier by more than a day.
    let cuts = plan
        .updates
        .iter()
        .filter(|c| {
            by_id
                .get(c.id.as_str())
                .and_then(|e| e.expiration)
                .is_some_and(|t| c.desired.expiration < t - chrono::Duration::days(1))
        })
        .count();
    let counted = (plan.deletes.len() + cuts).max(saved.brake_counted);
    plan.brake_counted = counted;
    let mut exit = Exit::Ok;
    let applied = if counted > budget && !req.force {
        let msg = format!(
            "the brake refuses the saved plan: it deletes, replaces or cuts {} owned indicators, and the brake \
             window allows {budget} more (max_delete_fraction {} of {peak}, {} used); nothing was applied \
             (--force overrides)",
            counted, config.sync.max_delete_fraction, bw.used
        );
        tracing::warn!(tenant = %tenant.name, "{msg}");
        report.brake = Some(msg);
        exit = Exit::Brake;
        apply::ApplyResult { complete: true, ..Default::default() }
    } else if req.dry_run {
        apply::apply(&plan, &DryRunWrites, &req.stop, &Journaler::none()).await
    } else {
        if !plan.import_items().is_empty() {
            super::marker::ensure(client, &tenant.client_id, &marker, &listed).await?;
        }
        let sink = run_id.map(|run| JournalSink {
            store: store.clone(),
            tenant: tenant.name.clone(),
            run,
            clock: req.now,
        });
        let entries: Vec<JournalEntry> = saved.changes.iter().map(|c| c.change.clone()).collect();
        let journal = Journaler::from_entries(&entries, sink);
        let applied = apply::apply(&plan, &LiveWrites(client), &req.stop, &journal).await;
        let s = lock(store);
        s.record_brake(
            &tenant.name,
            &BrakeEntry { at: now, counted: saved.brake_counted, owned: peak.max(owned_after) },
        )
        .context("recording the run in the brake's memory")?;
        let failed: BTreeSet<(IndicatorType, String)> =
            applied.failed.iter().map(|f| (f.kind, f.value.to_ascii_lowercase())).collect();
        let rows: Vec<ProvenanceRow> = plan
            .import_items()
            .into_iter()
            .filter(|d| !failed.contains(&(d.kind, d.value.to_ascii_lowercase())))
            .map(|d| ProvenanceRow {
                indicator_type: d.kind.as_str().to_owned(),
                value: d.value.clone(),
                action: d.action.as_str().to_owned(),
                defender_id: applied
                    .ids
                    .get(&(d.kind.as_str().to_owned(), d.value.clone(), d.action.as_str().to_owned()))
                    .cloned(),
                feeds: d.feeds.iter().cloned().collect(),
                first_seen: now,
                last_pushed: now,
            })
            .collect();
        if let Err(e) = s.upsert_provenance(&tenant.name, &rows) {
            tracing::warn!("could not save provenance: {e}");
        }
        applied
    };
    report.failed = applied.failed.clone();
    if exit == Exit::Ok && (!applied.complete || !report.failed.is_empty()) {
        exit = Exit::Partial;
    }
    let stats = client.stats();
    report.api_calls = ApiCalls::from(&stats);
    report.throttled = stats.throttled;
    let owned_by = apply::owned_by_type_and_action(&plan, &applied);
    Ok(TenantOutcome {
        report,
        exit,
        error: applied.error,
        owned_by,
        feed_ages: Vec::new(),
        throttled_by: stats.throttled_by,
        calls_by_status: client.calls_by_status(),
        samples: Vec::new(),
        feed_reasons: Default::default(),
        saved: None,
    })
}
