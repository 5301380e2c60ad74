//! The console's pages (maud: compiled, escaped templates) and the data each one shows.

use super::routes::{JournalFilter, ManualForm, counts};
use super::{Console, CurrentUser};
use crate::config::{Config, Feed, Role};
use crate::engine;
use crate::state::{JournalRow, RunRow};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;
use std::collections::BTreeMap;

const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/feeds", "Feeds"),
    ("/runs", "Runs"),
    ("/lookup", "Lookup"),
    ("/manual", "Manual list"),
    ("/approvals", "Approvals"),
    ("/audit", "Audit"),
];

/// An HTML page (maud markup) as an axum response.
#[derive(Debug)]
pub struct Page(pub Markup);

impl axum::response::IntoResponse for Page {
    fn into_response(self) -> axum::response::Response {
        ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], self.0.into_string())
            .into_response()
    }
}

#[allow(clippy::needless_pass_by_value)] // each page builds its body for this one call
fn layout(title: &str, user: Option<&CurrentUser>, active: &str, body: Markup) -> Page {
    Page(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · iocsync" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    nav {
                        a.brand href="/" { "iocsync" }
                        @if let Some(u) = user {
                            @for (href, label) in NAV {
                                a class=[(*href == active).then_some("active")] href=(href) { (label) }
                            }
                            span.user { (u.name) " · " (u.role.as_str()) }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(u.csrf);
                                button type="submit" id="logout" { "Sign out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    })
}

fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A JSON RFC 3339 time as [`when`] writes it.
fn stamp(v: &Value) -> String {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| when(&t.with_timezone(&Utc)))
        .unwrap_or_default()
}

fn age(t: &DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = now - *t;
    if d.num_days() >= 2 {
        format!("{} days ago", d.num_days())
    } else if d.num_hours() >= 2 {
        format!("{} h ago", d.num_hours())
    } else if d.num_minutes() >= 1 {
        format!("{} min ago", d.num_minutes())
    } else {
        "just now".to_owned()
    }
}

fn csrf(u: &CurrentUser) -> Markup {
    html! { input type="hidden" name="csrf" value=(u.csrf); }
}

/// A page with one message (errors, refusals) and no navigation.
pub fn message(title: &str, text: &str) -> Page {
    layout(title, None, "", html! { p.notice { (text) } p { a href="/" { "Back to the console" } } })
}

/// A page with one message, for a signed-in user.
pub fn message_for(user: &CurrentUser, title: &str, text: &str) -> Page {
    layout(title, Some(user), "", html! { p.notice { (text) } p { a href="/" { "Back to the overview" } } })
}

/// The sign-in form (its CSRF token matches the login cookie).
pub fn login(token: &str, next: &str, error: Option<&str>) -> Page {
    layout(
        "Sign in",
        None,
        "",
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.panel method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label for="user" { "User" }
                input type="text" id="user" name="user" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="current-password" required;
                div { button type="submit" id="signin" { "Sign in" } }
            }
        },
    )
}

// ---- overview ---------------------------------------------------------------------------

/// One tenant on the overview.
#[derive(Debug)]
pub struct TenantView {
    /// Tenant name.
    pub name: String,
    /// Its last finished run (a dry run counts: it is what the console saw last).
    pub last: Option<RunRow>,
    /// That run's report.
    pub report: Value,
    /// Feeds that were not fresh in that run, with their status.
    pub stale: Vec<(String, String)>,
}

