//! The plan: a pure diff of what iocsync wants (merged, allowlisted [`Desired`]s) against what the
//! tenant holds ([`Existing`] rows), with ownership, capacity and the delete brake applied.
//!
//! Same input, same output: every list is sorted; hash maps serve lookups only, and no hash-map
//! order reaches the result.

use crate::model::{Action, Desired, Severity, Skip};
use crate::report::{Capacity, Counts};
use chrono::{DateTime, Duration, Utc};
use iocsync_ioc::{IndicatorType, Reason};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

/// Who iocsync is in the tenant: what Defender records as `createdBy` and the owner tag of its
/// marker `iocsync:{tag}` (see [`crate::marker`]). An indicator is owned only when both match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Entra application (client) id; compared case-insensitively (GUIDs).
    pub client_id: String,
    /// Owner tag of the marker `iocsync:{tag}` (default `iocsync`); compared exactly (no trim,
    /// case matters), the rule of [`crate::marker::is_owned`].
    pub tag: String,
}

impl Owner {
    /// True when `e` was created by this app and carries its marker (DESIGN principle 1): the
    /// client id compared case-insensitively, the marker (`externalId`, description suffix, or the
    /// legacy `application` tag) exactly. The rule is [`crate::marker::is_owned`], shared with
    /// `iocsync_defender::Indicator::is_owned_by`, so plan and list/purge agree on ownership.
    pub fn owns(&self, e: &Existing) -> bool {
        let fields = crate::marker::OwnershipFields {
            created_by: e.created_by.as_deref(),
            external_id: e.external_id.as_deref(),
            description: Some(e.description.as_str()),
            application: e.application.as_deref(),
        };
        crate::marker::is_owned(fields, &self.client_id, &self.tag)
    }
}

/// Everything besides desired and existing that decides the plan.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    /// Who iocsync is.
    pub owner: Owner,
    /// Tenant cap (15,000).
    pub capacity: usize,
    /// Slots left free for analysts' manual indicators.
    pub headroom: usize,
    /// The brake: deletes, replaces and expiry cuts over the brake window may not exceed this
    /// fraction of the largest owned count seen in the window (see [`BrakeWindow`]).
    pub max_delete_fraction: f64,
    /// What earlier runs inside the brake window already used, and the largest owned count seen.
    pub brake_window: BrakeWindow,
    /// Renew an unchanged indicator when it expires within this window and the desired expiry is
    /// more than a day later (a desired expiry itself inside the window renews at most once a day).
    pub renew_before: Duration,
    /// The run's clock.
    pub now: DateTime<Utc>,
    /// `--force`: release the brake.
    pub force: bool,
    /// False when the app holds only `Ti.ReadWrite` (the listing shows only its own rows): then
    /// foreign indicators can be neither counted nor avoided, and the plan says so in `notes`.
    pub sees_foreign: bool,
    /// Feeds that are not fresh this run (last-good, stale, failed): owned rows they brought are
    /// never deleted, whatever other feeds say.
    pub protected_feeds: BTreeSet<String>,
    /// Every (type, value) in the last good copy of a feed that is not fresh this run (any
    /// spelling; matched through [`match_value`]): never deleted.
    pub protected_values: BTreeSet<(IndicatorType, String)>,
    /// From the state database: which configured feeds brought each owned (type, value). A row
    /// with no entry (or an empty one) is of unknown provenance and is never deleted.
    pub provenance: BTreeMap<(IndicatorType, String), BTreeSet<String>>,
    /// Owned (type, value)s that the allowlist now covers: removed whatever protects them, and
    /// their removal does not count towards the brake.
    pub allowlisted: BTreeSet<(IndicatorType, String)>,
    /// Permanent rejections remembered: (type, value, action, fingerprint) not to resend.
    pub suppressed: BTreeSet<(IndicatorType, String, Action, String)>,
    /// Updates Defender did not keep (the same payload sent on two runs in a row, still
    /// different): (type, value, action, fingerprint) not to resend unless a renewal is due.
    pub not_kept: BTreeSet<(IndicatorType, String, Action, String)>,
    /// Values Defender acted on recently (`[hits]`), in [`match_value`] form: under the cap they
    /// rank above values of the same priority without recent hits. Empty when hits are not counted.
    pub hot: BTreeSet<(IndicatorType, String)>,
}

impl PlanSettings {
    /// Settings with the documented defaults (cap 15,000, headroom 500, brake 0.25, renew 10 days).
    pub fn new(owner: Owner, now: DateTime<Utc>) -> Self {
        PlanSettings {
            owner,
            capacity: 15_000,
            headroom: 500,
            max_delete_fraction: 0.25,
            renew_before: Duration::days(10),
            now,
            force: false,
            sees_foreign: true,
            protected_feeds: BTreeSet::new(),
            protected_values: BTreeSet::new(),
            provenance: BTreeMap::new(),
            allowlisted: BTreeSet::new(),
            brake_window: BrakeWindow::default(),
            not_kept: BTreeSet::new(),
            suppressed: BTreeSet::new(),
            hot: BTreeSet::new(),
        }
    }
}

/// What earlier runs inside the rolling brake window did (DESIGN principle 3), so that a wipe
/// sliced into many small runs meets the same brake as one big run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrakeWindow {
    /// Deletes, replaces and expiry cuts already applied inside the window.
    pub used: usize,
    /// The largest owned count seen inside the window (before or after a run).
    pub peak_owned: usize,
}

/// One applied run in the brake ledger: when, how much it counted, and the owned counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrakeEntry {
    /// When the run applied.
    pub at: DateTime<Utc>,
    /// Deletes, replaces and expiry cuts it applied ([`Plan::brake_counted`]).
    pub counted: usize,
    /// The larger of its owned counts before and after.
    pub owned: usize,
}

impl BrakeWindow {
    /// Sums the ledger entries younger than `window` at `now`.
    pub fn from_ledger(entries: &[BrakeEntry], now: DateTime<Utc>, window: Duration) -> Self {
        entries.iter().filter(|e| e.at > now - window && e.at <= now).fold(BrakeWindow::default(), |w, e| {
            BrakeWindow { used: w.used + e.counted, peak_owned: w.peak_owned.max(e.owned) }
        })
    }
}

/// One indicator the tenant holds, as the app converts it from the client's wire type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Defender id (decimal string).
    pub id: String,
    /// `indicatorType` as listed.
    pub raw_type: String,
    /// Parsed type; `None` for `WebCategory` or unknown types.
    pub kind: Option<IndicatorType>,
    /// `indicatorValue` as listed.
    pub value: String,
    /// Parsed action (legacy names mapped, see [`Action::from_tenant`]); `None` if unknown.
    pub action: Option<Action>,
    /// `action` as listed.
    pub raw_action: String,
    /// `createdBy`.
    pub created_by: Option<String>,
    /// `application`.
    pub application: Option<String>,
    /// `externalId` (where iocsync's marker `iocsync:{owner_tag}` lives).
    pub external_id: Option<String>,
    /// `severity` (`None`: unset or unknown, read as Informational).
    pub severity: Option<Severity>,
    /// `title` (empty if null).
    pub title: String,
    /// `description` (empty if null).
    pub description: String,
    /// `recommendedActions`.
    pub recommended_actions: Option<String>,
    /// `rbacGroupNames`.
    pub rbac_groups: Vec<String>,
    /// `generateAlert` (false if null).
    pub generate_alert: bool,
    /// `category`, as a string (Defender lists an undocumented number).
    pub category: Option<String>,
    /// `mitreTechniques`.
    pub mitre_techniques: Vec<String>,
    /// `educateUrl`.
    pub educate_url: Option<String>,
    /// `expirationTime` (`None`: never expires).
    pub expiration: Option<DateTime<Utc>>,
}

impl Existing {
    /// The row Defender holds after importing `d` as `owner` under `id` (used to simulate a
    /// plan's effect, and by the app to record what it created).
    pub fn from_desired(id: impl Into<String>, d: &Desired, owner: &Owner) -> Self {
        Existing {
            id: id.into(),
            raw_type: d.kind.as_str().to_owned(),
            kind: Some(d.kind),
            value: d.value.clone(),
            action: Some(d.action),
            raw_action: d.action.as_str().to_owned(),
            created_by: Some(owner.client_id.clone()),
            application: d.application.clone(),
            external_id: d.external_id.clone(),
            severity: Some(d.severity),
            title: d.title.clone(),
            description: d.description.clone(),
            recommended_actions: d.recommended_actions.clone(),
            rbac_groups: d.rbac_groups.clone(),
            generate_alert: d.generate_alert,
            category: d.category.clone(),
            mitre_techniques: d.mitre_techniques.clone(),
            educate_url: d.educate_url.clone(),
            expiration: Some(d.expiration),
        }
    }

