//! The IO engine around the pure plan: feeds -> policy -> merge -> allowlist -> list tenant ->
//! plan -> brake -> apply -> report + state. One function per stage; the stages that decide
//! live in `iocsync-core`, the ones that talk to the world are here.

mod apply;
pub mod approval;
pub mod audit;
mod hits;
mod impact;
pub mod journal;
pub mod manual;
pub mod marker;
pub mod saved;
mod stages;
pub mod undo;

pub use apply::{DryRunWrites, LiveWrites, WritePort};
pub(crate) use hits::hot as hot_values;
pub(crate) use impact::Hunter;
pub(crate) use stages::{build_allowlist, from_last_copies, to_existing};

use crate::Exit;
use crate::config::{Config, Tenant};
use crate::feeds::LoadedFeed;
use crate::state::StateStore;
use anyhow::Context;
use chrono::Utc;
use iocsync_core::report::RunReport;
use std::sync::{Arc, Mutex};

/// What the user asked of one sync.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// Plan and report, no write call.
    pub dry_run: bool,
    /// Override the delete brake.
    pub force: bool,
    /// Set by SIGTERM/ctrl-c: the apply stops after the batch in flight; the next run completes it.
    pub stop: StopFlag,
    /// The run's clock: `None` reads the system clock; tests drive virtual time through it.
    pub now: Option<chrono::DateTime<Utc>>,
    /// Build the saved form of the plan (`plan --out`) into [`TenantOutcome::saved`].
    pub save_plan: bool,
    /// Apply exactly this saved plan (`sync --plan FILE`) instead of planning from the feeds.
    pub apply_plan: Option<Arc<saved::SavedPlan>>,
    /// Who started the run (a console user name); `None` for the schedule or the CLI. Recorded
    /// on the run and on every journal row it writes.
    pub actor: Option<String>,
}

/// A shared "stop after the current batch" request.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<std::sync::atomic::AtomicBool>);

impl StopFlag {
    /// Asks every run sharing this flag to stop after its current batch.
    pub fn request(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sets the flag when the process gets SIGTERM or ctrl-c (spawned on the current runtime).
    pub fn on_signal(&self) {
        let flag = self.clone();
        tokio::spawn(async move {
            crate::daemon::shutdown_signal().await;
            tracing::warn!("stop requested: finishing the batch in flight, then stopping (again to abort)");
            flag.request();
            crate::daemon::shutdown_signal().await;
            tracing::error!("second stop request: aborting");
            std::process::exit(130);
        });
    }
}

/// The outcome of syncing one tenant.
#[derive(Debug)]
pub struct TenantOutcome {
    /// The report (JSON shape of DESIGN.md, plus examples per skip reason for the text output).
    pub report: RunReport,
    /// The exit status this tenant alone would give.
    pub exit: Exit,
    /// An error that stopped this tenant (the others still ran).
    pub error: Option<String>,
    /// Owned indicators after the run, by (indicatorType, action) (for metrics).
    pub owned_by: std::collections::BTreeMap<(String, String), u64>,
    /// Age in seconds of the content each feed contributed (None: nothing usable).
    pub feed_ages: Vec<(String, Option<i64>)>,
    /// 429 answers by endpoint (for metrics).
    pub throttled_by: iocsync_defender::ThrottledBy,
    /// API answers by endpoint and HTTP status (for metrics; empty when no client was built).
    pub calls_by_status: iocsync_defender::CallsByStatus,
    /// The first few values of each kind of change (for the text output).
    pub samples: Vec<ChangeSample>,
    /// Why a feed fell back or failed, by feed name (for the text output).
    pub feed_reasons: std::collections::BTreeMap<String, String>,
    /// The saved form of the plan, when asked for (`plan --out`).
    pub saved: Option<saved::SavedPlan>,
}

/// One planned change, shown as an example in the text output.
#[derive(Debug, Clone)]
pub struct ChangeSample {
    /// create, update, renew, replace or delete.
    pub op: &'static str,
    /// `indicatorType`.
    pub kind: String,
    /// Value.
    pub value: String,
    /// Action (for a replace: old -> new).
    pub action: String,
}

impl TenantOutcome {
    /// True when the plan has changes to apply (or applied some).
    pub fn has_changes(&self) -> bool {
        let c = &self.report.counts;
        c.create + c.update + c.renew + c.replace + c.delete > 0
    }
}

/// The process exit code for a set of tenant outcomes (the worst wins).
pub fn exit_of(outcomes: &[TenantOutcome], detailed: bool) -> Exit {
    let worst = outcomes.iter().map(|o| o.exit).max_by_key(|e| e.severity()).unwrap_or(Exit::Ok);
    if worst == Exit::Ok && detailed && outcomes.iter().any(TenantOutcome::has_changes) {
        Exit::Pending
    } else {
        worst
    }
}

/// Syncs every selected tenant; one tenant's failure does not stop the others.
pub async fn sync_all(
    config: &Config,
    tenant: Option<&str>,
    req: &SyncRequest,
) -> anyhow::Result<Vec<TenantOutcome>> {
    let tenants = config.select_tenants(tenant).map_err(anyhow::Error::msg)?;
    let store = open_store(config)?;
    let runs = tenants.into_iter().map(|t| sync_tenant(config, t, &store, req));
    Ok(futures::future::join_all(runs).await)
}

/// Opens (creating if needed) the state database named by the config.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<Mutex<StateStore>>> {
    let path = &config.sync.state;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        crate::fsutil::create_private_dir_all(dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
    }
    let store = StateStore::open(path)?;
    Ok(Arc::new(Mutex::new(store)))
}

