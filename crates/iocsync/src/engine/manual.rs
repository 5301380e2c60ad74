//! The analysts' manual list (`[[feeds]] source = "manual"`): values analysts add by hand, kept in
//! the state database with who added what and when. It is a feed like the others: at each run its
//! active rows become the feed's content (always fresh), and they go through the same policy,
//! merge, allowlist, capacity, brake and ownership path. Adding checks each value first
//! ([`preview`]) so a refused value is never stored; the engine still checks again at sync time.

use super::{build_allowlist, lock};
use crate::config::{Config, Feed, Tenant};
use crate::feeds::{FeedStatus, LoadedFeed};
use crate::state::StateStore;
use anyhow::Context;
use chrono::{DateTime, Utc};
use iocsync_core::allowlist::Allowlist;
use iocsync_core::model::Action;
use iocsync_ioc::{Format, IndicatorType, Ioc, ParseOptions, Parsed, Reason, SourceAttrs};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

pub use crate::state::ManualValue;

/// Most lines one paste may hold.
pub const MAX_LINES: usize = 10_000;

/// Longest comment kept, in characters (it becomes the indicator's description).
pub const MAX_COMMENT_CHARS: usize = 1_000;

/// What iocsync will do with one pasted value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The value is valid and may be added.
    Accepted {
        /// Defender `indicatorType`.
        indicator_type: String,
        /// The normalised value, as it will be pushed.
        value: String,
        /// The action it will get.
        action: String,
        /// A remark: already in the list, repeated in the paste, also pushed for another feed.
        note: Option<String>,
    },
    /// The value is refused and would not be stored.
    Refused {
        /// A reason code of the README table (allowlisted, private-address, public-suffix, ...).
        reason: String,
        /// Why, in words (e.g. which allowlist entry matched).
        detail: String,
    },
}

/// One input line and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// The line as pasted (trimmed).
    pub input: String,
    /// Its 1-based line number in the paste.
    pub line: u64,
    /// What iocsync will do with it.
    pub verdict: Verdict,
}

impl Preview {
    /// Whether the value is accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self.verdict, Verdict::Accepted { .. })
    }
}

/// Checks pasted text (one value a line, any spelling, defanged welcome) without storing
/// anything: each non-blank line gets the normalised value it becomes, or the reason code and
/// detail that refuse it (parser, the feed's `types`, the allowed actions, the policy and the
/// allowlist of every tenant the manual list applies to).
pub async fn preview(config: &Config, text: &str, action: Option<&str>) -> anyhow::Result<Vec<Preview>> {
    let store = if config.sync.state.exists() { Some(super::open_store(config)?) } else { None };
    check(config, store.as_ref(), text, action, None, Utc::now())
}