/// Gathers the overview: each tenant's last run and its report.
pub fn gather_overview(c: &Console) -> anyhow::Result<Vec<TenantView>> {
    let store = engine::lock(&c.store);
    let mut out = Vec::new();
    for t in &c.config.tenants {
        let last = store.runs(Some(&t.name), 20)?.into_iter().find(|r| r.finished_at.is_some());
        let report: Value = last
            .as_ref()
            .and_then(|r| r.report_json.as_deref())
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or(Value::Null);
        let stale = report["feeds"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .filter(|f| !matches!(f["status"].as_str(), Some("ok" | "not-modified")))
                    .map(|f| {
                        (
                            f["name"].as_str().unwrap_or("?").to_owned(),
                            f["status"].as_str().unwrap_or("?").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(TenantView { name: t.name.clone(), last, report, stale });
    }
    Ok(out)
}

/// When the daemon runs next: the next cron occurrence, or the last run plus the interval.
fn next_run(c: &Config, tenants: &[TenantView]) -> String {
    match &c.daemon.schedule {
        crate::config::Schedule::Cron(expr) => crate::daemon::next_run_at(expr, c.daemon.tz, Utc::now())
            .map_or_else(|| format!("cron {expr}"), |t| when(&t)),
        crate::config::Schedule::Every(d) => {
            let every = format!("every {}", humantime::format_duration(*d));
            let last = tenants.iter().filter_map(|t| t.last.as_ref()?.finished_at).max();
            match (last, chrono::Duration::from_std(*d)) {
                (Some(l), Ok(d)) => format!("about {} ({every})", when(&(l + d))),
                _ => every,
            }
        }
    }
}

/// The overview page.
pub fn overview(user: &CurrentUser, tenants: &[TenantView], config: &Config) -> Page {
    let now = Utc::now();
    layout(
        "Overview",
        Some(user),
        "/",
        html! {
            div.bar {
                p.muted { "Next scheduled run: " (next_run(config, tenants)) @if config.sync.approval { " · approval mode: runs wait for an approver" } }
                @if user.role >= Role::Analyst {
                    form.inline method="post" action="/sync-now" {
                        (csrf(user))
                        button type="submit" id="sync-now" { @if config.sync.approval { "Plan now" } @else { "Sync now" } }
                    }
                }
            }
            div.cards {
                @for t in tenants {
                    div.card id={ "tenant-" (t.name) } {
                        h2 { "Tenant " (t.name) }
                        @match &t.last {
                            None => p.muted { "No run yet." },
                            Some(run) => {
                                @let c = counts(&t.report);
                                @let status_class = if run.status == "ok" || run.status == "dry-run" { "ok" } else { "bad" };
                                p {
                                    "Last run " a href={ "/runs/" (run.id) } { "#" (run.id) } ": "
                                    span.badge.(status_class) { (run.status) } " "
                                    span.muted { (run.finished_at.as_ref().map(|f| age(f, now)).unwrap_or_default()) }
                                }
                                p {
                                    @for k in ["create", "update", "renew", "replace", "delete", "unchanged"] {
                                        (k) " " strong { (c.get(k).copied().unwrap_or(0)) } " · "
                                    }
                                }
                                @let cap = &t.report["capacity"];
                                @let limit = cap["limit"].as_u64().unwrap_or(0);
                                @let ours = cap["owned_after"].as_u64().unwrap_or(0);
                                @let others = cap["foreign"].as_u64().unwrap_or(0);
                                @let free = limit.saturating_sub(ours + others);
                                @if limit > 0 {
                                    meter.capacity value=(ours + others) max=(limit) high=(limit * 9 / 10) title="capacity used" {}
                                    p { "Capacity " (limit) ": ours " strong { (ours) } ", others " strong { (others) } ", free " strong { (free) } }
                                }
                                @match t.report["brake"].as_str() {
                                    Some(b) => p.bad { "Brake engaged: " (b) },
                                    None => p.ok { "Brake: not engaged" },
                                }
                                @if t.stale.is_empty() {
                                    p.ok { "Every feed fresh" }
                                } @else {
                                    p.warn { "Not fresh: " @for (name, status) in &t.stale { (name) " (" (status) ") " } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The answer to "Sync now" / "Plan now".
pub fn sync_result(user: &CurrentUser, done: &Value) -> Page {
    layout(
        "Sync now",
        Some(user),
        "/",
        html! {
            p.notice id="sync-result" { (done["summary"].as_str().unwrap_or("Done.")) }
            pre { (serde_json::to_string_pretty(done).unwrap_or_default()) }
            p { a href="/runs" { "See the runs" } " · " a href="/approvals" { "Approvals" } }
        },
    )
}

// ---- feeds ------------------------------------------------------------------------------

/// Rejected values of one reason: how many, and up to three (line, value, detail) examples.
pub type RejectExamples = (usize, Vec<(u64, String, Option<String>)>);

/// One feed on the feeds page.
#[derive(Debug)]
pub struct FeedView {
    /// Feed name.
    pub name: String,
    /// Where it comes from.
    pub source: String,
    /// Priority.
    pub priority: i32,
    /// Its last good copy: `usable` (within `max_age`), `too old`, `none`, or `fresh` (the manual list).
    pub status: String,
    /// Why, when not usable.
    pub why: Option<String>,
    /// When its last good copy was fetched.
    pub fetched_at: Option<DateTime<Utc>>,
    /// Accepted values.
    pub accepted: usize,
    /// Rejected values by reason: count and up to three (line, value, detail) examples.
    pub rejected: BTreeMap<String, RejectExamples>,
    /// Values of this feed the tenants hold now (its yield), by tenant.
    pub yield_by_tenant: Vec<(String, usize)>,
    /// Status in the last run of each tenant.
    pub last_status: Vec<(String, String)>,
}

/// Gathers the feeds page: each feed's last good copy parsed again (no download), and its yield.
pub async fn gather_feeds(c: &Console) -> anyhow::Result<Vec<FeedView>> {
    let now = c.clock.now();
    let mut views: Vec<FeedView> = Vec::new();
    let overview = gather_overview(c)?;
    for t in &c.config.tenants {
        let copies = engine::from_last_copies(&c.config, t, &c.store, now).await?;
        let provenance = engine::lock(&c.store).provenance_rows(&t.name)?;
        for f in copies.loaded {
            let held = provenance.iter().filter(|p| p.feeds.contains(&f.name)).count();
            let status_in_run = overview
                .iter()
                .find(|o| o.name == t.name)
                .and_then(|o| o.report["feeds"].as_array().cloned())
                .and_then(|fs| fs.into_iter().find(|x| x["name"] == f.name.as_str()))
                .and_then(|x| x["status"].as_str().map(str::to_owned));
            if let Some(v) = views.iter_mut().find(|v| v.name == f.name) {
                v.yield_by_tenant.push((t.name.clone(), held));
                if let Some(s) = status_in_run {
                    v.last_status.push((t.name.clone(), s));
                }
                continue;
            }
            let cfg = c.config.feeds.iter().find(|x| x.name == f.name);
            let mut rejected: BTreeMap<String, RejectExamples> = BTreeMap::new();
            let accepted = f.parsed.as_ref().map_or(0, |p| p.iocs.len());
            if let Some(p) = &f.parsed {
                for r in &p.rejections {
                    let e = rejected.entry(r.reason.code().to_owned()).or_default();
                    e.0 += 1;
                    if e.1.len() < 3 {
                        e.1.push((r.line, r.value.clone(), r.detail.clone()));
                    }
                }
            }
            views.push(FeedView {
                name: f.name.clone(),
                source: cfg.map(|x| crate::fetch::redact_source(&x.source)).unwrap_or_default(),
                priority: cfg.map_or(0, |x| x.priority),
                // Read without a download: a copy within max_age is usable, not a fallback.
                status: match f.status.as_str() {
                    "fallback" => "usable",
                    "stale" => "too old",
                    "failed" => "none",
                    other => other,
                }
                .to_owned(),
                why: f
                    .status
                    .why()
                    .filter(|_| !matches!(f.status, crate::feeds::FeedStatus::Fallback { .. }))
                    .map(str::to_owned),
                fetched_at: f.fetched_at,
                accepted,
                rejected,
                yield_by_tenant: vec![(t.name.clone(), held)],
                last_status: status_in_run.map(|s| vec![(t.name.clone(), s)]).unwrap_or_default(),
            });
        }
    }
    Ok(views)
}

/// The feeds page.
pub fn feeds(user: &CurrentUser, feeds: &[FeedView]) -> Page {
    let now = Utc::now();
    layout(
        "Feeds",
        Some(user),
        "/feeds",
        html! {
            table {
                tr { th { "Feed" } th { "Last run" } th { "Last good copy" } th.num { "Accepted" } th.num { "Rejected" } th { "Yield (held in the tenant)" } }
                @for f in feeds {
                    tr {
                        td { strong { (f.name) } br; span.muted.mono { (f.source) } br; span.muted { "priority " (f.priority) } }
                        td { @for (t, s) in &f.last_status { (t) ": " span.badge.(if s == "ok" || s == "not-modified" { "ok" } else { "warn" }) { (s) } br; } }
                        td {
                            span.badge { (f.status) } " "
                            @match &f.fetched_at { Some(t) => { (age(t, now)) }, None => span.muted { "none" } }
                            @if let Some(w) = &f.why { br; span.muted { (w) } }
                        }
                        td.num { (f.accepted) }
                        td.num { (f.rejected.values().map(|r| r.0).sum::<usize>()) }
                        td { @for (t, n) in &f.yield_by_tenant { (t) ": " strong { (n) } br; } }
                    }
                }
            }
            @for f in feeds.iter().filter(|f| !f.rejected.is_empty()) {
                h2 { "Rejected in " (f.name) }
                table {
                    tr { th { "Reason" } th.num { "Count" } th { "Examples (line: value)" } }
                    @for (reason, (n, examples)) in &f.rejected {
                        tr {
                            td { code { (reason) } }
                            td.num { (n) }
                            td { @for (line, value, detail) in examples {
                                span.mono { (line) ": " (value) } @if let Some(d) = detail { " " span.muted { "(" (d) ")" } } br;
                            } }
                        }
                    }
                }
            }
        },
    )
}

// ---- runs -------------------------------------------------------------------------------

/// The runs page.
pub fn runs(user: &CurrentUser, rows: &[RunRow]) -> Page {
    layout(
        "Runs",
        Some(user),
        "/runs",
        html! {
            table {
                tr { th { "Run" } th { "Tenant" } th { "Started" } th { "By" } th { "Status" } th.num { "Create" } th.num { "Update" } th.num { "Renew" } th.num { "Delete" } }
                @for r in rows {
                    @let report: Value = r.report_json.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or(Value::Null);
                    @let c = counts(&report);
                    tr {
                        td { a href={ "/runs/" (r.id) } { "#" (r.id) } }
                        td { (r.tenant) }
                        td { (when(&r.started_at)) }
                        td { (r.actor.as_deref().unwrap_or("schedule")) }
                        td { span.badge.(if r.status == "ok" || r.status == "dry-run" { "ok" } else { "bad" }) { (r.status) } @if r.dry_run { " " span.muted { "plan" } } }
                        @for k in ["create", "update", "renew", "delete"] { td.num { (c.get(k).copied().unwrap_or(0)) } }
                    }
                }
            }
        },
    )
}

/// One run with its journal (filtered).
pub fn run_detail(user: &CurrentUser, run: &RunRow, rows: &[JournalRow], f: &JournalFilter) -> Page {
    layout(
        &format!("Run #{}", run.id),
        Some(user),
        "/runs",
        html! {
            p {
                "Tenant " strong { (run.tenant) } " · started " (when(&run.started_at))
                " · status " span.badge { (run.status) }
                @if run.dry_run { " · a plan (nothing written)" }
            }
            form.bar method="get" action={ "/runs/" (run.id) } {
                div { label for="kind" { "Change" } select id="kind" name="kind" {
                    option value="" { "any" }
                    @for k in ["create", "update", "renew", "delete"] { option value=(k) selected[f.kind == k] { (k) } }
                } }
                div { label for="type" { "Type" } input type="text" id="type" name="type" value=(f.r#type) placeholder="DomainName"; }
                div { label for="feed" { "Feed" } input type="text" id="feed" name="feed" value=(f.feed); }
                div { label for="q" { "Value contains" } input type="text" id="q" name="q" value=(f.q); }
                div { button type="submit" { "Filter" } }
            }
            table id="journal" {
                tr { th { "#" } th { "When" } th { "Change" } th { "Type" } th { "Value" } th { "Action" } th { "Feeds" } th { "Why" } th { "By" } }
                @for r in rows {
                    tr {
                        td { (r.seq) } td { (when(&r.at)) } td { (r.entry.kind) } td { (r.entry.indicator_type) }
                        td.mono { (r.entry.value) } td { (r.entry.action) } td { (r.entry.feeds.join(", ")) }
                        td { (r.entry.reason) }
                        td.actor { (r.entry.actor.as_deref().unwrap_or("schedule")) }
                    }
                }
            }
            @if rows.is_empty() { p.muted { "No journaled change matches." } }
            @if user.role >= Role::Analyst && !run.dry_run && !rows.is_empty() {
                form.inline method="post" action={ "/runs/" (run.id) "/undo" } {
                    (csrf(user))
                    button.secondary type="submit" id="request-undo" data-confirm={ "Ask an approver to undo run #" (run.id) "?" } { "Request undo of this run" }
                }
            }
        },
    )
}

// ---- lookup -----------------------------------------------------------------------------

/// The lookup page, with `explain`'s answer when a value was given.
pub fn lookup(
    user: &CurrentUser,
    value: &str,
    answer: Option<anyhow::Result<crate::commands::explain::ExplainReport>>,
) -> Page {
    layout(
        "Lookup",
        Some(user),
        "/lookup",
        html! {
            form.panel method="get" action="/lookup" {
                label for="value" { "Value (any spelling, defanged welcome)" }
                input type="text" id="value" name="value" value=(value) autofocus;
                label { input type="checkbox" name="online" value="1"; " also ask Defender (one API call)" }
                button type="submit" id="explain" { "Explain" }
            }
            @match answer {
                None => {},
                Some(Err(e)) => p.error { (format!("{e:#}")) },
                Some(Ok(r)) => {
                    p.notice id="verdict" { (r.verdict) }
                    table {
                        tr { th { "Tenant" } td { (r.tenant) } }
                        tr { th { "Normalised" } td.mono { (r.value.as_deref().unwrap_or("-")) } " " }
                        tr { th { "Type" } td { (r.kind.as_deref().unwrap_or("-")) } }
                        tr { th { "In the desired state" } td { (if r.desired { "yes" } else { "no" }) } }
                        tr { th { "Allowlisted by" } td { (r.allowlist.as_deref().unwrap_or("-")) } }
                    }
                    @if !r.feeds.is_empty() {
                        h2 { "Feeds carrying it" }
                        pre { (serde_json::to_string_pretty(&r.feeds).unwrap_or_default()) }
                    }
                    @if !r.rejects.is_empty() {
                        h2 { "Refusals" }
                        pre { (serde_json::to_string_pretty(&r.rejects).unwrap_or_default()) }
                    }
                    @if !r.journal.is_empty() {
                        h2 { "Journal" }
                        table {
                            tr { th { "When" } th { "Run" } th { "Change" } th { "Action" } th { "Why" } th { "By" } }
                            @for j in &r.journal {
                                tr { td { (when(&j.at)) } td { a href={ "/runs/" (j.run) } { "#" (j.run) } } td { (j.entry.kind) } td { (j.entry.action) } td { (j.entry.reason) } td { (j.entry.actor.as_deref().unwrap_or("schedule")) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

// ---- manual list ------------------------------------------------------------------------

/// What an add or preview returned, shown above the list.
#[derive(Debug)]
pub struct ManualResult {
    /// The form as sent (re-filled).
    pub form: ManualForm,
    /// One line per input value.
    pub previews: Vec<engine::manual::Preview>,
    /// Whether the accepted values were stored.
    pub saved: bool,
    /// An error that stopped it.
    pub error: Option<String>,
    /// A value was just removed.
    pub removed: bool,
}

impl ManualResult {
    /// The previews of `form` (stored when `saved`).
    pub fn checked(form: ManualForm, previews: Vec<engine::manual::Preview>, saved: bool) -> ManualResult {
        ManualResult { form, previews, saved, error: None, removed: false }
    }

    /// `form` refused as a whole, with why (kept in the form so nothing typed is lost).
    pub fn failed(form: ManualForm, why: String) -> ManualResult {
        ManualResult { form, previews: Vec::new(), saved: false, error: Some(why), removed: false }
    }
}

/// The manual list page: the add form (with the preview of each value) and the list.
pub fn manual(
    user: &CurrentUser,
    feed: &Feed,
    values: &[engine::manual::ManualValue],
    result: Option<&ManualResult>,
) -> Page {
    let empty = ManualForm {
        values: String::new(),
        comment: String::new(),
        action: String::new(),
        expires: String::new(),
    };
    let keep_form = result.is_some_and(|r| !r.saved);
    let form = result.filter(|_| keep_form).map_or(&empty, |r| &r.form);
    let actions: Vec<String> = if feed.row_actions.is_empty() {
        Vec::new()
    } else {
        feed.row_actions.iter().map(|a| a.as_str().to_owned()).collect()
    };
    layout(
        "Manual list",
        Some(user),
        "/manual",
        html! {
            p.muted {
                "Feed " strong { (feed.name) } " · priority " (feed.priority)
                " · the same validation, allowlist and safety rules as every feed; applied at the next run or with Sync now."
            }
            @if let Some(r) = result {
                @if r.removed { p.notice id="removed" { "Removed from the list. The next run deletes it from Defender unless a feed still carries it." } }
                @if let Some(e) = &r.error { p.error { (e) } }
                @if !r.previews.is_empty() {
                    @let accepted = r.previews.iter().filter(|p| p.is_accepted()).count();
                    p.notice id="preview-summary" {
                        (accepted) " accepted, " (r.previews.len() - accepted) " refused"
                        @if r.saved { " · the accepted values were added" } @else { " · preview only: nothing saved yet" }
                    }
                    table id="preview" {
                        tr { th { "Line" } th { "You wrote" } th { "iocsync will" } th { "Detail" } }
                        @for p in &r.previews {
                            @match &p.verdict {
                                engine::manual::Verdict::Accepted { indicator_type, value, action, note } => tr.accepted {
                                    td { (p.line) } td.mono { (p.input) }
                                    td.ok { (action) " " (indicator_type) " " span.mono { (value) } }
                                    td.muted { (note.as_deref().unwrap_or("")) }
                                },
                                engine::manual::Verdict::Refused { reason, detail } => tr.refused {
                                    td { (p.line) } td.mono { (p.input) }
                                    td.bad { "refuse: " code { (reason) } }
                                    td { (detail) }
                                },
                            }
                        }
                    }
                }
            }
            @if user.role >= Role::Analyst {
                form.panel method="post" action="/manual/preview" {
                    (csrf(user))
                    label for="values" { "Values (one per line; any spelling, defanged welcome)" }
                    textarea id="values" name="values" { (form.values) }
                    label for="comment" { "Comment (why; shown in the indicator's description)" }
                    input type="text" id="comment" name="comment" value=(form.comment);
                    div.bar {
                        div {
                            label for="action" { "Action" }
                            select id="action" name="action" {
                                option value="" { "feed default" }
                                @for a in &actions { option value=(a) selected[form.action == *a] { (a) } }
                            }
                        }
                        div { label for="expires" { "Expires (optional)" } input type="date" id="expires" name="expires" value=(form.expires); }
                    }
                    button.secondary type="submit" id="preview-button" { "Preview" }
                    button type="submit" id="add-button" formaction="/manual/add" { "Add" }
                }
            } @else {
                p.muted { "Your role (" (user.role.as_str()) ") can read the list; adding needs the analyst role." }
            }
            h2 { "In the list (" (values.len()) ")" }
            table id="manual-values" {
                tr { th { "Value" } th { "Type" } th { "Action" } th { "Expires" } th { "Comment" } th { "Added by" } th {} }
                @for v in values {
                    tr {
                        td.mono { (v.value) } td { (v.indicator_type) } td { (v.action.as_deref().unwrap_or("feed default")) }
                        td { (v.expires_at.as_ref().map(when).unwrap_or_else(|| "feed expiry".to_owned())) }
                        td { (v.comment) } td { (v.added_by) " " span.muted { (when(&v.added_at)) } }
                        td {
                            @if user.role >= Role::Analyst {
                                form.inline id={ "remove-form-" (v.id) } method="post" action={ "/manual/" (v.id) "/remove" } { (csrf(user)) }
                                a.remove href={ "/manual/" (v.id) "/remove" } data-confirm={ "Remove " (v.value) " from the manual list? The next run deletes it from Defender." } data-post={ "remove-form-" (v.id) } { "Remove" }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The confirmation page of a removal (without JavaScript).
pub fn manual_remove_confirm(user: &CurrentUser, v: &engine::manual::ManualValue) -> Page {
    layout(
        "Remove a value",
        Some(user),
        "/manual",
        html! {
            p { "Remove " code { (v.value) } " (" (v.indicator_type) ") from the manual list? The next run deletes it from Defender unless a feed still carries it." }
            form.inline method="post" action={ "/manual/" (v.id) "/remove" } {
                (csrf(user))
                button.danger type="submit" id="confirm-remove" { "Remove" }
            }
            a href="/manual" { "Cancel" }
        },
    )
}

// ---- approvals --------------------------------------------------------------------------

/// The approvals page: pending plans and undo requests.
pub fn approvals(user: &CurrentUser, approval_on: bool, plans: &[Value], undos: &[Value]) -> Page {
    let approver = user.role >= Role::Approver;
    layout(
        "Approvals",
        Some(user),
        "/approvals",
        html! {
            @if !approval_on { p.muted { "Approval mode is off ([sync] approval = false): runs apply their plans directly. Undo requests still wait here." } }
            h2 { "Pending plans" }
            @if plans.is_empty() { p.muted id="no-plans" { "No plan waits for approval." } }
            @for p in plans {
                @let id = p["id"].as_i64().unwrap_or_default();
                div.card.plan id={ "plan-" (id) } {
                    h2 { "Plan #" (id) " for tenant " (p["tenant"].as_str().unwrap_or("?")) }
                    p.muted { "made " (stamp(&p["created_at"])) " by " (p["created_by"].as_str().unwrap_or("schedule")) }
                    @if let Some(review) = p["review_markdown"].as_str() { pre.review { (review) } }
                    @if let Some(items) = p["plan"]["changes"].as_array() {
                        table.items {
                            tr { th { "Change" } th { "Type" } th { "Value" } th { "Action" } th { "Why" } }
                            @for i in items.iter().take(500) {
                                @let ch = &i["change"];
                                tr { td { (ch["kind"].as_str().unwrap_or("")) } td { (ch["type"].as_str().unwrap_or("")) } td.mono { (ch["value"].as_str().unwrap_or("")) } td { (ch["action"].as_str().unwrap_or("")) } td { (ch["reason"].as_str().unwrap_or("")) } }
                            }
                        }
                        @if items.len() > 500 { p.muted { (items.len() - 500) " more not shown (the review above counts them all)." } }
                    }
                    @if approver {
                        form.inline method="post" action={ "/approvals/" (id) "/approve" } { (csrf(user)) button type="submit" id={ "approve-" (id) } data-confirm="Apply this plan to the tenant now?" { "Approve and apply" } }
                        form.inline method="post" action={ "/approvals/" (id) "/reject" } { (csrf(user)) button.danger type="submit" id={ "reject-" (id) } { "Reject" } }
                    } @else { p.muted { "An approver applies or rejects it." } }
                }
            }
            h2 { "Undo requests" }
            @if undos.is_empty() { p.muted { "No undo request waits." } }
            @for u in undos {
                @let id = u["id"].as_i64().unwrap_or_default();
                div.card id={ "undo-" (id) } {
                    p { "Undo of run " a href={ "/runs/" (u["run_id"].as_i64().unwrap_or_default()) } { "#" (u["run_id"].as_i64().unwrap_or_default()) }
                        " requested by " strong { (u["requested_by"].as_str().unwrap_or("?")) } " " span.muted { (stamp(&u["requested_at"])) } }
                    @if approver {
                        form.inline method="post" action={ "/undo/" (id) "/confirm" } { (csrf(user)) button type="submit" data-confirm="Revert that run's changes now?" { "Confirm undo" } }
                        form.inline method="post" action={ "/undo/" (id) "/reject" } { (csrf(user)) button.danger type="submit" { "Reject" } }
                    }
                }
            }
        },
    )
}

/// The answer to an approval.
pub fn approval_result(user: &CurrentUser, id: i64, outcome: &Value) -> Page {
    layout(
        &format!("Plan #{id}"),
        Some(user),
        "/approvals",
        html! {
            p.notice id="approval-result" { (outcome["summary"].as_str().unwrap_or("Applied.")) }
            pre { (serde_json::to_string_pretty(outcome).unwrap_or_default()) }
            p { a href="/runs" { "See the runs" } }
        },
    )
}

// ---- audit log --------------------------------------------------------------------------

/// The audit log: every console action with its user, newest first.
pub fn audit(user: &CurrentUser, rows: &[engine::audit::AuditRow]) -> Page {
    layout(
        "Audit log",
        Some(user),
        "/audit",
        html! {
            p.muted { "Every action taken in the console, with who took it (the newest 500). Append-only in the state database." }
            table id="audit" {
                tr { th { "#" } th { "When" } th { "User" } th { "Action" } th { "Detail" } }
                @for r in rows {
                    tr {
                        td { (r.seq) } td { (when(&r.at)) } td { (r.user) } td { code { (r.action) } }
                        td.mono { @if !r.detail.is_null() { (r.detail.to_string()) } }
                    }
                }
            }
        },
    )
}
