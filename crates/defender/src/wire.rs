//! Wire types of the Defender Indicators API (spec §3, §4), written from the spec and lenient
//! on input: unknown keys are ignored, ids and group ids may be numbers or strings, `null`
//! lists read as empty, unparseable timestamps read as `None`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Indicator actions, current and legacy (spec §7).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Allow (never block).
    Allowed,
    /// Detect and alert only.
    Audit,
    /// Warn the user (bypassable).
    Warn,
    /// Block execution / connection.
    Block,
    /// Block and remediate (files, certificates).
    BlockAndRemediate,
    /// Legacy: now `Audit` with `generateAlert=true`. Read only, never sent.
    Alert,
    /// Legacy: now `BlockAndRemediate`. Read only, never sent.
    AlertAndBlock,
    /// A value this client does not know (kept verbatim).
    Other(String),
}

impl Action {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Allowed => "Allowed",
            Action::Audit => "Audit",
            Action::Warn => "Warn",
            Action::Block => "Block",
            Action::BlockAndRemediate => "BlockAndRemediate",
            Action::Alert => "Alert",
            Action::AlertAndBlock => "AlertAndBlock",
            Action::Other(s) => s,
        }
    }

    /// Parse a wire name (exact, case-insensitive fallback); unknown names become `Other`.
    pub fn parse(s: &str) -> Action {
        const KNOWN: [Action; 7] = [
            Action::Allowed,
            Action::Audit,
            Action::Warn,
            Action::Block,
            Action::BlockAndRemediate,
            Action::Alert,
            Action::AlertAndBlock,
        ];
        KNOWN
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .unwrap_or_else(|| Action::Other(s.to_owned()))
    }

    /// The current action a legacy one stands for (`Alert` -> `Audit`, `AlertAndBlock` ->
    /// `BlockAndRemediate`); other actions unchanged.
    pub fn current(&self) -> Action {
        match self {
            Action::Alert => Action::Audit,
            Action::AlertAndBlock => Action::BlockAndRemediate,
            a => a.clone(),
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        Ok(s.map_or_else(|| Action::Other(String::new()), |s| Action::parse(&s)))
    }
}

impl Default for Action {
    fn default() -> Self {
        Action::Other(String::new())
    }
}

/// One indicator as Defender returns it (every key of spec §4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Indicator {
    /// Server-assigned id (decimal integer as a string).
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// The value (hash, IP, domain, URL, thumbprint).
    #[serde(deserialize_with = "null_string")]
    pub indicator_value: String,
    /// `FileSha1`, `FileSha256`, `FileMd5`, `CertificateThumbprint`, `IpAddress`, `DomainName`,
    /// `Url` (or anything else the tenant holds, e.g. `WebCategory`).
    #[serde(deserialize_with = "null_string")]
    pub indicator_type: String,
    /// Action, legacy values included.
    pub action: Action,
    /// Alert title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Application tag given at creation (create-only).
    pub application: Option<String>,
    /// Expiry; `None` = never expires (or unparseable).
    #[serde(deserialize_with = "lenient_time", serialize_with = "ser_time")]
    pub expiration_time: Option<DateTime<Utc>>,
    /// `Informational`, `Low`, `Medium`, `High`.
    pub severity: Option<String>,
    /// Recommended actions text.
    pub recommended_actions: Option<String>,
    /// Device-group names; empty = all devices.
    #[serde(deserialize_with = "string_list")]
    pub rbac_group_names: Vec<String>,
    /// Device-group ids (numbers or strings on the wire), as strings; empty = all devices.
    #[serde(deserialize_with = "string_list")]
    pub rbac_group_ids: Vec<String>,
    /// Whether an alert is generated.
    pub generate_alert: Option<bool>,
    /// Custom notification link for Block/Warn.
    pub educate_url: Option<String>,
    /// Category (undocumented number mapping), kept raw.
    pub category: Option<serde_json::Value>,
    /// MITRE ATT&CK technique ids.
    #[serde(deserialize_with = "string_list")]
    pub mitre_techniques: Vec<String>,
    /// Caller correlation id.
    pub external_id: Option<String>,
    /// Warn bypass duration.
    pub bypass_duration_hours: Option<f64>,
    /// Notification id.
    pub notification_id: Option<String>,
    /// Notification body.
    pub notification_body: Option<String>,
    /// Version (create-only).
    pub version: Option<serde_json::Value>,
    /// Certificate details for `CertificateThumbprint`, kept raw.
    pub certificate_info: Option<serde_json::Value>,
    /// Historical detection flag.
    pub historical_detection: Option<bool>,
    /// Look-back period, kept raw.
    pub look_back_period: Option<serde_json::Value>,
    /// Additional info.
    pub additional_info: Option<String>,
    /// App id (API) or UPN (portal) of the creator.
    pub created_by: Option<String>,
    /// Creator display name.
    pub created_by_display_name: Option<String>,
    /// Channel: `PublicApi`, `Portal`, ...
    pub created_by_source: Option<String>,
    /// Creation time.
    #[serde(deserialize_with = "lenient_time", serialize_with = "ser_time")]
    pub creation_time_date_time_utc: Option<DateTime<Utc>>,
    /// Last update time.
    #[serde(deserialize_with = "lenient_time", serialize_with = "ser_time")]
    pub last_update_time: Option<DateTime<Utc>>,
    /// Last updater, `None` until the first update.
    pub last_updated_by: Option<String>,
    /// Legacy `source` (2020 captures).
    pub source: Option<String>,
    /// Legacy `sourceType` (2020 captures).
    pub source_type: Option<String>,
}

