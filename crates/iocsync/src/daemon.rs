//! `iocsync daemon`: run sync on a schedule, one run at a time, with `/healthz` and `/metrics`
//! over HTTP; a failing run is retried at the next tick and never ends the loop.

use crate::config::{Config, Schedule};
use crate::engine::{self, SyncRequest, TenantOutcome};
use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Validates a cron expression (5 fields, or 6 with seconds).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    croner::Cron::new(expr).with_seconds_optional().parse().map_err(|e| e.to_string())
}

/// Resolves when the process gets ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// An exclusive lock on `<state>.lock`, so a cron-launched `sync` and the daemon never overlap.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock, or fails saying which lock file another run holds.
    pub fn acquire(state: &Path) -> anyhow::Result<RunLock> {
        let path = state.with_extension("lock");
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = crate::fsutil::private_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another iocsync run holds {} (a daemon or a cron-started sync); try again when it ends",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// What the daemon knows about its runs, shared with the HTTP handlers.
#[derive(Debug, Default)]
pub struct DaemonState {
    /// Runs started.
    pub runs: u64,
    /// The last finished run.
    pub last: Option<LastRun>,
    /// Last success per tenant.
    pub last_success: std::collections::BTreeMap<String, DateTime<Utc>>,
}

/// The last finished run.
#[derive(Debug)]
pub struct LastRun {
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// How long it took.
    pub duration: Duration,
    /// Per-tenant outcomes.
    pub outcomes: Vec<TenantOutcome>,
}

type Shared = Arc<Mutex<DaemonState>>;

/// Runs the daemon until SIGTERM or ctrl-c; the current run finishes its batch first.
pub async fn run(config: Config, format: crate::cli::OutputFormat) -> anyhow::Result<()> {
    let state: Shared = Arc::new(Mutex::new(DaemonState::default()));
    let listener = tokio::net::TcpListener::bind(config.daemon.listen)
        .await
        .with_context(|| format!("listening on {}", config.daemon.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "daemon serving /healthz and /metrics");
    let schedule = match &config.daemon.schedule {
        Schedule::Cron(c) => format!("cron {c}"),
        Schedule::Every(d) => format!("every {}", humantime::format_duration(*d)),
    };
    crate::output::daemon_started(
        format,
        &serde_json::json!({
            "listen": addr.to_string(),
            "metrics": format!("http://{addr}/metrics"),
            "healthz": format!("http://{addr}/healthz"),
            "schedule": schedule,
            "tenants": config.tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        }),
    );
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server stopped: {e}");
        }
    });
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let req = SyncRequest::default();
    loop {
        let wait = next_delay(&config.daemon.schedule, config.daemon.jitter, Utc::now());
        tracing::info!(in_secs = wait.as_secs(), "next run scheduled");
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(wait) => {}
        }
        // A panic in one run (a bug) is logged and the loop goes on: the daemon outlives it.
        let run = async {
            use futures::FutureExt as _;
            if std::panic::AssertUnwindSafe(run_once(&config, &state, &req)).catch_unwind().await.is_err() {
                tracing::error!(
                    "the run panicked (a bug: please report it); the next run is scheduled as usual"
                );
            }
        };
        tokio::pin!(run);
        tokio::select! {
            () = &mut run => {}
            () = &mut shutdown => {
                tracing::info!("stop requested: finishing the batch in flight");
                req.stop.request();
                run.await;
                break;
            }
        }
    }
    server.abort();
    tracing::info!("daemon stopped");
    Ok(())
}

async fn run_once(config: &Config, state: &Shared, req: &SyncRequest) {
    let started = std::time::Instant::now();
    lock_state(state).runs += 1;
    let _lock = match RunLock::acquire(&config.sync.state) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("skipping this run: {e:#}");
            return;
        }
    };
    let outcomes = match engine::sync_all(config, None, req).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("run failed: {e:#}");
            Vec::new()
        }
    };
    let now = Utc::now();
    let mut s = lock_state(state);
    for o in &outcomes {
        if o.error.is_none() {
            s.last_success.insert(o.report.tenant.clone(), now);
        }
    }
    s.last = Some(LastRun { finished: now, duration: started.elapsed(), outcomes });
}

