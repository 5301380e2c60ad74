//! The stages of one tenant's sync, in data-path order.

use super::apply::{self, ApplyResult, DryRunWrites, LiveWrites};
use super::journal::{JournalContext, JournalSink, Journaler};
use super::{SyncRequest, TenantOutcome, lock, protected_feeds};
use crate::config::{AllowlistSpec, Config, Feed, FeedAuth, Tenant};
use crate::connect;
use crate::feeds::{self, FeedSpec, FeedStatus, LoadedFeed};
use crate::fetch::{FetchOptions, Source};
use crate::state::{ADOPTED_ORIGIN, StateStore};
use crate::{Exit, progress};
use anyhow::Context;
use chrono::{DateTime, Utc};
use iocsync_core::allowlist::Allowlist;
use iocsync_core::feed_health::HealthRules;
use iocsync_core::model::{Action, Desired, Skip};
use iocsync_core::plan::{BrakeEntry, BrakeWindow, Existing, Owner, PlanSettings};
use iocsync_core::report::{ApiCalls, FeedReport, RunReport};
use iocsync_ioc::{IndicatorType, Reason};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// How long a value Defender refused is not resent with the same metadata.
const REJECT_RETRY_AFTER: chrono::Duration = chrono::Duration::days(7);

/// Runs every stage for one tenant.
pub(super) async fn run(
    config: &Config,
    tenant: &Tenant,
    store: &Arc<Mutex<StateStore>>,
    req: &SyncRequest,
    run_id: Option<i64>,
) -> anyhow::Result<TenantOutcome> {
    let now = req.now.unwrap_or_else(Utc::now);
    // With no feed the desired state is empty and the plan would delete everything iocsync
    // owns: that is `purge`, and it must be asked for by name.
    if config.feeds_for(tenant).next().is_none() {
        anyhow::bail!(
            "tenant {} takes no feed (no enabled [[feeds]] block, or an empty `feeds` list): nothing to sync; \
             to remove iocsync's indicators from the tenant, run `iocsync purge --tenant {}`",
            tenant.name,
            tenant.name
        );
    }
    let allowlist = build_allowlist(&config.allowlist, &tenant.allowlist)?;
    let loaded = load_feeds(config, tenant, store, now).await?;
    let (desired, skips, policy_notes) = desired_state(config, tenant, &loaded, &allowlist, now);

    let conn = connect::connect(config, tenant).await?;
    let result =
        plan_and_apply(config, tenant, store, req, run_id, &conn.client, desired, &loaded, &allowlist, now)
            .await;
    conn.close().await;
    let PlanApplied { mut report, applied, owned_by, throttled_by, calls_by_status, samples, saved } =
        result?;
    let feed_ages = loaded
        .iter()
        .map(|f| {
            (f.name.clone(), f.fetched_at.filter(|_| f.parsed.is_some()).map(|t| (now - t).num_seconds()))
        })
        .collect();
    report.add_skips(&skips);
    report.notes.extend(policy_notes);
    report
        .notes
        .extend(loaded.iter().filter_map(|f| f.note.as_ref().map(|n| format!("feed {}: {n}", f.name))));
    for f in &loaded {
        let reason = match f.status {
            FeedStatus::Stale { .. } => Some(Reason::FeedStale),
            FeedStatus::Failed { .. } => Some(Reason::FeedFailed),
            _ => None,
        };
        if let Some(r) = reason {
            report.add_skips(&[Skip {
                kind: None,
                value: f.name.clone(),
                reason: r,
                feed: Some(f.name.clone()),
                detail: f.status.why().map(str::to_owned),
            }]);
        }
        let (accepted, rejected) =
            f.parsed.as_ref().map(|p| (p.iocs.len() as u64, p.rejections.len() as u64)).unwrap_or((0, 0));
        report.feeds.push(FeedReport {
            name: f.name.clone(),
            status: f.status.report_status(),
            accepted,
            rejected,
        });
    }

    let feeds_degraded = loaded.iter().any(|f| f.status.is_degraded());
    let exit = if report.brake.is_some() {
        Exit::Brake
    } else if !report.failed.is_empty() || feeds_degraded || !applied.complete {
        Exit::Partial
    } else {
        Exit::Ok
    };
    let feed_reasons =
        loaded.iter().filter_map(|f| f.status.why().map(|w| (f.name.clone(), w.to_owned()))).collect();
    Ok(TenantOutcome {
        report,
        exit,
        error: applied.error,
        owned_by,
        feed_ages,
        throttled_by,
        calls_by_status,
        samples,
        feed_reasons,
        saved,
    })
}