impl Indicator {
    /// True when this indicator was created by `client_id` (case-insensitive GUID compare) and
    /// carries iocsync's marker for `owner_tag` (`externalId == "iocsync:{owner_tag}"`, a
    /// ` [iocsync:{owner_tag}]` description suffix, or the legacy `application == owner_tag`):
    /// the ownership rule of DESIGN.md, [`iocsync_core::marker::is_owned`].
    pub fn is_owned_by(&self, client_id: &str, owner_tag: &str) -> bool {
        iocsync_core::marker::is_owned(self.ownership_fields(), client_id, owner_tag)
    }

    /// The fields that decide ownership, for [`iocsync_core::marker`].
    pub fn ownership_fields(&self) -> iocsync_core::marker::OwnershipFields<'_> {
        iocsync_core::marker::OwnershipFields {
            created_by: self.created_by.as_deref(),
            external_id: self.external_id.as_deref(),
            description: self.description.as_deref(),
            application: self.application.as_deref(),
        }
    }
}

/// One item of an import (`POST /api/indicators/import`): the writable fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImportItem {
    /// The value.
    pub indicator_value: String,
    /// Indicator type wire name.
    pub indicator_type: String,
    /// Action (never a legacy one).
    pub action: Action,
    /// Alert title (required).
    pub title: String,
    /// Description (required).
    pub description: String,
    /// User-facing text shown in block notifications in place of the blocked file or domain
    /// (create-only: Defender ignores it on update). Never iocsync's owner tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Expiry, sent at second precision.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_time",
        deserialize_with = "lenient_time"
    )]
    pub expiration_time: Option<DateTime<Utc>>,
    /// Severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Recommended actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommended_actions: Option<String>,
    /// Device-group names; empty = all devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rbac_group_names: Vec<String>,
    /// Generate an alert (must be true for `Audit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_alert: Option<bool>,
    /// Custom notification link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub educate_url: Option<String>,
    /// MITRE technique ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mitre_techniques: Vec<String>,
    /// Caller correlation id: iocsync's ownership marker `iocsync:{owner_tag}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Import request body: `{"Indicators": [...]}` (capital I on the wire).
#[derive(Debug, Serialize)]
pub struct ImportRequest<'a> {
    /// The items, at most 500.
    #[serde(rename = "Indicators")]
    pub indicators: &'a [ImportItem],
}

/// Result of one submitted import item, in submission order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImportOutcome {
    /// Id of the created or updated indicator (`None` when failed).
    #[serde(deserialize_with = "opt_string_or_number")]
    pub id: Option<String>,
    /// The value the result refers to.
    #[serde(deserialize_with = "null_string")]
    pub indicator: String,
    /// True when Defender refused this item.
    pub is_failed: bool,
    /// Why (free text), when failed.
    pub failure_reason: Option<String>,
    /// How the client learned of the failure (not on the wire): see [`FailureOrigin`].
    #[serde(skip)]
    pub origin: FailureOrigin,
}