/// Checks pasted text like [`preview`] and stores the accepted values (a value already active in
/// the list is not stored twice); refused values are never stored. Returns the previews.
#[allow(clippy::too_many_arguments)]
pub async fn add(
    config: &Config,
    store: &Arc<Mutex<StateStore>>,
    text: &str,
    comment: &str,
    action: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    user: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Preview>> {
    if user.trim().is_empty() {
        anyhow::bail!("adding to the manual list needs a user name");
    }
    if let Some(at) = expires_at
        && at <= now
    {
        anyhow::bail!("the expiry {} is not in the future", at.to_rfc3339());
    }
    let comment: String = comment.trim().chars().take(MAX_COMMENT_CHARS).collect();
    let feed = manual_feed(config)?;
    let previews = check(config, Some(store), text, action, expires_at, now)?;
    // An unknown action refused every line above: nothing is stored then.
    let action = action.map(str::trim).filter(|a| !a.is_empty()).and_then(Action::from_tenant);
    let s = lock(store);
    let mut active: BTreeSet<(String, String)> =
        s.manual_values(Some(&feed.name), now)?.into_iter().map(|v| (v.indicator_type, v.value)).collect();
    let mut rows = Vec::new();
    for p in &previews {
        let Verdict::Accepted { indicator_type, value, .. } = &p.verdict else { continue };
        if !active.insert((indicator_type.clone(), value.clone())) {
            continue;
        }
        rows.push(ManualValue {
            id: 0,
            feed: feed.name.clone(),
            indicator_type: indicator_type.clone(),
            value: value.clone(),
            action: action.map(|a| a.as_str().to_owned()),
            expires_at,
            comment: comment.clone(),
            added_by: user.to_owned(),
            added_at: now,
        });
    }
    let ids = s.add_manual(&rows)?;
    let mut added = Vec::with_capacity(rows.len());
    for (id, v) in ids.iter().zip(&rows) {
        let (indicator_type, value) = (&v.indicator_type, &v.value);
        tracing::info!(id, feed = %feed.name, %indicator_type, %value, user, "manual list: value added");
        added.push(serde_json::json!({ "id": id, "type": indicator_type, "value": value }));
    }
    drop(s);
    let refused: Vec<_> = previews
        .iter()
        .filter_map(|p| match &p.verdict {
            Verdict::Refused { reason, .. } => {
                Some(serde_json::json!({ "input": p.input, "reason": reason }))
            }
            Verdict::Accepted { .. } => None,
        })
        .collect();
    super::audit::record_or_warn(
        store,
        user,
        "manual-add",
        &serde_json::json!({
            "added": added, "refused": refused, "comment": comment,
            "action": action.map(Action::as_str), "expires_at": expires_at,
        }),
        now,
    );
    Ok(previews)
}

/// Removes manual value `id` (the row stays as history); the next run deletes the indicator
/// through the usual left-feed path. False when no active value has that id.
pub fn remove(
    store: &Arc<Mutex<StateStore>>,
    id: i64,
    user: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let removed = lock(store).remove_manual(id, user, now)?;
    if removed {
        tracing::info!(id, user, "manual list: value removed");
        super::audit::record_or_warn(store, user, "manual-remove", &serde_json::json!({ "id": id }), now);
    }
    Ok(removed)
}

/// The active manual values (not removed, not expired at `now`), oldest first.
pub fn list(store: &Arc<Mutex<StateStore>>, now: DateTime<Utc>) -> anyhow::Result<Vec<ManualValue>> {
    Ok(lock(store).manual_values(None, now)?)
}

/// The manual list's content for this run: its active rows, always fresh. Each value carries its
/// action, expiry and comment (as description) for the policy. A database error fails the feed,
/// which protects its values from deletion.
pub(crate) fn loaded_feed(store: &Arc<Mutex<StateStore>>, feed: &Feed, now: DateTime<Utc>) -> LoadedFeed {
    let rows = match lock(store).manual_values(Some(&feed.name), now) {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(feed = %feed.name, "cannot read the manual list: {e}");
            return LoadedFeed {
                name: feed.name.clone(),
                status: FeedStatus::Failed { why: format!("cannot read the manual list: {e}") },
                parsed: None,
                bytes: 0,
                fetched_at: None,
                protects: Vec::new(),
                note: None,
            };
        }
    };
    let mut seen = BTreeSet::new();
    let mut iocs = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let Ok(kind) = r.indicator_type.parse::<IndicatorType>() else {
            tracing::warn!(feed = %feed.name, id = r.id, "manual value with an unknown type ignored");
            continue;
        };
        if !seen.insert((kind, r.value.clone())) {
            continue;
        }
        let mut ioc = Ioc::new(kind, r.value.clone(), i as u64 + 1);
        ioc.attrs = Some(Box::new(SourceAttrs {
            action: r.action.clone(),
            description: Some(r.comment.clone()).filter(|c| !c.trim().is_empty()),
            expiration: r.expires_at,
            ..SourceAttrs::default()
        }));
        iocs.push(ioc);
    }
    let lines = iocs.len() as u64;
    LoadedFeed {
        name: feed.name.clone(),
        status: FeedStatus::Fresh,
        parsed: Some(Parsed { lines, iocs, ..Parsed::default() }),
        bytes: 0,
        fetched_at: Some(now),
        protects: Vec::new(),
        note: None,
    }
}

fn manual_feed(config: &Config) -> anyhow::Result<&Feed> {
    config
        .manual_feed()
        .context("no manual list is configured: add a [[feeds]] block with source = \"manual\" to the config")
}

/// One tenant the manual list applies to: its policy for the list and its allowlist.
struct TenantCheck<'a> {
    tenant: &'a Tenant,
    policy: iocsync_core::policy::FeedPolicy,
    allowlist: Allowlist,
    /// (type, value) -> feeds that pushed it, from provenance.
    pushed: BTreeMap<(String, String), BTreeSet<String>>,
}

fn refused(reason: Reason, detail: impl Into<String>) -> Verdict {
    Verdict::Refused { reason: reason.code().to_owned(), detail: detail.into() }
}

