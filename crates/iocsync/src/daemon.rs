//! `iocsync daemon`: run sync once at start and then on a schedule (in a time zone), one run at
//! a time, with `/healthz` (liveness), `/readyz` (every tenant's last success is fresh) and
//! `/metrics` (Prometheus) over HTTP, under listener limits; a failing run is retried at the next
//! tick and never ends the loop.

use crate::config::{Config, Schedule};
use crate::engine::{self, SyncRequest, TenantOutcome};
use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Validates a cron expression (5 fields, or 6 with seconds).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
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
            crate::fsutil::create_private_dir_all(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
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
#[derive(Debug)]
pub struct DaemonState {
    /// Runs started.
    pub runs: u64,
    /// When the daemon started (the grace period of `/readyz` before a first success).
    pub started: DateTime<Utc>,
    /// The configured tenants, so every per-tenant series exists from the start.
    pub tenants: Vec<String>,
    /// `/readyz` fails for a tenant whose last success is older than this.
    pub max_staleness: Duration,
    /// The last finished run.
    pub last: Option<LastRun>,
    /// Last success per tenant.
    pub last_success: BTreeMap<String, DateTime<Utc>>,
    /// The error of each tenant's last run (absent after a success).
    pub last_error: BTreeMap<String, String>,
    /// Counters since the daemon started, and the last known gauges per tenant.
    pub totals: Totals,
}

impl DaemonState {
    /// A state with every tenant known and nothing run yet.
    pub fn new(tenants: Vec<String>, max_staleness: Duration, started: DateTime<Utc>) -> DaemonState {
        let mut totals = Totals::default();
        for t in &tenants {
            totals.tenant_runs.insert(t.clone(), 0);
            totals.failures.insert(t.clone(), 0);
            totals.brake_held.insert(t.clone(), 0);
        }
        DaemonState {
            runs: 0,
            started,
            tenants,
            max_staleness,
            last: None,
            last_success: BTreeMap::new(),
            last_error: BTreeMap::new(),
            totals,
        }
    }

    /// Folds one finished run into the state and the counters.
    pub fn record(&mut self, outcomes: Vec<TenantOutcome>, finished: DateTime<Utc>, duration: Duration) {
        for o in &outcomes {
            let tenant = &o.report.tenant;
            *self.totals.tenant_runs.entry(tenant.clone()).or_insert(0) += 1;
            match &o.error {
                None => {
                    self.last_success.insert(tenant.clone(), finished);
                    self.last_error.remove(tenant);
                }
                Some(e) => {
                    *self.totals.failures.entry(tenant.clone()).or_insert(0) += 1;
                    self.last_error.insert(tenant.clone(), e.clone());
                }
            }
            self.totals.add(o);
        }
        self.last = Some(LastRun { finished, duration, outcomes });
    }
}

/// Counters since the daemon started (Prometheus `_total` series) and the last known gauges of
/// each tenant, kept across a failed run so that no series disappears.
#[derive(Debug, Default)]
pub struct Totals {
    /// Runs per tenant.
    pub tenant_runs: BTreeMap<String, u64>,
    /// Failed runs per tenant.
    pub failures: BTreeMap<String, u64>,
    /// Runs the delete brake held, per tenant.
    pub brake_held: BTreeMap<String, u64>,
    /// API answers by (tenant, endpoint, HTTP status; "error" without an answer).
    pub api_calls: BTreeMap<(String, String, String), u64>,
    /// 429 answers by (tenant, endpoint).
    pub throttled: BTreeMap<(String, String), u64>,
    /// Items by (tenant, result): created, updated, renewed, replaced, deleted, failed.
    pub items: BTreeMap<(String, &'static str), u64>,
    /// Values rejected or skipped by (tenant, reason code).
    pub rejected: BTreeMap<(String, String), u64>,
    /// The last gauges of each tenant that reached Defender.
    pub gauges: BTreeMap<String, TenantGauges>,
    /// The last status, accepted count and content age of each (tenant, feed).
    pub feeds: BTreeMap<(String, String), FeedGauges>,
    /// Impact-check verdicts by (tenant, verdict): held, downgraded, reported, unknown.
    pub impact: BTreeMap<(String, &'static str), u64>,
    /// Advanced-hunting queries by (tenant, purpose): impact, hits.
    pub hunting_queries: BTreeMap<(String, &'static str), u64>,
    /// Hit events counted, per tenant.
    pub hit_events: BTreeMap<String, u64>,
    /// Each (tenant, feed)'s yield from the last run that counted hits: values, values hit,
    /// values hit recently, events.
    pub feed_yield: BTreeMap<(String, String), iocsync_core::report::FeedYield>,
    /// Per tenant, the hit counts of the most hit indicators, most hit first (at most 10).
    pub top_hits: BTreeMap<String, Vec<u64>>,
}

/// Gauges of one tenant from its last run that listed the tenant.
#[derive(Debug, Clone, Default)]
pub struct TenantGauges {
    /// Tenant cap.
    pub limit: u64,
    /// Foreign + owned indicators.
    pub used: u64,
    /// Owned indicators.
    pub owned: u64,
    /// Owned indicators by (type, action).
    pub owned_by: BTreeMap<(String, String), u64>,
    /// 1 when the brake held the last run.
    pub brake: bool,
}

/// One feed's last status and numbers.
#[derive(Debug, Clone, Default)]
pub struct FeedGauges {
    /// Report name of its status (`ok`, `last-good`, ...).
    pub status: String,
    /// Values accepted.
    pub accepted: u64,
    /// Age of the content used, in seconds.
    pub age: Option<i64>,
}

/// Every feed status, so that `iocsync_feed_status` always has the same series.
pub const FEED_STATUSES: &[&str] = &["ok", "not-modified", "last-good", "stale", "failed"];

impl Totals {
    fn add(&mut self, o: &TenantOutcome) {
        let t = &o.report.tenant;
        let c = &o.report.counts;
        for (k, v) in [
            ("created", c.create),
            ("updated", c.update),
            ("renewed", c.renew),
            ("replaced", c.replace),
            ("deleted", c.delete),
            ("failed", o.report.failed.len()),
        ] {
            *self.items.entry((t.clone(), k)).or_insert(0) += v as u64;
        }
        for ((endpoint, status), n) in &o.calls_by_status {
            let status = if *status == 0 { "error".to_owned() } else { status.to_string() };
            *self.api_calls.entry((t.clone(), endpoint.clone(), status)).or_insert(0) += n;
        }
        let b = &o.throttled_by;
        for (k, v) in [
            ("token", b.token),
            ("list", b.list),
            ("import", b.import),
            ("batch_delete", b.batch_delete),
            ("get", b.get),
        ] {
            *self.throttled.entry((t.clone(), k.to_owned())).or_insert(0) += v;
        }
        for (reason, n) in &o.report.skipped {
            *self.rejected.entry((t.clone(), reason.clone())).or_insert(0) += n;
        }
        if o.report.brake.is_some() {
            *self.brake_held.entry(t.clone()).or_insert(0) += 1;
        }
        // Gauges only from a run that listed the tenant: a failed run keeps the last known ones.
        if o.report.api_calls.list > 0 {
            let cap = &o.report.capacity;
            self.gauges.insert(
                t.clone(),
                TenantGauges {
                    limit: cap.limit as u64,
                    used: (cap.foreign + cap.owned_after) as u64,
                    owned: cap.owned_after as u64,
                    owned_by: o.owned_by.clone(),
                    brake: o.report.brake.is_some(),
                },
            );
        }
        if let Some(i) = &o.report.impact {
            for (k, v) in [
                ("held", i.held),
                ("downgraded", i.downgraded),
                ("reported", i.reported),
                ("unknown", i.unknown),
            ] {
                *self.impact.entry((t.clone(), k)).or_insert(0) += v;
            }
            *self.hunting_queries.entry((t.clone(), "impact")).or_insert(0) += i.queries;
        }
        if let Some(h) = &o.report.hits {
            *self.hunting_queries.entry((t.clone(), "hits")).or_insert(0) += h.queries;
            *self.hit_events.entry(t.clone()).or_insert(0) += h.events;
            for y in &h.feeds {
                self.feed_yield.insert((t.clone(), y.name.clone()), y.clone());
            }
            self.top_hits.insert(t.clone(), h.top.iter().map(|x| x.hits).collect());
        }
        for f in &o.report.feeds {
            let age = o.feed_ages.iter().find(|(n, _)| *n == f.name).and_then(|(_, a)| *a);
            self.feeds.insert(
                (t.clone(), f.name.clone()),
                FeedGauges { status: crate::output::status_name(&f.status), accepted: f.accepted, age },
            );
        }
    }
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

/// Limits of the HTTP listener, so a slow or greedy client cannot hold the daemon's sockets.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Time to receive a request's headers (slowloris).
    pub header_timeout: Duration,
    /// Time to answer one request.
    pub request_timeout: Duration,
    /// Longest life of one connection, idle keep-alive included.
    pub connection_lifetime: Duration,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            connection_lifetime: Duration::from_secs(120),
            max_connections: 64,
        }
    }
}

/// Serves `app` on `listener` under `limits` (HTTP/1.1) until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, limits: ListenerLimits) {
    serve_with(listener, app, limits, None).await;
}

/// The client's address, in every request's extensions (the console's proxy check and login
/// limiter read it).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// [`serve`], over TLS when `tls` is given (the TLS handshake counts against the header timeout).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ListenerLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let request_timeout = limits.request_timeout;
    let app = app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(request_timeout, next.run(req)).await {
                Ok(resp) => resp,
                Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
            }
        },
    ));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!("connection refused: {} connections already open", limits.max_connections);
            drop(stream);
            continue;
        };
        let service =
            hyper_util::service::TowerToHyperService::new(app.clone().layer(axum::Extension(PeerAddr(peer))));
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout);
                b
            };
            let served = async {
                match tls {
                    None => {
                        let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                    }
                    Some(acceptor) => {
                        match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => {
                                let io = hyper_util::rt::TokioIo::new(tls_stream);
                                let _ = builder.serve_connection(io, service).await;
                            }
                            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(limits.connection_lifetime, served).await;
            drop(permit);
        });
    }
}

