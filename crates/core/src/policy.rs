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
        }
    }
}

/// Applies `policy` to a feed's accepted values at time `now`.
///
/// Per value: source attributes (portal CSV rows) override the policy field by field; an
/// unparseable action or severity there gives `invalid-value`; an action the type does not take
/// gives `action-not-allowed`; `Audit` forces `generate_alert`; the expiry is the earliest of
/// `now + expire_days`, the source's `valid_until` and the row's own expiration, at whole seconds
/// (an expiry not in the future gives `invalid-value`). Output order follows input order.
pub fn apply_policy(policy: &FeedPolicy, iocs: &[Ioc], now: DateTime<Utc>) -> (Vec<Desired>, Vec<Skip>) {
    let mut out = Vec::with_capacity(iocs.len());
    let mut skips = Vec::new();
    let now_s = trunc_secs(now);
    let default_expiry = now_s + Duration::days(i64::from(policy.expire_days));
    let mut rbac = policy.rbac_groups.clone();
    sort_dedup(&mut rbac);
    let mut mitre = policy.mitre_techniques.clone();
    sort_dedup(&mut mitre);
    for ioc in iocs {
        match apply_one(policy, ioc, now_s, default_expiry, &rbac, &mitre) {
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
    (out, skips)
}

fn apply_one(
    policy: &FeedPolicy,
    ioc: &Ioc,
    now: DateTime<Utc>,
    default_expiry: DateTime<Utc>,
    rbac: &[String],
    mitre: &[String],
) -> Result<Desired, (Reason, String)> {
    let attrs = ioc.attrs.as_deref();
    let action = match attrs.and_then(|a| a.action.as_deref()).filter(|s| !s.trim().is_empty()) {
        Some(s) => Action::from_tenant(s).ok_or_else(|| {
            (
                Reason::InvalidValue,
                format!(
                    "unknown action `{s}` (expected one of: Allowed, Audit, Warn, Block, BlockAndRemediate)"
                ),
            )
        })?,
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
    let generate_alert =
        action == Action::Audit || attrs.and_then(|a| a.generate_alert).unwrap_or(policy.generate_alert);
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
    let educate_url =
        if ioc.kind.is_network() { policy.educate_url.clone().filter(|s| !s.is_empty()) } else { None };
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
    fn bad_attr_action_or_severity_is_invalid_value() {
        let p = FeedPolicy::new("portal");
        let mut a = ioc(IndicatorType::DomainName, "a.example", 1);
        a.attrs = Some(Box::new(SourceAttrs { action: Some("Nuke".into()), ..Default::default() }));
        let mut b = ioc(IndicatorType::DomainName, "b.example", 2);
        b.attrs = Some(Box::new(SourceAttrs { severity: Some("Critical".into()), ..Default::default() }));
        let (d, s) = apply_policy(&p, &[a, b], now());
        assert!(d.is_empty());
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|s| s.reason == Reason::InvalidValue));
        assert!(s[0].detail.as_deref().unwrap().contains("Nuke"));
        assert!(s[1].detail.as_deref().unwrap().contains("Critical"));
    }

    #[test]
    fn valid_until_caps_and_past_expiry_skips() {
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
    fn educate_url_only_on_network_kinds() {
        let mut p = FeedPolicy::new("f");
        p.educate_url = Some("https://intranet.example/why".into());
        let (d, _) = apply_policy(
            &p,
            &[
                ioc(IndicatorType::Url, "https://evil.example/", 1),
                ioc(IndicatorType::FileSha1, &"d".repeat(40), 2),
            ],
            now(),
        );
        assert!(d[0].educate_url.is_some());
        assert!(d[1].educate_url.is_none());
    }

    #[test]
    fn marker_and_application_templates() {
        let mut p = FeedPolicy::new("urlhaus");
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