/// Syncs one tenant and records the run; errors become a failed outcome, not a panic or an abort.
pub async fn sync_tenant(
    config: &Config,
    tenant: &Tenant,
    store: &Arc<Mutex<StateStore>>,
    req: &SyncRequest,
) -> TenantOutcome {
    let started = req.now.unwrap_or_else(Utc::now);
    let run_id = {
        let s = lock(store);
        let id = s.begin_run(&tenant.name, req.dry_run, started).ok();
        if let (Some(id), Some(actor)) = (id, req.actor.as_deref())
            && let Err(e) = s.set_run_actor(id, actor)
        {
            tracing::warn!("could not record who started the run: {e}");
        }
        id
    };
    // Every log line of this tenant's run carries its tenant and run id (`--log-format json`).
    let span = tracing::info_span!("run", tenant = %tenant.name, run_id = run_id.unwrap_or_default());
    let result = tracing::Instrument::instrument(
        async {
            match &req.apply_plan {
                Some(p) => saved::apply_saved(config, tenant, store, req, run_id, p).await,
                None => stages::run(config, tenant, store, req, run_id).await,
            }
        },
        span,
    )
    .await;
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(tenant = %tenant.name, "sync failed: {e:#}");
            let mut report = RunReport::new(&tenant.name, req.dry_run);
            report.capacity.limit = config.sync.capacity;
            TenantOutcome {
                report,
                exit: Exit::Error,
                error: Some(format!("{e:#}")),
                owned_by: Default::default(),
                feed_ages: Vec::new(),
                throttled_by: Default::default(),
                calls_by_status: Default::default(),
                samples: Vec::new(),
                feed_reasons: Default::default(),
                saved: None,
            }
        }
    };
    if let Some(id) = run_id {
        // A run that stopped midway after some writes landed: the journal shows which.
        let landed = !req.dry_run && lock(store).journal_count(id).is_ok_and(|n| n > 0);
        let status = match (&outcome.error, outcome.exit) {
            (Some(_), _) if landed => "partial",
            (Some(_), _) => "error",
            (None, Exit::Brake) => "brake",
            (None, Exit::Partial) => "partial",
            (None, _) if req.dry_run => "dry-run",
            (None, _) => "ok",
        };
        let json = serde_json::to_string(&outcome.report).unwrap_or_default();
        if let Err(e) =
            lock(store).finish_run(id, status, outcome.exit as i32, &json, req.now.unwrap_or_else(Utc::now))
        {
            tracing::warn!("could not record the run in the state database: {e}");
        }
        if !req.dry_run {
            prune_journal(config, store, req.now.unwrap_or_else(Utc::now));
        }
    }
    outcome
}

/// Drops journal rows older than `[sync] journal_retention`.
pub fn prune_journal(config: &Config, store: &Arc<Mutex<StateStore>>, now: chrono::DateTime<Utc>) {
    let keep =
        chrono::Duration::from_std(config.sync.journal_retention).unwrap_or(chrono::Duration::days(400));
    match lock(store).prune_journal(now - keep) {
        Ok(0) => {}
        Ok(n) => tracing::info!("pruned {n} journal rows older than the journal retention"),
        Err(e) => tracing::warn!("could not prune the journal: {e}"),
    }
}

/// Locks the state store; a poisoned lock (a panicked holder) still yields the store.
pub fn lock(store: &Arc<Mutex<StateStore>>) -> std::sync::MutexGuard<'_, StateStore> {
    store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Feeds that are not fresh this run (last-good, stale or failed): no indicator they brought may
/// be deleted, whatever other feeds say (DESIGN principle 2).
pub fn protected_feeds(feeds: &[LoadedFeed]) -> std::collections::BTreeSet<String> {
    feeds.iter().filter(|f| !f.status.is_fresh()).map(|f| f.name.clone()).collect()
}