/// Runs the daemon until SIGTERM or ctrl-c: one run at start, then on the schedule; the
/// current run finishes its batch first.
pub async fn run(config: Config, format: crate::cli::OutputFormat) -> anyhow::Result<()> {
    let tenants = config.tenants.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    let state: Shared =
        Arc::new(Mutex::new(DaemonState::new(tenants.clone(), config.daemon.max_staleness, Utc::now())));
    let listener = tokio::net::TcpListener::bind(config.daemon.listen)
        .await
        .with_context(|| format!("listening on {}", config.daemon.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "daemon serving /healthz, /readyz and /metrics");
    let tz = config.daemon.tz;
    let schedule = match &config.daemon.schedule {
        Schedule::Cron(c) => format!("cron {c} ({tz})"),
        Schedule::Every(d) => format!("every {}", humantime::format_duration(*d)),
    };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    let server = tokio::spawn(serve(listener, app, ListenerLimits::default()));
    let (console, console_url) = if config.console.enabled {
        let (at, task) = crate::console::start(&config, state.clone()).await?;
        let scheme = if config.console.tls.is_some() { "https" } else { "http" };
        (Some(task), Some(format!("{scheme}://{at}/")))
    } else {
        (None, None)
    };
    crate::output::daemon_started(
        format,
        &serde_json::json!({
            "listen": addr.to_string(),
            "metrics": format!("http://{addr}/metrics"),
            "healthz": format!("http://{addr}/healthz"),
            "readyz": format!("http://{addr}/readyz"),
            "console": console_url,
            "schedule": schedule,
            "max_staleness": humantime::format_duration(config.daemon.max_staleness).to_string(),
            "tenants": tenants,
        }),
    );
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let req = SyncRequest::default();
    // The first run starts at once: a restart must not mean hours without a sync.
    let mut wait = Duration::ZERO;
    loop {
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
        wait = next_delay(&config.daemon.schedule, tz, config.daemon.jitter, Utc::now());
        tracing::info!(in_secs = wait.as_secs(), "next run scheduled");
    }
    server.abort();
    if let Some(c) = console {
        c.abort();
    }
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
    // With approval on, a scheduled run plans: the plan waits for an approver.
    let result = if config.sync.approval {
        engine::approval::plan_pending_locked(config, None, Utc::now()).await.map(|(o, _)| o)
    } else {
        engine::sync_all(config, None, req).await
    };
    let outcomes = match result {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("run failed: {e:#}");
            // Every tenant failed this run (the state database could not be opened, ...).
            config
                .tenants
                .iter()
                .map(|t| TenantOutcome {
                    report: iocsync_core::report::RunReport::new(&t.name, false),
                    exit: crate::Exit::Error,
                    error: Some(format!("{e:#}")),
                    owned_by: BTreeMap::new(),
                    feed_ages: Vec::new(),
                    throttled_by: Default::default(),
                    calls_by_status: Default::default(),
                    samples: Vec::new(),
                    feed_reasons: BTreeMap::new(),
                    saved: None,
                })
                .collect()
        }
    };
    lock_state(state).record(outcomes, Utc::now(), started.elapsed());
}