    /// The identity part of the row.
    pub fn to_ref(&self) -> IndicatorRef {
        IndicatorRef {
            id: self.id.clone(),
            raw_type: self.raw_type.clone(),
            kind: self.kind,
            value: self.value.clone(),
            action: self.action,
            raw_action: self.raw_action.clone(),
        }
    }
}

/// The identity of an existing indicator: enough to delete it and to report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndicatorRef {
    /// Defender id.
    pub id: String,
    /// `indicatorType` as listed.
    #[serde(rename = "type")]
    pub raw_type: String,
    /// Parsed type.
    #[serde(skip)]
    pub kind: Option<IndicatorType>,
    /// `indicatorValue` as listed.
    pub value: String,
    /// Parsed action.
    #[serde(skip)]
    pub action: Option<Action>,
    /// `action` as listed.
    #[serde(rename = "action")]
    pub raw_action: String,
}

/// An in-place change of an existing owned indicator (same id; import upserts it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Id of the indicator changed.
    pub id: String,
    /// What it becomes.
    pub desired: Desired,
}

/// An action change: Defender keys indicators on (type, value, action), so the old id is
/// deleted and the new indicator created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replace {
    /// The owned indicator to delete.
    pub old: IndicatorRef,
    /// The indicator to create.
    pub new: Desired,
}

/// The result of [`plan`]: what to change in the tenant, and why values are left out.
/// `Plan::default()` is the empty plan a saved plan or an undo fills in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// New indicators, sorted by (type, value, action).
    pub creates: Vec<Desired>,
    /// Owned indicators whose metadata (or a shortened expiry) changes.
    pub updates: Vec<Change>,
    /// Owned indicators whose expiry is pushed forward.
    pub renews: Vec<Change>,
    /// Owned indicators whose action changes.
    pub replaces: Vec<Replace>,
    /// Owned indicators to delete: no longer desired, cut by the cap, or duplicates.
    pub deletes: Vec<IndicatorRef>,
    /// How many of `deletes` are extra owned copies of one (type, value, action) (left by a
    /// crash); these do not count towards the brake.
    pub duplicate_deletes: usize,
    /// Owned indicators matched by a desired one and left as they are.
    pub unchanged: Vec<IndicatorRef>,
    /// Owned indicators not desired but kept: in the last good copy of a feed that is not fresh,
    /// brought by such a feed, of unknown provenance, of a type/action iocsync does not
    /// understand, or held by the brake. They are not renewed and expire by themselves unless
    /// their feed comes back.
    pub kept: Vec<IndicatorRef>,
    /// Deletes, replaces and expiry cuts this plan applies that count towards the brake window.
    pub brake_counted: usize,
    /// Deletes, replaces and expiry cuts held back by the brake (they wait for `--force` or a
    /// later window).
    pub brake_held: usize,
    /// Desired values left out, with reason codes.
    pub skipped: Vec<Skip>,
    /// Cap usage before and after.
    pub capacity: Capacity,
    /// `Some(message)` when the brake holds part of this plan back (exit 4). What the plan still
    /// holds is safe to apply: the held items are already out of it.
    pub brake: Option<String>,
    /// Warnings for the operator (e.g. limited visibility).
    pub notes: Vec<String>,
}

impl Plan {
    /// Number of indicators per operation (kept rows count as unchanged).
    pub fn counts(&self) -> Counts {
        Counts {
            create: self.creates.len(),
            update: self.updates.len(),
            renew: self.renews.len(),
            replace: self.replaces.len(),
            delete: self.deletes.len(),
            unchanged: self.unchanged.len() + self.kept.len(),
        }
    }

    /// Everything to send through import: creates, updates, renews and replacements' new
    /// indicators, sorted by (type, value, action).
    pub fn import_items(&self) -> Vec<&Desired> {
        let mut v: Vec<&Desired> = self
            .creates
            .iter()
            .chain(self.updates.iter().map(|c| &c.desired))
            .chain(self.renews.iter().map(|c| &c.desired))
            .chain(self.replaces.iter().map(|r| &r.new))
            .collect();
        v.sort_by(|a, b| a.key().cmp(&b.key()));
        v
    }

    /// Every id to pass to BatchDelete: deletes and replacements' old ids, in numeric order.
    pub fn delete_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .deletes
            .iter()
            .map(|d| d.id.clone())
            .chain(self.replaces.iter().map(|r| r.old.id.clone()))
            .collect();
        v.sort_by(|a, b| id_cmp(a, b));
        v.dedup();
        v
    }

    /// True when applying the plan would make at least one write call.
    pub fn has_changes(&self) -> bool {
        !(self.creates.is_empty()
            && self.updates.is_empty()
            && self.renews.is_empty()
            && self.replaces.is_empty()
            && self.deletes.is_empty())
    }
}

/// Compares Defender ids numerically when they are decimal strings, else as text.
pub fn id_cmp(a: &str, b: &str) -> Ordering {
    let num = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if num(a) && num(b) {
        let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    } else {
        a.cmp(b)
    }
}

/// The form of a value used to match desired against existing rows: hashes, domains and IPs
/// compared case-insensitively and canonically, URLs with scheme and host lower-cased and an
/// empty path written `/` (path and query keep their case). Defender may store a value in
/// another spelling than the one sent: compressed IPv6, another case, a trailing slash.
pub fn match_value(kind: IndicatorType, value: &str) -> String {
    let v = value.trim();
    match kind {
        IndicatorType::FileSha1
        | IndicatorType::FileSha256
        | IndicatorType::FileMd5
        | IndicatorType::CertificateThumbprint => v.to_ascii_lowercase(),
        IndicatorType::DomainName => v.trim_end_matches('.').to_ascii_lowercase(),
        IndicatorType::IpAddress => match v.parse::<IpAddr>() {
            Ok(ip) => ip.to_canonical().to_string(),
            Err(_) => v.to_ascii_lowercase(),
        },
        IndicatorType::Url => match v.find("://") {
            Some(p) => {
                let after = &v[p + 3..];
                let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
                let mut out = v[..p + 3 + host_end].to_ascii_lowercase();
                // No path is the path `/`: a tenant may store either spelling.
                if !after[host_end..].starts_with('/') {
                    out.push('/');
                }
                out.push_str(&after[host_end..]);
                out
            }
            None => v.to_owned(),
        },
    }
}

/// The form of a value used to find a FOREIGN indicator holding it: [`match_value`], but URLs
/// fully lower-cased (path and query too). Defender may match URLs case-insensitively; a false
/// "foreign" skip is safe, a missed one would update someone else's indicator.
fn foreign_value(kind: IndicatorType, value: &str) -> String {
    match kind {
        IndicatorType::Url => value.trim().to_lowercase(),
        _ => match_value(kind, value),
    }
}

type ValueKey = (IndicatorType, String);
type ExactKey = (IndicatorType, String, Action);

/// Capacity ranking: priority desc, recent hits first (`hot`), severity desc, recency desc, then
/// (type, value) ascending. The hit boost lasts as long as the hits are recent, so a value that
/// stops catching anything falls back among the others, and fresh intel competes by recency.
fn rank_cmp(hot: &BTreeSet<(IndicatorType, String)>, a: &Desired, b: &Desired) -> Ordering {
    let is_hot = |d: &Desired| !hot.is_empty() && hot.contains(&(d.kind, match_value(d.kind, &d.value)));
    b.priority
        .cmp(&a.priority)
        .then_with(|| is_hot(b).cmp(&is_hot(a)))
        .then_with(|| b.severity.cmp(&a.severity))
        .then_with(|| b.recency.cmp(&a.recency))
        .then_with(|| (a.kind, &a.value, a.action).cmp(&(b.kind, &b.value, b.action)))
        .then_with(|| a.fingerprint().cmp(&b.fingerprint()))
}

