//! The console's routes: each handler gathers what its page shows from the state database and
//! the engine, checks the role for actions, calls the engine, and renders a page.

use super::{Console, CurrentUser, auth, pages};
use crate::config::{Config, Role};
use crate::engine;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The vendored script (no build step): confirmation dialogs. Every page works without it.
const CONSOLE_JS: &str = include_str!("../../assets/console.js");
/// The stylesheet.
const CONSOLE_CSS: &str = include_str!("../../assets/console.css");

pub(super) fn router(c: Arc<Console>) -> Router {
    let signed_in = Router::new()
        .route("/", get(overview))
        .route("/sync-now", post(sync_now))
        .route("/feeds", get(feeds))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run_detail))
        .route("/runs/{id}/undo", post(request_undo))
        .route("/lookup", get(lookup))
        .route("/manual", get(manual))
        .route("/manual/preview", post(manual_preview))
        .route("/manual/add", post(manual_add))
        .route("/manual/{id}/remove", get(manual_remove_confirm).post(manual_remove))
        .route("/approvals", get(approvals))
        .route("/audit", get(audit_page))
        .route("/approvals/{id}/approve", post(approve_plan))
        .route("/approvals/{id}/reject", post(reject_plan))
        .route("/undo/{id}/confirm", post(confirm_undo))
        .route("/undo/{id}/reject", post(reject_undo))
        .route("/logout", post(auth::logout))
        .route_layer(axum::middleware::from_fn_with_state(c.clone(), auth::authenticate));
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route(
            "/static/console.js",
            get(|| async { static_file("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route("/static/console.css", get(|| async { static_file("text/css; charset=utf-8", CONSOLE_CSS) }))
        .merge(signed_in)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(c)
}

fn static_file(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "max-age=3600")], body).into_response()
}

/// Headers on every answer: no framing, no sniffing, scripts and styles from this origin only,
/// pages never cached (they show live state and carry CSRF tokens).
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Records a sign-in or sign-out in the audit log (the engine records every other action itself).
pub(super) fn audit(c: &Console, user: &str, action: &str, detail: &Value) {
    if let Err(e) = engine::audit::record_audit(&c.store, user, action, detail, c.clock.now()) {
        tracing::warn!("could not record the console action in the audit log: {e:#}");
    }
}

/// A page refusing an action the user's role does not allow.
fn forbidden(user: &CurrentUser, need: Role, what: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::message(
            "Not allowed",
            &format!(
                "{} is signed in as {}: {what} needs the {} role.",
                user.name,
                user.role.as_str(),
                need.as_str()
            ),
        ),
    )
        .into_response()
}

fn failed(title: &str, e: &anyhow::Error) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, pages::message(title, &format!("{e:#}"))).into_response()
}

/// The refusal when the user's role is below `need`.
fn refuse(user: &CurrentUser, need: Role, what: &str) -> Option<Response> {
    (user.role < need).then(|| forbidden(user, need, what))
}

// ---- overview ---------------------------------------------------------------------------

async fn overview(State(c): State<Arc<Console>>, Extension(user): Extension<CurrentUser>) -> Response {
    match pages::gather_overview(&c) {
        Ok(v) => pages::overview(&user, &v, &c.config).into_response(),
        Err(e) => failed("Overview", &e),
    }
}

async fn sync_now(State(c): State<Arc<Console>>, Extension(user): Extension<CurrentUser>) -> Response {
    let work = |config: Config, name: String| async move { crate::daemon::sync_now(&config, &name).await };
    match engine_work(&c, &user, Role::Analyst, "Sync now", work).await {
        Ok(done) => pages::sync_result(&user, &sync_summary(&done)).into_response(),
        Err(page) => *page,
    }
}