/// The checks shared by [`preview`] and [`add`].
fn check(
    config: &Config,
    store: Option<&Arc<Mutex<StateStore>>>,
    text: &str,
    action: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Preview>> {
    let feed = manual_feed(config)?;
    let action = action.map(str::trim).filter(|a| !a.is_empty());
    let tenants: Vec<TenantCheck<'_>> = config
        .tenants
        .iter()
        .filter(|t| config.feeds_for(t).any(|f| f.name == feed.name))
        .map(|t| {
            Ok(TenantCheck {
                tenant: t,
                policy: config.feed_policy(t, feed),
                allowlist: build_allowlist(&config.allowlist, &t.allowlist)?,
                pushed: store.map(|s| lock(s).provenance(&t.name)).transpose()?.unwrap_or_default(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    if tenants.is_empty() {
        anyhow::bail!(
            "the manual list {} is taken by no tenant (each tenant's `feeds` leaves it out)",
            feed.name
        );
    }
    if text.lines().count() > MAX_LINES {
        anyhow::bail!("too many lines: at most {MAX_LINES} values at once");
    }
    let active: BTreeMap<(String, String), ManualValue> = match store {
        Some(s) => lock(s)
            .manual_values(Some(&feed.name), now)?
            .into_iter()
            .map(|v| ((v.indicator_type.clone(), v.value.clone()), v))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut pasted: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let input = raw.trim();
        if input.is_empty() {
            continue;
        }
        let line = i as u64 + 1;
        let verdict = match judge(feed, &tenants, input, action, expires_at, now) {
            Err(v) => v,
            Ok((kind, value, action)) => {
                let key = (kind.as_str().to_owned(), value.clone());
                let note = if let Some(v) = active.get(&key) {
                    Some(format!(
                        "already in the list (#{}, added by {} on {}): not added again",
                        v.id,
                        v.added_by,
                        v.added_at.format("%Y-%m-%d")
                    ))
                } else if let Some(first) = pasted.get(&key) {
                    Some(format!("repeats line {first}: added once"))
                } else {
                    let others: BTreeSet<&str> = tenants
                        .iter()
                        .filter_map(|t| t.pushed.get(&key))
                        .flatten()
                        .map(String::as_str)
                        .filter(|f| *f != feed.name)
                        .collect();
                    (!others.is_empty()).then(|| {
                        format!("also in feed {}", others.into_iter().collect::<Vec<_>>().join(", "))
                    })
                };
                // Text-feed rule: the first field is the value, the rest of the line is not read.
                let rest: Vec<&str> = input.split_whitespace().skip(1).collect();
                let note = match (note, rest.is_empty()) {
                    (n, true) => n,
                    (n, false) => {
                        let ignored =
                            format!("ignored the rest of the line `{}`: one value a line", rest.join(" "));
                        Some(n.map_or(ignored.clone(), |n| format!("{n}; {ignored}")))
                    }
                };
                pasted.entry(key).or_insert(line);
                Verdict::Accepted { indicator_type: kind.as_str().to_owned(), value, action, note }
            }
        };
        out.push(Preview { input: input.to_owned(), line, verdict });
    }
    Ok(out)
}

/// One value: its (type, normalised value, action), or the refusal.
fn judge(
    feed: &Feed,
    tenants: &[TenantCheck<'_>],
    input: &str,
    action: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(IndicatorType, String, String), Verdict> {
    // The same parser as text feeds, refang on.
    let mut opts = ParseOptions::new(Format::Text, now);
    opts.refang = true;
    opts.type_hint = feed.type_hint;
    let parsed = iocsync_ioc::parse(input.as_bytes(), &opts)
        .map_err(|e| refused(Reason::InvalidValue, e.to_string()))?;
    if let Some(r) = parsed.rejections.first() {
        return Err(refused(r.reason, r.detail.clone().unwrap_or_else(|| r.reason.description().to_owned())));
    }
    let Some(ioc) = parsed.iocs.into_iter().next() else {
        return Err(refused(Reason::InvalidValue, "no value on this line (a comment?)"));
    };
    if let Some(types) = &feed.types
        && !types.contains(&ioc.kind)
    {
        return Err(refused(
            Reason::UnsupportedType,
            format!("{} is not in the manual list's `types`", ioc.kind),
        ));
    }
    let chosen = match action {
        None => None,
        Some(a) => Some(
            Action::from_tenant(a)
                .ok_or_else(|| refused(Reason::ActionNotAllowed, format!("unknown action `{a}`")))?,
        ),
    };
    let mut result = None;
    for t in tenants {
        if let Some(a) = chosen
            && !t.policy.row_may_choose(a)
        {
            let mut allowed = vec![t.policy.action.as_str()];
            allowed.extend(
                t.policy.row_actions.iter().map(|a| a.as_str()).filter(|a| *a != t.policy.action.as_str()),
            );
            return Err(refused(
                Reason::ActionNotAllowed,
                format!("{a} is not an action the manual list allows (allowed: {})", allowed.join(", ")),
            ));
        }
        let mut one = ioc.clone();
        one.attrs = Some(Box::new(SourceAttrs {
            action: chosen.map(|a| a.as_str().to_owned()),
            expiration: expires_at,
            ..SourceAttrs::default()
        }));
        let out = iocsync_core::policy::apply_policy_noted(&t.policy, &[one], now);
        if let Some(s) = out.skips.into_iter().next() {
            return Err(refused(s.reason, s.detail.unwrap_or_else(|| s.reason.description().to_owned())));
        }
        let (kept, skips) = t.allowlist.filter(out.desired);
        if let Some(s) = skips.into_iter().next() {
            let detail = s.detail.unwrap_or_else(|| s.reason.description().to_owned());
            let detail =
                if tenants.len() > 1 { format!("tenant {}: {detail}", t.tenant.name) } else { detail };
            return Err(refused(s.reason, detail));
        }
        if result.is_none()
            && let Some(d) = kept.into_iter().next()
        {
            result = Some(d.action.as_str().to_owned());
        }
    }
    let action = result.unwrap_or_else(|| tenants[0].policy.action.as_str().to_owned());
    Ok((ioc.kind, ioc.value, action))
}
