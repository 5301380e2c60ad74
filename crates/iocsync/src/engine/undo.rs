//! `iocsync undo --run ID`: reverts one run's journaled changes. It deletes what the run created,
//! re-creates what it deleted (old fields, iocsync's marker) and restores the fields it updated.
//! Undo is a plan: shown unless `--yes`; it goes through ownership, the allowlist, capacity and
//! the brake; it is journaled with reason `undo`; an undo run cannot itself be undone. Changes a
//! later run superseded are listed and skipped, never clobbered.

use super::apply::{self, LiveWrites};
use super::journal::{JournalSink, Journaler, existing_json, reason};
use super::lock;
use crate::Exit;
use crate::cli::UndoArgs;
use crate::config::Config;
use crate::state::{JournalEntry, JournalRow, ProvenanceRow};
use anyhow::Context;
use chrono::{DateTime, Utc};
use iocsync_core::model::{Action, Desired, Severity};
use iocsync_core::plan::{BrakeEntry, BrakeWindow, Change, Existing, Owner, Plan, match_value};
use iocsync_core::report::{ApiCalls, Capacity, Failed};
use iocsync_ioc::IndicatorType;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One change undo makes (or would make).
#[derive(Debug, Clone, Serialize)]
pub struct UndoChange {
    /// `delete` (what the run created), `create` (what it deleted) or `restore` (what it updated).
    pub kind: String,
    /// `indicatorType`.
    #[serde(rename = "type")]
    pub indicator_type: String,
    /// Value.
    pub value: String,
    /// Action.
    pub action: String,
    /// The tenant row it deletes or restores.
    pub id: Option<String>,
}

/// A change of the run that undo leaves alone, and why.
#[derive(Debug, Clone, Serialize)]
pub struct UndoSkip {
    /// The run's change: create, update, renew or delete.
    pub kind: String,
    /// `indicatorType`.
    #[serde(rename = "type")]
    pub indicator_type: String,
    /// Value.
    pub value: String,
    /// Action.
    pub action: String,
    /// Why it is left alone (superseded by a later run, allowlisted since, gone, ...).
    pub why: String,
}

/// What `undo` did or would do.
#[derive(Debug, Clone, Serialize)]
pub struct UndoReport {
    /// The run reverted.
    pub run: i64,
    /// Its tenant.
    pub tenant: String,
    /// True without `--yes`: nothing was written.
    pub dry_run: bool,
    /// The run id of this undo (with `--yes`).
    pub undo_run: Option<i64>,
    /// Changes per kind (delete, create, restore).
    pub counts: BTreeMap<String, usize>,
    /// The changes.
    pub changes: Vec<UndoChange>,
    /// The run's changes left alone.
    pub skipped: Vec<UndoSkip>,
    /// The brake's refusal, if it refused.
    pub brake: Option<String>,
    /// Items Defender refused or that were not applied.
    pub failed: Vec<Failed>,
    /// The error that stopped the apply midway.
    pub error: Option<String>,
    /// API calls made.
    pub api_calls: ApiCalls,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// The indicator a journaled tenant row describes, to import again. An expiry already past (or
/// within the hour) becomes `now + expire_days`.
fn desired_from_row(row: &Value, feeds: &[String], now: DateTime<Utc>, expire_days: u32) -> Option<Desired> {
    let s = |k: &str| row[k].as_str().map(str::to_owned);
    let expiration = s("expirationTime")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t > now + chrono::Duration::hours(1))
        .unwrap_or_else(|| now + chrono::Duration::days(i64::from(expire_days)));
    Some(Desired {
        kind: s("indicatorType")?.parse::<IndicatorType>().ok()?,
        value: s("indicatorValue")?,
        action: s("action")?.parse::<Action>().ok()?,
        severity: s("severity").and_then(|x| x.parse::<Severity>().ok()).unwrap_or(Severity::Informational),
        title: s("title").unwrap_or_default(),
        description: s("description").unwrap_or_default(),
        recommended_actions: s("recommendedActions"),
        rbac_groups: strings(&row["rbacGroupNames"]),
        generate_alert: row["generateAlert"].as_bool().unwrap_or(false),
        category: s("category"),
        mitre_techniques: strings(&row["mitreTechniques"]),
        educate_url: s("educateUrl"),
        application: s("application"),
        external_id: s("externalId"),
        expiration: DateTime::from_timestamp(expiration.timestamp(), 0).unwrap_or(expiration),
        priority: 0,
        recency: 0,
        feeds: feeds.to_vec(),
    })
}

