//! Per-feed policy: turns a feed's accepted `Ioc`s into [`Desired`] indicators (action,
//! severity, texts, groups, expiry), or [`Skip`]s when the policy cannot apply to a value.

use crate::marker::{Marker, MarkerField, with_description_suffix};
use crate::model::{Action, Desired, Severity, Skip, action_allowed, allowed_actions};
use chrono::{DateTime, Duration, DurationRound, Utc};
use iocsync_ioc::{IndicatorType, Ioc, Reason};

/// Longest title sent, in characters. Defender documents no maximum; one production connector
/// truncates at 4,000, which is taken as the safe bound.
pub const TITLE_MAX_CHARS: usize = 4000;

/// Longest description sent, in characters. Defender documents no maximum; integrations that keep
/// to 100 characters do so for the retired Graph tiIndicator bridge, not for this API, so the
/// title's bound is reused.
pub const DESCRIPTION_MAX_CHARS: usize = 4000;

/// Longest `application` text sent, in characters (shown to end users; no documented maximum).
pub const APPLICATION_MAX_CHARS: usize = 4000;

/// Longest recommended-actions text sent, in characters (same reasoning as the description).
pub const RECOMMENDED_ACTIONS_MAX_CHARS: usize = 4000;

/// What one feed's indicators become in Defender. Built by the app from `[defaults]` and the
/// feed's `[[feeds]]` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPolicy {
    /// Feed name (provenance and `{feed}` in templates).
    pub feed: String,
    /// Action for every value (unless a value's own attributes say otherwise).
    pub action: Action,
    /// Severity.
    pub severity: Severity,
    /// Whether Defender raises an alert; forced to true for `Audit`.
    pub generate_alert: bool,
    /// Title template; `{feed}`, `{value}` and `{type}` are substituted.
    pub title: String,
    /// Description template, same placeholders.
    pub description: String,
    /// Recommended actions text (same placeholders).
    pub recommended_actions: Option<String>,
    /// Device-group names (`[]` = all devices).
    pub rbac_groups: Vec<String>,
    /// Category name.
    pub category: Option<String>,
    /// MITRE ATT&CK technique ids.
    pub mitre_techniques: Vec<String>,
    /// Notification link for Block/Warn on network indicators.
    pub educate_url: Option<String>,
    /// `application` template (same placeholders as the title): shown to end users in block
    /// notifications in place of the blocked file or domain. `None` (the default): not sent.
    pub application: Option<String>,
    /// The ownership marker written on every indicator: `externalId = "iocsync:{tag}"`, or a
    /// ` [iocsync:{tag}]` description suffix (counted in the description's maximum length).
    /// `None`: no marker (only for tools that never write, such as `parse`).
    pub marker: Option<Marker>,
    /// Days until a pushed indicator expires (renewed while the value stays in the feed). Must be ≥ 1.
    pub expire_days: u32,
    /// Priority: higher wins when feeds overlap and when the cap forces a cut.
    pub priority: i32,
    /// Honour what a row says about itself (action, severity, alert, device groups, expiry,
    /// texts). Off by default: a feed informs, the config decides (DESIGN principle 4).
    pub row_policy: bool,
    /// With `row_policy`, the only actions a row may choose (empty: only the feed's own action).
    /// A row asking for any other action gets the feed's action and a report note.
    pub row_actions: Vec<Action>,
}

impl FeedPolicy {
    /// A policy with the documented `[defaults]`: Block, High, alert on, `"{feed}: {value}"`,
    /// `"Imported by iocsync from {feed}"`, all devices, 30 days, priority 0.
    pub fn new(feed: impl Into<String>) -> Self {
        FeedPolicy {
            feed: feed.into(),
            action: Action::Block,
            severity: Severity::High,
            generate_alert: true,
            title: "{feed}: {value}".to_owned(),
            description: "Imported by iocsync from {feed}".to_owned(),
            recommended_actions: None,
            rbac_groups: Vec::new(),
            category: None,
            mitre_techniques: Vec::new(),
            educate_url: None,
            application: None,
            marker: Some(Marker::new(MarkerField::ExternalId, "iocsync")),
            expire_days: 30,
            priority: 0,
            row_policy: false,
            row_actions: Vec::new(),
        }
    }