/// Builds the allowlist from the built-in list, the global and the tenant's values and files.
pub(crate) fn build_allowlist(global: &AllowlistSpec, tenant: &AllowlistSpec) -> anyhow::Result<Allowlist> {
    let mut list = if global.builtin { Allowlist::builtin() } else { Allowlist::default() };
    for spec in [global, tenant] {
        for v in &spec.values {
            list.add_value(v).map_err(|e| anyhow::anyhow!("allowlist value `{v}`: {e}"))?;
        }
        for path in &spec.files {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading allowlist file {}", path.display()))?;
            let trimmed = bytes.iter().position(|b| !b.is_ascii_whitespace()).map(|i| bytes[i]);
            if trimmed == Some(b'{') {
                list.add_misp_warninglist(&bytes)
                    .map_err(|e| anyhow::anyhow!("allowlist file {}: {e}", path.display()))?;
            } else {
                let text = String::from_utf8_lossy(&bytes);
                // The file is named as the entry's source, so a skip or `explain` says where it is.
                for problem in list.add_text_from(&text, &path.display().to_string()) {
                    tracing::warn!(file = %path.display(), "allowlist entry ignored: {problem}");
                }
            }
        }
    }
    Ok(list)
}

/// What `explain` reads: each feed's last good copy (no download), the desired state made from
/// them with its skips, and the allowlist.
pub(crate) struct LastCopies {
    /// The feeds as their last good copies stand.
    pub loaded: Vec<LoadedFeed>,
    /// The desired state.
    pub desired: Vec<Desired>,
    /// Values left out, with reasons.
    pub skips: Vec<Skip>,
    /// The allowlist of the tenant.
    pub allowlist: Allowlist,
}

/// Builds [`LastCopies`] for one tenant.
pub(crate) async fn from_last_copies(
    config: &Config,
    tenant: &Tenant,
    store: &Arc<Mutex<StateStore>>,
    now: DateTime<Utc>,
) -> anyhow::Result<LastCopies> {
    let allowlist = build_allowlist(&config.allowlist, &tenant.allowlist)?;
    let rules = HealthRules::default();
    let mut loaded = Vec::new();
    for feed in config.feeds_for(tenant) {
        if feed.is_manual() {
            loaded.push(super::manual::loaded_feed(store, feed, now));
            continue;
        }
        let spec = feed_spec(config, feed, &rules)?;
        loaded.push(feeds::from_last_copy(store, &spec, now).await);
    }
    let (desired, skips, _) = desired_state(config, tenant, &loaded, &allowlist, now);
    Ok(LastCopies { loaded, desired, skips, allowlist })
}

