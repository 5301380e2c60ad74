//! Builders shared by the unit tests.

use crate::model::{Action, Desired, Severity};
use chrono::{DateTime, TimeZone, Utc};
use iocsync_ioc::IndicatorType;

/// The fixed clock of the unit tests.
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

/// A desired indicator with plain metadata, expiring 30 days after [`t0`].
pub(crate) fn desired(kind: IndicatorType, value: &str, action: Action) -> Desired {
    Desired {
        kind,
        value: value.to_owned(),
        action,
        severity: Severity::High,
        title: format!("feed: {value}"),
        description: "Imported by iocsync from feed".to_owned(),
        recommended_actions: None,
        rbac_groups: Vec::new(),
        generate_alert: true,
        category: None,
        mitre_techniques: Vec::new(),
        educate_url: None,
        application: None,
        external_id: Some("iocsync:iocsync".to_owned()),
        expiration: t0() + chrono::Duration::days(30),
        priority: 0,
        recency: 0,
        feeds: vec!["feed".to_owned()],
    }
}