    /// Whether a row of this feed may choose `action` (see [`FeedPolicy::row_actions`]).
    pub fn row_may_choose(&self, action: Action) -> bool {
        action == self.action || (self.row_policy && self.row_actions.contains(&action))
    }
}

/// What [`apply_policy`] made of one feed's values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOutcome {
    /// The indicators to push, in input order.
    pub desired: Vec<Desired>,
    /// Values the policy cannot apply to, with their reason codes.
    pub skips: Vec<Skip>,
    /// Report notes: rows whose own policy was not honoured (at most one note per kind of refusal).
    pub notes: Vec<String>,
}

/// Counts the rows whose own fields were not honoured, for one note per kind.
#[derive(Default)]
struct Overrides {
    /// Rows with fields of their own while `row_policy` is off.
    ignored: u64,
    /// First example value of `ignored`.
    ignored_example: Option<String>,
    /// Rows asking for an action outside `row_actions`, by the action asked for.
    refused: std::collections::BTreeMap<String, (u64, String)>,
}

/// Applies `policy` to a feed's accepted values at time `now`.
///
/// Per value: the policy decides. Only with `row_policy` do a row's own attributes (portal CSV
/// rows, MISP/STIX fields) override the policy field by field, and a row's action only when it is
/// the feed's action or listed in `row_actions`; any other action (an unknown name included) gets
/// the feed's action and a note, never a silent skip. An action the type does not take gives
/// `action-not-allowed`; `Audit` forces `generate_alert`; the expiry is the earliest of
/// `now + expire_days`, the source's `valid_until` (STIX validity, always honoured: it can only
/// shorten, and the brake counts expiry cuts) and, with `row_policy`, the row's own expiration, at
/// whole seconds (an expiry not in the future gives `invalid-value`). Output order follows input.
pub fn apply_policy(policy: &FeedPolicy, iocs: &[Ioc], now: DateTime<Utc>) -> (Vec<Desired>, Vec<Skip>) {
    let out = apply_policy_noted(policy, iocs, now);
    (out.desired, out.skips)
}

/// [`apply_policy`], with the report notes on rows whose own policy was not honoured.
pub fn apply_policy_noted(policy: &FeedPolicy, iocs: &[Ioc], now: DateTime<Utc>) -> PolicyOutcome {
    let mut out = Vec::with_capacity(iocs.len());
    let mut skips = Vec::new();
    let now_s = trunc_secs(now);
    let default_expiry = now_s + Duration::days(i64::from(policy.expire_days));
    let mut rbac = policy.rbac_groups.clone();
    sort_dedup(&mut rbac);
    let mut mitre = policy.mitre_techniques.clone();
    sort_dedup(&mut mitre);
    let mut overrides = Overrides::default();
    for ioc in iocs {
        match apply_one(policy, ioc, now_s, default_expiry, &rbac, &mitre, &mut overrides) {
            Ok(d) => out.push(d),
            Err((reason, detail)) => skips.push(Skip {
                kind: Some(ioc.kind),
                value: ioc.value.clone(),
                reason,
                feed: Some(policy.feed.clone()),
                detail: Some(detail),
            }),
        }
    }
    let mut notes = Vec::new();
    if overrides.ignored > 0 {
        notes.push(format!(
            "feed {}: {} rows carry their own action, severity, alert, device groups or expiry (e.g. {}); \
             ignored, the feed's policy applies (set row_policy = true to honour them)",
            policy.feed,
            overrides.ignored,
            overrides.ignored_example.as_deref().unwrap_or("?")
        ));
    }
    for (asked, (n, example)) in &overrides.refused {
        notes.push(format!(
            "feed {}: {n} rows asked for action `{asked}` (e.g. {example}), which row_actions does not list; \
             the feed's action {} was used",
            policy.feed, policy.action
        ));
    }
    PolicyOutcome { desired: out, skips, notes }
}

