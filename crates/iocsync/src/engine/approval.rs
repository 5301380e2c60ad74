//! A human in the loop (`[sync] approval = true`): scheduled runs plan instead of applying, and
//! the plan (the same saved plan `plan --out` writes, with its review text) waits in the state
//! database until an approver applies it with `sync --plan` semantics (drift check included) or
//! rejects it. Undo requests follow the same path: an analyst asks, an approver confirms and the
//! existing undo engine runs. Everything that writes takes the run lock.

use super::audit::record_or_warn;
use super::saved::SavedPlan;
use super::{SyncRequest, TenantOutcome, lock, open_store};
use crate::config::Config;
use crate::daemon::RunLock;
use crate::state::{PendingPlanRow, StateStore};
use anyhow::Context;
use chrono::{DateTime, Utc};
use iocsync_core::plan::match_value;
use iocsync_ioc::IndicatorType;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

pub use crate::state::UndoRequest;

/// How old a pending plan may be when it is approved (older: refused, make a new one).
pub const MAX_PLAN_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A plan waiting for approval, or decided, with its items.
#[derive(Debug, Clone, Serialize)]
pub struct PendingPlan {
    /// Id.
    pub id: i64,
    /// Tenant name.
    pub tenant: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who asked for it (a console user); `None` for the schedule.
    pub created_by: Option<String>,
    /// pending, applied, rejected, superseded or failed.
    pub status: String,
    /// Who applied or rejected it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// The review text (`plan --output markdown`).
    pub review_markdown: String,
    /// The saved plan: counts and every change (creates, updates, renews, deletes with values).
    pub plan: SavedPlan,
    /// What applying it did (the run report, or why it was refused).
    pub result: Option<Value>,
}

impl PendingPlan {
    fn from_row(r: PendingPlanRow) -> anyhow::Result<PendingPlan> {
        let plan: SavedPlan = serde_json::from_str(&r.plan_json)
            .with_context(|| format!("pending plan #{} in the state database is damaged", r.id))?;
        Ok(PendingPlan {
            id: r.id,
            tenant: r.tenant,
            created_at: r.created_at,
            created_by: r.created_by,
            status: r.status,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            review_markdown: r.review_markdown,
            plan,
            result: r.result_json.and_then(|j| serde_json::from_str(&j).ok()),
        })
    }
}

/// What approving a plan did.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalOutcome {
    /// The plan.
    pub plan_id: i64,
    /// Its tenant.
    pub tenant: String,
    /// `applied`, or `failed` (refused: drift, too old, tampered; or the apply failed).
    pub status: String,
    /// The run that applied it (also for a refusal: the run records the error).
    pub run_id: Option<i64>,
    /// Why it was refused or failed.
    pub error: Option<String>,
    /// The run report (JSON shape of DESIGN.md); its `brake` says when the brake held part back.
    pub report: Option<Value>,
    /// The run's exit code (0 ok, 3 partial, 4 brake; see README), when it ran.
    pub exit: Option<i32>,
}

/// What confirming an undo request did.
#[derive(Debug, Clone, Serialize)]
pub struct UndoOutcome {
    /// The request.
    pub request_id: i64,
    /// The run it reverted.
    pub run_id: i64,
    /// `done`, or `failed`.
    pub status: String,
    /// The undo's report (changes, skips, the undo run id).
    pub report: Option<super::undo::UndoReport>,
    /// Why it failed.
    pub error: Option<String>,
    /// What the approver should know, e.g. reverted values still in the manual list (the next
    /// run adds them again unless they are removed from it).
    pub notes: Vec<String>,
}

/// Takes the run lock, or refuses saying a run is in progress.
pub(crate) fn run_lock(config: &Config) -> anyhow::Result<RunLock> {
    RunLock::acquire(&config.sync.state).map_err(|e| anyhow::anyhow!("a run is in progress: {e:#}"))
}