/// How the client learned that an import item failed; decides whether a retry can help.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FailureOrigin {
    /// Defender's per-item result (`isFailed` in a 200): a bad value, or a full tenant.
    #[default]
    ItemResult,
    /// Defender refused a request holding only this item with a 400 (found by splitting a batch
    /// refused as a whole, spec §13.7): the item itself is bad; resending it unchanged fails again.
    RequestRefused,
    /// Not judged by Defender: the split budget ran out, or Defender returned no result for it.
    /// The next run retries it.
    NotJudged,
}

/// Import response body: `{"value": [...]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ImportResponse {
    pub(crate) value: Vec<ImportOutcome>,
}

/// BatchDelete request body: `{"IndicatorIds": [...]}`.
#[derive(Debug, Serialize)]
pub(crate) struct BatchDeleteRequest<'a> {
    #[serde(rename = "IndicatorIds")]
    pub(crate) indicator_ids: &'a [String],
}

/// One page of a list: `{"value": [...], "@odata.nextLink": "..."}`. Rows are kept as JSON
/// and read one by one with [`parse_row`], so one odd row never fails the page.
#[derive(Debug, Deserialize)]
pub(crate) struct ListPage {
    pub(crate) value: Vec<serde_json::Value>,
    #[serde(rename = "@odata.nextLink", default)]
    pub(crate) next_link: Option<String>,
}

/// Defender error envelope `{"error": {"code", "message", "target"}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub(crate) error: ErrorBody,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ErrorBody {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) target: Option<String>,
}

/// JSON shape a known [`Indicator`] key must have; anything else is coerced by [`parse_row`].
#[derive(Clone, Copy)]
enum Shape {
    /// A string (numbers and booleans keep their text; objects and arrays become null).
    Text,
    /// A boolean (`"true"`/`"false"` read as such; anything else null).
    Bool,
    /// A number (a numeric string read as such; anything else null).
    Number,
    /// A list of strings or numbers (a string stays: it is read as comma-separated).
    List,
    /// Kept raw, whatever it is.
    Raw,
}

const SHAPES: &[(&str, Shape)] = &[
    ("id", Shape::Text),
    ("indicatorValue", Shape::Text),
    ("indicatorType", Shape::Text),
    ("action", Shape::Text),
    ("title", Shape::Text),
    ("description", Shape::Text),
    ("application", Shape::Text),
    ("expirationTime", Shape::Raw),
    ("severity", Shape::Text),
    ("recommendedActions", Shape::Text),
    ("rbacGroupNames", Shape::List),
    ("rbacGroupIds", Shape::List),
    ("generateAlert", Shape::Bool),
    ("educateUrl", Shape::Text),
    ("category", Shape::Raw),
    ("mitreTechniques", Shape::List),
    ("externalId", Shape::Text),
    ("bypassDurationHours", Shape::Number),
    ("notificationId", Shape::Text),
    ("notificationBody", Shape::Text),
    ("version", Shape::Raw),
    ("certificateInfo", Shape::Raw),
    ("historicalDetection", Shape::Bool),
    ("lookBackPeriod", Shape::Raw),
    ("additionalInfo", Shape::Text),
    ("createdBy", Shape::Text),
    ("createdByDisplayName", Shape::Text),
    ("createdBySource", Shape::Text),
    ("creationTimeDateTimeUtc", Shape::Raw),
    ("lastUpdateTime", Shape::Raw),
    ("lastUpdatedBy", Shape::Text),
    ("source", Shape::Text),
    ("sourceType", Shape::Text),
];

fn coerce(v: serde_json::Value, shape: Shape) -> serde_json::Value {
    use serde_json::Value as V;
    match (shape, v) {
        (Shape::Raw, v) => v,
        (Shape::Text, v @ (V::String(_) | V::Null)) => v,
        (Shape::Text, V::Number(n)) => V::String(n.to_string()),
        (Shape::Text, V::Bool(b)) => V::String(b.to_string()),
        (Shape::Bool, v @ (V::Bool(_) | V::Null)) => v,
        (Shape::Bool, V::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => V::Bool(true),
            "false" => V::Bool(false),
            _ => V::Null,
        },
        (Shape::Number, v @ (V::Number(_) | V::Null)) => v,
        (Shape::Number, V::String(s)) => {
            s.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(V::Null, V::Number)
        }
        (Shape::List, V::Array(items)) => {
            V::Array(items.into_iter().filter(|i| i.is_string() || i.is_number()).collect())
        }
        (Shape::List, v @ (V::String(_) | V::Null)) => v,
        (Shape::List, V::Number(n)) => V::Array(vec![V::Number(n)]),
        _ => V::Null,
    }
}