/// The capacity rank (1 = kept first) of `(kind, value)` among `desired`, in the order a capacity
/// cut keeps values (priority, recent hits in `hot`, severity, recency, then type and value);
/// `None` when not desired. (The plan also ranks values protected from deletion first; this rank
/// ignores that.)
pub fn capacity_rank(
    desired: &[Desired],
    hot: &BTreeSet<(IndicatorType, String)>,
    kind: IndicatorType,
    value: &str,
) -> Option<usize> {
    let mv = match_value(kind, value);
    let target = desired.iter().find(|d| d.kind == kind && match_value(d.kind, &d.value) == mv)?;
    Some(1 + desired.iter().filter(|d| rank_cmp(hot, d, target) == Ordering::Less).count())
}

fn ref_cmp(a: &IndicatorRef, b: &IndicatorRef) -> Ordering {
    (a.kind, &a.value, &a.raw_action)
        .cmp(&(b.kind, &b.value, &b.raw_action))
        .then_with(|| id_cmp(&a.id, &b.id))
}

fn opt_text(s: Option<&str>) -> &str {
    s.map(str::trim).unwrap_or("")
}

fn set(v: &[String]) -> BTreeSet<&str> {
    v.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect()
}

/// Optional text the tenant reports: a field it leaves out (null or empty) on read-back is not
/// compared, as it may drop fields it does not echo; a value it reports is compared.
fn reported_text_differs(reported: Option<&str>, wanted: Option<&str>) -> bool {
    match reported.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => r != opt_text(wanted),
        None => false,
    }
}

/// True when an update would change what Defender holds (expiry aside). Optional fields the
/// tenant does not return (`recommendedActions`, `educateUrl`, `mitreTechniques`, `category`)
/// are not compared: a row whose read-back drops them is not resent every run. A change to
/// only such a field reaches the tenant with the next update or renewal, which send every field.
fn metadata_differs(d: &Desired, e: &Existing) -> bool {
    // Defender lists `category` as an undocumented number; a name can only be compared to a name.
    let category_differs = match (d.category.as_deref(), e.category.as_deref()) {
        (Some(a), Some(b)) if !b.trim().bytes().all(|c| c.is_ascii_digit()) => {
            !a.trim().eq_ignore_ascii_case(b.trim())
        }
        _ => false,
    };
    e.severity.unwrap_or(Severity::Informational) != d.severity
        || e.title != d.title
        || e.description != d.description
        || reported_text_differs(e.recommended_actions.as_deref(), d.recommended_actions.as_deref())
        || set(&e.rbac_groups) != set(&d.rbac_groups)
        // Defender ignores generateAlert on Allowed; whatever it echoes there is no difference.
        || (d.action != Action::Allowed && e.generate_alert != d.generate_alert)
        || category_differs
        || (!set(&e.mitre_techniques).is_empty() && set(&e.mitre_techniques) != set(&d.mitre_techniques))
        || reported_text_differs(e.educate_url.as_deref(), d.educate_url.as_deref())
}

struct Candidate {
    d: Desired,
    mv: String,
    /// Suppressed but already held: keep the row, send nothing.
    no_send: bool,
}