/// Fetches and parses every feed of the tenant, with last-good fallback.
async fn load_feeds(
    config: &Config,
    tenant: &Tenant,
    store: &Arc<Mutex<StateStore>>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<LoadedFeed>> {
    let opts = FetchOptions {
        max_bytes: config.sync.max_feed_bytes,
        total_timeout: config.sync.feed_timeout,
        ..FetchOptions::default()
    };
    let http = crate::fetch::http_client(&opts)?;
    let rules = HealthRules {
        max_shrink_fraction: config.sync.max_shrink_fraction,
        max_reject_fraction: config.sync.max_reject_fraction,
        ..HealthRules::default()
    };
    let observer = progress::fetch_observer();
    let mut out = Vec::new();
    for feed in config.feeds_for(tenant) {
        // The manual list is read from the state database, never fetched.
        if feed.is_manual() {
            out.push(super::manual::loaded_feed(store, feed, now));
            continue;
        }
        let spec = feed_spec(config, feed, &rules)?;
        let client = match &feed.auth {
            None => http.clone(),
            Some(auth) => match auth_headers(auth) {
                Ok(h) => crate::fetch::http_client_with_headers(&opts, h)?,
                Err(why) => {
                    tracing::error!(feed = %feed.name, "{why}");
                    // Its last good copy still protects its values.
                    let spec = feed_spec(config, feed, &rules)?;
                    out.push(feeds::unreachable(store, &spec, why, now).await);
                    continue;
                }
            },
        };
        let loaded = feeds::load_feed(&client, store, &spec, &opts, now, observer.as_ref()).await;
        out.push(loaded);
    }
    Ok(out)
}

/// The `Authorization` header of a feed, from its environment variable (marked sensitive).
fn auth_headers(auth: &FeedAuth) -> Result<reqwest::header::HeaderMap, String> {
    use base64::Engine as _;
    let read = |var: &str| match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(format!("environment variable {var} (feed credential) is not set")),
    };
    let value = match auth {
        FeedAuth::Bearer { token_env } => format!("Bearer {}", read(token_env)?),
        FeedAuth::Basic { username, password_env } => {
            let pair = format!("{username}:{}", read(password_env)?);
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        }
    };
    let mut v = reqwest::header::HeaderValue::from_str(&value)
        .map_err(|_| "the feed credential holds characters not allowed in an HTTP header".to_owned())?;
    v.set_sensitive(true);
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(reqwest::header::AUTHORIZATION, v);
    Ok(h)
}

fn feed_spec(config: &Config, feed: &Feed, rules: &HealthRules) -> anyhow::Result<FeedSpec> {
    let source =
        Source::parse(&feed.source, &config.base_dir).with_context(|| format!("feed {}", feed.name))?;
    Ok(FeedSpec {
        name: feed.name.clone(),
        source,
        format: feed.format,
        column: feed.column.clone(),
        type_column: feed.type_column.clone(),
        type_hint: feed.type_hint,
        refang: feed.refang,
        max_age: chrono::Duration::from_std(feed.max_age).unwrap_or(chrono::Duration::hours(48)),
        health: *rules,
        accept_shrink: iocsync_core::feed_health::AcceptShrink {
            runs: config.sync.accept_shrink_after.runs,
            after: chrono::Duration::from_std(config.sync.accept_shrink_after.after)
                .unwrap_or(chrono::Duration::hours(24)),
        },
    })
}

/// Policy per feed, merge across feeds, then the allowlist: the desired state of the tenant.
fn desired_state(
    config: &Config,
    tenant: &Tenant,
    loaded: &[LoadedFeed],
    allowlist: &Allowlist,
    now: DateTime<Utc>,
) -> (Vec<Desired>, Vec<Skip>, Vec<String>) {
    let mut skips = Vec::new();
    let mut notes = Vec::new();
    let mut per_feed = Vec::new();
    for (feed, lf) in config.feeds_for(tenant).zip(loaded) {
        let Some(parsed) = &lf.parsed else {
            per_feed.push(Vec::new());
            continue;
        };
        for r in &parsed.rejections {
            skips.push(Skip {
                kind: None,
                value: r.value.clone(),
                reason: r.reason,
                feed: Some(feed.name.clone()),
                detail: r.detail.clone().or_else(|| Some(format!("line {}", r.line))),
            });
        }
        let iocs: Vec<_> = match &feed.types {
            Some(types) => {
                let (keep, drop): (Vec<_>, Vec<_>) =
                    parsed.iocs.iter().cloned().partition(|i| types.contains(&i.kind));
                skips.extend(drop.into_iter().map(|i| Skip {
                    kind: Some(i.kind),
                    value: i.value,
                    reason: Reason::UnsupportedType,
                    feed: Some(feed.name.clone()),
                    detail: Some(format!("{} is not in this feed's `types`", i.kind)),
                }));
                keep
            }
            None => parsed.iocs.clone(),
        };
        let policy = config.feed_policy(tenant, feed);
        let out = iocsync_core::policy::apply_policy_noted(&policy, &iocs, now);
        skips.extend(out.skips);
        notes.extend(out.notes);
        per_feed.push(out.desired);
    }
    let (merged, merge_skips) = iocsync_core::merge::merge(per_feed);
    skips.extend(merge_skips);
    let (kept, allow_skips) = allowlist.filter(merged);
    skips.extend(allow_skips);
    (kept, skips, notes)
}