#[allow(clippy::too_many_arguments)]
fn apply_one(
    policy: &FeedPolicy,
    ioc: &Ioc,
    now: DateTime<Utc>,
    default_expiry: DateTime<Utc>,
    rbac: &[String],
    mitre: &[String],
    overrides: &mut Overrides,
) -> Result<Desired, (Reason, String)> {
    let row = ioc.attrs.as_deref();
    if !policy.row_policy && row.is_some_and(has_row_policy) {
        overrides.ignored += 1;
        overrides.ignored_example.get_or_insert_with(|| ioc.value.clone());
    }
    // Without row_policy a row's own fields do not exist for the policy.
    let attrs = row.filter(|_| policy.row_policy);
    let action = match attrs.and_then(|a| a.action.as_deref()).map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => match Action::from_tenant(s).filter(|a| policy.row_may_choose(*a)) {
            Some(a) => a,
            None => {
                let e = overrides.refused.entry(s.to_owned()).or_insert_with(|| (0, ioc.value.clone()));
                e.0 += 1;
                policy.action
            }
        },
        None => policy.action,
    };
    let severity = match attrs.and_then(|a| a.severity.as_deref()).filter(|s| !s.trim().is_empty()) {
        Some(s) => s.parse::<Severity>().map_err(|e| (Reason::InvalidValue, e.to_string()))?,
        None => policy.severity,
    };
    if !action_allowed(ioc.kind, action) {
        let allowed: Vec<&str> = allowed_actions(ioc.kind).into_iter().map(Action::as_str).collect();
        return Err((
            Reason::ActionNotAllowed,
            format!("{action} is not allowed for {} (allowed: {})", ioc.kind, allowed.join(", ")),
        ));
    }
    let mut expiration = default_expiry;
    for cap in [ioc.valid_until, attrs.and_then(|a| a.expiration)].into_iter().flatten() {
        expiration = expiration.min(trunc_secs(cap));
    }
    if expiration <= now {
        return Err((
            Reason::InvalidValue,
            format!(
                "expiration {} is not in the future",
                expiration.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    // `generateAlert` has no effect on `Allowed` (spec §13.8): always false there, so what the
    // tenant echoes never differs from what is desired.
    let generate_alert = action != Action::Allowed
        && (action == Action::Audit || attrs.and_then(|a| a.generate_alert).unwrap_or(policy.generate_alert));
    let render = |t: &str, max: usize| {
        truncate_chars(render_template(t, &policy.feed, &ioc.value, ioc.kind).trim(), max)
    };
    let title = match attrs.and_then(|a| a.title.as_deref()).filter(|s| !s.trim().is_empty()) {
        Some(t) => truncate_chars(t.trim(), TITLE_MAX_CHARS),
        None => render(&policy.title, TITLE_MAX_CHARS),
    };
    let mut description = match attrs.and_then(|a| a.description.as_deref()).filter(|s| !s.trim().is_empty())
    {
        Some(t) => truncate_chars(t.trim(), DESCRIPTION_MAX_CHARS),
        None => render(&policy.description, DESCRIPTION_MAX_CHARS),
    };
    let external_id = match &policy.marker {
        Some(m) if m.field == MarkerField::ExternalId => Some(m.external_id()),
        Some(m) => {
            description = with_description_suffix(&description, &m.tag, DESCRIPTION_MAX_CHARS);
            None
        }
        None => None,
    };
    let application =
        policy.application.as_deref().map(|t| render(t, APPLICATION_MAX_CHARS)).filter(|s| !s.is_empty());
    let recommended_actions = match attrs.and_then(|a| a.recommended_actions.as_deref()) {
        Some(t) if !t.trim().is_empty() => Some(truncate_chars(t.trim(), RECOMMENDED_ACTIONS_MAX_CHARS)),
        _ => policy
            .recommended_actions
            .as_deref()
            .map(|t| render(t, RECOMMENDED_ACTIONS_MAX_CHARS))
            .filter(|s| !s.is_empty()),
    };
    let rbac_groups = match attrs {
        Some(a) if !a.rbac_groups.is_empty() => {
            let mut v: Vec<String> =
                a.rbac_groups.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            sort_dedup(&mut v);
            v
        }
        _ => rbac.to_vec(),
    };
    let mitre_techniques = match attrs {
        Some(a) if !a.mitre_techniques.is_empty() => {
            let mut v: Vec<String> =
                a.mitre_techniques.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            sort_dedup(&mut v);
            v
        }
        _ => mitre.to_vec(),
    };
    let category = attrs
        .and_then(|a| a.category.clone())
        .filter(|s| !s.trim().is_empty())
        .or_else(|| policy.category.clone());
    // Defender documents educateUrl for network indicators only.
    // Defender documents educateUrl for URL indicators with Block or Warn only (spec §13.8); sent
    // elsewhere it may be dropped and the plan would update the row on every run.
    let educate_url = if ioc.kind == IndicatorType::Url && matches!(action, Action::Block | Action::Warn) {
        policy.educate_url.clone().filter(|s| !s.is_empty())
    } else {
        None
    };
    Ok(Desired {
        kind: ioc.kind,
        value: ioc.value.clone(),
        action,
        severity,
        title,
        description,
        recommended_actions,
        rbac_groups,
        generate_alert,
        category,
        mitre_techniques,
        educate_url,
        application,
        external_id,
        expiration,
        priority: policy.priority,
        recency: -i64::try_from(ioc.line).unwrap_or(i64::MAX),
        feeds: vec![policy.feed.clone()],
    })
}

/// Substitutes `{feed}`, `{value}` and `{type}` in one pass (a value containing `{feed}` is not
/// expanded again); other braces are kept as written.
pub fn render_template(template: &str, feed: &str, value: &str, kind: IndicatorType) -> String {
    let mut out = String::with_capacity(template.len() + value.len());
    let mut rest = template;
    while let Some(pos) = rest.find('{') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let (rep, len) = if tail.starts_with("{feed}") {
            (feed, 6)
        } else if tail.starts_with("{value}") {
            (value, 7)
        } else if tail.starts_with("{type}") {
            (kind.as_str(), 6)
        } else {
            ("{", 1)
        };
        out.push_str(rep);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Truncates a timestamp to whole seconds (Defender echoes `expirationTime` at second precision).
pub fn trunc_secs(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::seconds(1)).unwrap_or(t)
}

/// Whether a row carries policy fields of its own (what `row_policy` gates).
fn has_row_policy(a: &iocsync_ioc::SourceAttrs) -> bool {
    let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.trim().is_empty());
    set(&a.action)
        || set(&a.severity)
        || set(&a.title)
        || set(&a.description)
        || set(&a.recommended_actions)
        || set(&a.category)
        || a.expiration.is_some()
        || a.generate_alert.is_some()
        || !a.rbac_groups.is_empty()
        || !a.mitre_techniques.is_empty()
}

fn sort_dedup(v: &mut Vec<String>) {
    v.sort();
    v.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use iocsync_ioc::SourceAttrs;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap() + Duration::milliseconds(789)
    }

    fn ioc(kind: IndicatorType, v: &str, line: u64) -> Ioc {
        Ioc::new(kind, v, line)
    }

    #[test]
    fn defaults_render_templates_and_expiry() {
        let p = FeedPolicy::new("feodo");
        let (d, s) = apply_policy(&p, &[ioc(IndicatorType::IpAddress, "203.0.113.7", 12)], now());
        assert!(s.is_empty());
        let d = &d[0];
        assert_eq!(d.title, "feodo: 203.0.113.7");
        assert_eq!(d.description, "Imported by iocsync from feodo");
        assert_eq!(d.action, Action::Block);
        assert_eq!(d.severity, Severity::High);
        assert_eq!(d.expiration, Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap(), "whole seconds");
        assert_eq!(d.recency, -12);
        assert_eq!(d.feeds, vec!["feodo".to_owned()]);
    }

    #[test]
    fn action_not_allowed_is_skipped() {
        let mut p = FeedPolicy::new("f");
        p.action = Action::BlockAndRemediate;
        let (d, s) = apply_policy(
            &p,
            &[
                ioc(IndicatorType::DomainName, "evil.example", 1),
                ioc(IndicatorType::FileMd5, &"a".repeat(32), 2),
            ],
            now(),
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].kind, IndicatorType::FileMd5);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].reason, Reason::ActionNotAllowed);
        assert!(s[0].detail.as_deref().unwrap().contains("DomainName"));
    }

    #[test]
    fn cert_block_is_not_allowed() {
        let p = FeedPolicy::new("f");
        let (d, s) =
            apply_policy(&p, &[ioc(IndicatorType::CertificateThumbprint, &"b".repeat(40), 1)], now());
        assert!(d.is_empty());
        assert_eq!(s[0].reason, Reason::ActionNotAllowed);
    }

    #[test]
    fn audit_forces_alert() {
        let mut p = FeedPolicy::new("f");
        p.action = Action::Audit;
        p.generate_alert = false;
        let (d, _) = apply_policy(&p, &[ioc(IndicatorType::Url, "http://evil.example/x", 1)], now());
        assert!(d[0].generate_alert);
        p.action = Action::Block;
        let (d, _) = apply_policy(&p, &[ioc(IndicatorType::Url, "http://evil.example/x", 1)], now());
        assert!(!d[0].generate_alert);
    }

    #[test]
    fn attrs_override_field_by_field() {
        let mut p = FeedPolicy::new("portal");
        p.row_policy = true;
        p.row_actions = vec![Action::Audit];
        p.rbac_groups = vec!["Servers".into()];
        p.mitre_techniques = vec!["T1".into()];
        let mut i = ioc(IndicatorType::FileSha256, &"c".repeat(64), 3);
        i.attrs = Some(Box::new(SourceAttrs {
            action: Some("Alert".into()),
            severity: Some("low".into()),
            title: Some("Own title".into()),
            description: None,
            expiration: Some(now() + Duration::days(2)),
            recommended_actions: Some("Isolate".into()),
            rbac_groups: vec!["B".into(), "A".into(), "A".into()],
            category: Some("Malware".into()),
            mitre_techniques: vec![],
            generate_alert: Some(false),
        }));
        let (d, s) = apply_policy(&p, &[i], now());
        assert!(s.is_empty());
        let d = &d[0];
        assert_eq!(d.action, Action::Audit, "legacy Alert read as Audit");
        assert!(d.generate_alert, "Audit forces the alert even against the row");
        assert_eq!(d.severity, Severity::Low);
        assert_eq!(d.title, "Own title");
        assert_eq!(d.description, "Imported by iocsync from portal", "policy fills what the row lacks");
        assert_eq!(d.recommended_actions.as_deref(), Some("Isolate"));
        assert_eq!(d.rbac_groups, vec!["A".to_owned(), "B".to_owned()]);
        assert_eq!(d.mitre_techniques, vec!["T1".to_owned()]);
        assert_eq!(d.category.as_deref(), Some("Malware"));
        assert_eq!(d.expiration, trunc_secs(now() + Duration::days(2)), "row expiry caps the policy's");
    }

    #[test]
    fn unknown_row_action_gets_the_feed_action_and_bad_severity_is_invalid_value() {
        let mut p = FeedPolicy::new("portal");
        p.row_policy = true;
        let mut a = ioc(IndicatorType::DomainName, "a.example", 1);
        a.attrs = Some(Box::new(SourceAttrs { action: Some("Nuke".into()), ..Default::default() }));
        let mut b = ioc(IndicatorType::DomainName, "b.example", 2);
        b.attrs = Some(Box::new(SourceAttrs { severity: Some("Critical".into()), ..Default::default() }));
        let out = apply_policy_noted(&p, &[a, b], now());
        assert_eq!(out.desired.len(), 1);
        assert_eq!(out.desired[0].action, Action::Block, "never honoured, never silently dropped");
        assert_eq!(out.notes.len(), 1);
        assert!(out.notes[0].contains("`Nuke`"), "{:?}", out.notes);
        assert_eq!(out.skips.len(), 1);
        assert_eq!(out.skips[0].reason, Reason::InvalidValue);
        assert!(out.skips[0].detail.as_deref().unwrap().contains("Critical"));
    }

    fn hostile_row(v: &str, line: u64) -> Ioc {
        let mut i = ioc(IndicatorType::FileSha256, v, line);
        i.attrs = Some(Box::new(SourceAttrs {
            action: Some("Allowed".into()),
            severity: Some("Informational".into()),
            expiration: Some(now() + Duration::hours(2)),
            rbac_groups: vec!["NoSuchGroup".into()],
            generate_alert: Some(false),
            ..Default::default()
        }));
        i
    }

    #[test]
    fn rows_never_choose_their_policy_without_row_policy() {
        // Hole 1 of the safety issue: a defender-csv row saying `Allowed` turned a blocklist
        // entry into an allow indicator.
        let p = FeedPolicy::new("blocklist");
        let out = apply_policy_noted(
            &p,
            &[hostile_row(&"e".repeat(64), 1), hostile_row(&"f".repeat(64), 2)],
            now(),
        );
        assert_eq!(out.desired.len(), 2);
        for d in &out.desired {
            assert_eq!(d.action, Action::Block);
            assert_eq!(d.severity, Severity::High);
            assert!(d.generate_alert);
            assert!(d.rbac_groups.is_empty());
            assert_eq!(d.expiration, trunc_secs(now()) + Duration::days(30), "row expiry ignored");
        }
        assert_eq!(out.notes.len(), 1);
        assert!(out.notes[0].contains("2 rows") && out.notes[0].contains("row_policy"), "{:?}", out.notes);
    }

    #[test]
    fn row_policy_honours_only_listed_actions() {
        let mut p = FeedPolicy::new("portal");
        p.row_policy = true;
        p.row_actions = vec![Action::Audit, Action::Block];
        let mut audit = ioc(IndicatorType::FileSha256, &"a".repeat(64), 1);
        audit.attrs = Some(Box::new(SourceAttrs { action: Some("Audit".into()), ..Default::default() }));
        let out = apply_policy_noted(&p, &[audit, hostile_row(&"b".repeat(64), 2)], now());
        assert_eq!(out.desired[0].action, Action::Audit, "listed: honoured");
        assert_eq!(out.desired[1].action, Action::Block, "Allowed not listed: the feed's action");
        assert_eq!(out.desired[1].severity, Severity::Informational, "other row fields honoured");
        assert_eq!(out.notes.len(), 1);
        assert!(out.notes[0].contains("`Allowed`"), "{:?}", out.notes);
        // Allowed only when the config lists it.
        p.row_actions.push(Action::Allowed);
        let out = apply_policy_noted(&p, &[hostile_row(&"b".repeat(64), 2)], now());
        assert_eq!(out.desired[0].action, Action::Allowed);
        assert!(out.notes.is_empty());
    }

    #[test]
    fn valid_until_caps_and_past_expiry_skips_even_without_row_policy() {
        let p = FeedPolicy::new("stix");
        let mut a = ioc(IndicatorType::DomainName, "a.example", 1);
        a.valid_until = Some(now() + Duration::hours(5));
        let mut b = ioc(IndicatorType::DomainName, "b.example", 2);
        b.valid_until = Some(now() - Duration::hours(1));
        let (d, s) = apply_policy(&p, &[a, b], now());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].expiration, trunc_secs(now() + Duration::hours(5)));
        assert_eq!(s[0].reason, Reason::InvalidValue);
    }

    #[test]
    fn templates_substitute_once_and_truncate() {
        assert_eq!(
            render_template("{feed}/{type}/{value} {x}", "f", "{feed}", IndicatorType::Url),
            "f/Url/{feed} {x}"
        );
        let mut p = FeedPolicy::new("f");
        p.title = "x".repeat(5000);
        let (d, _) = apply_policy(&p, &[ioc(IndicatorType::DomainName, "a.example", 1)], now());
        assert_eq!(d[0].title.chars().count(), TITLE_MAX_CHARS);
        assert!(d[0].title.ends_with('…'));
    }

    #[test]
    fn educate_url_only_on_urls_that_block_or_warn_and_no_alert_on_allowed() {
        let mut p = FeedPolicy::new("f");
        p.educate_url = Some("https://intranet.example/why".into());
        let (d, _) = apply_policy(
            &p,
            &[
                ioc(IndicatorType::Url, "https://evil.example/", 1),
                ioc(IndicatorType::FileSha1, &"d".repeat(40), 2),
                ioc(IndicatorType::DomainName, "evil.example", 3),
            ],
            now(),
        );
        assert!(d[0].educate_url.is_some());
        assert!(d[1].educate_url.is_none());
        assert!(d[2].educate_url.is_none(), "documented for URL indicators only");
        p.action = Action::Audit;
        let (d, _) = apply_policy(&p, &[ioc(IndicatorType::Url, "https://evil.example/", 1)], now());
        assert!(d[0].educate_url.is_none(), "Block or Warn only");
        p.action = Action::Allowed;
        p.generate_alert = true;
        let (d, _) = apply_policy(&p, &[ioc(IndicatorType::Url, "https://good.example/", 1)], now());
        assert!(!d[0].generate_alert, "no alert on Allowed");
    }

    #[test]
    fn marker_and_application_templates() {
        let mut p = FeedPolicy::new("urlhaus");
        p.row_policy = true;
        let (d, _) = apply_policy(&p, &[ioc(IndicatorType::DomainName, "a.example", 1)], now());
        assert_eq!(d[0].external_id.as_deref(), Some("iocsync:iocsync"), "externalId marker by default");
        assert_eq!(d[0].application, None, "application is unset by default");
        assert_eq!(d[0].description, "Imported by iocsync from urlhaus");

        p.application = Some("Blocked by Contoso: {type} from {feed}".into());
        p.marker = Some(Marker::new(MarkerField::Description, "team-a"));
        p.description = "y".repeat(5000);
        let mut row = ioc(IndicatorType::DomainName, "b.example", 2);
        row.attrs =
            Some(Box::new(SourceAttrs { description: Some("Row text".into()), ..Default::default() }));
        let (d, _) = apply_policy(&p, &[ioc(IndicatorType::DomainName, "a.example", 1), row], now());
        assert_eq!(d[0].application.as_deref(), Some("Blocked by Contoso: DomainName from urlhaus"));
        assert_eq!(d[0].external_id, None);
        assert_eq!(d[0].description.chars().count(), DESCRIPTION_MAX_CHARS, "the suffix counts in the limit");
        assert!(d[0].description.ends_with("… [iocsync:team-a]"));
        assert_eq!(d[1].description, "Row text [iocsync:team-a]", "kept across a row's own description");

        p.application = Some(String::new());
        p.marker = None;
        let (d, _) = apply_policy(&p, &[ioc(IndicatorType::DomainName, "a.example", 1)], now());
        assert_eq!((d[0].application.as_deref(), d[0].external_id.as_deref()), (None, None));
    }
}