/// What "Sync now" did.
#[derive(Debug)]
pub enum SyncNow {
    /// Approval off: the tenants were synced (one outcome per tenant).
    Synced(Vec<TenantOutcome>),
    /// Approval on: plans were made and wait for an approver (tenants with nothing to change
    /// get none).
    Planned(Vec<engine::approval::PendingPlan>),
}

/// "Sync now" from the console: takes the run lock (refused with "a run is in progress" while a
/// scheduled run or another sync holds it), then syncs every tenant as `actor` (approval off) or
/// makes pending plans (approval on). The same engine path as a scheduled run; audited.
pub async fn sync_now(config: &Config, actor: &str) -> anyhow::Result<SyncNow> {
    let _lock = engine::approval::run_lock(config)?;
    let now = Utc::now();
    let result = if config.sync.approval {
        let (_, plans) = engine::approval::plan_pending_locked(config, Some(actor), now).await?;
        SyncNow::Planned(plans)
    } else {
        let req = SyncRequest { actor: Some(actor.to_owned()), ..SyncRequest::default() };
        SyncNow::Synced(engine::sync_all(config, None, &req).await?)
    };
    let detail = match &result {
        SyncNow::Synced(o) => serde_json::json!({
            "mode": "sync",
            "tenants": o.iter().map(|t| serde_json::json!({
                "tenant": t.report.tenant, "exit": t.exit as i32, "error": t.error,
            })).collect::<Vec<_>>(),
        }),
        SyncNow::Planned(p) => serde_json::json!({
            "mode": "plan",
            "plans": p.iter().map(|x| serde_json::json!({ "plan": x.id, "tenant": x.tenant })).collect::<Vec<_>>(),
        }),
    };
    let store = engine::open_store(config)?;
    engine::audit::record_or_warn(&store, actor, "sync-now", &detail, now);
    Ok(result)
}