/// What planning and applying one tenant produced.
struct PlanApplied {
    report: RunReport,
    applied: ApplyResult,
    owned_by: BTreeMap<(String, String), u64>,
    throttled_by: iocsync_defender::ThrottledBy,
    calls_by_status: iocsync_defender::CallsByStatus,
    samples: Vec<super::ChangeSample>,
    saved: Option<super::saved::SavedPlan>,
}

/// The first few values of each kind of change, so a person reading `plan` sees what moves.
fn change_samples(plan: &iocsync_core::plan::Plan) -> Vec<super::ChangeSample> {
    const EACH: usize = 5;
    let d = |op: &'static str, kind: IndicatorType, value: &str, action: &str| super::ChangeSample {
        op,
        kind: kind.as_str().to_owned(),
        value: value.to_owned(),
        action: action.to_owned(),
    };
    let mut out = Vec::new();
    out.extend(plan.creates.iter().take(EACH).map(|x| d("create", x.kind, &x.value, x.action.as_str())));
    out.extend(
        plan.updates
            .iter()
            .take(EACH)
            .map(|c| d("update", c.desired.kind, &c.desired.value, c.desired.action.as_str())),
    );
    out.extend(
        plan.renews
            .iter()
            .take(EACH)
            .map(|c| d("renew", c.desired.kind, &c.desired.value, c.desired.action.as_str())),
    );
    out.extend(plan.replaces.iter().take(EACH).map(|r| {
        d("replace", r.new.kind, &r.new.value, &format!("{} -> {}", r.old.raw_action, r.new.action))
    }));
    out.extend(plan.deletes.iter().take(EACH).map(|r| super::ChangeSample {
        op: "delete",
        kind: r.raw_type.clone(),
        value: r.value.clone(),
        action: r.raw_action.clone(),
    }));
    out
}