/// Runs engine work (Sync now, an approval, an undo) for `user`, who needs the role `need`, in
/// its own task: a request cut short (the listener's timeout, a closed tab) never stops a run
/// midway, so the run, its journal, the plan's status and the audit row all complete. The page
/// waits `foreground`, then says the work goes on in the background. `Err` is the page to show:
/// the role refused, the engine's refusal (409), or "still running" (202).
async fn engine_work<T, Fut>(
    c: &Console,
    user: &CurrentUser,
    need: Role,
    what: &str,
    work: impl FnOnce(Config, String) -> Fut,
) -> Result<T, Box<Response>>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    if let Some(r) = refuse(user, need, what) {
        return Err(r.into());
    }
    let mut task = tokio::spawn(work(c.config.clone(), user.name.clone()));
    match tokio::time::timeout(c.foreground, &mut task).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(conflict(user, what, &format!("{e:#}")).into()),
        Ok(Err(e)) => {
            tracing::error!("{what} failed: {e}");
            Err(failed(what, &anyhow::anyhow!("{what} stopped unexpectedly (a bug): the daemon's log has it")).into())
        }
        Err(_) => Err((
            StatusCode::ACCEPTED,
            pages::message_for(
                user,
                what,
                &format!("{what} is still running in the background (it holds the run lock). The Runs and Approvals pages show its outcome when it ends."),
            ),
        )
            .into_response()
            .into()),
    }
}

/// Takes the run lock for a decision that must not interleave with a run (rejecting a plan or
/// an undo while it is being applied), or the page that says a run is in progress.
fn decision_lock(
    c: &Console,
    user: &CurrentUser,
    what: &str,
) -> Result<crate::daemon::RunLock, Box<Response>> {
    crate::daemon::RunLock::acquire(&c.config.sync.state).map_err(|e| {
        (
            StatusCode::CONFLICT,
            pages::message_for(
                user,
                what,
                &format!(
                    "A run is in progress (it may be applying this very item): try again when it ends. {e:#}"
                ),
            ),
        )
            .into_response()
            .into()
    })
}