fn lock_state(state: &Shared) -> std::sync::MutexGuard<'_, DaemonState> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The next cron occurrence after `now` in the time zone `tz` (the console's "next run").
pub fn next_run_at(expr: &str, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    next_occurrence(expr, tz, now)
}

/// The next cron occurrence after `now`, computed in the time zone `tz`.
fn next_occurrence(expr: &str, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = parse_cron(expr).ok()?;
    let local = now.with_timezone(&tz);
    cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
}

/// How long to wait before the next run (cron occurrences are taken in the time zone `tz`).
pub fn next_delay(schedule: &Schedule, tz: Tz, jitter: Duration, now: DateTime<Utc>) -> Duration {
    let base = match schedule {
        Schedule::Every(d) => *d,
        Schedule::Cron(expr) => next_occurrence(expr, tz, now)
            .and_then(|next| (next - now).to_std().ok())
            .unwrap_or(Duration::from_secs(3600)),
    };
    let extra = if jitter.is_zero() {
        Duration::ZERO
    } else {
        use rand::RngExt as _;
        jitter.mul_f64(rand::rng().random_range(0.0..1.0))
    };
    base + extra
}

/// The usual time between two runs: the interval, or the gap between the next two cron
/// occurrences (the default `max_staleness` is twice this).
pub fn schedule_period(schedule: &Schedule, tz: Tz) -> Duration {
    match schedule {
        Schedule::Every(d) => *d,
        Schedule::Cron(expr) => {
            let now = Utc::now();
            next_occurrence(expr, tz, now)
                .and_then(|a| next_occurrence(expr, tz, a).map(|b| (a, b)))
                .and_then(|(a, b)| (b - a).to_std().ok())
                .unwrap_or(Duration::from_secs(3600))
        }
    }
}

/// The `/healthz` URL of a daemon listening on `listen` (a wildcard address probes loopback).
pub fn healthz_url(listen: &std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    format!("http://{}/healthz", std::net::SocketAddr::new(ip, listen.port()))
}

/// GETs `url` (5 s timeout) and returns the HTTP status; an error when nothing answers.
pub async fn probe(url: &str) -> anyhow::Result<u16> {
    let http = iocsync_defender::tls::http_client_builder()
        .context("setting up TLS")?
        .timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client")?;
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url} did not answer: {}", e.without_url()))?;
    Ok(resp.status().as_u16())
}

/// Liveness: 200 while the process serves; the body tells how the runs go.
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
    (StatusCode::OK, axum::Json(body))
}