fn lock_state(state: &Shared) -> std::sync::MutexGuard<'_, DaemonState> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long to wait before the next run.
pub fn next_delay(schedule: &Schedule, jitter: Duration, now: DateTime<Utc>) -> Duration {
    let base = match schedule {
        Schedule::Every(d) => *d,
        Schedule::Cron(expr) => parse_cron(expr)
            .ok()
            .and_then(|c| c.find_next_occurrence(&now, false).ok())
            .and_then(|next| (next - now).to_std().ok())
            .unwrap_or(Duration::from_secs(3600)),
    };
    let extra = if jitter.is_zero() {
        Duration::ZERO
    } else {
        use rand::Rng as _;
        jitter.mul_f64(rand::thread_rng().gen_range(0.0..1.0))
    };
    base + extra
}

async fn healthz(State(state): State<Shared>) -> impl IntoResponse {
    let s = lock_state(&state);
    let body = match &s.last {
        None => serde_json::json!({ "status": "starting", "runs": s.runs }),
        Some(last) => {
            let failed = last.outcomes.iter().any(|o| o.error.is_some()) || last.outcomes.is_empty();
            serde_json::json!({
                "status": if failed { "failing" } else { "ok" },
                "runs": s.runs,
                "last_run_finished": last.finished.to_rfc3339(),
                "last_run_age_seconds": (Utc::now() - last.finished).num_seconds(),
                "tenants": last.outcomes.iter().map(|o| serde_json::json!({
                    "tenant": o.report.tenant, "exit": o.exit as i32, "error": o.error,
                })).collect::<Vec<_>>(),
            })
        }
    };
    let code = if body["status"] == "failing" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, axum::Json(body))
}

async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    let s = lock_state(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render_metrics(&s))
}