/// What "Sync now" did, for its page: one line per tenant (or per plan made).
fn sync_summary(done: &crate::daemon::SyncNow) -> Value {
    use crate::daemon::SyncNow;
    match done {
        SyncNow::Synced(outcomes) => {
            let lines: Vec<String> = outcomes
                .iter()
                .map(|o| {
                    let c = &o.report.counts;
                    match &o.error {
                        Some(e) => format!("{}: failed: {e}", o.report.tenant),
                        None => format!(
                            "{}: {} created, {} updated, {} renewed, {} deleted{}",
                            o.report.tenant,
                            c.create + c.replace,
                            c.update,
                            c.renew,
                            c.delete,
                            o.report.brake.as_deref().map(|b| format!("; brake: {b}")).unwrap_or_default()
                        ),
                    }
                })
                .collect();
            serde_json::json!({"summary": format!("Synced. {}", lines.join(" · ")), "reports": outcomes.iter().map(|o| &o.report).collect::<Vec<_>>()})
        }
        SyncNow::Planned(plans) if plans.is_empty() => {
            serde_json::json!({"summary": "Planned: nothing to change, so no plan waits for approval."})
        }
        SyncNow::Planned(plans) => serde_json::json!({
            "summary": format!(
                "Planned: {} waiting for an approver on the Approvals page.",
                plans.iter().map(|p| format!("plan #{} for {}", p.id, p.tenant)).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

// ---- feeds ------------------------------------------------------------------------------

async fn feeds(State(c): State<Arc<Console>>, Extension(user): Extension<CurrentUser>) -> Response {
    match pages::gather_feeds(&c).await {
        Ok(v) => pages::feeds(&user, &v).into_response(),
        Err(e) => failed("Feeds", &e),
    }
}

// ---- runs -------------------------------------------------------------------------------

async fn runs(State(c): State<Arc<Console>>, Extension(user): Extension<CurrentUser>) -> Response {
    let rows = engine::lock(&c.store).runs(None, 200);
    match rows {
        Ok(rows) => pages::runs(&user, &rows).into_response(),
        Err(e) => failed("Runs", &e.into()),
    }
}

/// Filters of a run's journal.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct JournalFilter {
    /// create, update, renew or delete.
    #[serde(default)]
    pub kind: String,
    /// indicatorType.
    #[serde(default)]
    pub r#type: String,
    /// A feed name.
    #[serde(default)]
    pub feed: String,
    /// Part of the value.
    #[serde(default)]
    pub q: String,
}

async fn run_detail(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
    Query(f): Query<JournalFilter>,
) -> Response {
    let (run, journal) = {
        let s = engine::lock(&c.store);
        (s.run(id), s.journal_of_run(id))
    };
    match (run, journal) {
        (Ok(Some(run)), Ok(journal)) => {
            let q = f.q.to_lowercase();
            let rows = journal
                .into_iter()
                .filter(|r| f.kind.is_empty() || r.entry.kind == f.kind)
                .filter(|r| f.r#type.is_empty() || r.entry.indicator_type == f.r#type)
                .filter(|r| f.feed.is_empty() || r.entry.feeds.contains(&f.feed))
                .filter(|r| q.is_empty() || r.entry.value.to_lowercase().contains(&q))
                .collect::<Vec<_>>();
            pages::run_detail(&user, &run, &rows, &f).into_response()
        }
        (Ok(None), _) => {
            (StatusCode::NOT_FOUND, pages::message("Run", &format!("There is no run {id}."))).into_response()
        }
        (Err(e), _) | (_, Err(e)) => failed("Run", &e.into()),
    }
}

async fn request_undo(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Response {
    if let Some(r) = refuse(&user, Role::Analyst, "requesting an undo") {
        return r;
    }
    match engine::approval::request_undo(&c.store, id, &user.name, "", c.clock.now()) {
        Ok(_) => pages::message_for(
            &user,
            "Undo requested",
            &format!("The undo of run {id} waits for an approver on the Approvals page."),
        )
        .into_response(),
        Err(e) => conflict(&user, "Undo", &format!("{e:#}")),
    }
}

// ---- lookup -----------------------------------------------------------------------------

#[derive(Debug, Default, serde::Deserialize)]
struct LookupQuery {
    #[serde(default)]
    value: String,
    #[serde(default)]
    tenant: Option<String>,
    /// Ask Defender too (one API call).
    #[serde(default)]
    online: Option<String>,
}

async fn lookup(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Query(q): Query<LookupQuery>,
) -> Response {
    let value = q.value.trim();
    if value.is_empty() {
        return pages::lookup(&user, "", None).into_response();
    }
    // Each online lookup is one Defender API call: one per user every ONLINE_LOOKUP_EVERY, so a
    // page reloaded in a loop cannot eat the quota the sync needs.
    let online = q.online.is_some() && c.online_lookup_allowed(&user.name);
    let args = crate::cli::ExplainArgs {
        value: value.to_owned(),
        offline: !online,
        tenant: crate::cli::TenantArgs { tenant: q.tenant.filter(|t| !t.is_empty()) },
    };
    let mut answer = crate::commands::explain::run(&c.config, &args).await;
    if q.online.is_some()
        && !online
        && let Ok(r) = &mut answer
    {
        r.verdict = format!(
            "{} (answered offline: one online lookup per user every {} s)",
            r.verdict,
            super::ONLINE_LOOKUP_EVERY.as_secs()
        );
    }
    pages::lookup(&user, value, Some(answer)).into_response()
}

// ---- manual list ------------------------------------------------------------------------

#[derive(Debug, Default, serde::Deserialize)]
struct ManualQuery {
    /// Set after a removal (the page says so).
    #[serde(default)]
    removed: Option<String>,
}

async fn manual(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Query(q): Query<ManualQuery>,
) -> Response {
    let removed = q.removed.is_some();
    let result = removed.then(|| pages::ManualResult {
        form: ManualForm::default(),
        previews: Vec::new(),
        saved: true,
        error: None,
        removed,
    });
    render_manual(&c, &user, result.as_ref(), StatusCode::OK)
}

fn render_manual(
    c: &Console,
    user: &CurrentUser,
    result: Option<&pages::ManualResult>,
    status: StatusCode,
) -> Response {
    let Some(feed) = c.config.manual_feed() else {
        return pages::message_for(
            user,
            "Manual list",
            "No manual list is configured: add a [[feeds]] block with source = \"manual\" to the config (see the README).",
        )
        .into_response();
    };
    match engine::manual::list(&c.store, c.clock.now()) {
        Ok(values) => (status, pages::manual(user, feed, &values, result)).into_response(),
        Err(e) => failed("Manual list", &e),
    }
}

/// The manual list's add form.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct ManualForm {
    /// One value per line.
    #[serde(default)]
    pub values: String,
    /// Why (shown in the description and the journal).
    #[serde(default)]
    pub comment: String,
    /// An action of the allowed set; empty: the feed's.
    #[serde(default)]
    pub action: String,
    /// `YYYY-MM-DD`; empty: the feed's expiry.
    #[serde(default)]
    pub expires: String,
}

impl ManualForm {
    fn action(&self) -> Option<&str> {
        Some(self.action.trim()).filter(|a| !a.is_empty())
    }

    fn expires(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
        let e = self.expires.trim();
        if e.is_empty() {
            return Ok(None);
        }
        chrono::NaiveDate::parse_from_str(e, "%Y-%m-%d")
            .map(|d| d.and_hms_opt(23, 59, 59).map(|t| t.and_utc()))
            .map_err(|_| format!("`{e}` is not a date like 2027-01-31"))
    }
}

async fn manual_preview(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Form(f): Form<ManualForm>,
) -> Response {
    if let Some(r) = refuse(&user, Role::Analyst, "adding values") {
        return r;
    }
    let previews = engine::manual::preview(&c.config, &f.values, f.action()).await;
    let result = match previews {
        Ok(p) => pages::ManualResult::checked(f, p, false),
        Err(e) => pages::ManualResult::failed(f, format!("{e:#}")),
    };
    render_manual(&c, &user, Some(&result), StatusCode::OK)
}

async fn manual_add(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Form(f): Form<ManualForm>,
) -> Response {
    if let Some(r) = refuse(&user, Role::Analyst, "adding values") {
        return r;
    }
    let expires = match f.expires() {
        Ok(e) => e,
        Err(why) => {
            let result = pages::ManualResult::failed(f, why);
            return render_manual(&c, &user, Some(&result), StatusCode::BAD_REQUEST);
        }
    };
    let now = c.clock.now();
    let added = engine::manual::add(
        &c.config,
        &c.store,
        &f.values,
        f.comment.trim(),
        f.action(),
        expires,
        &user.name,
        now,
    )
    .await;
    match added {
        Ok(previews) => {
            render_manual(&c, &user, Some(&pages::ManualResult::checked(f, previews, true)), StatusCode::OK)
        }
        Err(e) => {
            let result = pages::ManualResult::failed(f, format!("{e:#}"));
            render_manual(&c, &user, Some(&result), StatusCode::BAD_REQUEST)
        }
    }
}

async fn manual_remove_confirm(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Response {
    if let Some(r) = refuse(&user, Role::Analyst, "removing values") {
        return r;
    }
    match engine::manual::list(&c.store, c.clock.now()) {
        Ok(values) => match values.iter().find(|v| v.id == id) {
            Some(v) => pages::manual_remove_confirm(&user, v).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                pages::message_for(&user, "Remove", "That value is no longer in the manual list."),
            )
                .into_response(),
        },
        Err(e) => failed("Remove", &e),
    }
}

async fn manual_remove(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Response {
    if let Some(r) = refuse(&user, Role::Analyst, "removing values") {
        return r;
    }
    match engine::manual::remove(&c.store, id, &user.name, c.clock.now()) {
        Ok(true) => Redirect::to("/manual?removed=1").into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            pages::message_for(&user, "Remove", "That value is no longer in the manual list."),
        )
            .into_response(),
        Err(e) => failed("Remove", &e),
    }
}

// ---- audit log -------------------------------------------------------------------------

async fn audit_page(State(c): State<Arc<Console>>, Extension(user): Extension<CurrentUser>) -> Response {
    match engine::audit::audit_log(&c.store, 500) {
        Ok(rows) => pages::audit(&user, &rows).into_response(),
        Err(e) => failed("Audit log", &e),
    }
}

// ---- approvals --------------------------------------------------------------------------

async fn approvals(State(c): State<Arc<Console>>, Extension(user): Extension<CurrentUser>) -> Response {
    let plans = engine::approval::pending(&c.store);
    let undos = engine::approval::pending_undos(&c.store);
    match (plans, undos) {
        (Ok(plans), Ok(undos)) => {
            let values = |v: Vec<Value>| v;
            let plans = values(plans.iter().filter_map(|p| serde_json::to_value(p).ok()).collect());
            let undos = values(undos.iter().filter_map(|u| serde_json::to_value(u).ok()).collect());
            pages::approvals(&user, c.config.sync.approval, &plans, &undos).into_response()
        }
        (Err(e), _) | (_, Err(e)) => failed("Approvals", &e),
    }
}

async fn approve_plan(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Response {
    let work = move |config: Config, name: String| async move {
        engine::approval::approve(&config, id, &name).await
    };
    let approved = engine_work(&c, &user, Role::Approver, "Approving a plan", work).await;
    match approved {
        Err(page) => *page,
        Ok(outcome) => {
            let summary = match (&outcome.error, outcome.status.as_str()) {
                (Some(e), _) => format!("Plan #{id} was not applied: {e}"),
                (None, s) => format!(
                    "Plan #{id} {s} to tenant {} (run #{}).",
                    outcome.tenant,
                    outcome.run_id.unwrap_or_default()
                ),
            };
            let mut v = serde_json::to_value(&outcome).unwrap_or_default();
            v["summary"] = Value::String(summary);
            pages::approval_result(&user, id, &v).into_response()
        }
    }
}

async fn reject_plan(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Response {
    let gone = format!("Plan #{id} is no longer pending.");
    reject_pending(&c, &user, "rejecting a plan", &gone, |now| {
        engine::approval::reject(&c.store, id, &user.name, now)
    })
}

/// Rejects a pending plan or undo request (`decide`), approver only and under the run lock so it
/// cannot interleave with that item being applied; back to the approvals, or why not.
fn reject_pending(
    c: &Console,
    user: &CurrentUser,
    what: &str,
    gone: &str,
    decide: impl FnOnce(chrono::DateTime<chrono::Utc>) -> anyhow::Result<bool>,
) -> Response {
    if let Some(r) = refuse(user, Role::Approver, what) {
        return r;
    }
    let _lock = match decision_lock(c, user, "Reject") {
        Ok(l) => l,
        Err(r) => return *r,
    };
    match decide(c.clock.now()) {
        Ok(true) => Redirect::to("/approvals").into_response(),
        Ok(false) => conflict(user, "Reject", gone),
        Err(e) => conflict(user, "Reject", &format!("{e:#}")),
    }
}

/// A 409 page for a signed-in user.
fn conflict(user: &CurrentUser, title: &str, text: &str) -> Response {
    (StatusCode::CONFLICT, pages::message_for(user, title, text)).into_response()
}

async fn confirm_undo(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Response {
    let work = move |config: Config, name: String| async move {
        engine::approval::confirm_undo(&config, id, &name).await
    };
    let confirmed = engine_work(&c, &user, Role::Approver, "Confirming an undo", work).await;
    match confirmed {
        Err(page) => *page,
        Ok(o) if o.error.is_none() => Redirect::to("/runs").into_response(),
        Ok(o) => conflict(
            &user,
            "Undo",
            &format!("The undo of run #{} failed: {}", o.run_id, o.error.unwrap_or_default()),
        ),
    }
}

async fn reject_undo(
    State(c): State<Arc<Console>>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Response {
    let gone = format!("Undo request #{id} is no longer pending.");
    reject_pending(&c, &user, "rejecting an undo", &gone, |now| {
        engine::approval::reject_undo(&c.store, id, &user.name, now)
    })
}

/// Counts of a report's `counts` object, by key.
pub(super) fn counts(report: &serde_json::Value) -> BTreeMap<String, u64> {
    report
        .get("counts")
        .and_then(|c| c.as_object())
        .map(|o| o.iter().filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n))).collect())
        .unwrap_or_default()
}