/// Lists the tenant, plans, checks the brake and applies through the write port.
#[allow(clippy::too_many_arguments)]
async fn plan_and_apply(
    config: &Config,
    tenant: &Tenant,
    store: &Arc<Mutex<StateStore>>,
    req: &SyncRequest,
    run_id: Option<i64>,
    client: &iocsync_defender::DefenderClient,
    desired: Vec<Desired>,
    loaded: &[LoadedFeed],
    allowlist: &Allowlist,
    now: DateTime<Utc>,
) -> anyhow::Result<PlanApplied> {
    let history = lock(store).load_api_calls(&tenant.name, &tenant.client_id).unwrap_or_default();
    client.load_call_history(history.into_iter().filter_map(|(f, at)| stamp(&f, at)).collect()).await;

    let listed = client.list_all().await.context("listing the tenant's indicators")?;
    // With only Ti.ReadWrite the listing shows iocsync's own rows: other creators' ones can be
    // neither counted against the cap nor avoided, and the plan says so.
    let sees_foreign = match client.token_roles().await {
        Ok(Some(roles)) => roles.iter().any(|r| r == "Ti.ReadWrite.All"),
        _ => true,
    };
    // Blind to other creators' indicators, an import could land on an analyst's own indicator
    // (same type, value and action) and overwrite it: never write without seeing them.
    if !sees_foreign && !req.dry_run {
        anyhow::bail!(
            "the app registration of tenant {} holds Ti.ReadWrite but not Ti.ReadWrite.All: it cannot see \
             indicators other creators made, so a write could overwrite one of them. Grant the application \
             permission Ti.ReadWrite.All (WindowsDefenderATP) with admin consent, then run again; `iocsync plan` \
             works meanwhile",
            tenant.name
        );
    }
    let existing: Vec<Existing> = listed
        .iter()
        .filter(|i| !super::marker::is_own_canary(i, &tenant.client_id))
        .map(to_existing)
        .collect();

    // Provenance naming only feeds no longer configured (renamed, removed) is unknown origin:
    // while a feed is failing, such rows are kept rather than deleted.
    let configured: BTreeSet<&str> = config.feeds_for(tenant).map(|f| f.name.as_str()).collect();
    let stored_provenance = lock(store).provenance(&tenant.name).unwrap_or_default();
    let provenance = stored_provenance
        .iter()
        .filter_map(|((t, v), feeds)| {
            let feeds: BTreeSet<String> = feeds
                .iter()
                .filter(|f| configured.contains(f.as_str()) || *f == ADOPTED_ORIGIN)
                .cloned()
                .collect();
            let t = t.parse::<IndicatorType>().ok()?;
            (!feeds.is_empty()).then_some(((t, v.clone()), feeds))
        })
        .collect::<BTreeMap<_, _>>();
    // A remembered rejection holds for REJECT_RETRY_AFTER, then the value is tried again (the
    // cause, e.g. a device group that did not exist yet, may have gone away).
    let reject_records = lock(store).reject_records(&tenant.name).unwrap_or_default();
    let rejected_keys: BTreeSet<(String, String, String)> = reject_records
        .iter()
        .map(|r| (r.reject.indicator_type.clone(), r.reject.value.clone(), r.reject.action.clone()))
        .collect();
    let suppressed = reject_records
        .into_iter()
        .filter(|r| now - r.last_seen < REJECT_RETRY_AFTER)
        .map(|r| r.reject)
        .filter_map(|r| {
            let t = r.indicator_type.parse::<IndicatorType>().ok()?;
            let a = r.action.parse::<Action>().ok()?;
            Some((t, r.value, a, r.fingerprint))
        })
        .collect::<BTreeSet<_>>();
    let owner = Owner { client_id: tenant.client_id.clone(), tag: config.sync.owner_tag.clone() };
    // A run that died mid-call: journal what its last call really did, before planning.
    if !req.dry_run {
        super::journal::reconcile(store, &tenant.name, run_id, &existing, &owner, now);
    }
    // Owned rows the allowlist now covers are removed, whatever protects them, and outside the brake.
    let allowlisted: BTreeSet<(IndicatorType, String)> = existing
        .iter()
        .filter(|e| owner.owns(e))
        .filter_map(|e| {
            let k = e.kind?;
            allowlist.matches(k, &e.value).map(|_| (k, e.value.clone()))
        })
        .collect();
    let window = chrono::Duration::from_std(config.sync.brake_window).unwrap_or(chrono::Duration::hours(24));
    let ledger = lock(store).brake_ledger(&tenant.name, now - window).context(
        "reading the brake's memory from the state database (the brake cannot be judged without it)",
    )?;
    let not_fresh = protected_feeds(loaded);
    // An update sent with the same payload on two runs in a row that is still different on
    // read-back was not kept: it is not resent until its payload changes.
    let sent_updates = lock(store).sent_updates(&tenant.name).unwrap_or_default();
    let not_kept = sent_updates
        .iter()
        .filter(|u| u.times >= 2)
        .filter_map(|u| {
            let t = u.indicator_type.parse::<IndicatorType>().ok()?;
            let a = u.action.parse::<Action>().ok()?;
            Some((t, u.value.clone(), a, u.fingerprint.clone()))
        })
        .collect();
    // Advanced hunting (both off by default): hits since the last count, then the impact check.
    let hunter = if config.impact.enabled || config.hits.enabled {
        super::impact::Hunter::new(config, tenant, client)
            .map_err(|e| tracing::warn!(tenant = %tenant.name, "advanced hunting: no client: {e:#}"))
            .ok()
    } else {
        None
    };
    // A Graph client paces with the calls of earlier runs too (45/min, 1,500/h per app).
    let graph_key = super::impact::Hunter::history_key(&tenant.client_id);
    if let Some(g) = hunter.as_ref().and_then(super::impact::Hunter::own_client) {
        let history = lock(store).load_api_calls(&tenant.name, &graph_key).unwrap_or_default();
        g.load_call_history(history.into_iter().filter_map(|(f, at)| stamp(&f, at)).collect()).await;
    }
    let mut hot = BTreeSet::new();
    let hits_summary = if config.hits.enabled {
        let mut summary = iocsync_core::report::HitsSummary::default();
        // Only `sync` counts (and moves the cursor); `plan` ranks with what is known.
        if !req.dry_run
            && let Some(h) = &hunter
        {
            let owned_keys: BTreeSet<(IndicatorType, String)> = existing
                .iter()
                .filter(|e| owner.owns(e))
                .filter_map(|e| Some((e.kind?, e.value.clone())))
                .collect();
            let first =
                chrono::Duration::from_std(config.hits.first_lookback).unwrap_or(chrono::Duration::days(1));
            let until = now - super::hits::INGESTION_LAG;
            // Advanced hunting keeps 30 days: an older cursor (a long outage) starts there.
            let since = lock(store)
                .hits_counted_to(&tenant.name)
                .ok()
                .flatten()
                .unwrap_or(until - first)
                .max(until - chrono::Duration::days(30));
            if since < until
                && let Some(new) = super::hits::count(h, &owned_keys, since, until, &mut summary).await
                && let Err(e) = lock(store).add_hits(&tenant.name, &new, until)
            {
                tracing::warn!(tenant = %tenant.name, "hits: cannot save the counts: {e}");
            }
        }
        let records = lock(store).hit_records(&tenant.name).unwrap_or_default();
        hot = super::hits::hot(config, &records, now);
        let feeds: Vec<String> = config.feeds_for(tenant).map(|f| f.name.clone()).collect();
        summary.feeds = super::hits::feed_yield(&records, &provenance, &hot, &feeds);
        let mut top: Vec<&crate::state::HitRecord> = records.iter().filter(|r| r.hits > 0).collect();
        top.sort_by(|a, b| {
            b.hits
                .cmp(&a.hits)
                .then_with(|| (&a.indicator_type, &a.value).cmp(&(&b.indicator_type, &b.value)))
        });
        summary.top = top
            .into_iter()
            .take(10)
            .map(|r| iocsync_core::report::TopHit {
                kind: r.indicator_type.clone(),
                value: r.value.clone(),
                hits: r.hits,
            })
            .collect();
        Some(summary)
    } else {
        None
    };
    // The impact check runs before the plan: a held value never reaches it.
    let (desired, impact_skips, impact_summary) = if config.impact.enabled {
        let since = super::impact::cache_since(config, now);
        let cache = lock(store).impact_records(&tenant.name, since).unwrap_or_else(|e| {
            tracing::warn!(tenant = %tenant.name, "impact check: cannot read its cache, asking again: {e}");
            Vec::new()
        });
        let owns = |e: &Existing| owner.owns(e);
        let o = super::impact::check(
            config,
            tenant,
            cache,
            hunter.as_ref(),
            desired,
            &existing,
            &owns,
            now,
            &req.stop,
        )
        .await;
        // `plan` asks (so the review shows the verdicts) but remembers nothing.
        if !req.dry_run
            && let Err(e) = lock(store).save_impact_records(&tenant.name, &o.records, since)
        {
            tracing::warn!(tenant = %tenant.name, "impact check: cannot save its answers: {e}");
        }
        (o.desired, o.skips, Some(o.summary))
    } else {
        (desired, Vec::new(), None)
    };
    let settings = PlanSettings {
        owner,
        capacity: config.sync.capacity,
        headroom: config.sync.headroom,
        max_delete_fraction: config.sync.max_delete_fraction,
        brake_window: BrakeWindow::from_ledger(&ledger, now, window),
        renew_before: chrono::Duration::days(i64::from(config.sync.renew_before_days)),
        now,
        force: req.force,
        sees_foreign,
        protected_feeds: not_fresh.clone(),
        protected_values: loaded.iter().flat_map(|f| f.protects.iter().cloned()).collect(),
        provenance,
        allowlisted: allowlisted.clone(),
        suppressed,
        not_kept,
        hot,
    };
    let plan = iocsync_core::plan::plan(desired.clone(), &existing, &settings);
    let counts = plan.counts();
    tracing::info!(
        tenant = %tenant.name,
        create = counts.create, update = counts.update, renew = counts.renew,
        replace = counts.replace, delete = counts.delete, unchanged = counts.unchanged,
        "plan ready"
    );

    let mut report = RunReport::new(&tenant.name, req.dry_run);
    report.set_plan(&plan);
    report.add_skips(&impact_skips);
    report.impact = impact_summary;
    report.hits = hits_summary;
    for note in &plan.notes {
        tracing::warn!(tenant = %tenant.name, "{note}");
    }
    if req.dry_run
        && !plan.import_items().is_empty()
        && !super::marker::proven_by_listing(&listed, &tenant.client_id, &config.marker())
    {
        report.notes.push(super::marker::UNPROVEN_NOTE.to_owned());
    }

    if let Some(b) = &plan.brake {
        tracing::warn!(tenant = %tenant.name, "{b}");
    }
    let mut saved = None;
    if req.save_plan {
        saved = Some(super::saved::SavedPlan::build(
            config,
            tenant,
            &plan,
            &existing,
            &desired,
            &allowlisted,
            &stored_provenance,
            loaded,
            now,
        )?);
    }
    // A braked plan no longer holds the excess: what it still holds is applied.
    let applied = if req.dry_run {
        apply::apply(&plan, &DryRunWrites, &req.stop, &Journaler::none()).await
    } else {
        // Nothing is imported unless the tenant is known to keep the ownership marker.
        if !plan.import_items().is_empty() {
            super::marker::ensure(client, &tenant.client_id, &config.marker(), &listed).await?;
        }
        let cx = JournalContext {
            existing: &existing,
            desired: &desired,
            allowlisted: &allowlisted,
            provenance: &stored_provenance,
        };
        let sink = run_id.map(|run| JournalSink {
            store: store.clone(),
            tenant: tenant.name.clone(),
            run,
            clock: req.now,
        });
        let journal = Journaler::for_plan(&plan, &cx, sink);
        apply::apply(&plan, &LiveWrites(client), &req.stop, &journal).await
    };
    report.failed = applied.failed.clone();

    if !req.dry_run {
        let s = lock(store);

        for rej in &applied.permanent_rejects {
            if let Err(e) = s.record_reject(&tenant.name, rej, now) {
                tracing::warn!("could not remember a rejected value: {e}");
            }
        }
        // A value Defender has now accepted is no longer a remembered reject.
        for (t, v, a) in applied.ids.keys().filter(|k| rejected_keys.contains(*k)) {
            if let Err(e) = s.clear_reject(&tenant.name, t, v, a) {
                tracing::warn!("could not forget an accepted value's old rejection: {e}");
            }
        }
        let rows =
            apply::provenance_rows(&plan, &desired, &applied, &existing, &stored_provenance, &not_fresh, now);
        let sent = apply::sent_update_rows(&plan, &applied, &sent_updates);
        if let Err(e) = s.replace_sent_updates(&tenant.name, &sent, now) {
            tracing::warn!("could not save the updates sent: {e}");
        }
        if let Err(e) = s.replace_provenance(&tenant.name, &rows) {
            tracing::warn!("could not save provenance: {e}");
        }
    }
    let stats = client.stats();
    report.api_calls = ApiCalls::from(&stats);
    report.throttled = stats.throttled;
    let calls: Vec<(String, i64)> = client
        .export_call_history()
        .await
        .into_iter()
        .map(|c| (c.family.as_str().to_owned(), c.at_ms))
        .collect();
    if let Err(e) =
        lock(store).save_api_calls(&tenant.name, &tenant.client_id, &calls, now.timestamp_millis())
    {
        tracing::warn!("could not save the API call history: {e}");
    }
    if let Some(g) = hunter.as_ref().and_then(super::impact::Hunter::own_client) {
        let calls: Vec<(String, i64)> = g
            .export_call_history()
            .await
            .into_iter()
            .map(|c| (c.family.as_str().to_owned(), c.at_ms))
            .collect();
        if let Err(e) = lock(store).save_api_calls(&tenant.name, &graph_key, &calls, now.timestamp_millis()) {
            tracing::warn!("could not save the Graph call history: {e}");
        }
    }
    let owned_by = apply::owned_by_type_and_action(&plan, &applied);
    if !req.dry_run {
        // What the tenant holds now, not what the plan hoped for (creates Defender refused).
        report.capacity.owned_after = owned_by.values().sum::<u64>() as usize;
        // Counted whether or not every batch landed: over-counting only brakes earlier.
        let entry = BrakeEntry {
            at: now,
            counted: plan.brake_counted,
            owned: plan.capacity.owned_before.max(report.capacity.owned_after),
        };
        lock(store).record_brake(&tenant.name, &entry).context("recording the run in the brake's memory")?;
    }
    let samples = change_samples(&plan);
    let calls_by_status = client.calls_by_status();
    Ok(PlanApplied {
        report,
        applied,
        owned_by,
        throttled_by: stats.throttled_by,
        calls_by_status,
        samples,
        saved,
    })
}