/// Readiness at `now`: every tenant's last success (or the daemon's start, before a first
/// success) is at most `max_staleness` old. Returns whether ready and the per-tenant detail.
pub fn readiness(s: &DaemonState, now: DateTime<Utc>) -> (bool, serde_json::Value) {
    let max = chrono::Duration::from_std(s.max_staleness).unwrap_or(chrono::Duration::MAX);
    let mut ready = true;
    let tenants: Vec<serde_json::Value> = s
        .tenants
        .iter()
        .map(|t| {
            let last = s.last_success.get(t);
            let since = last.copied().unwrap_or(s.started);
            let stale = now - since > max;
            ready &= !stale;
            let reason = stale.then(|| {
                let why = s.last_error.get(t).map_or_else(
                    || "no run has finished".to_owned(),
                    |e| format!("last run failed: {}", crate::output::strip_controls(e)),
                );
                match last {
                    Some(at) => format!(
                        "last success {}s ago (at {}), over max_staleness {}; {why}",
                        (now - *at).num_seconds(),
                        at.to_rfc3339(),
                        humantime::format_duration(s.max_staleness)
                    ),
                    None => format!(
                        "no success since the daemon started {}s ago (max_staleness {}); {why}",
                        (now - s.started).num_seconds(),
                        humantime::format_duration(s.max_staleness)
                    ),
                }
            });
            serde_json::json!({
                "tenant": t,
                "ready": !stale,
                "last_success": last.map(DateTime::to_rfc3339),
                "reason": reason,
            })
        })
        .collect();
    let body = serde_json::json!({ "status": if ready { "ready" } else { "stale" }, "tenants": tenants });
    (ready, body)
}

/// Readiness: 503 naming each tenant whose last success is older than `max_staleness`.
async fn readyz(State(state): State<Shared>) -> impl IntoResponse {
    let (ready, body) = readiness(&lock_state(&state), Utc::now());
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(body))
}

async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    let s = lock_state(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render_metrics(&s))
}

/// One metric family being rendered.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn row(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let _ = write!(self.out, "{name}");
        if !labels.is_empty() {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = write!(self.out, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.out, " {v}");
    }
}