/// Read one listed row leniently (spec §4 [OBS]: rows made elsewhere may carry odd types): a
/// known key with an unexpected JSON type is coerced (a number or boolean keeps its text where a
/// string belongs; anything unreadable becomes `None`/empty), unknown keys are ignored. `None`
/// only for a row that is not a JSON object at all.
pub(crate) fn parse_row(row: serde_json::Value) -> Option<Indicator> {
    let serde_json::Value::Object(mut obj) = row else {
        return None;
    };
    for (key, shape) in SHAPES {
        if let Some(v) = obj.get_mut(*key) {
            *v = coerce(std::mem::take(v), *shape);
        }
    }
    let row = serde_json::Value::Object(obj);
    match serde_json::from_value::<Indicator>(row.clone()) {
        Ok(i) => Some(i),
        // A key this table does not know yet has a type the struct refuses: keep what reads.
        Err(_) => {
            let serde_json::Value::Object(obj) = row else { return None };
            let known: serde_json::Map<String, serde_json::Value> =
                obj.into_iter().filter(|(k, _)| SHAPES.iter().any(|(s, _)| s == k)).collect();
            serde_json::from_value(serde_json::Value::Object(known)).ok()
        }
    }
}

fn ser_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None => s.serialize_none(),
    }
}

fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => parse_time(&s),
        _ => None,
    })
}