/// Plans every tenant and stores each plan with changes as pending (superseding the tenant's
/// older pending plan); a tenant with nothing to change gets no plan, and its older pending
/// plan is superseded. Writes nothing to any tenant. Takes the run lock.
pub async fn plan_pending(
    config: &Config,
    actor: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<PendingPlan>> {
    let _lock = run_lock(config)?;
    Ok(plan_pending_locked(config, actor, now).await?.1)
}

/// [`plan_pending`] for a caller that holds the run lock; also returns the plan runs' outcomes.
pub(crate) async fn plan_pending_locked(
    config: &Config,
    actor: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<(Vec<TenantOutcome>, Vec<PendingPlan>)> {
    let req = SyncRequest {
        dry_run: true,
        save_plan: true,
        actor: actor.map(str::to_owned),
        ..SyncRequest::default()
    };
    let outcomes = super::sync_all(config, None, &req).await?;
    let store = open_store(config)?;
    let mut plans = Vec::new();
    for o in &outcomes {
        let tenant = &o.report.tenant;
        let Some(saved) = o.saved.as_ref().filter(|_| o.error.is_none()) else {
            tracing::warn!(%tenant, "approval: no plan made: {}", o.error.as_deref().unwrap_or("unknown error"));
            continue;
        };
        if saved.changes.is_empty() {
            let n = lock(&store).supersede_pending_plans(tenant, now)?;
            tracing::info!(%tenant, superseded = n, "approval: nothing to change, no plan to approve");
            continue;
        }
        let review = crate::output::plan_review(o, saved);
        let id =
            lock(&store).add_pending_plan(tenant, saved.created_at, actor, &saved.to_json()?, &review)?;
        tracing::info!(%tenant, id, changes = saved.changes.len(), "approval: plan waiting for approval");
        if let Some(row) = lock(&store).pending_plan(id)? {
            plans.push(PendingPlan::from_row(row)?);
        }
    }
    Ok((outcomes, plans))
}

/// The plans waiting for approval, newest first.
pub fn pending(store: &Arc<Mutex<StateStore>>) -> anyhow::Result<Vec<PendingPlan>> {
    lock(store).pending_plans(Some("pending"), 1_000)?.into_iter().map(PendingPlan::from_row).collect()
}

/// The newest `limit` plans whatever their status (decided ones show who decided and the result).
pub fn plans(store: &Arc<Mutex<StateStore>>, limit: usize) -> anyhow::Result<Vec<PendingPlan>> {
    lock(store).pending_plans(None, limit)?.into_iter().map(PendingPlan::from_row).collect()
}

/// One plan by id.
pub fn get(store: &Arc<Mutex<StateStore>>, id: i64) -> anyhow::Result<Option<PendingPlan>> {
    lock(store).pending_plan(id)?.map(PendingPlan::from_row).transpose()
}

/// Applies pending plan `id` exactly (`sync --plan` semantics: content hash, age, drift check,
/// allowlist, ownership, capacity and brake checked again) under the run lock; its journal rows
/// carry `user` as actor. A refused plan is marked failed and nothing is written.
pub async fn approve(config: &Config, id: i64, user: &str) -> anyhow::Result<ApprovalOutcome> {
    let _lock = run_lock(config)?;
    let store = open_store(config)?;
    let now = Utc::now();
    let row = lock(&store).pending_plan(id)?.with_context(|| format!("no pending plan #{id}"))?;
    if row.status != "pending" {
        anyhow::bail!("plan #{id} is {}, not pending", row.status);
    }
    if config.sync.four_eyes {
        four_eyes_on_plan(config, &store, id, &row, user)
            .map_err(|e| refused(&store, user, "plan-approve-refused", &json!({ "plan": id }), e))?;
    }
    let mut outcome = ApprovalOutcome {
        plan_id: id,
        tenant: row.tenant.clone(),
        status: "failed".to_owned(),
        run_id: None,
        error: None,
        report: None,
        exit: None,
    };
    let saved = SavedPlan::from_json(&row.plan_json, &format!("#{id}"), MAX_PLAN_AGE, now).and_then(|p| {
        config.select_tenants(Some(&p.tenant)).map_err(anyhow::Error::msg)?;
        Ok(p)
    });
    match saved {
        Err(e) => outcome.error = Some(format!("{e:#}")),
        Ok(saved) => {
            let tenant = config.select_tenants(Some(&saved.tenant)).map_err(anyhow::Error::msg)?[0];
            let req = SyncRequest {
                apply_plan: Some(Arc::new(saved)),
                actor: Some(user.to_owned()),
                ..SyncRequest::default()
            };
            let o = super::sync_tenant(config, tenant, &store, &req).await;
            outcome.run_id = lock(&store).runs(Some(&tenant.name), 1)?.first().map(|r| r.id);
            outcome.report = serde_json::to_value(&o.report).ok();
            outcome.error = o.error.clone();
            outcome.exit = Some(o.exit as i32);
            if o.error.is_none() {
                outcome.status = "applied".to_owned();
            }
        }
    }
    let result = serde_json::to_string(&outcome)?;
    if !lock(&store).decide_pending_plan(id, &outcome.status, user, Utc::now(), Some(&result))? {
        tracing::warn!(id, "plan decided by someone else meanwhile");
    }
    record_or_warn(
        &store,
        user,
        "plan-approve",
        &json!({ "plan": id, "tenant": outcome.tenant, "status": outcome.status, "run": outcome.run_id,
                "error": outcome.error }),
        Utc::now(),
    );
    Ok(outcome)
}

/// `[sync] four_eyes`: refuses (nothing written, the plan stays pending) when `user` made plan
/// `id`, or when it creates, updates or replaces a manual-list value `user` added, or deletes one
/// `user` removed. Values are compared in the match form (the tenant may spell a value otherwise
/// than the list stores it), user names without case. Renewals pass: they keep values alive.
fn four_eyes_on_plan(
    config: &Config,
    store: &Arc<Mutex<StateStore>>,
    id: i64,
    row: &PendingPlanRow,
    user: &str,
) -> anyhow::Result<()> {
    if row.created_by.as_deref().is_some_and(|by| same_user(by, user)) {
        anyhow::bail!(
            "four eyes ([sync] four_eyes): {user} made plan #{id}, so another approver must apply it"
        );
    }
    let Some(feed) = config.manual_feed() else { return Ok(()) };
    let theirs = lock(store).manual_authored_by(&feed.name, user)?;
    let keys = |set: &std::collections::BTreeSet<(String, String)>| -> std::collections::BTreeSet<_> {
        set.iter().filter_map(|(t, v)| match_key(t, v)).collect()
    };
    let (added, removed) = (keys(&theirs.added), keys(&theirs.removed));
    if added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    let saved: SavedPlan = serde_json::from_str(&row.plan_json).with_context(|| format!("plan #{id}"))?;
    let own: Vec<&str> = saved
        .changes
        .iter()
        .map(|c| &c.change)
        .filter(|c| {
            let Some(key) = match_key(&c.indicator_type, &c.value) else { return false };
            match c.kind.as_str() {
                "delete" => removed.contains(&key),
                "renew" => false,
                _ => c.feeds.contains(&feed.name) && added.contains(&key),
            }
        })
        .map(|c| c.value.as_str())
        .collect();
    if let Some(first) = own.first() {
        anyhow::bail!(
            "four eyes ([sync] four_eyes): plan #{id} holds {} change(s) to manual-list values that {user} \
             added or removed ({first}{}), so another approver must apply it",
            own.len(),
            if own.len() > 1 { ", …" } else { "" }
        );
    }
    Ok(())
}

/// A value's match form with its type (how the engine matches rows), `None` for an unknown type.
fn match_key(indicator_type: &str, value: &str) -> Option<(IndicatorType, String)> {
    let kind = indicator_type.parse::<IndicatorType>().ok()?;
    Some((kind, match_value(kind, value)))
}

/// One user under two spellings (a proxy may pass the name as typed).
fn same_user(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Audits a four-eyes refusal (`action` names what was refused) and passes the error on.
fn refused(
    store: &Arc<Mutex<StateStore>>,
    user: &str,
    action: &str,
    item: &Value,
    e: anyhow::Error,
) -> anyhow::Error {
    record_or_warn(store, user, action, &json!({ "item": item, "refused": format!("{e:#}") }), Utc::now());
    e
}

/// Rejects pending plan `id`: nothing is written. False when it was not pending.
pub fn reject(
    store: &Arc<Mutex<StateStore>>,
    id: i64,
    user: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let done = lock(store).decide_pending_plan(id, "rejected", user, now, None)?;
    if done {
        record_or_warn(store, user, "plan-reject", &json!({ "plan": id }), now);
    }
    Ok(done)
}

/// Asks for run `run_id` to be undone (an approver confirms with [`confirm_undo`]). Refused for
/// an unknown run, a dry run, an undo run, a run already undone, or one with a pending request.
pub fn request_undo(
    store: &Arc<Mutex<StateStore>>,
    run_id: i64,
    user: &str,
    comment: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let id = {
        let s = lock(store);
        let run = s.run(run_id)?.with_context(|| format!("no run {run_id}"))?;
        if run.dry_run {
            anyhow::bail!("run {run_id} was a dry run: it changed nothing");
        }
        if let Some(of) = s.undo_of(run_id)? {
            anyhow::bail!("run {run_id} is the undo of run {of}: undoing an undo is refused");
        }
        if let Some(by) = s.undone_by(run_id)? {
            anyhow::bail!("run {run_id} was already undone by run {by}");
        }
        if s.undo_requests(Some("pending"), None)?.iter().any(|r| r.run_id == run_id) {
            anyhow::bail!("an undo of run {run_id} is already waiting for confirmation");
        }
        s.add_undo_request(run_id, &run.tenant, user, now, comment.trim())?
    };
    record_or_warn(
        store,
        user,
        "undo-request",
        &json!({ "request": id, "run": run_id, "comment": comment }),
        now,
    );
    Ok(id)
}

/// The undo requests waiting for confirmation, newest first.
pub fn pending_undos(store: &Arc<Mutex<StateStore>>) -> anyhow::Result<Vec<UndoRequest>> {
    Ok(lock(store).undo_requests(Some("pending"), None)?)
}

/// Confirms undo request `id`: runs the undo engine (`undo --run N --yes`) under the run lock,
/// journaled with `user` as actor.
pub async fn confirm_undo(config: &Config, id: i64, user: &str) -> anyhow::Result<UndoOutcome> {
    let _lock = run_lock(config)?;
    let store = open_store(config)?;
    let req = lock(&store)
        .undo_requests(None, Some(id))?
        .into_iter()
        .next()
        .with_context(|| format!("no undo request #{id}"))?;
    if req.status != "pending" {
        anyhow::bail!("undo request #{id} is {}, not pending", req.status);
    }
    if config.sync.four_eyes && same_user(&req.requested_by, user) {
        let e = anyhow::anyhow!(
            "four eyes ([sync] four_eyes): {user} requested undo #{id}, so another approver must confirm it"
        );
        return Err(refused(&store, user, "undo-confirm-refused", &json!({ "request": id }), e));
    }
    let args = crate::cli::UndoArgs {
        run: req.run_id,
        yes: true,
        force: false,
        tenant: crate::cli::TenantArgs { tenant: Some(req.tenant.clone()) },
    };
    let mut outcome = UndoOutcome {
        request_id: id,
        run_id: req.run_id,
        status: "failed".to_owned(),
        report: None,
        error: None,
        notes: Vec::new(),
    };
    match super::undo::run_as(config, &args, Some(user)).await {
        Ok((report, exit)) => {
            if exit == crate::Exit::Ok {
                outcome.status = "done".to_owned();
            } else {
                outcome.error =
                    Some(report.brake.clone().or_else(|| report.error.clone()).unwrap_or_else(|| {
                        format!("the undo ended with exit {} ({} failed)", exit as i32, report.failed.len())
                    }));
            }
            outcome.report = Some(report);
        }
        Err(e) => outcome.error = Some(format!("{e:#}")),
    }
    if outcome.status == "done" {
        outcome.notes = still_in_manual_list(config, &store, req.run_id)?;
    }
    let result = serde_json::to_value(&outcome)?;
    lock(&store).decide_undo_request(id, &outcome.status, user, Utc::now(), Some(&result))?;
    record_or_warn(
        &store,
        user,
        "undo-confirm",
        &json!({ "request": id, "run": req.run_id, "status": outcome.status, "error": outcome.error,
                "undo_run": outcome.report.as_ref().and_then(|r| r.undo_run) }),
        Utc::now(),
    );
    Ok(outcome)
}

/// Rejects undo request `id`: nothing is written. False when it was not pending.
pub fn reject_undo(
    store: &Arc<Mutex<StateStore>>,
    id: i64,
    user: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let done = lock(store).decide_undo_request(id, "rejected", user, now, None)?;
    if done {
        record_or_warn(store, user, "undo-reject", &json!({ "request": id }), now);
    }
    Ok(done)
}

/// The values run `run_id` created for the manual list that are still active in it: an undo
/// deletes them from the tenant, but the next run adds them again unless they are removed.
fn still_in_manual_list(
    config: &Config,
    store: &Arc<Mutex<StateStore>>,
    run_id: i64,
) -> anyhow::Result<Vec<String>> {
    let Some(feed) = config.manual_feed() else { return Ok(Vec::new()) };
    let s = lock(store);
    let active: std::collections::BTreeSet<(String, String)> = s
        .manual_values(Some(&feed.name), Utc::now())?
        .into_iter()
        .map(|v| (v.indicator_type, v.value))
        .collect();
    Ok(s.journal_of_run(run_id)?
        .into_iter()
        .filter(|r| r.entry.kind == "create" && r.entry.feeds.contains(&feed.name))
        .filter(|r| active.contains(&(r.entry.indicator_type.clone(), r.entry.value.clone())))
        .map(|r| {
            format!(
                "{} is still in the manual list {}: the next run adds it again unless it is removed there",
                r.entry.value, feed.name
            )
        })
        .collect())
}

/// Every undo request, newest first (decided ones show who decided and the result).
pub fn undo_requests(store: &Arc<Mutex<StateStore>>) -> anyhow::Result<Vec<UndoRequest>> {
    Ok(lock(store).undo_requests(None, None)?)
}