/// Computes the plan for `desired` (merged and allowlisted) against the tenant's `existing` rows.
///
/// See the crate docs and DESIGN.md for the rules; in short: only owned rows are ever updated,
/// renewed, replaced or deleted; a value a foreign indicator holds under the same action is
/// skipped (`foreign-indicator`); remembered rejections are not resent; the cap minus foreign
/// rows and headroom bounds what is kept (best by priority, severity, recency); owned rows of a
/// protected feed are kept; too many deletes engage the brake unless forced.
pub fn plan(desired: Vec<Desired>, existing: &[Existing], s: &PlanSettings) -> Plan {
    let mut skipped: Vec<Skip> = Vec::new();
    let mut notes = Vec::new();

    // Owned vs foreign.
    let (owned, foreign): (Vec<&Existing>, Vec<&Existing>) = existing.iter().partition(|e| s.owner.owns(e));
    let mut owned = owned;
    owned.sort_by(|a, b| id_cmp(&a.id, &b.id).then_with(|| a.value.cmp(&b.value)));
    if !s.sees_foreign {
        notes.push(
            "the app sees only its own indicators (Ti.ReadWrite): foreign indicators are not counted against \
             the cap, and a value another creator holds under the same action cannot be detected; grant \
             Ti.ReadWrite.All to fix both"
                .to_owned(),
        );
    }

    // Foreign (type, value, action) held: importing the same key would update their indicator.
    // Keyed by `foreign_value` (URLs fully lower-cased): a false "foreign" skip is safe, a
    // missed one would overwrite someone else's indicator.
    let mut foreign_keys: HashMap<ExactKey, &Existing> = HashMap::new();
    for e in &foreign {
        if let (Some(k), Some(a)) = (e.kind, e.action) {
            let key = (k, foreign_value(k, &e.value), a);
            match foreign_keys.get(&key) {
                Some(cur) if id_cmp(&cur.id, &e.id) != Ordering::Greater => {}
                _ => {
                    foreign_keys.insert(key, e);
                }
            }
        }
    }

    // Owned indexes: exact key (canonical action names only) and by value (any action).
    let mut exact: HashMap<ExactKey, Vec<&Existing>> = HashMap::new();
    let mut by_value: HashMap<ValueKey, Vec<&Existing>> = HashMap::new();
    // (type, match value) of each owned row, `None` for unknown types or actions.
    let mut owned_keys: Vec<Option<ValueKey>> = Vec::with_capacity(owned.len());
    for e in &owned {
        if let (Some(k), Some(a)) = (e.kind, e.action) {
            let mv = match_value(k, &e.value);
            if !Action::is_legacy_name(&e.raw_action) {
                exact.entry((k, mv.clone(), a)).or_default().push(e);
            }
            by_value.entry((k, mv.clone())).or_default().push(e);
            owned_keys.push(Some((k, mv)));
        } else {
            owned_keys.push(None);
        }
    }

    // Desired: one per (type, value), best-ranked first; then suppression and foreign checks.
    let mut desired = desired;
    desired.sort_by(|a, b| rank_cmp(&s.hot, a, b));
    let mut seen: HashSet<ValueKey> = HashSet::new();
    let mut candidates: Vec<Candidate> = Vec::with_capacity(desired.len());
    for d in desired {
        let mv = match_value(d.kind, &d.value);
        if !seen.insert((d.kind, mv.clone())) {
            skipped.push(Skip::of(&d, Reason::Duplicate, "a higher-ranked copy of this value is kept"));
            continue;
        }
        let ekey = (d.kind, mv, d.action);
        let held = exact.contains_key(&ekey);
        let mut no_send = false;
        if !s.suppressed.is_empty()
            && s.suppressed.contains(&(d.kind, d.value.clone(), d.action, d.fingerprint()))
        {
            if held {
                no_send = true;
            } else {
                skipped.push(Skip::of(
                    &d,
                    Reason::RejectedByDefender,
                    "Defender refused this value with the same metadata before; not resent until it changes",
                ));
                continue;
            }
        }
        let fkey = (d.kind, foreign_value(d.kind, &d.value), d.action);
        if let Some(f) = foreign_keys.get(&fkey).filter(|_| !held) {
            let by = f.created_by.as_deref().unwrap_or("unknown creator");
            skipped.push(Skip::of(
                &d,
                Reason::ForeignIndicator,
                format!("held as {} by {by} (id {}); left alone", d.action, f.id),
            ));
            continue;
        }
        let (_, mv, _) = ekey;
        candidates.push(Candidate { d, mv, no_send });
    }
    let cand_values: HashSet<ValueKey> = candidates.iter().map(|c| (c.d.kind, c.mv.clone())).collect();

    // Rows that stay whatever happens: unknown kind/action, and protected rows not desired.
    // Protection (DESIGN principle 2): the value is in the last good copy of a feed that is not
    // fresh, or a feed that brought it is not fresh, or nobody knows which feed brought it. An
    // allowlisted value is removed regardless: the allowlist is the user's own word.
    let protected_values: HashSet<ValueKey> =
        s.protected_values.iter().map(|(k, v)| (*k, match_value(*k, v))).collect();
    let allowlisted: HashSet<ValueKey> =
        s.allowlisted.iter().map(|(k, v)| (*k, match_value(*k, v))).collect();
    let provenance_by_match: HashMap<ValueKey, &BTreeSet<String>> =
        s.provenance.iter().map(|((k, v), feeds)| ((*k, match_value(*k, v)), feeds)).collect();
    let is_protected = |e: &Existing, k: IndicatorType, mv: &str| -> bool {
        if allowlisted.contains(&(k, mv.to_owned())) {
            return false;
        }
        if protected_values.contains(&(k, mv.to_owned())) {
            return true;
        }
        // An empty provenance set is unknown origin, exactly like a missing entry. The tenant may
        // list a value in another spelling than the one remembered (IPv6 compressed): the match
        // form finds it too.
        let known = |key: ValueKey| s.provenance.get(&key).filter(|feeds| !feeds.is_empty());
        let by_match =
            || provenance_by_match.get(&(k, mv.to_owned())).copied().filter(|feeds| !feeds.is_empty());
        match known((k, e.value.clone())).or_else(|| known((k, mv.to_owned()))).or_else(by_match) {
            Some(feeds) => feeds.iter().any(|f| s.protected_feeds.contains(f)),
            None => true,
        }
    };
    // Extra owned copies of one exact key (left by a crash): all but the lowest id.
    let dup_extra: HashSet<&str> =
        exact.values().flat_map(|rows| rows.iter().skip(1).map(|e| e.id.as_str())).collect();
    let mut kept_ids: HashSet<&str> = HashSet::new();
    // Values of protected owned rows that are also desired: they go first under the cap, and a
    // capacity cut never deletes their row (it is kept instead): other feeds' values never push
    // out a value a not-fresh feed protects.
    let mut protected_desired: HashSet<ValueKey> = HashSet::new();
    for (e, vk) in owned.iter().zip(&owned_keys) {
        match vk {
            Some(vk) => {
                if dup_extra.contains(e.id.as_str()) || !is_protected(e, vk.0, &vk.1) {
                    continue;
                }
                if cand_values.contains(vk) {
                    protected_desired.insert(vk.clone());
                } else {
                    kept_ids.insert(&e.id);
                }
            }
            None => {
                kept_ids.insert(&e.id);
            }
        }
    }

    // Capacity.
    let foreign_count = foreign.len();
    let available = s.capacity.saturating_sub(foreign_count).saturating_sub(s.headroom);
    let room = available.saturating_sub(kept_ids.len());
    // Candidates are already in rank order; protected ones move to the front (stable).
    let mut selected = candidates;
    if !protected_desired.is_empty() {
        let (mut first, rest): (Vec<Candidate>, Vec<Candidate>) =
            selected.into_iter().partition(|c| protected_desired.contains(&(c.d.kind, c.mv.clone())));
        first.extend(rest);
        selected = first;
    }
    if selected.len() > room {
        let dropped = selected.split_off(room);
        let why = format!(
            "cap {} - {foreign_count} foreign - {} headroom leaves {available} slots; {} kept for protected or \
             unknown rows, {room} filled by higher-ranked values",
            s.capacity,
            s.headroom,
            kept_ids.len()
        );
        for c in &dropped {
            skipped.push(Skip::of(&c.d, Reason::OverCapacity, why.clone()));
        }
    }
    selected.sort_by(|a, b| (a.d.kind, &a.mv, a.d.action).cmp(&(b.d.kind, &b.mv, b.d.action)));
    let selected_keys: HashSet<ValueKey> = selected.iter().map(|c| (c.d.kind, c.mv.clone())).collect();

    // Match the selected values against owned rows.
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut renews = Vec::new();
    let mut replaces = Vec::new();
    let mut unchanged = Vec::new();
    let mut consumed: HashSet<&str> = HashSet::new();
    let renew_at = s.now + s.renew_before;
    for c in selected {
        let Candidate { d, mv, no_send } = c;
        if let Some(e) = exact.get(&(d.kind, mv.clone(), d.action)).and_then(|rows| rows.first()) {
            consumed.insert(&e.id);
            if no_send {
                unchanged.push(e.to_ref());
            } else if metadata_differs(&d, e)
                && !s.not_kept.is_empty()
                && s.not_kept.contains(&(d.kind, d.value.clone(), d.action, d.fingerprint()))
                && e.expiration.is_some_and(|x| x > renew_at)
            {
                // Defender did not keep this update twice in a row: not resent until the desired
                // payload changes (or a renewal is due, which carries it once more).
                skipped.push(Skip::of(
                    &d,
                    Reason::UpdateNotKept,
                    "Defender did not keep this update on two runs in a row",
                ));
                unchanged.push(e.to_ref());
            } else if metadata_differs(&d, e) {
                updates.push(Change { id: e.id.clone(), desired: d });
            } else if e.expiration.is_none_or(|x| x <= renew_at && d.expiration > x + Duration::days(1)) {
                // A desired expiry capped inside the window (STIX `valid_until`, or `expire_days`
                // <= the window) would otherwise renew on every run.
                renews.push(Change { id: e.id.clone(), desired: d });
            } else if e.expiration.is_some_and(|x| d.expiration + Duration::days(1) < x) {
                updates.push(Change { id: e.id.clone(), desired: d });
            } else {
                unchanged.push(e.to_ref());
            }
        } else if let Some(e) = by_value
            .get(&(d.kind, mv))
            .and_then(|rows| rows.iter().find(|e| !consumed.contains(e.id.as_str())))
        {
            consumed.insert(&e.id);
            replaces.push(Replace { old: e.to_ref(), new: d });
        } else {
            creates.push(d);
        }
    }

    // Owned rows left over: kept, or deleted.
    let mut deletes = Vec::new();
    let mut kept = Vec::new();
    for e in &owned {
        if consumed.contains(e.id.as_str()) {
            continue;
        }
        // A protected value the cap cut keeps its row (unless another row of it stays anyway).
        let protected_cut = !dup_extra.contains(e.id.as_str())
            && e.kind.is_some_and(|k| {
                let vk = (k, match_value(k, &e.value));
                protected_desired.contains(&vk) && !selected_keys.contains(&vk)
            });
        if kept_ids.contains(e.id.as_str()) || protected_cut {
            kept.push(e.to_ref());
        } else {
            deletes.push(e.to_ref());
        }
    }

    // The brake (DESIGN principle 3): deletes (not duplicate clean-up, not allowlisted
    // removals), replaces and expiry cuts, over the window, against the largest owned count of
    // the window. Past the budget the excess waits; everything else still applies.
    let owned_before = owned.len();
    let is_free_delete = |r: &IndicatorRef| {
        dup_extra.contains(r.id.as_str())
            || r.kind.is_some_and(|k| allowlisted.contains(&(k, match_value(k, &r.value))))
    };
    let owned_by_id: HashMap<&str, &Existing> = owned.iter().map(|e| (e.id.as_str(), *e)).collect();
    let is_cut = |c: &Change| {
        owned_by_id
            .get(c.id.as_str())
            .and_then(|e| e.expiration)
            .is_some_and(|x| c.desired.expiration + Duration::days(1) < x)
    };
    let peak = s.brake_window.peak_owned.max(owned_before);
    let allowance = (s.max_delete_fraction * peak as f64).floor() as usize;
    let mut budget = if s.force { usize::MAX } else { allowance.saturating_sub(s.brake_window.used) };
    let mut counted = 0usize;
    let mut held = 0usize;
    let mut take = |budget: &mut usize| {
        if *budget > 0 {
            *budget -= 1;
            counted += 1;
            true
        } else {
            held += 1;
            false
        }
    };
    deletes.sort_by(ref_cmp);
    let mut allowed_deletes = Vec::with_capacity(deletes.len());
    for r in deletes {
        if is_free_delete(&r) || take(&mut budget) {
            allowed_deletes.push(r);
        } else {
            kept.push(r);
        }
    }
    let deletes = allowed_deletes;
    replaces.sort_by(|a, b| a.new.key().cmp(&b.new.key()));
    let mut allowed_replaces = Vec::with_capacity(replaces.len());
    for r in replaces {
        if take(&mut budget) {
            allowed_replaces.push(r);
        } else {
            unchanged.push(r.old);
        }
    }
    let replaces = allowed_replaces;
    updates.sort_by(|a, b| a.desired.key().cmp(&b.desired.key()));
    let mut allowed_updates = Vec::with_capacity(updates.len());
    for c in updates {
        if !is_cut(&c) || take(&mut budget) {
            allowed_updates.push(c);
        } else if let Some(e) = owned_by_id.get(c.id.as_str()) {
            unchanged.push(e.to_ref());
        }
    }
    let updates = allowed_updates;
    let duplicate_deletes = deletes.iter().filter(|r| dup_extra.contains(r.id.as_str())).count();
    let brake = (held > 0).then(|| {
        format!(
            "the brake holds {held} deletes, replaces or expiry cuts: max_delete_fraction {} of {peak} owned \
             (the largest count in the brake window) allows {allowance}, {} already used in the window, {counted} \
             applied now; check the feeds, then rerun with --force to release the rest",
            s.max_delete_fraction, s.brake_window.used
        )
    });

    // Rows the brake keeps still take their slots: the lowest-ranked creates give way, so the
    // owned count never passes the room the cap leaves.
    let owned_after =
        unchanged.len() + kept.len() + updates.len() + renews.len() + creates.len() + replaces.len();
    let ceiling = available.max(kept_ids.len());
    if held > 0 && owned_after > ceiling {
        let over = (owned_after - ceiling).min(creates.len());
        creates.sort_by(|a, b| rank_cmp(&s.hot, a, b));
        for d in creates.split_off(creates.len() - over) {
            skipped.push(Skip::of(
                &d,
                Reason::OverCapacity,
                "the slot is taken by an indicator the brake keeps until its delete is released",
            ));
        }
    }
    creates.sort_by(|a, b| a.key().cmp(&b.key()));
    renews.sort_by(|a, b| a.desired.key().cmp(&b.desired.key()));
    unchanged.sort_by(ref_cmp);
    kept.sort_by(ref_cmp);
    skipped.sort();

    let owned_after =
        unchanged.len() + kept.len() + updates.len() + renews.len() + creates.len() + replaces.len();
    Plan {
        capacity: Capacity { limit: s.capacity, foreign: foreign_count, owned_before, owned_after },
        creates,
        updates,
        renews,
        replaces,
        deletes,
        duplicate_deletes,
        unchanged,
        kept,
        brake_counted: counted,
        brake_held: held,
        skipped,
        brake,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{desired, t0};
    use IndicatorType::*;

    const ME: &str = "11111111-2222-3333-4444-555555555555";

    #[test]
    fn capacity_rank_orders_by_priority_then_severity_and_matches_any_spelling() {
        let mut a = desired(DomainName, "a.example", Action::Block);
        a.priority = 1;
        let mut b = desired(DomainName, "b.example", Action::Block);
        b.priority = 5;
        let mut c = desired(DomainName, "c.example", Action::Block);
        c.priority = 1;
        c.severity = Severity::Low;
        let all = vec![a, b, c];
        assert_eq!(capacity_rank(&all, &BTreeSet::new(), DomainName, "b.example"), Some(1));
        assert_eq!(capacity_rank(&all, &BTreeSet::new(), DomainName, "A.EXAMPLE."), Some(2));
        assert_eq!(capacity_rank(&all, &BTreeSet::new(), DomainName, "c.example"), Some(3));
        assert_eq!(capacity_rank(&all, &BTreeSet::new(), DomainName, "d.example"), None);
        assert_eq!(capacity_rank(&all, &BTreeSet::new(), Url, "a.example"), None);
    }

    /// `plan` with every listed row's provenance known (feed `f`): the rows a feed brought.
    fn plan_known(desired: Vec<Desired>, rows: &[Existing], s: &PlanSettings) -> Plan {
        let mut s = s.clone();
        for e in rows {
            if let Some(k) = e.kind {
                s.provenance.entry((k, e.value.clone())).or_insert_with(|| ["f".to_owned()].into());
            }
        }
        plan(desired, rows, &s)
    }

    fn settings() -> PlanSettings {
        let mut s = PlanSettings::new(Owner { client_id: ME.to_owned(), tag: "iocsync".to_owned() }, t0());
        // Tests of other rules than the brake may change every row of a tiny tenant.
        s.max_delete_fraction = 1.0;
        s
    }

    fn owned(id: u32, d: &Desired) -> Existing {
        Existing::from_desired(id.to_string(), d, &settings().owner)
    }

    fn foreign(id: u32, d: &Desired) -> Existing {
        let mut e = owned(id, d);
        e.created_by = Some("analyst@contoso.example".into());
        e.application = None;
        e.external_id = None;
        e
    }

    fn dom(v: &str) -> Desired {
        desired(DomainName, v, Action::Block)
    }

    #[test]
    fn empty_tenant_creates_everything_sorted() {
        let p = plan_known(vec![dom("b.example"), dom("a.example")], &[], &settings());
        assert_eq!(
            p.creates.iter().map(|d| d.value.as_str()).collect::<Vec<_>>(),
            ["a.example", "b.example"]
        );
        assert!(p.has_changes());
        assert_eq!(p.capacity.owned_after, 2);
        assert_eq!(p.brake, None);
    }

    #[test]
    fn identical_owned_is_unchanged_and_no_write() {
        let d = dom("a.example");
        let p = plan_known(vec![d.clone()], &[owned(1, &d)], &settings());
        assert_eq!(p.unchanged.len(), 1);
        assert!(!p.has_changes());
        assert!(p.import_items().is_empty() && p.delete_ids().is_empty());
    }

    #[test]
    fn ownership_requires_client_and_tag() {
        let d = dom("a.example");
        let mut other_tag = owned(1, &d);
        other_tag.application = Some("oldscript".into());
        other_tag.external_id = None;
        let mut other_client = owned(2, &dom("b.example"));
        other_client.created_by = Some("99999999-0000-0000-0000-000000000000".into());
        let mut upper_guid = owned(3, &dom("c.example"));
        upper_guid.created_by = Some(ME.to_uppercase());
        let mut upper_tag = owned(4, &dom("d.example"));
        upper_tag.external_id = Some("iocsync:IOCSYNC".into());
        let mut padded_tag = owned(5, &dom("e.example"));
        padded_tag.external_id = Some(" iocsync:iocsync".into());
        let s = settings();
        assert!(!s.owner.owns(&other_tag));
        assert!(!s.owner.owns(&other_client));
        assert!(s.owner.owns(&upper_guid), "the GUID compares case-insensitively");
        assert!(!s.owner.owns(&upper_tag), "the tag compares exactly (case)");
        assert!(!s.owner.owns(&padded_tag), "the tag compares exactly (no trim)");
        let p = plan_known(vec![], &[other_tag, other_client, upper_guid, upper_tag, padded_tag], &s);
        assert_eq!(p.delete_ids(), vec!["3".to_owned()], "only the owned row is deleted");
        assert_eq!(p.capacity.foreign, 4);
    }

    #[test]
    fn foreign_same_value_and_action_is_skipped_never_touched() {
        let d = dom("a.example");
        let p = plan_known(vec![d.clone()], &[foreign(7, &d)], &settings());
        assert!(p.creates.is_empty());
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].reason, Reason::ForeignIndicator);
        assert!(p.skipped[0].detail.as_deref().unwrap().contains("id 7"));
        assert!(!p.has_changes());
    }

    #[test]
    fn foreign_same_value_other_action_does_not_stop_a_create() {
        let d = dom("a.example");
        let f = foreign(7, &desired(DomainName, "a.example", Action::Allowed));
        let p = plan_known(vec![d], &[f], &settings());
        assert_eq!(p.creates.len(), 1);
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn foreign_is_never_deleted() {
        let f = foreign(7, &dom("gone.example"));
        let p = plan_known(vec![], &[f], &settings());
        assert!(p.deletes.is_empty() && p.kept.is_empty() && p.unchanged.is_empty());
        assert_eq!(p.capacity.owned_before, 0);
    }

    #[test]
    fn changed_severity_is_an_update() {
        let d = dom("a.example");
        let mut e = owned(1, &d);
        e.severity = Some(Severity::Low);
        let p = plan_known(vec![d], &[e], &settings());
        assert_eq!(p.updates.len(), 1);
        assert_eq!(p.updates[0].id, "1");
        assert!(p.renews.is_empty());
    }

    #[test]
    fn each_metadata_field_triggers_an_update() {
        let base = dom("a.example");
        type Mutation = Box<dyn Fn(&mut Existing)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|e| e.title = "other".into()),
            Box::new(|e| e.description = "other".into()),
            Box::new(|e| e.recommended_actions = Some("isolate".into())),
            Box::new(|e| e.rbac_groups = vec!["Servers".into()]),
            Box::new(|e| e.generate_alert = false),
            Box::new(|e| e.mitre_techniques = vec!["T1071".into()]),
            Box::new(|e| e.educate_url = Some("https://x.example/".into())),
            Box::new(|e| e.severity = None),
        ];
        for (i, m) in mutations.iter().enumerate() {
            let mut e = owned(1, &base);
            m(&mut e);
            let p = plan_known(vec![base.clone()], &[e], &settings());
            assert_eq!(p.updates.len(), 1, "mutation {i}");
        }
        // Sets, not lists; and a numeric category echo is not a change.
        let mut d = base;
        d.rbac_groups = vec!["A".into(), "B".into()];
        d.category = Some("Malware".into());
        let mut e = owned(1, &d);
        e.rbac_groups = vec!["B".into(), "A".into()];
        e.category = Some("1".into());
        assert!(!plan_known(vec![d.clone()], &[e.clone()], &settings()).has_changes());
        e.category = Some("Phishing".into());
        assert_eq!(plan_known(vec![d], &[e], &settings()).updates.len(), 1);
    }

    #[test]
    fn changed_action_is_a_replace() {
        let old = dom("a.example");
        let new = desired(DomainName, "a.example", Action::Warn);
        let p = plan_known(vec![new], &[owned(4, &old)], &settings());
        assert_eq!(p.replaces.len(), 1);
        assert_eq!(p.replaces[0].old.id, "4");
        assert_eq!(p.replaces[0].new.action, Action::Warn);
        assert!(p.creates.is_empty() && p.deletes.is_empty());
        assert_eq!(p.delete_ids(), vec!["4".to_owned()]);
        assert_eq!(p.import_items().len(), 1);
        assert_eq!(p.brake_counted, 1, "a replace counts towards the brake");
    }

    #[test]
    fn legacy_action_row_is_replaced() {
        let d = desired(FileMd5, &"a".repeat(32), Action::Audit);
        let mut e = owned(4, &d);
        e.raw_action = "Alert".into();
        let p = plan_known(vec![d], &[e], &settings());
        assert_eq!(p.replaces.len(), 1);
    }

    #[test]
    fn renew_inside_window_not_outside() {
        let d = dom("a.example");
        let mut soon = owned(1, &d);
        soon.expiration = Some(t0() + Duration::days(9));
        assert_eq!(plan_known(vec![d.clone()], &[soon], &settings()).renews.len(), 1);
        let mut later = owned(1, &d);
        later.expiration = Some(t0() + Duration::days(11));
        let p = plan_known(vec![d.clone()], &[later], &settings());
        assert!(p.renews.is_empty() && p.updates.is_empty());
        assert_eq!(p.unchanged.len(), 1);
        let mut never = owned(1, &d);
        never.expiration = None;
        assert_eq!(plan_known(vec![d], &[never], &settings()).renews.len(), 1, "every indicator expires");
    }

    #[test]
    fn desired_expiry_inside_window_renews_once_not_every_run() {
        // STIX valid_until (or expire_days <= renew window) puts the desired expiry in the window.
        let mut d = dom("a.example");
        d.expiration = t0() + Duration::days(5);
        let e = owned(1, &d);
        let p = plan_known(vec![d.clone()], std::slice::from_ref(&e), &settings());
        assert!(!p.has_changes(), "same expiry inside the window: no renew, {p:?}");
        assert_eq!(p.unchanged.len(), 1);
        // Less than a day later is noise, even inside the window.
        let mut near = d.clone();
        near.expiration = e.expiration.unwrap() + Duration::hours(20);
        assert!(!plan_known(vec![near], std::slice::from_ref(&e), &settings()).has_changes());
        // More than a day later: renewed once, then converged.
        let mut later = d;
        later.expiration = e.expiration.unwrap() + Duration::days(2);
        let p = plan_known(vec![later.clone()], &[e], &settings());
        assert_eq!(p.renews.len(), 1);
        let after = Existing::from_desired("1", &p.renews[0].desired, &settings().owner);
        assert!(!plan_known(vec![later], &[after], &settings()).has_changes());
    }

    #[test]
    fn shortened_validity_is_an_update() {
        let mut d = dom("a.example");
        let e = owned(1, &d);
        d.expiration -= Duration::days(2);
        assert_eq!(plan_known(vec![d.clone()], std::slice::from_ref(&e), &settings()).updates.len(), 1);
        d.expiration = e.expiration.unwrap() - Duration::hours(20);
        assert!(!plan_known(vec![d], &[e], &settings()).has_changes(), "less than a day earlier is noise");
    }

    #[test]
    fn removal_is_a_delete() {
        let keep = dom("keep.example");
        let gone = dom("gone.example");
        let p = plan_known(vec![keep.clone()], &[owned(1, &keep), owned(2, &gone)], &settings());
        assert_eq!(p.deletes.len(), 1);
        assert_eq!(p.deletes[0].id, "2");
        assert_eq!(p.counts().delete, 1);
        assert_eq!(p.counts().unchanged, 1);
    }

    #[test]
    fn brake_holds_the_excess_and_force_releases_it() {
        let rows: Vec<Existing> = (0..10).map(|i| owned(i, &dom(&format!("d{i}.example")))).collect();
        let mut keep: Vec<Desired> = (0..4).map(|i| dom(&format!("d{i}.example"))).collect();
        keep.push(dom("new.example"));
        let mut s = settings();
        s.max_delete_fraction = 0.25;
        let p = plan_known(keep.clone(), &rows, &s);
        assert_eq!(p.deletes.len(), 2, "25% of 10 owned, rounded down");
        assert_eq!(p.brake_counted, 2);
        assert_eq!(p.brake_held, 4);
        assert_eq!(p.kept.len(), 4, "held deletes stay in the tenant");
        assert_eq!(p.creates.len(), 1, "creates still apply while the brake holds");
        let msg = p.brake.expect("brake engages");
        assert!(msg.contains("holds 4") && msg.contains("--force"), "{msg}");
        s.force = true;
        let p = plan_known(keep, &rows, &s);
        assert_eq!(p.brake, None);
        assert_eq!(p.deletes.len(), 6);
    }

    #[test]
    fn brake_at_exact_fraction_and_empty_tenant() {
        let rows: Vec<Existing> = (0..4).map(|i| owned(i, &dom(&format!("d{i}.example")))).collect();
        let mut s = settings();
        s.max_delete_fraction = 0.25;
        assert_eq!(
            plan_known(vec![dom("d0.example"), dom("d1.example"), dom("d2.example")], &rows, &s).brake,
            None
        );
        assert!(plan_known(vec![dom("d0.example"), dom("d1.example")], &rows, &s).brake.is_some());
        assert_eq!(plan_known(vec![], &[], &s).brake, None, "owned_before = 0 never brakes");
    }

    #[test]
    fn brake_remembers_the_window_so_slices_do_not_pass() {
        // Hole 3: a feed that loses 20% a run drained the tenant, each run under 25%.
        let rows: Vec<Existing> = (0..80).map(|i| owned(i, &dom(&format!("d{i:03}.example")))).collect();
        let keep: Vec<Desired> = (0..64).map(|i| dom(&format!("d{i:03}.example"))).collect();
        let mut s = settings();
        s.max_delete_fraction = 0.25;
        // An hour ago the tenant held 100 and a run already deleted 20 of them.
        s.brake_window = BrakeWindow { used: 20, peak_owned: 100 };
        let p = plan_known(keep, &rows, &s);
        assert_eq!(p.deletes.len(), 5, "25 of the peak 100, minus 20 used");
        assert_eq!(p.brake_held, 11);
        assert!(p.brake.is_some());
    }

    #[test]
    fn replaces_and_expiry_cuts_count_towards_the_brake() {
        let rows: Vec<Existing> = (0..4).map(|i| owned(i, &dom(&format!("d{i}.example")))).collect();
        let mut s = settings();
        s.max_delete_fraction = 0.25;
        // Every row turned to Audit (a replace), or its expiry cut by 20 days (an update).
        let audit: Vec<Desired> =
            (0..4).map(|i| desired(DomainName, &format!("d{i}.example"), Action::Audit)).collect();
        let p = plan_known(audit, &rows, &s);
        assert_eq!((p.replaces.len(), p.brake_held), (1, 3), "{p:?}");
        assert_eq!(p.unchanged.len(), 3, "held replaces leave the old rows");
        let cut: Vec<Desired> = (0..4)
            .map(|i| {
                let mut d = dom(&format!("d{i}.example"));
                d.expiration -= Duration::days(20);
                d
            })
            .collect();
        let p = plan_known(cut, &rows, &s);
        assert_eq!((p.updates.len(), p.brake_held), (1, 3));
        // A metadata update that does not cut the expiry is free.
        let retitled: Vec<Desired> = (0..4)
            .map(|i| {
                let mut d = dom(&format!("d{i}.example"));
                d.title = "new".into();
                d
            })
            .collect();
        let p = plan_known(retitled, &rows, &s);
        assert_eq!((p.updates.len(), p.brake_held), (4, 0));
    }

    #[test]
    fn allowlisted_removals_are_free_and_beat_protection() {
        let rows: Vec<Existing> = (0..4).map(|i| owned(i, &dom(&format!("d{i}.example")))).collect();
        let mut s = settings();
        s.max_delete_fraction = 0.25;
        s.protected_feeds.insert("f".into());
        for i in 0..4 {
            s.allowlisted.insert((DomainName, format!("D{i}.example")));
        }
        let p = plan_known(vec![], &rows, &s);
        assert_eq!(p.deletes.len(), 4);
        assert_eq!(p.brake, None);
    }

    #[test]
    fn brake_window_sums_only_young_entries() {
        let e = |h: i64, counted, owned| BrakeEntry { at: t0() - Duration::hours(h), counted, owned };
        let w = BrakeWindow::from_ledger(
            &[e(30, 50, 500), e(20, 5, 100), e(1, 7, 90)],
            t0(),
            Duration::hours(24),
        );
        assert_eq!(w, BrakeWindow { used: 12, peak_owned: 100 });
    }

    #[test]
    fn capacity_foreign_and_headroom_leave_500() {
        let foreign_rows: Vec<Existing> =
            (0..14_000).map(|i| foreign(i, &dom(&format!("f{i}.example")))).collect();
        let mut want: Vec<Desired> = (0..1_000)
            .map(|i| {
                let mut d = dom(&format!("w{i:04}.example"));
                d.priority = i % 3;
                d.severity = if i % 2 == 0 { Severity::High } else { Severity::Low };
                d.recency = -i64::from(i);
                d
            })
            .collect();
        want.reverse();
        let mut s = settings();
        s.capacity = 15_000;
        s.headroom = 500;
        let p = plan_known(want.clone(), &foreign_rows, &s);
        assert_eq!(p.creates.len(), 500);
        assert_eq!(p.capacity.owned_after, 500);
        assert_eq!(p.capacity.foreign, 14_000);
        let over: Vec<&Skip> = p.skipped.iter().filter(|s| s.reason == Reason::OverCapacity).collect();
        assert_eq!(over.len(), 500);
        // Every kept value ranks at least as high as every dropped one.
        let rank = |v: &str| {
            want.iter().find(|d| d.value == v).map(|d| (d.priority, d.severity, d.recency)).unwrap()
        };
        let worst_kept = p.creates.iter().map(|d| rank(&d.value)).min().unwrap();
        let best_dropped = over.iter().map(|s| rank(&s.value)).max().unwrap();
        assert!(worst_kept > best_dropped, "{worst_kept:?} vs {best_dropped:?}");
        assert!(p.creates.iter().all(|d| d.priority == 2 || d.priority == 1));
    }

    #[test]
    fn under_the_cap_a_value_with_recent_hits_outranks_a_silent_one() {
        let mut s = settings();
        s.capacity = 2;
        s.headroom = 1;
        // The silent value is fresher in its feed and would win without hits.
        let mut silent = dom("silent.example");
        silent.recency = 10;
        let mut caught = dom("caught.example");
        caught.recency = 1;
        let p = plan_known(vec![silent.clone(), caught.clone()], &[owned(1, &silent)], &s);
        assert_eq!(p.capacity.owned_after, 1);
        assert!(p.deletes.is_empty(), "without hits the fresher silent value stays");
        s.hot.insert((DomainName, match_value(DomainName, "caught.example")));
        let p = plan_known(vec![silent.clone(), caught], &[owned(1, &silent)], &s);
        assert_eq!(p.creates.iter().map(|d| d.value.as_str()).collect::<Vec<_>>(), ["caught.example"]);
        assert_eq!(p.deletes.len(), 1, "the silent value gives its slot to the one Defender acts on");
        // Priority still comes first: the operator's feed order is not overridden by hits.
        let mut high = dom("high.example");
        high.priority = 5;
        let p = plan_known(vec![high, dom("caught.example")], &[], &s);
        assert_eq!(p.creates.iter().map(|d| d.value.as_str()).collect::<Vec<_>>(), ["high.example"]);
    }

    #[test]
    fn over_capacity_owned_value_is_deleted_to_make_room() {
        let mut s = settings();
        s.capacity = 3;
        s.headroom = 1;
        s.max_delete_fraction = 1.0;
        let mut hi = dom("hi.example");
        hi.priority = 9;
        let mut hi2 = dom("hi2.example");
        hi2.priority = 9;
        let lo = dom("lo.example");
        let p = plan_known(vec![hi, hi2, lo.clone()], &[owned(1, &lo)], &s);
        assert_eq!(p.creates.len(), 2);
        assert_eq!(p.deletes.len(), 1);
        assert_eq!(p.capacity.owned_after, 2);
    }

    #[test]
    fn protected_feed_keeps_its_rows_without_renewing() {
        let a = dom("from-a.example");
        let mut b = dom("from-b.example");
        b.feeds = vec!["b".into()];
        let unknown = dom("unknown.example");
        let mut soon_b = owned(2, &b);
        soon_b.expiration = Some(t0() + Duration::days(1));
        let rows = vec![owned(1, &a), soon_b, owned(3, &unknown)];
        let mut s = settings();
        s.protected_feeds.insert("b".into());
        s.provenance.insert((DomainName, "from-b.example".into()), ["b".to_owned()].into());
        s.provenance.insert((DomainName, "from-a.example".into()), ["a".to_owned()].into());
        let p = plan(vec![], &rows, &s);
        assert_eq!(p.deletes.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["1"]);
        assert_eq!(
            p.kept.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["2", "3"],
            "protected + unknown"
        );
        assert!(p.renews.is_empty());
        assert_eq!(p.counts().unchanged, 2);
        // An empty provenance set is unknown origin too.
        s.provenance.insert((DomainName, "unknown.example".into()), BTreeSet::new());
        let p = plan(vec![], &rows, &s);
        assert_eq!(p.kept.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["2", "3"], "empty = unknown");
        assert_eq!(p.deletes.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["1"]);
        // Unknown provenance is never deleted, even when every feed is fresh.
        s.protected_feeds.clear();
        s.max_delete_fraction = 1.0;
        let p = plan(vec![], &rows, &s);
        assert_eq!(p.deletes.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(p.kept.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["3"]);
    }

    #[test]
    fn a_capacity_cut_never_deletes_a_protected_value() {
        // Found by the model test: feed a on its last good copy (protected), the cap full, feed b's
        // higher-priority values outranked a's; the cut must keep a's rows, not delete them.
        let mut a_vals: Vec<Desired> = (0..3).map(|i| dom(&format!("a{i}.example"))).collect();
        for d in &mut a_vals {
            d.feeds = vec!["a".into()];
        }
        let rows: Vec<Existing> = a_vals.iter().enumerate().map(|(i, d)| owned(i as u32 + 1, d)).collect();
        let mut b_vals: Vec<Desired> = (0..3).map(|i| dom(&format!("b{i}.example"))).collect();
        for d in &mut b_vals {
            d.priority = 10;
            d.feeds = vec!["b".into()];
        }
        let mut s = settings();
        s.capacity = 3;
        s.headroom = 0;
        for d in &a_vals {
            s.provenance.insert((DomainName, d.value.clone()), ["a".to_owned()].into());
        }
        let desired: Vec<Desired> = a_vals.iter().chain(&b_vals).cloned().collect();
        let p = plan(desired.clone(), &rows, &s);
        assert_eq!(p.deletes.len(), 3, "without protection b's values push a's out: {p:?}");
        s.protected_feeds.insert("a".into());
        let p = plan(desired, &rows, &s);
        assert!(p.deletes.is_empty(), "{p:?}");
        assert!(p.creates.is_empty(), "no room until a's rows may go");
        assert_eq!(p.counts().unchanged, 3);
    }

    #[test]
    fn last_good_copy_protects_whatever_other_feeds_say() {
        // Hole 2: A and B carry X; A goes stale; B drops X. X's stored provenance may say {B}
        // only, yet X is in A's last good copy and must stay.
        let x = dom("x.example");
        let rows = vec![owned(1, &x)];
        let mut s = settings();
        s.max_delete_fraction = 1.0;
        s.provenance.insert((DomainName, "x.example".into()), ["b".to_owned()].into());
        assert_eq!(plan(vec![], &rows, &s).deletes.len(), 1, "without protection it goes");
        s.protected_feeds.insert("a".into());
        s.protected_values.insert((DomainName, "X.Example.".into()));
        let p = plan(vec![], &rows, &s);
        assert!(p.deletes.is_empty(), "{p:?}");
        assert_eq!(p.kept.len(), 1);
    }

    #[test]
    fn suppressed_is_not_resent_until_metadata_changes() {
        let d = dom("refused.example");
        let mut s = settings();
        s.suppressed.insert((DomainName, d.value.clone(), d.action, d.fingerprint()));
        let p = plan_known(vec![d.clone()], &[], &s);
        assert!(p.creates.is_empty());
        assert_eq!(p.skipped[0].reason, Reason::RejectedByDefender);
        let mut changed = d;
        changed.severity = Severity::Low;
        assert_eq!(plan_known(vec![changed], &[], &s).creates.len(), 1);
    }

    #[test]
    fn suppressed_update_keeps_the_existing_row() {
        let d = dom("a.example");
        let mut e = owned(1, &d);
        e.severity = Some(Severity::Low);
        let mut s = settings();
        s.suppressed.insert((DomainName, d.value.clone(), d.action, d.fingerprint()));
        let p = plan_known(vec![d], &[e], &s);
        assert!(!p.has_changes());
        assert_eq!(p.unchanged.len(), 1);
    }

    #[test]
    fn owned_duplicates_keep_lowest_id_and_do_not_brake() {
        let d = dom("a.example");
        let rows = vec![owned(12, &d), owned(9, &d), owned(100, &d)];
        let mut s = settings();
        s.max_delete_fraction = 0.1;
        let p = plan_known(vec![d], &rows, &s);
        assert_eq!(p.unchanged[0].id, "9");
        assert_eq!(p.delete_ids(), vec!["12".to_owned(), "100".to_owned()]);
        assert_eq!(p.duplicate_deletes, 2);
        assert_eq!(p.brake, None);
    }

    #[test]
    fn matching_is_case_and_form_insensitive() {
        let h = desired(FileSha256, &"ab".repeat(32), Action::Block);
        let mut eh = owned(1, &h);
        eh.value = eh.value.to_uppercase();
        let ip = desired(IpAddress, "2001:db8::1", Action::Block);
        let mut eip = owned(2, &ip);
        eip.value = "2001:db8:0:0:0:0:0:1".into();
        let u = desired(Url, "http://evil.example/Path", Action::Block);
        let mut eu = owned(3, &u);
        eu.value = "HTTP://EVIL.example/Path".into();
        let p = plan_known(vec![h, ip, u], &[eh, eip, eu], &settings());
        assert_eq!(p.unchanged.len(), 3, "{p:?}");
        assert!(!p.has_changes());
        let mut other_path = owned(4, &desired(Url, "http://evil.example/path", Action::Block));
        other_path.value = "http://evil.example/path".into();
        let p = plan_known(
            vec![desired(Url, "http://evil.example/Path", Action::Block)],
            &[other_path],
            &settings(),
        );
        assert_eq!(p.creates.len(), 1, "URL paths keep their case");
    }

    #[test]
    fn a_tenant_spelling_of_the_value_matches_and_keeps_its_provenance() {
        // Sent with all 8 groups and `/` as the path; stored compressed and without the slash.
        let ip = desired(IpAddress, "2001:db8:0:0:0:0:0:7", Action::Block);
        let mut eip = owned(1, &ip);
        eip.value = "2001:DB8::7".into();
        let u = desired(Url, "http://evil.example/", Action::Block);
        let mut eu = owned(2, &u);
        eu.value = "HTTP://Evil.Example".into();
        let mut s = settings();
        // Provenance remembered under the spelling sent, not the one listed.
        s.provenance.insert((IpAddress, ip.value.clone()), ["f".to_owned()].into());
        s.provenance.insert((Url, u.value.clone()), ["f".to_owned()].into());
        let rows = [eip, eu];
        let p = plan(vec![ip, u], &rows, &s);
        assert_eq!(p.unchanged.len(), 2, "{p:?}");
        assert!(!p.has_changes());
        // No longer desired: deleted (its feed brought it), not kept as of unknown origin.
        let p = plan(vec![], &rows, &s);
        assert_eq!(p.deletes.len(), 2, "{p:?}");
        assert!(p.kept.is_empty());
    }

    #[test]
    fn optional_fields_the_tenant_drops_on_read_back_are_not_an_update() {
        let mut d = desired(Url, "http://evil.example/x", Action::Block);
        d.recommended_actions = Some("isolate".into());
        d.educate_url = Some("https://intranet.example/why".into());
        d.mitre_techniques = vec!["T1071".into()];
        d.category = Some("Malware".into());
        let mut e = owned(1, &d);
        e.recommended_actions = None;
        e.educate_url = None;
        e.mitre_techniques = vec![];
        e.category = None;
        assert!(!plan_known(vec![d.clone()], &[e.clone()], &settings()).has_changes());
        // A value the tenant does report is compared.
        for m in [
            (|e: &mut Existing| e.recommended_actions = Some("other".into())) as fn(&mut Existing),
            |e| e.educate_url = Some("https://other.example/".into()),
            |e| e.mitre_techniques = vec!["T1566".into()],
        ] {
            let mut changed = e.clone();
            m(&mut changed);
            assert_eq!(plan_known(vec![d.clone()], &[changed], &settings()).updates.len(), 1);
        }
        // Required fields are always compared: an empty title or no groups is a difference.
        let mut groups = d;
        groups.rbac_groups = vec!["Laptops".into()];
        assert_eq!(plan_known(vec![groups], &[e], &settings()).updates.len(), 1);
    }

    #[test]
    fn foreign_url_matches_with_any_case_owned_url_does_not() {
        let want = || desired(Url, "http://evil.example/Path?Q=1", Action::Block);
        let f = foreign(7, &desired(Url, "HTTP://EVIL.example/path?q=1", Action::Block));
        let p = plan_known(vec![want()], &[f], &settings());
        assert!(p.creates.is_empty(), "{p:?}");
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].reason, Reason::ForeignIndicator);
        // Owned rows still match with the path's case kept: a different path is a create.
        let o = owned(8, &desired(Url, "http://evil.example/path?q=1", Action::Block));
        let p = plan_known(vec![want()], &[o], &settings());
        assert_eq!(p.creates.len(), 1);
        assert_eq!(p.deletes.len(), 1);
    }

    #[test]
    fn unknown_owned_rows_are_left_alone() {
        let mut e = owned(1, &dom("x.example"));
        e.kind = None;
        e.raw_type = "WebCategory".into();
        let p = plan_known(vec![], &[e], &settings());
        assert!(p.deletes.is_empty());
        assert_eq!(p.kept.len(), 1);
    }

    #[test]
    fn limited_visibility_is_noted() {
        let mut s = settings();
        s.sees_foreign = false;
        assert!(plan_known(vec![], &[], &s).notes[0].contains("Ti.ReadWrite.All"));
        assert!(plan_known(vec![], &[], &settings()).notes.is_empty());
    }

    #[test]
    fn shuffled_input_gives_identical_plan() {
        let mut want: Vec<Desired> = (0..50).map(|i| dom(&format!("d{i}.example"))).collect();
        want.push(desired(DomainName, "d3.example", Action::Warn));
        let mut rows: Vec<Existing> = (20..70).map(|i| owned(i, &dom(&format!("d{i}.example")))).collect();
        rows.push(foreign(500, &dom("d5.example")));
        rows.push(owned(501, &dom("d21.example")));
        let a = plan_known(want.clone(), &rows, &settings());
        want.reverse();
        rows.reverse();
        rows.swap(3, 17);
        let b = plan_known(want, &rows, &settings());
        assert_eq!(a, b);
    }

    #[test]
    fn id_order_is_numeric() {
        assert_eq!(id_cmp("994", "5143"), Ordering::Less);
        assert_eq!(id_cmp("10", "9"), Ordering::Greater);
        assert_eq!(id_cmp("abc", "abd"), Ordering::Less);
    }
}