fn stamp(family: &str, at_ms: i64) -> Option<iocsync_core::pacing::CallStamp> {
    Some(iocsync_core::pacing::CallStamp { family: family.parse().ok()?, at_ms })
}

/// Converts a listed indicator into the plan's view of it.
pub(crate) fn to_existing(i: &iocsync_defender::Indicator) -> Existing {
    Existing {
        id: i.id.clone(),
        raw_type: i.indicator_type.clone(),
        kind: i.indicator_type.parse::<IndicatorType>().ok(),
        value: i.indicator_value.clone(),
        action: Action::from_tenant(i.action.as_str()),
        raw_action: i.action.as_str().to_owned(),
        created_by: i.created_by.clone(),
        application: i.application.clone(),
        external_id: i.external_id.clone(),
        severity: i.severity.as_deref().and_then(|s| s.parse().ok()),
        title: i.title.clone().unwrap_or_default(),
        description: i.description.clone().unwrap_or_default(),
        recommended_actions: i.recommended_actions.clone(),
        rbac_groups: i.rbac_group_names.clone(),
        generate_alert: i.generate_alert.unwrap_or(false),
        category: i.category.as_ref().map(|c| c.to_string().trim_matches('"').to_owned()),
        mitre_techniques: i.mitre_techniques.clone(),
        educate_url: i.educate_url.clone(),
        expiration: i.expiration_time,
    }
}