/// Renders the Prometheus text exposition of the daemon state: `_total` counters since the
/// daemon started, gauges from each tenant's last run that reached Defender.
pub fn render_metrics(s: &DaemonState) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    let tt = &s.totals;

    f.head("iocsync_build_info", "gauge", "Version of the running iocsync (always 1).");
    f.row(
        "iocsync_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("os", std::env::consts::OS),
            ("arch", std::env::consts::ARCH),
        ],
        1.0,
    );
    f.head("iocsync_daemon_start_timestamp_seconds", "gauge", "Unix time the daemon started.");
    f.row("iocsync_daemon_start_timestamp_seconds", &[], s.started.timestamp() as f64);
    f.head("iocsync_runs_total", "counter", "Sync runs started by this daemon.");
    f.row("iocsync_runs_total", &[], s.runs as f64);

    f.head("iocsync_tenant_runs_total", "counter", "Finished runs per tenant.");
    for (t, n) in &tt.tenant_runs {
        f.row("iocsync_tenant_runs_total", &[("tenant", t)], *n as f64);
    }
    f.head("iocsync_tenant_failures_total", "counter", "Runs that ended with an error, per tenant.");
    for (t, n) in &tt.failures {
        f.row("iocsync_tenant_failures_total", &[("tenant", t)], *n as f64);
    }
    f.head("iocsync_brake_held_total", "counter", "Runs the delete brake refused, per tenant.");
    for (t, n) in &tt.brake_held {
        f.row("iocsync_brake_held_total", &[("tenant", t)], *n as f64);
    }
    f.head(
        "iocsync_api_calls_total",
        "counter",
        "Defender and token API answers by endpoint and HTTP status (error: no answer).",
    );
    for ((t, e, st), n) in &tt.api_calls {
        f.row("iocsync_api_calls_total", &[("tenant", t), ("endpoint", e), ("status", st)], *n as f64);
    }
    f.head("iocsync_api_throttled_total", "counter", "429 answers by endpoint.");
    for ((t, e), n) in &tt.throttled {
        f.row("iocsync_api_throttled_total", &[("tenant", t), ("endpoint", e)], *n as f64);
    }
    f.head(
        "iocsync_items_total",
        "counter",
        "Indicators by result: created, updated, renewed, replaced, deleted, failed.",
    );
    for ((t, r), n) in &tt.items {
        f.row("iocsync_items_total", &[("tenant", t), ("result", r)], *n as f64);
    }
    f.head("iocsync_values_rejected_total", "counter", "Feed values rejected or skipped, by reason code.");
    for ((t, r), n) in &tt.rejected {
        f.row("iocsync_values_rejected_total", &[("tenant", t), ("reason", r)], *n as f64);
    }

    f.head(
        "iocsync_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the tenant's last successful run (0: none yet).",
    );
    for t in &s.tenants {
        let v = s.last_success.get(t).map_or(0.0, |d| d.timestamp() as f64);
        f.row("iocsync_last_success_timestamp_seconds", &[("tenant", t)], v);
    }
    f.head("iocsync_last_run_success", "gauge", "1 when the tenant's last run ended without error.");
    if let Some(last) = &s.last {
        for o in &last.outcomes {
            f.row(
                "iocsync_last_run_success",
                &[("tenant", &o.report.tenant)],
                f64::from(u8::from(o.error.is_none())),
            );
        }
    }
    f.head("iocsync_run_duration_seconds", "gauge", "Wall time of the last run.");
    if let Some(last) = &s.last {
        f.row("iocsync_run_duration_seconds", &[], last.duration.as_secs_f64());
    }
    f.head("iocsync_capacity_limit", "gauge", "Tenant indicator cap.");
    for (t, g) in &tt.gauges {
        f.row("iocsync_capacity_limit", &[("tenant", t)], g.limit as f64);
    }
    f.head(
        "iocsync_capacity_used",
        "gauge",
        "Indicators in the tenant (foreign + owned) after its last run.",
    );
    for (t, g) in &tt.gauges {
        f.row("iocsync_capacity_used", &[("tenant", t)], g.used as f64);
    }
    f.head("iocsync_capacity_free", "gauge", "Room left under the cap after the last run.");
    for (t, g) in &tt.gauges {
        f.row("iocsync_capacity_free", &[("tenant", t)], g.limit.saturating_sub(g.used) as f64);
    }
    f.head("iocsync_indicators_owned", "gauge", "Indicators iocsync owns after the last run.");
    for (t, g) in &tt.gauges {
        f.row("iocsync_indicators_owned", &[("tenant", t)], g.owned as f64);
    }
    f.head("iocsync_indicators_owned_by_type", "gauge", "Owned indicators by indicator type and action.");
    for (t, g) in &tt.gauges {
        for ((ty, action), n) in &g.owned_by {
            f.row(
                "iocsync_indicators_owned_by_type",
                &[("tenant", t), ("type", ty), ("action", action)],
                *n as f64,
            );
        }
    }
    f.head("iocsync_brake_held", "gauge", "1 when the delete brake held the tenant's last run.");
    for (t, g) in &tt.gauges {
        f.row("iocsync_brake_held", &[("tenant", t)], f64::from(u8::from(g.brake)));
    }
    f.head("iocsync_feed_accepted", "gauge", "Values accepted from the feed in its last run.");
    for ((t, feed), g) in &tt.feeds {
        f.row("iocsync_feed_accepted", &[("tenant", t), ("feed", feed)], g.accepted as f64);
    }
    f.head(
        "iocsync_impact_values_total",
        "counter",
        "Values the impact check held, downgraded to Audit, reported, or could not check.",
    );
    for ((t, verdict), n) in &tt.impact {
        f.row("iocsync_impact_values_total", &[("tenant", t), ("verdict", verdict)], *n as f64);
    }
    f.head(
        "iocsync_hunting_queries_total",
        "counter",
        "Advanced-hunting queries sent, by purpose (impact, hits).",
    );
    for ((t, purpose), n) in &tt.hunting_queries {
        f.row("iocsync_hunting_queries_total", &[("tenant", t), ("purpose", purpose)], *n as f64);
    }
    f.head(
        "iocsync_hit_events_total",
        "counter",
        "Events where Defender acted on an owned indicator, counted by [hits].",
    );
    for (t, n) in &tt.hit_events {
        f.row("iocsync_hit_events_total", &[("tenant", t)], *n as f64);
    }
    // Each feed's yield, from the last run that counted hits.
    type YieldOf = fn(&iocsync_core::report::FeedYield) -> u64;
    let yields: [(&str, &str, YieldOf); 3] = [
        (
            "iocsync_feed_hit_events",
            "Events counted on the feed's owned values since hits were first counted.",
            |y| y.hits,
        ),
        ("iocsync_feed_values_hit", "The feed's owned values Defender ever acted on.", |y| y.values_hit),
        (
            "iocsync_feed_values_hit_recently",
            "The feed's owned values Defender acted on within [hits] boost_for.",
            |y| y.values_hit_recently,
        ),
    ];
    for (name, help, of) in yields {
        f.head(name, "gauge", help);
        for ((t, feed), y) in &tt.feed_yield {
            f.row(name, &[("tenant", t), ("feed", feed)], of(y) as f64);
        }
    }
    f.head(
        "iocsync_top_indicator_hit_events",
        "gauge",
        "Events on the rank-th most hit owned indicator (rank 1..10; `list --hits` names them).",
    );
    for (t, top) in &tt.top_hits {
        for (i, n) in top.iter().enumerate() {
            let rank = (i + 1).to_string();
            f.row("iocsync_top_indicator_hit_events", &[("tenant", t), ("rank", &rank)], *n as f64);
        }
    }
    f.head("iocsync_feed_status", "gauge", "1 for the feed's status in its last run, 0 for the others.");
    for ((t, feed), g) in &tt.feeds {
        for st in FEED_STATUSES {
            f.row(
                "iocsync_feed_status",
                &[("tenant", t), ("feed", feed), ("status", st)],
                f64::from(u8::from(g.status == *st)),
            );
        }
    }
    f.head(
        "iocsync_feed_age_seconds",
        "gauge",
        "Age of the feed content used in the last run (absent when the feed contributed nothing).",
    );
    for ((t, feed), g) in &tt.feeds {
        if let Some(a) = g.age {
            f.row("iocsync_feed_age_seconds", &[("tenant", t), ("feed", feed)], a as f64);
        }
    }
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
        assert_eq!(next_delay(&every, Tz::UTC, Duration::ZERO, now), Duration::from_secs(60));
        for _ in 0..50 {
            let d = next_delay(&every, Tz::UTC, Duration::from_secs(10), now);
            assert!(d >= Duration::from_secs(60) && d < Duration::from_secs(70), "{d:?}");
        }
        let hourly = Schedule::Cron("0 * * * *".to_owned());
        let d = next_delay(&hourly, Tz::UTC, Duration::ZERO, now);
        assert!(d <= Duration::from_secs(3600) && d > Duration::ZERO, "{d:?}");
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_cron_schedule_is_read_in_its_time_zone() {
        let daily9 = Schedule::Cron("0 9 * * *".to_owned());
        let rome: Tz = "Europe/Rome".parse().unwrap();
        // Winter: 09:00 in Rome is 08:00 UTC; summer: 07:00 UTC.
        let now = at("2026-01-15T06:00:00Z");
        assert_eq!(next_delay(&daily9, rome, Duration::ZERO, now), Duration::from_secs(2 * 3600));
        assert_eq!(next_delay(&daily9, Tz::UTC, Duration::ZERO, now), Duration::from_secs(3 * 3600));
        let summer = at("2026-07-15T06:00:00Z");
        assert_eq!(next_delay(&daily9, rome, Duration::ZERO, summer), Duration::from_secs(3600));
        assert_eq!(schedule_period(&daily9, rome), Duration::from_secs(24 * 3600));
        assert_eq!(
            schedule_period(&Schedule::Every(Duration::from_secs(600)), rome),
            Duration::from_secs(600)
        );
    }

    fn outcome(tenant: &str, error: Option<&str>) -> TenantOutcome {
        let mut report = iocsync_core::report::RunReport::new(tenant, false);
        report.api_calls.list = u64::from(error.is_none());
        report.capacity.limit = 15_000;
        report.capacity.owned_after = 7;
        TenantOutcome {
            report,
            exit: if error.is_some() { crate::Exit::Error } else { crate::Exit::Ok },
            error: error.map(str::to_owned),
            owned_by: BTreeMap::new(),
            feed_ages: Vec::new(),
            throttled_by: Default::default(),
            calls_by_status: Default::default(),
            samples: Vec::new(),
            feed_reasons: BTreeMap::new(),
            saved: None,
        }
    }

    #[test]
    fn readyz_fails_naming_the_tenant_whose_last_success_is_too_old() {
        let start = at("2026-03-01T00:00:00Z");
        let mut s = DaemonState::new(vec!["a".into(), "b".into()], Duration::from_secs(3600), start);
        // Before any run: ready during the grace period, then not.
        assert!(readiness(&s, start + chrono::Duration::minutes(30)).0);
        let (ready, body) = readiness(&s, start + chrono::Duration::minutes(61));
        assert!(
            !ready && body["tenants"][0]["reason"].as_str().unwrap().contains("no run has finished"),
            "{body}"
        );

        s.record(
            vec![outcome("a", None), outcome("b", Some("AADSTS7000215: invalid secret"))],
            start,
            Duration::ZERO,
        );
        let (ready, body) = readiness(&s, start + chrono::Duration::minutes(59));
        assert!(ready, "{body}");
        let later = start + chrono::Duration::minutes(90);
        s.record(
            vec![outcome("a", None), outcome("b", Some("AADSTS7000215: invalid secret"))],
            later,
            Duration::ZERO,
        );
        let (ready, body) = readiness(&s, later);
        assert!(!ready, "{body}");
        assert_eq!(body["tenants"][0]["ready"], true, "{body}");
        assert_eq!(body["tenants"][1]["tenant"], "b");
        let reason = body["tenants"][1]["reason"].as_str().unwrap();
        assert!(reason.contains("AADSTS7000215") && reason.contains("max_staleness 1h"), "{reason}");
    }

    #[test]
    fn a_failed_run_keeps_every_series_of_the_tenant() {
        let start = at("2026-03-01T00:00:00Z");
        let mut s = DaemonState::new(vec!["a".into()], Duration::from_secs(3600), start);
        s.record(vec![outcome("a", None)], start, Duration::ZERO);
        let series = |m: &str| -> Vec<String> {
            m.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
                .collect()
        };
        let before = series(&render_metrics(&s));
        s.record(vec![outcome("a", Some("network down"))], start, Duration::ZERO);
        let after_text = render_metrics(&s);
        let after = series(&after_text);
        for name in &before {
            assert!(after.contains(name), "{name} disappeared after a failed run:\n{after_text}");
        }
        assert!(after_text.contains("iocsync_indicators_owned{tenant=\"a\"} 7"), "{after_text}");
        assert!(after_text.contains("iocsync_tenant_failures_total{tenant=\"a\"} 1"), "{after_text}");
    }

    #[test]
    fn hits_and_impact_verdicts_are_series_per_feed_never_per_indicator() {
        let start = at("2026-03-01T00:00:00Z");
        let mut s = DaemonState::new(vec!["a".into()], Duration::from_secs(3600), start);
        let mut o = outcome("a", None);
        o.report.impact =
            Some(iocsync_core::report::ImpactSummary { held: 2, queries: 3, ..Default::default() });
        o.report.hits = Some(iocsync_core::report::HitsSummary {
            queries: 5,
            events: 40,
            indicators_hit: 7,
            feeds: vec![iocsync_core::report::FeedYield {
                name: "ips".into(),
                values: 100,
                values_hit: 7,
                values_hit_recently: 3,
                hits: 40,
            }],
            top: vec![iocsync_core::report::TopHit {
                kind: "IpAddress".into(),
                value: "45.1.1.1".into(),
                hits: 30,
            }],
        });
        s.record(vec![o], start, Duration::ZERO);
        let text = render_metrics(&s);
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let value = |name: &str, label: (&str, &str)| {
            scrape.samples.iter().find(|x| x.metric == name && x.labels.get(label.0) == Some(label.1)).map(
                |x| match x.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                    _ => f64::NAN,
                },
            )
        };
        assert_eq!(value("iocsync_impact_values_total", ("verdict", "held")), Some(2.0), "{text}");
        assert_eq!(value("iocsync_hunting_queries_total", ("purpose", "hits")), Some(5.0));
        assert_eq!(value("iocsync_hit_events_total", ("tenant", "a")), Some(40.0));
        assert_eq!(value("iocsync_feed_values_hit", ("feed", "ips")), Some(7.0));
        assert_eq!(value("iocsync_feed_hit_events", ("feed", "ips")), Some(40.0));
        assert_eq!(value("iocsync_top_indicator_hit_events", ("rank", "1")), Some(30.0));
        // No series carries an indicator value.
        assert!(scrape.samples.iter().all(|x| x.labels.get("value").is_none()));
    }

    #[tokio::test]
    async fn the_listener_drops_slow_headers_and_caps_connections() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let limits = ListenerLimits {
            header_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(30),
            max_connections: 2,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/healthz", get(|| async { "ok" }));
        let server = tokio::spawn(serve(listener, app, limits));
        let closed = |mut c: tokio::net::TcpStream| async move {
            let mut buf = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut buf)).await.is_ok()
        };
        // A client that never finishes its headers is disconnected.
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        assert!(closed(slow).await, "a slow client kept its connection");
        // Two idle connections hold both slots: a third is closed at once.
        let a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let b = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "the third connection was not closed: {n:?}");
        drop((a, b));
        // Slots free again: a normal request is answered.
        let mut ok = None;
        for _ in 0..50 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
            let mut body = String::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut body)).await;
            if body.starts_with("HTTP/1.1 200") {
                ok = Some(body);
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(ok.is_some(), "no request was served once the slots were free");
        server.abort();
    }
}
