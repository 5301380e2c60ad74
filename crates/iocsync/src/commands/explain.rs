//! `iocsync explain VALUE`: why a value is (or is not) in the tenant. Answers from the current
//! config, the feeds' last good copies, the state database and at most one tenant lookup
//! (none with `--offline`): feeds and policy, allowlist entry, rejects, capacity rank, tenant
//! rows (ours and foreign), and the journal of its changes.

use crate::cli::ExplainArgs;
use crate::config::Config;
use crate::state::JournalRow;
use chrono::{DateTime, Utc};
use iocsync_core::plan::{Owner, capacity_rank, match_value};
use iocsync_ioc::IndicatorType;
use serde::Serialize;

/// A feed that carries the value, and what its policy makes of it.
#[derive(Debug, Serialize)]
pub struct FeedCarry {
    /// Feed name.
    pub feed: String,
    /// Status of its last good copy (fallback, stale, failed).
    pub status: String,
    /// Line of the value in that copy.
    pub line: u64,
    /// Action the feed's policy gives it (None when the policy skips it).
    pub action: Option<String>,
    /// Severity the policy gives it.
    pub severity: Option<String>,
    /// Expiry the policy gives it.
    pub expiration: Option<DateTime<Utc>>,
    /// The feed's priority.
    pub priority: Option<i32>,
    /// Why the feed's policy leaves it out, when it does.
    pub skipped: Option<String>,
}

/// A refusal of the value: by normalisation, a feed's parser, the policy or merge, or Defender.
#[derive(Debug, Serialize)]
pub struct Refusal {
    /// Reason code.
    pub reason: String,
    /// Where: `input`, a feed name, or `defender`.
    pub source: String,
    /// Detail (Defender's text, the line, ...).
    pub detail: Option<String>,
    /// When it was seen (Defender: first and last refusal; a feed: when its copy was fetched).
    pub first_seen: Option<DateTime<Utc>>,
    /// Latest refusal.
    pub last_seen: Option<DateTime<Utc>>,
}

/// Capacity: where the value ranks and whether it fits.
#[derive(Debug, Serialize)]
pub struct CapacityRank {
    /// 1-based rank among the desired values (1 is kept first).
    pub rank: usize,
    /// Desired values in all.
    pub of: usize,
    /// Slots for iocsync: capacity minus headroom minus other creators' indicators.
    pub room: usize,
    /// Whether the rank is within the room.
    pub fits: bool,
    /// Other creators' indicators counted.
    pub foreign: usize,
    /// Where that count comes from: `last-run` (the last sync's listing) or `unknown`.
    pub foreign_from: String,
    /// Why it ranks where it does: the keys in order (priority, recent hits, severity, line).
    pub ranked_by: String,
}

/// What Defender did with the value, from the `[hits]` counts.
#[derive(Debug, Serialize)]
pub struct ValueHits {
    /// Events where Defender acted on it, since hits were first counted.
    pub hits: u64,
    /// Distinct devices of those events.
    pub devices: u64,
    /// The latest such event.
    pub last_hit: Option<DateTime<Utc>>,
    /// Whether the hits are recent enough (`[hits] boost_for`) to lift its capacity rank.
    pub boosted: bool,
}

/// One tenant row holding the value.
#[derive(Debug, Serialize)]
pub struct TenantRow {
    /// Defender id.
    pub id: String,
    /// `indicatorType`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Action.
    pub action: String,
    /// `createdBy`.
    pub created_by: Option<String>,
    /// Whether iocsync owns it.
    pub ours: bool,
    /// Expiry.
    pub expiration: Option<DateTime<Utc>>,
    /// Title.
    pub title: Option<String>,
}

/// The answer of `explain`.
#[derive(Debug, Serialize)]
pub struct ExplainReport {
    /// Tenant name.
    pub tenant: String,
    /// The value as given.
    pub input: String,
    /// Its type after normalisation.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Its normalised value.
    pub value: Option<String>,
    /// Feeds whose last good copy carries it.
    pub feeds: Vec<FeedCarry>,
    /// The allowlist entry that stops it (with its source).
    pub allowlist: Option<String>,
    /// Refusals: by normalisation, a feed, the merge, or Defender.
    pub rejects: Vec<Refusal>,
    /// Whether it is in the desired state (carried, allowed, not refused).
    pub desired: bool,
    /// Its capacity rank, when desired.
    pub capacity: Option<CapacityRank>,
    /// What Defender did with it (`[hits]`); `None` when never counted.
    pub hits: Option<ValueHits>,
    /// The tenant rows holding it; `None` with `--offline` or when the lookup failed.
    pub tenant_rows: Option<Vec<TenantRow>>,
    /// Why the tenant lookup failed.
    pub lookup_error: Option<String>,
    /// Its journal, oldest first.
    pub journal: Vec<JournalRow>,
    /// Defender API calls made (0 or 1).
    pub api_calls: u64,
    /// One sentence.
    pub verdict: String,
}