/// Renders the Prometheus text exposition of the daemon state.
pub fn render_metrics(s: &DaemonState) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    family(
        "iocsync_runs_total",
        "counter",
        "Sync runs started by this daemon.",
        vec![(String::new(), s.runs as f64)],
    );
    let Some(last) = &s.last else { return out };
    let outs = &last.outcomes;
    let t = |o: &TenantOutcome| format!("tenant=\"{}\"", escape(&o.report.tenant));
    family(
        "iocsync_run_duration_seconds",
        "gauge",
        "Wall time of the last run.",
        vec![(String::new(), last.duration.as_secs_f64())],
    );
    family(
        "iocsync_last_run_success",
        "gauge",
        "1 when the tenant's last run ended without error.",
        outs.iter().map(|o| (format!("{{{}}}", t(o)), f64::from(u8::from(o.error.is_none())))).collect(),
    );
    family(
        "iocsync_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the tenant's last successful run.",
        s.last_success
            .iter()
            .map(|(k, v)| (format!("{{tenant=\"{}\"}}", escape(k)), v.timestamp() as f64))
            .collect(),
    );
    family(
        "iocsync_capacity_limit",
        "gauge",
        "Tenant indicator cap.",
        outs.iter().map(|o| (format!("{{{}}}", t(o)), o.report.capacity.limit as f64)).collect(),
    );
    family(
        "iocsync_capacity_used",
        "gauge",
        "Indicators in the tenant after the last run (foreign + owned).",
        outs.iter()
            .map(|o| {
                (format!("{{{}}}", t(o)), (o.report.capacity.foreign + o.report.capacity.owned_after) as f64)
            })
            .collect(),
    );
    family(
        "iocsync_capacity_free",
        "gauge",
        "Room left under the cap after the last run.",
        outs.iter()
            .map(|o| {
                let c = &o.report.capacity;
                (format!("{{{}}}", t(o)), c.limit.saturating_sub(c.foreign + c.owned_after) as f64)
            })
            .collect(),
    );
    family(
        "iocsync_indicators_owned",
        "gauge",
        "Indicators iocsync owns after the last run.",
        outs.iter().map(|o| (format!("{{{}}}", t(o)), o.report.capacity.owned_after as f64)).collect(),
    );
    family(
        "iocsync_indicators_owned_by_type",
        "gauge",
        "Indicators iocsync owns after the last run, by indicator type and action.",
        outs.iter()
            .flat_map(|o| {
                o.owned_by.iter().map(move |((ty, action), n)| {
                    (format!("{{{},type=\"{}\",action=\"{}\"}}", t(o), escape(ty), escape(action)), *n as f64)
                })
            })
            .collect(),
    );
    let mut changes = Vec::new();
    for o in outs {
        let c = &o.report.counts;
        for (k, v) in [
            ("create", c.create),
            ("update", c.update),
            ("renew", c.renew),
            ("replace", c.replace),
            ("delete", c.delete),
            ("unchanged", c.unchanged),
        ] {
            changes.push((format!("{{{},change=\"{k}\"}}", t(o)), v as f64));
        }
        changes.push((format!("{{{},change=\"failed\"}}", t(o)), o.report.failed.len() as f64));
    }
    family("iocsync_last_run_changes", "gauge", "Plan outcomes of the last run.", changes);
    let mut calls = Vec::new();
    for o in outs {
        let a = &o.report.api_calls;
        for (k, v) in
            [("token", a.token), ("list", a.list), ("import", a.import), ("batch_delete", a.batch_delete)]
        {
            calls.push((format!("{{{},endpoint=\"{k}\"}}", t(o)), v as f64));
        }
    }
    family("iocsync_last_run_api_calls", "gauge", "API calls of the last run by endpoint.", calls);
    family(
        "iocsync_last_run_throttled",
        "gauge",
        "429 responses in the last run.",
        outs.iter().map(|o| (format!("{{{}}}", t(o)), o.report.throttled as f64)).collect(),
    );
    let mut throttled = Vec::new();
    for o in outs {
        let b = &o.throttled_by;
        for (k, v) in [
            ("token", b.token),
            ("list", b.list),
            ("import", b.import),
            ("batch_delete", b.batch_delete),
            ("other", b.get),
        ] {
            throttled.push((format!("{{{},endpoint=\"{k}\"}}", t(o)), v as f64));
        }
    }
    family(
        "iocsync_last_run_throttled_by_endpoint",
        "gauge",
        "429 responses in the last run by endpoint.",
        throttled,
    );
    let mut feeds = Vec::new();
    for o in outs {
        for f in &o.report.feeds {
            feeds.push((
                format!(
                    "{{{},feed=\"{}\",status=\"{}\"}}",
                    t(o),
                    escape(&f.name),
                    escape(&crate::output::status_name(&f.status))
                ),
                f.accepted as f64,
            ));
        }
    }
    family(
        "iocsync_feed_accepted",
        "gauge",
        "Values accepted per feed in the last run, by feed status.",
        feeds,
    );
    family(
        "iocsync_feed_age_seconds",
        "gauge",
        "Age of the feed content used in the last run (absent when the feed contributed nothing).",
        outs.iter()
            .flat_map(|o| {
                o.feed_ages.iter().filter_map(move |(name, age)| {
                    age.map(|a| (format!("{{{},feed=\"{}\"}}", t(o), escape(name)), a as f64))
                })
            })
            .collect(),
    );
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_delay_is_the_interval_plus_at_most_the_jitter() {
        let now = Utc::now();
        let every = Schedule::Every(Duration::from_secs(60));
        assert_eq!(next_delay(&every, Duration::ZERO, now), Duration::from_secs(60));
        for _ in 0..50 {
            let d = next_delay(&every, Duration::from_secs(10), now);
            assert!(d >= Duration::from_secs(60) && d < Duration::from_secs(70), "{d:?}");
        }
        let hourly = Schedule::Cron("0 * * * *".to_owned());
        let d = next_delay(&hourly, Duration::ZERO, now);
        assert!(d <= Duration::from_secs(3600) && d > Duration::ZERO, "{d:?}");
    }
}