/// The API calls a client made so far.
fn calls(client: &iocsync_defender::DefenderClient) -> ApiCalls {
    ApiCalls::from(&client.stats())
}

/// Plans (and with `--yes` applies) the undo of one run.
pub async fn run(config: &Config, args: &UndoArgs) -> anyhow::Result<(UndoReport, Exit)> {
    run_as(config, args, None).await
}

/// [`run`], recording `actor` (a console user) as who started the undo run and made its changes.
pub async fn run_as(
    config: &Config,
    args: &UndoArgs,
    actor: Option<&str>,
) -> anyhow::Result<(UndoReport, Exit)> {
    let now = Utc::now();
    let store = super::open_store(config)?;
    let (target, rows, later) = {
        let s = lock(&store);
        let Some(target) = s.run(args.run)? else {
            anyhow::bail!("no run {} in the state database {}", args.run, config.sync.state.display());
        };
        if let Some(of) = s.undo_of(args.run)? {
            anyhow::bail!(
                "run {} is the undo of run {of}: undoing an undo is refused (run a sync instead)",
                args.run
            );
        }
        if let Some(by) = s.undone_by(args.run)? {
            anyhow::bail!("run {} was already undone by run {by}", args.run);
        }
        if target.dry_run {
            anyhow::bail!("run {} was a dry run: it changed nothing", args.run);
        }
        let rows = s.journal_of_run(args.run)?;
        if rows.iter().any(|r| r.entry.reason == reason::UNDO) {
            anyhow::bail!("run {} is an undo: undoing an undo is refused", args.run);
        }
        let later = s.journal_after_run(&target.tenant, args.run)?;
        (target, rows, later)
    };
    if args.tenant.tenant.as_deref().is_some_and(|t| t != target.tenant) {
        anyhow::bail!(
            "run {} belongs to tenant {}, not {}",
            args.run,
            target.tenant,
            args.tenant.tenant.as_deref().unwrap_or("")
        );
    }
    let tenant = config.select_tenants(Some(&target.tenant)).map_err(anyhow::Error::msg)?[0];
    let conn = crate::connect::connect(config, tenant).await?;
    let result = plan_and_apply(config, tenant, &store, args, &rows, &later, now, &conn.client, actor).await;
    conn.close().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn plan_and_apply(
    config: &Config,
    tenant: &crate::config::Tenant,
    store: &std::sync::Arc<std::sync::Mutex<crate::state::StateStore>>,
    args: &UndoArgs,
    rows: &[JournalRow],
    later: &[JournalRow],
    now: DateTime<Utc>,
    client: &iocsync_defender::DefenderClient,
    actor: Option<&str>,
) -> anyhow::Result<(UndoReport, Exit)> {
    let listed = client.list_all().await.context("listing the tenant's indicators")?;
    let existing: Vec<Existing> = listed
        .iter()
        .filter(|i| !super::marker::is_own_canary(i, &tenant.client_id))
        .map(super::to_existing)
        .collect();
    let owner = Owner { client_id: tenant.client_id.clone(), tag: config.sync.owner_tag.clone() };
    // With --yes (the run lock held): a run that died mid-call gets its last writes journaled
    // first, so the undo reverts what really landed.
    let reread;
    let (rows, later) = if args.yes {
        super::journal::reconcile(store, &tenant.name, None, &existing, &owner, now);
        let s = lock(store);
        reread = (s.journal_of_run(args.run)?, s.journal_after_run(&tenant.name, args.run)?);
        (reread.0.as_slice(), reread.1.as_slice())
    } else {
        (rows, later)
    };
    let allowlist = super::build_allowlist(&config.allowlist, &tenant.allowlist)?;
    let marker = config.marker();
    let expire_days = config.defaults.expire_days.unwrap_or(30);
    let by_id: BTreeMap<&str, &Existing> = existing.iter().map(|e| (e.id.as_str(), e)).collect();
    let key = |t: &str, v: &str| -> Option<(IndicatorType, String)> {
        let k = t.parse::<IndicatorType>().ok()?;
        Some((k, match_value(k, v)))
    };
    let mut superseded_by: BTreeMap<(IndicatorType, String), i64> = BTreeMap::new();
    for r in later {
        if let Some(k) = key(&r.entry.indicator_type, &r.entry.value) {
            superseded_by.entry(k).or_insert(r.run);
        }
    }

    let mut report = UndoReport {
        run: args.run,
        tenant: tenant.name.clone(),
        dry_run: !args.yes,
        undo_run: None,
        counts: BTreeMap::new(),
        changes: Vec::new(),
        skipped: Vec::new(),
        brake: None,
        failed: Vec::new(),
        error: None,
        api_calls: ApiCalls::default(),
    };
    let mut plan = Plan::default();
    let mut entries: Vec<JournalEntry> = Vec::new();
    // Newest first: a run's later change to one value is reverted before its earlier one.
    for r in rows.iter().rev() {
        let e = &r.entry;
        let skip = |why: String| UndoSkip {
            kind: e.kind.clone(),
            indicator_type: e.indicator_type.clone(),
            value: e.value.clone(),
            action: e.action.clone(),
            why,
        };
        let Some(k) = key(&e.indicator_type, &e.value) else {
            report.skipped.push(skip(format!("unknown indicator type {}", e.indicator_type)));
            continue;
        };
        if let Some(run) = superseded_by.get(&k) {
            report.skipped.push(skip(format!("superseded by run {run}")));
            continue;
        }
        let current = e.id.as_deref().and_then(|id| by_id.get(id)).copied();
        match e.kind.as_str() {
            "create" => {
                let Some(row) = current else {
                    report.skipped.push(skip("already gone from the tenant".to_owned()));
                    continue;
                };
                if !owner.owns(row) {
                    report.skipped.push(skip(format!("row {} is not iocsync's", row.id)));
                    continue;
                }
                plan.deletes.push(row.to_ref());
                plan.brake_counted += 1;
                entries.push(JournalEntry {
                    kind: "delete".into(),
                    id: Some(row.id.clone()),
                    indicator_type: row.raw_type.clone(),
                    value: row.value.clone(),
                    action: row.raw_action.clone(),
                    before: Some(existing_json(row)),
                    after: None,
                    feeds: e.feeds.clone(),
                    reason: reason::UNDO.into(),
                    actor: None,
                });
                report.changes.push(UndoChange {
                    kind: "delete".into(),
                    indicator_type: row.raw_type.clone(),
                    value: row.value.clone(),
                    action: row.raw_action.clone(),
                    id: Some(row.id.clone()),
                });
            }
            "delete" | "update" | "renew" => {
                let Some(before) = &e.before else {
                    report.skipped.push(skip("the journal holds no earlier fields".to_owned()));
                    continue;
                };
                let Some(d) = desired_from_row(before, &e.feeds, now, expire_days) else {
                    report.skipped.push(skip("the earlier fields cannot be read back".to_owned()));
                    continue;
                };
                if let Some(hit) = allowlist.matches(d.kind, &d.value) {
                    report.skipped.push(skip(format!("allowlisted since ({hit}): not restored")));
                    continue;
                }
                if !marker.carried_by(d.external_id.as_deref(), Some(&d.description)) {
                    report.skipped.push(skip("the earlier row lacks iocsync's ownership marker".to_owned()));
                    continue;
                }
                let same = existing.iter().find(|x| {
                    x.kind == Some(d.kind)
                        && match_value(d.kind, &x.value) == k.1
                        && x.action == Some(d.action)
                });
                let restore = e.kind != "delete";
                let target = if restore {
                    match current {
                        Some(row) if owner.owns(row) => Some(row),
                        Some(row) => {
                            report.skipped.push(skip(format!("row {} is not iocsync's", row.id)));
                            continue;
                        }
                        None => {
                            report.skipped.push(skip("already gone from the tenant".to_owned()));
                            continue;
                        }
                    }
                } else {
                    if let Some(x) = same {
                        let who = x.created_by.as_deref().unwrap_or("unknown");
                        report
                            .skipped
                            .push(skip(format!("the tenant holds it again (row {} by {who})", x.id)));
                        continue;
                    }
                    None
                };
                let kind = if restore { "restore" } else { "create" };
                if let Some(row) = target
                    && row.expiration.is_some_and(|t| d.expiration < t - chrono::Duration::days(1))
                {
                    // Bringing an expiry earlier counts like a delete (DESIGN principle 3).
                    plan.brake_counted += 1;
                }
                entries.push(JournalEntry {
                    kind: if restore { "update".into() } else { "create".into() },
                    id: target.map(|r| r.id.clone()),
                    indicator_type: d.kind.as_str().to_owned(),
                    value: d.value.clone(),
                    action: d.action.as_str().to_owned(),
                    before: target.map(existing_json),
                    after: Some(super::journal::payload_json(&d)),
                    feeds: e.feeds.clone(),
                    reason: reason::UNDO.into(),
                    actor: None,
                });
                report.changes.push(UndoChange {
                    kind: kind.into(),
                    indicator_type: d.kind.as_str().to_owned(),
                    value: d.value.clone(),
                    action: d.action.as_str().to_owned(),
                    id: target.map(|r| r.id.clone()),
                });
                match target {
                    Some(row) => plan.updates.push(Change { id: row.id.clone(), desired: d }),
                    None => plan.creates.push(d),
                }
            }
            other => report.skipped.push(skip(format!("unknown change kind {other}"))),
        }
    }
    for c in &report.changes {
        *report.counts.entry(c.kind.clone()).or_insert(0) += 1;
    }
    let owned_before = existing.iter().filter(|e| owner.owns(e)).count();
    let foreign = existing.len() - owned_before;
    let owned_after = (owned_before + plan.creates.len()).saturating_sub(plan.deletes.len());
    plan.capacity = Capacity { limit: config.sync.capacity, foreign, owned_before, owned_after };
    let room = config.sync.capacity.saturating_sub(config.sync.headroom);
    if !plan.creates.is_empty() && foreign + owned_after > room {
        anyhow::bail!(
            "undo would leave {} indicators in the tenant, over the capacity {} minus headroom {}; nothing was done",
            foreign + owned_after,
            config.sync.capacity,
            config.sync.headroom
        );
    }
    let window = chrono::Duration::from_std(config.sync.brake_window).unwrap_or(chrono::Duration::hours(24));
    let ledger =
        lock(store).brake_ledger(&tenant.name, now - window).context("reading the brake's memory")?;
    let bw = BrakeWindow::from_ledger(&ledger, now, window);
    let peak = bw.peak_owned.max(owned_before);
    let budget = ((config.sync.max_delete_fraction * peak as f64).floor() as usize).saturating_sub(bw.used);
    report.api_calls = calls(client);
    if plan.brake_counted > budget && !args.force {
        report.brake = Some(format!(
            "the brake refuses this undo: it deletes or cuts {} owned indicators and the brake window allows {budget} \
             more (max_delete_fraction {} of {peak}, {} used); nothing was done (--force overrides)",
            plan.brake_counted, config.sync.max_delete_fraction, bw.used
        ));
        return Ok((report, Exit::Brake));
    }
    // Nothing to write (no journaled change, or every one skipped): no undo run is recorded.
    if !args.yes || report.changes.is_empty() {
        return Ok((report, Exit::Ok));
    }

    let undo_run = {
        let s = lock(store);
        let id = s.begin_run(&tenant.name, false, now)?;
        s.set_undo_of(id, args.run)?;
        if let Some(a) = actor {
            s.set_run_actor(id, a)?;
        }
        id
    };
    report.undo_run = Some(undo_run);
    if !plan.import_items().is_empty() {
        super::marker::ensure(client, &tenant.client_id, &marker, &listed).await?;
    }
    let sink = JournalSink { store: store.clone(), tenant: tenant.name.clone(), run: undo_run, clock: None };
    let journal = Journaler::from_entries(&entries, Some(sink));
    let applied = apply::apply(&plan, &LiveWrites(client), &super::StopFlag::default(), &journal).await;
    report.failed = applied.failed.clone();
    report.error = applied.error.clone();
    report.api_calls = calls(client);
    let exit = if report.error.is_some() || !report.failed.is_empty() { Exit::Partial } else { Exit::Ok };
    {
        let s = lock(store);
        s.record_brake(
            &tenant.name,
            &BrakeEntry { at: now, counted: plan.brake_counted, owned: peak.max(owned_after) },
        )
        .context("recording the undo in the brake's memory")?;
        let provenance: Vec<ProvenanceRow> = plan
            .creates
            .iter()
            .filter_map(|d| {
                let id = applied.ids.get(&(
                    d.kind.as_str().to_owned(),
                    d.value.clone(),
                    d.action.as_str().to_owned(),
                ))?;
                Some(ProvenanceRow {
                    indicator_type: d.kind.as_str().to_owned(),
                    value: d.value.clone(),
                    action: d.action.as_str().to_owned(),
                    defender_id: Some(id.clone()),
                    feeds: d.feeds.iter().cloned().collect(),
                    first_seen: now,
                    last_pushed: now,
                })
            })
            .collect();
        if let Err(e) = s.upsert_provenance(&tenant.name, &provenance) {
            tracing::warn!("could not save provenance: {e}");
        }
        let status = if exit == Exit::Ok { "ok" } else { "partial" };
        let json = serde_json::to_string(&report).unwrap_or_default();
        s.finish_run(undo_run, status, exit as i32, &json, Utc::now())?;
    }
    Ok((report, exit))
}