/// Answers `explain` for one tenant.
pub async fn run(config: &Config, args: &ExplainArgs) -> anyhow::Result<ExplainReport> {
    let tenants = config.select_tenants(args.tenant.tenant.as_deref()).map_err(anyhow::Error::msg)?;
    let [tenant] = tenants.as_slice() else {
        anyhow::bail!("explain answers for one tenant: name it with --tenant");
    };
    let now = Utc::now();
    let store = crate::engine::open_store(config)?;
    let mut report = ExplainReport {
        tenant: tenant.name.clone(),
        input: args.value.clone(),
        kind: None,
        value: None,
        feeds: Vec::new(),
        allowlist: None,
        rejects: Vec::new(),
        desired: false,
        capacity: None,
        hits: None,
        tenant_rows: None,
        lookup_error: None,
        journal: Vec::new(),
        api_calls: 0,
        verdict: String::new(),
    };
    let copies = crate::engine::from_last_copies(config, tenant, &store, now).await?;
    let input = args.value.trim();
    let (kind, value) = match iocsync_ioc::normalize::normalize(input, None, true) {
        Ok(kv) => kv,
        Err((reason, detail)) => {
            report.rejects.push(Refusal {
                reason: reason.code().to_owned(),
                source: "input".to_owned(),
                detail,
                first_seen: None,
                last_seen: None,
            });
            // Which feeds carried it and refused it, from their last copies.
            for f in &copies.loaded {
                for r in f.parsed.iter().flat_map(|p| &p.rejections) {
                    if r.value.trim().eq_ignore_ascii_case(input) {
                        report.rejects.push(Refusal {
                            reason: r.reason.code().to_owned(),
                            source: f.name.clone(),
                            detail: r.detail.clone().or_else(|| Some(format!("line {}", r.line))),
                            first_seen: f.fetched_at,
                            last_seen: f.fetched_at,
                        });
                    }
                }
            }
            report.verdict = format!("never pushed: the value is refused ({})", reason.code());
            return Ok(report);
        }
    };
    report.kind = Some(kind.as_str().to_owned());
    report.value = Some(value.clone());
    let mv = match_value(kind, &value);
    let same = |k: IndicatorType, v: &str| k == kind && match_value(k, v) == mv;

    for (feed, f) in config.feeds_for(tenant).zip(&copies.loaded) {
        let Some(parsed) = &f.parsed else { continue };
        for r in parsed.rejections.iter().filter(|r| r.value.trim().eq_ignore_ascii_case(input)) {
            report.rejects.push(Refusal {
                reason: r.reason.code().to_owned(),
                source: f.name.clone(),
                detail: r.detail.clone().or_else(|| Some(format!("line {}", r.line))),
                first_seen: f.fetched_at,
                last_seen: f.fetched_at,
            });
        }
        let Some(ioc) = parsed.iocs.iter().find(|i| same(i.kind, &i.value)) else { continue };
        let policy = config.feed_policy(tenant, feed);
        let out = iocsync_core::policy::apply_policy_noted(&policy, std::slice::from_ref(ioc), now);
        let typed_out = feed.types.as_ref().is_some_and(|t| !t.contains(&kind));
        let d = out.desired.first();
        report.feeds.push(FeedCarry {
            feed: f.name.clone(),
            status: f.status.to_string(),
            line: ioc.line,
            action: d.map(|d| d.action.as_str().to_owned()),
            severity: d.map(|d| d.severity.as_str().to_owned()),
            expiration: d.map(|d| d.expiration),
            priority: d.map(|d| d.priority),
            skipped: if typed_out {
                Some(format!("unsupported-type: {kind} is not in this feed's `types`"))
            } else {
                out.skips.first().map(|s| s.reason.code().to_owned())
            },
        });
    }
    report.allowlist = copies.allowlist.matches(kind, &value);
    for s in
        copies.skips.iter().filter(|s| s.kind.is_none_or(|k| k == kind) && match_value(kind, &s.value) == mv)
    {
        if s.reason == iocsync_ioc::Reason::Allowlisted && report.allowlist.is_some() {
            continue;
        }
        report.rejects.push(Refusal {
            reason: s.reason.code().to_owned(),
            source: s.feed.clone().unwrap_or_else(|| "merge".to_owned()),
            detail: s.detail.clone(),
            first_seen: None,
            last_seen: None,
        });
    }
    {
        let s = crate::engine::lock(&store);
        for r in s.reject_records(&tenant.name)? {
            if r.reject.indicator_type == kind.as_str() && match_value(kind, &r.reject.value) == mv {
                report.rejects.push(Refusal {
                    reason: r.reject.reason.clone(),
                    source: "defender".to_owned(),
                    detail: r.reject.detail.clone(),
                    first_seen: Some(r.first_seen),
                    last_seen: Some(r.last_seen),
                });
            }
        }
        report.journal = s.journal_of_value(&tenant.name, kind.as_str(), &value)?;
        report.desired = copies.desired.iter().any(|d| same(d.kind, &d.value));
        let hit_records = s.hit_records(&tenant.name)?;
        let hot = crate::engine::hot_values(config, &hit_records, now);
        if let Some(r) = hit_records
            .iter()
            .find(|r| r.indicator_type == kind.as_str() && match_value(kind, &r.value) == mv)
        {
            report.hits = Some(ValueHits {
                hits: r.hits,
                devices: r.devices.len() as u64,
                last_hit: r.last_hit,
                boosted: hot.contains(&(kind, mv.clone())),
            });
        }
        if let Some(rank) = capacity_rank(&copies.desired, &hot, kind, &value) {
            let d = copies.desired.iter().find(|d| same(d.kind, &d.value));
            let ranked_by = d.map_or_else(String::new, |d| {
                format!(
                    "priority {}, {}, severity {}, line {} of its feed",
                    d.priority,
                    if hot.contains(&(d.kind, match_value(d.kind, &d.value))) {
                        "recent hits (ranked up)"
                    } else {
                        "no recent hits"
                    },
                    d.severity.as_str(),
                    -d.recency
                )
            });
            let foreign = s.runs(Some(&tenant.name), 50)?.into_iter().filter(|r| !r.dry_run).find_map(|r| {
                let rep: serde_json::Value = serde_json::from_str(r.report_json.as_deref()?).ok()?;
                rep["capacity"]["foreign"].as_u64().filter(|_| rep["api_calls"]["list"].as_u64() > Some(0))
            });
            let room = config
                .sync
                .capacity
                .saturating_sub(config.sync.headroom)
                .saturating_sub(foreign.unwrap_or(0) as usize);
            report.capacity = Some(CapacityRank {
                rank,
                of: copies.desired.len(),
                room,
                fits: rank <= room,
                foreign: foreign.unwrap_or(0) as usize,
                foreign_from: if foreign.is_some() { "last-run" } else { "unknown" }.to_owned(),
                ranked_by,
            });
        }
    }
    if !args.offline {
        match crate::connect::connect(config, tenant).await {
            Ok(conn) => {
                let owner = Owner { client_id: tenant.client_id.clone(), tag: config.sync.owner_tag.clone() };
                match conn.client.list_value(&value).await {
                    Ok(rows) => {
                        report.tenant_rows = Some(
                            rows.iter()
                                .map(crate::engine::to_existing)
                                .filter(|e| e.kind.is_some_and(|k| same(k, &e.value)))
                                .map(|e| TenantRow {
                                    ours: owner.owns(&e),
                                    id: e.id,
                                    kind: e.raw_type,
                                    action: e.raw_action,
                                    created_by: e.created_by,
                                    expiration: e.expiration,
                                    title: Some(e.title).filter(|t| !t.is_empty()),
                                })
                                .collect(),
                        );
                    }
                    Err(e) => report.lookup_error = Some(e.to_string()),
                }
                report.api_calls = conn.client.stats().list;
                conn.close().await;
            }
            Err(e) => report.lookup_error = Some(format!("{e:#}")),
        }
    }
    report.verdict = verdict(&report);
    Ok(report)
}