/// Parse an ISO 8601 timestamp as Defender writes it (RFC 3339, or without offset = UTC).
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_string_or_number(d)?.unwrap_or_default())
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn null_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// A list of strings or numbers, `null`, or a comma-separated string.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .filter_map(|i| match i {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(serde_json::Value::String(s)) => {
            s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_ENTITY: &str = r#"{
      "id": "5143", "indicatorValue": "203.0.113.77", "indicatorType": "IpAddress", "action": "Block",
      "createdBy": "6b6c7a1e-0d1f-4c4e-9a55-2f0e3c1d9b10", "severity": "High", "category": 1,
      "application": null, "educateUrl": null, "bypassDurationHours": null,
      "title": "C2 node from feed X", "description": "Seen beaconing in campaign Y",
      "recommendedActions": "Isolate host and review connections",
      "creationTimeDateTimeUtc": "2025-11-03T10:15:22.1234567Z", "expirationTime": "2026-01-31T00:00:00Z",
      "lastUpdateTime": "2025-11-03T10:15:22.1302211Z", "lastUpdatedBy": null, "rbacGroupNames": [],
      "rbacGroupIds": [], "notificationId": null, "notificationBody": null, "version": null,
      "mitreTechniques": [], "historicalDetection": false, "lookBackPeriod": null, "generateAlert": true,
      "additionalInfo": null, "createdByDisplayName": "TI-Sync-Prod", "externalId": "feedx:ip:203.0.113.77",
      "createdBySource": "PublicApi", "certificateInfo": null, "someFutureField": {"x": 1}
    }"#;

    #[test]
    fn parses_the_spec_entity() {
        let i: Indicator = serde_json::from_str(SPEC_ENTITY).unwrap();
        assert_eq!(i.id, "5143");
        assert_eq!(i.indicator_type, "IpAddress");
        assert_eq!(i.action, Action::Block);
        assert_eq!(i.expiration_time.unwrap().to_rfc3339(), "2026-01-31T00:00:00+00:00");
        assert_eq!(i.creation_time_date_time_utc.unwrap().timestamp_subsec_nanos(), 123_456_700);
        assert_eq!(i.generate_alert, Some(true));
        assert_eq!(i.created_by_display_name.as_deref(), Some("TI-Sync-Prod"));
        assert!(!i.is_owned_by("6b6c7a1e-0d1f-4c4e-9a55-2f0e3c1d9b10", "iocsync"));
    }

    #[test]
    fn tolerates_numbers_legacy_actions_and_nulls() {
        let i: Indicator = serde_json::from_str(
            r#"{"id": 994, "indicatorValue": "x", "indicatorType": "FileSha1", "action": "AlertAndBlock",
                "rbacGroupIds": [12, "13"], "rbacGroupNames": null, "mitreTechniques": null,
                "expirationTime": "garbage", "application": "iocsync",
                "createdBy": "ABC", "lastUpdateTime": "2025-11-03T10:15:22.1302211"}"#,
        )
        .unwrap();
        assert_eq!(i.id, "994");
        assert_eq!(i.action, Action::AlertAndBlock);
        assert_eq!(i.action.current(), Action::BlockAndRemediate);
        assert_eq!(i.rbac_group_ids, vec!["12", "13"]);
        assert!(i.rbac_group_names.is_empty());
        assert_eq!(i.expiration_time, None);
        assert!(i.last_update_time.is_some());
        assert!(i.is_owned_by("abc", "iocsync"));
        assert_eq!(Action::parse("alert"), Action::Alert);
        assert_eq!(Action::parse("Quarantine"), Action::Other("Quarantine".into()));
    }

    #[test]
    fn import_body_uses_capital_indicators_and_second_precision() {
        let item = ImportItem {
            indicator_value: "203.0.113.77".into(),
            indicator_type: "IpAddress".into(),
            action: Action::Block,
            title: "t".into(),
            description: "d".into(),
            application: Some("iocsync".into()),
            expiration_time: Some(parse_time("2026-01-31T00:00:00.987Z").unwrap()),
            generate_alert: Some(true),
            ..ImportItem::default()
        };
        let body = serde_json::to_value(ImportRequest { indicators: std::slice::from_ref(&item) }).unwrap();
        let first = &body["Indicators"][0];
        assert_eq!(first["indicatorValue"], "203.0.113.77");
        assert_eq!(first["expirationTime"], "2026-01-31T00:00:00Z");
        assert_eq!(first["action"], "Block");
        assert!(first.get("severity").is_none());
        assert!(first.get("rbacGroupNames").is_none());
    }

    #[test]
    fn rows_with_odd_types_parse_leniently() {
        let row = serde_json::json!({
            "id": 77, "indicatorValue": "x.example", "indicatorType": "DomainName", "action": "Block",
            "severity": 3, "rbacGroupNames": "x", "rbacGroupIds": 7, "expirationTime": 12,
            "generateAlert": "yes", "historicalDetection": "true", "bypassDurationHours": "2h",
            "title": 42, "createdByDisplayName": {}, "mitreTechniques": [1, {"id": "T1071"}, "T1566"],
            "createdBy": "analyst@contoso.example", "application": ["a"], "externalId": false
        });
        let i = parse_row(row).unwrap();
        assert_eq!(i.id, "77");
        assert_eq!(i.severity.as_deref(), Some("3"));
        assert_eq!(i.rbac_group_names, vec!["x"]);
        assert_eq!(i.rbac_group_ids, vec!["7"]);
        assert_eq!(i.expiration_time, None);
        assert_eq!(i.generate_alert, None);
        assert_eq!(i.historical_detection, Some(true));
        assert_eq!(i.bypass_duration_hours, None);
        assert_eq!(i.title.as_deref(), Some("42"));
        assert_eq!(i.created_by_display_name, None);
        assert_eq!(i.mitre_techniques, vec!["1", "T1566"]);
        assert_eq!(i.application, None);
        assert_eq!(i.external_id.as_deref(), Some("false"));
        assert_eq!(i.created_by.as_deref(), Some("analyst@contoso.example"));
        assert!(parse_row(serde_json::json!("not a row")).is_none());
        let spec: serde_json::Value = serde_json::from_str(SPEC_ENTITY).unwrap();
        assert_eq!(parse_row(spec).unwrap(), serde_json::from_str::<Indicator>(SPEC_ENTITY).unwrap());
    }

    #[test]
    fn import_outcome_tolerates_null_and_numeric_ids() {
        let r: ImportResponse = serde_json::from_str(
            r#"{"value":[{"id":"3107","indicator":"a","isFailed":false,"failureReason":null},
                          {"id":null,"indicator":"b","isFailed":true,"failureReason":"bad"},
                          {"id":12,"indicator":null,"isFailed":false}]}"#,
        )
        .unwrap();
        assert_eq!(r.value[0].id.as_deref(), Some("3107"));
        assert_eq!(r.value[1].id, None);
        assert!(r.value[1].is_failed);
        assert_eq!(r.value[2].id.as_deref(), Some("12"));
        assert_eq!(r.value[2].indicator, "");
    }
}