fn verdict(r: &ExplainReport) -> String {
    let rows = r.tenant_rows.as_deref().unwrap_or_default();
    let ours: Vec<&TenantRow> = rows.iter().filter(|t| t.ours).collect();
    let foreign: Vec<&TenantRow> = rows.iter().filter(|t| !t.ours).collect();
    let held = if !ours.is_empty() {
        format!(
            "; the tenant holds it as iocsync's indicator {}",
            ours.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", ")
        )
    } else if !foreign.is_empty() {
        format!(
            "; the tenant holds it under other creators ({})",
            foreign
                .iter()
                .map(|t| t.created_by.as_deref().unwrap_or("unknown"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else if r.tenant_rows.is_some() {
        "; the tenant does not hold it".to_owned()
    } else {
        String::new()
    };
    if let Some(entry) = &r.allowlist {
        return format!("not pushed: allowlisted ({entry}){held}");
    }
    if r.feeds.is_empty() {
        return format!("not pushed: no configured feed carries it{held}");
    }
    if let Some(d) = r.rejects.iter().find(|x| x.source == "defender") {
        return format!(
            "held back: Defender refused it ({}){held}",
            d.detail.as_deref().unwrap_or(&d.reason)
        );
    }
    if !r.desired {
        let why = r.rejects.first().map_or("left out", |x| x.reason.as_str());
        return format!("not pushed: {why}{held}");
    }
    match &r.capacity {
        Some(c) if !c.fits => {
            format!("not pushed: over capacity (rank {} of {}, room for {}){held}", c.rank, c.of, c.room)
        }
        _ => {
            let feeds: Vec<&str> = r.feeds.iter().map(|f| f.feed.as_str()).collect();
            format!("wanted from {}{held}", feeds.join(", "))
        }
    }
}
