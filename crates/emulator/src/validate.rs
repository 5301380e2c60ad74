//! Request-body parsing and per-type validation of indicators (spec §4, §5, §7).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::config::{Behaviour, PastExpiration};
use crate::wire::CertificateInfo;

/// An API error before it is wrapped in the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }
}

/// Properties a client may write (case-sensitive).
const WRITABLE: &[&str] = &[
    "indicatorValue",
    "indicatorType",
    "action",
    "title",
    "description",
    "application",
    "expirationTime",
    "severity",
    "recommendedActions",
    "rbacGroupNames",
    "rbacGroupIds",
    "generateAlert",
    "educateUrl",
    "category",
    "mitreTechniques",
    "externalId",
    "bypassDurationHours",
    "notificationId",
    "notificationBody",
    "version",
    "certificateInfo",
    "historicalDetection",
    "lookBackPeriod",
    "additionalInfo",
];

/// Server-owned properties: accepted on input (e.g. an echoed entity) and ignored.
const SERVER_OWNED: &[&str] = &[
    "id",
    "createdBy",
    "createdByDisplayName",
    "createdBySource",
    "creationTimeDateTimeUtc",
    "lastUpdateTime",
    "lastUpdatedBy",
    "source",
    "sourceType",
];

/// The creatable indicator types.
pub(crate) const TYPES: &[&str] =
    &["FileSha1", "FileSha256", "FileMd5", "CertificateThumbprint", "IpAddress", "DomainName", "Url"];
const ACTIONS: &[&str] =
    &["Allowed", "Audit", "Warn", "Block", "BlockAndRemediate", "Alert", "AlertAndBlock"];
const SEVERITIES: &[&str] = &["Informational", "Low", "Medium", "High"];

/// A validated write request for one indicator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndicatorInput {
    pub value: String,
    pub itype: String,
    pub action: String,
    pub title: String,
    pub description: String,
    pub application: Option<String>,
    pub expiration: Option<DateTime<Utc>>,
    pub severity: String,
    pub recommended_actions: Option<String>,
    pub rbac_group_names: Vec<String>,
    pub rbac_group_ids: Vec<Value>,
    pub generate_alert: bool,
    pub educate_url: Option<String>,
    pub category: Option<i64>,
    pub mitre_techniques: Vec<String>,
    pub external_id: Option<String>,
    pub bypass_duration_hours: Option<serde_json::Number>,
    pub notification_id: Option<String>,
    pub notification_body: Option<String>,
    pub version: Option<String>,
    pub certificate_info: Option<CertificateInfo>,
    pub historical_detection: bool,
    pub look_back_period: Option<Value>,
    pub additional_info: Option<String>,
}

/// Checks that every key is known with the exact case; wrong case or unknown => `InvalidRequestBody`.
pub(crate) fn check_keys(
    obj: &Map<String, Value>,
    known: &[&str],
    ignored: &[&str],
    entity: &str,
) -> Result<(), ApiError> {
    for key in obj.keys() {
        if key.starts_with('@') || known.contains(&key.as_str()) || ignored.contains(&key.as_str()) {
            continue;
        }
        if let Some(right) = known.iter().chain(ignored).find(|k| k.eq_ignore_ascii_case(key)) {
            return Err(ApiError::bad(
                "InvalidRequestBody",
                format!("Property names are case-sensitive: '{key}' is not valid, did you mean '{right}'?"),
            ));
        }
        return Err(ApiError::bad(
            "InvalidRequestBody",
            format!(
                "The property '{key}' does not exist on type '{entity}'. Make sure to only use property names that are defined by the type."
            ),
        ));
    }
    Ok(())
}

fn type_err(key: &str, want: &str) -> ApiError {
    ApiError::bad("InvalidRequestBody", format!("Property '{key}' must be {want}."))
}

fn opt_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(type_err(key, "a string")),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(type_err(key, "a boolean")),
    }
}

fn str_list(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        // The docs type some lists as comma-separated strings; accept that form too.
        Some(Value::String(s)) => {
            Ok(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        }
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| type_err(key, "an array of strings")))
            .collect(),
        Some(_) => Err(type_err(key, "an array of strings")),
    }
}

fn enum_value(value: &str, allowed: &[&str], key: &str) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ApiError::bad(
            "InvalidRequestBody",
            format!("The value '{value}' is not valid for {key}. Valid values: {}.", allowed.join(", ")),
        ))
    }
}

/// Parses and validates one indicator body (E3 body or one E4 item).
pub(crate) fn parse_indicator(
    v: &Value,
    b: &Behaviour,
    now: DateTime<Utc>,
) -> Result<IndicatorInput, ApiError> {
    let Value::Object(obj) = v else {
        return Err(ApiError::bad("InvalidRequestBody", "The request body must be a JSON object."));
    };
    check_keys(obj, WRITABLE, SERVER_OWNED, "Indicator")?;
    // Type-check every present field first, so a wrong type is reported as InvalidRequestBody.
    let value = opt_str(obj, "indicatorValue")?;
    let itype = opt_str(obj, "indicatorType")?;
    let action = opt_str(obj, "action")?;
    let title = opt_str(obj, "title")?;
    let description = opt_str(obj, "description")?;
    let application = opt_str(obj, "application")?;
    let expiration_raw = opt_str(obj, "expirationTime")?;
    let severity = opt_str(obj, "severity")?;
    let recommended_actions = opt_str(obj, "recommendedActions")?;
    let rbac_group_names = str_list(obj, "rbacGroupNames")?;
    let rbac_group_ids = match obj.get("rbacGroupIds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.iter().all(|x| x.is_string() || x.is_number()) => a.clone(),
        Some(_) => return Err(type_err("rbacGroupIds", "an array of ids")),
    };
    let generate_alert = opt_bool(obj, "generateAlert")?;
    let educate_url = opt_str(obj, "educateUrl")?;
    let category = match obj.get("category") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(|| type_err("category", "an integer"))?),
        Some(_) => return Err(type_err("category", "an integer")),
    };
    let mitre_techniques = str_list(obj, "mitreTechniques")?;
    let external_id = opt_str(obj, "externalId")?;
    let bypass_duration_hours = match obj.get("bypassDurationHours") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.clone()),
        Some(_) => return Err(type_err("bypassDurationHours", "a number")),
    };
    let notification_id = opt_str(obj, "notificationId")?;
    let notification_body = opt_str(obj, "notificationBody")?;
    let version = opt_str(obj, "version")?;
    let certificate_info = match obj.get("certificateInfo") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(
            serde_json::from_value::<CertificateInfo>(v.clone())
                .map_err(|_| type_err("certificateInfo", "an object {issuer, serial, subject, sha256}"))?,
        ),
        Some(_) => return Err(type_err("certificateInfo", "an object")),
    };
    let historical_detection = opt_bool(obj, "historicalDetection")?.unwrap_or(false);
    let look_back_period = obj.get("lookBackPeriod").filter(|v| !v.is_null()).cloned();
    let additional_info = opt_str(obj, "additionalInfo")?;

    let missing = |k: &str| ApiError::bad("MissingRequiredParameter", format!("Parameter {k} is missing"));
    let value = value.ok_or_else(|| missing("indicatorValue"))?;
    let itype = itype.ok_or_else(|| missing("indicatorType"))?;
    let action = action.ok_or_else(|| missing("action"))?;
    let title = title.ok_or_else(|| missing("title"))?;
    let description = description.ok_or_else(|| missing("description"))?;

    if itype == "WebCategory" {
        return Err(ApiError::bad(
            "InvalidInput",
            "Indicator type WebCategory cannot be created through the API.",
        ));
    }
    enum_value(&itype, TYPES, "indicatorType")?;
    enum_value(&action, ACTIONS, "action")?;
    let severity = severity.unwrap_or_else(|| "Informational".to_owned());
    enum_value(&severity, SEVERITIES, "severity")?;
    if value.trim().is_empty() {
        return Err(ApiError::bad("InvalidInput", "Recieved an empty indicator value."));
    }
    validate_value(&itype, &value, b)?;
    if let Some(groups) = &b.known_device_groups
        && let Some(unknown) = rbac_group_names.iter().find(|n| !groups.contains(n))
    {
        return Err(ApiError::bad(
            "InvalidInput",
            format!("Device group '{unknown}' does not exist in this tenant."),
        ));
    }
    check_action(&itype, &action, b)?;
    if action == "Audit" && generate_alert != Some(true) {
        return Err(ApiError::bad("BadRequest", "generateAlert must be true when action is Audit."));
    }
    let expiration = match expiration_raw {
        None => None,
        Some(s) => {
            let t = crate::clock::parse_ts(&s).ok_or_else(|| {
                ApiError::bad(
                    "InvalidRequestBody",
                    format!("expirationTime '{s}' is not a valid ISO 8601 UTC date-time."),
                )
            })?;
            // Stored and echoed at second precision.
            let t = DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t);
            if t <= now && b.past_expiration == PastExpiration::Reject {
                return Err(ApiError::bad("InvalidInput", format!("expirationTime {s} is in the past.")));
            }
            Some(t)
        }
    };
    Ok(IndicatorInput {
        value,
        itype,
        action,
        title,
        description,
        application,
        expiration,
        severity,
        recommended_actions,
        rbac_group_names,
        rbac_group_ids,
        generate_alert: generate_alert.unwrap_or(false),
        educate_url,
        category,
        mitre_techniques,
        external_id,
        bypass_duration_hours,
        notification_id,
        notification_body,
        version,
        certificate_info,
        historical_detection,
        look_back_period,
        additional_info,
    })
}

/// The model-binding failure of one import item, if any (§13.7): a wrong field type, an unknown
/// or wrong-case property, an unknown enum value, an unparseable date, or a string field longer
/// than [`crate::MAX_FIELD_LEN`] characters. Value validation (a bad hash, a private IP) is not
/// model binding and stays per item.
pub(crate) fn binding_error(v: &Value, b: &Behaviour, now: DateTime<Utc>) -> Option<ApiError> {
    if let Value::Object(obj) = v
        && let Some((key, s)) = obj.iter().find_map(|(k, x)| {
            x.as_str().filter(|s| s.chars().count() > crate::MAX_FIELD_LEN).map(|s| (k, s))
        })
    {
        return Some(ApiError::bad(
            "InvalidRequestBody",
            format!(
                "The field {key} must be a string with a maximum length of {}; got {} characters.",
                crate::MAX_FIELD_LEN,
                s.chars().count()
            ),
        ));
    }
    match parse_indicator(v, b, now) {
        Err(e) if e.code == "InvalidRequestBody" => Some(e),
        _ => None,
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// Validates the value for its type (spec §5).
pub(crate) fn validate_value(itype: &str, value: &str, b: &Behaviour) -> Result<(), ApiError> {
    let hash = |len: usize, name: &str| {
        if is_hex(value, len) {
            Ok(())
        } else {
            Err(ApiError::bad(
                "InvalidHashValue",
                format!("{name} value '{value}' is invalid: expected {len} hex characters."),
            ))
        }
    };
    match itype {
        "FileSha1" => hash(40, "SHA-1"),
        "FileSha256" => hash(64, "SHA-256"),
        "FileMd5" => hash(32, "MD5"),
        "CertificateThumbprint" => hash(40, "Certificate thumbprint"),
        "IpAddress" => validate_ip(value, b),
        "DomainName" => validate_domain(value),
        "Url" => validate_url(value),
        _ => Err(ApiError::bad("InvalidRequestBody", format!("Unknown indicatorType '{itype}'."))),
    }
}

fn validate_ip(value: &str, b: &Behaviour) -> Result<(), ApiError> {
    let invalid =
        |why: &str| ApiError::bad("InvalidIpAddress", format!("IP address {value} is invalid. {why}"));
    if value.contains('/') {
        return Err(invalid("CIDR ranges are not supported; submit single addresses."));
    }
    let ip: IpAddr = value.parse().map_err(|_| invalid("Expected one IPv4 or IPv6 address."))?;
    if b.refuse_compressed_ipv6 && ip.is_ipv6() && (value.contains("::") || value.split(':').count() != 8) {
        return Err(invalid("Specify all 8 segments of an IPv6 address."));
    }
    if is_private(ip, b.documentation_ranges_private) {
        return Err(invalid("Only external IP addresses are allowed."));
    }
    Ok(())
}

/// Private/reserved per spec §5: RFC1918, loopback, link-local, CGNAT, ULA, multicast, unspecified,
/// broadcast; documentation ranges only when the switch says so.
pub(crate) fn is_private(ip: IpAddr, documentation_private: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4, documentation_private),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4, documentation_private);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (documentation_private && s[0] == 0x2001 && s[1] == 0x0db8)
                || v6 == Ipv6Addr::LOCALHOST
        }
    }
}

fn is_private_v4(v4: Ipv4Addr, documentation_private: bool) -> bool {
    let o = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (documentation_private && v4.is_documentation())
}

fn validate_domain(value: &str) -> Result<(), ApiError> {
    let invalid =
        |why: &str| ApiError::bad("InvalidDomainName", format!("Domain name {value} is invalid. {why}"));
    if value.contains("://") || value.contains('/') {
        return Err(invalid("Submit a bare domain name without scheme or path."));
    }
    if value.len() > 253 {
        return Err(invalid("It is longer than 253 characters."));
    }
    let labels: Vec<&str> = value.split('.').collect();
    if labels.len() < 2 {
        return Err(invalid("Expected a fully qualified domain name such as example.com."));
    }
    for label in labels {
        let ok = !label.is_empty()
            && label.chars().count() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(invalid("Labels must be 1-63 letters, digits, '-' or '_' (no spaces or wildcards)."));
        }
    }
    Ok(())
}

fn validate_url(value: &str) -> Result<(), ApiError> {
    let invalid = |why: &str| ApiError::bad("InvalidUrl", format!("URL {value} is invalid. {why}"));
    if value.chars().any(char::is_whitespace) {
        return Err(invalid("It contains whitespace."));
    }
    let lower = value.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(invalid("It must start with http:// or https://."));
    }
    let url = url::Url::parse(value).map_err(|e| invalid(&format!("{e}.")))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("It has no host."));
    }
    Ok(())
}

fn is_file(itype: &str) -> bool {
    matches!(itype, "FileSha1" | "FileSha256" | "FileMd5")
}

/// The action x type matrix (spec §7) with the uncertain cells switchable.
pub(crate) fn check_action(itype: &str, action: &str, b: &Behaviour) -> Result<(), ApiError> {
    let refuse = || {
        ApiError::bad("InvalidInput", format!("Action {action} is not supported for indicator type {itype}."))
    };
    if matches!(action, "Alert" | "AlertAndBlock") {
        return if b.accept_legacy_actions {
            Ok(())
        } else {
            Err(ApiError::bad(
                "InvalidInput",
                format!(
                    "Action {action} is deprecated; use Audit (with generateAlert=true) or BlockAndRemediate."
                ),
            ))
        };
    }
    let ok = match itype {
        "CertificateThumbprint" => matches!(action, "Allowed" | "BlockAndRemediate"),
        t if is_file(t) => action != "Warn" || b.warn_on_files,
        "Url" => action != "BlockAndRemediate" || b.block_and_remediate_on_url,
        _ => action != "BlockAndRemediate",
    };
    if ok { Ok(()) } else { Err(refuse()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        crate::clock::parse_ts("2025-06-01T00:00:00Z").unwrap()
    }

    fn base(t: &str, v: &str, a: &str) -> Value {
        json!({"indicatorType": t, "indicatorValue": v, "action": a, "title": "t", "description": "d"})
    }

    fn code(v: &Value) -> &'static str {
        parse_indicator(v, &Behaviour::default(), now()).unwrap_err().code
    }

    #[test]
    fn per_type_codes() {
        assert_eq!(code(&base("FileSha1", "abc", "Block")), "InvalidHashValue");
        assert_eq!(code(&base("FileSha256", &"g".repeat(64), "Block")), "InvalidHashValue");
        assert_eq!(code(&base("IpAddress", "10.1.2.3", "Block")), "InvalidIpAddress");
        assert_eq!(code(&base("IpAddress", "8.8.8.0/24", "Block")), "InvalidIpAddress");
        assert_eq!(code(&base("IpAddress", "100.64.0.1", "Block")), "InvalidIpAddress");
        assert_eq!(code(&base("IpAddress", "fe80::1", "Block")), "InvalidIpAddress");
        assert_eq!(code(&base("DomainName", "http://x.com", "Block")), "InvalidDomainName");
        assert_eq!(code(&base("DomainName", "bad domain.com", "Block")), "InvalidDomainName");
        assert_eq!(code(&base("Url", "example.com/x", "Block")), "InvalidUrl");
        assert_eq!(code(&base("IpAddress", " ", "Block")), "InvalidInput");
        let strict = Behaviour { refuse_compressed_ipv6: true, ..Behaviour::default() };
        assert!(validate_value("IpAddress", "2001:4860:4860::8888", &strict).is_err());
        assert!(validate_value("IpAddress", "2001:4860:4860:0:0:0:0:8888", &strict).is_ok());
        assert!(validate_value("IpAddress", "8.8.8.8", &strict).is_ok());
        assert!(validate_value("IpAddress", "2001:4860:4860::8888", &Behaviour::default()).is_ok());
        assert_eq!(code(&base("Nope", "x", "Block")), "InvalidRequestBody");
        assert_eq!(code(&base("Url", "https://x.example/a", "Explode")), "InvalidRequestBody");
    }

    #[test]
    fn valid_values_pass() {
        let b = Behaviour::default();
        for (t, v) in [
            ("FileMd5", "5d41402abc4b2a76b9719d911017c592"),
            ("FileSha1", "AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D"),
            ("IpAddress", "203.0.113.77"),
            ("IpAddress", "2001:4860:4860:0:0:0:0:8888"),
            ("DomainName", "bad.example"),
            ("Url", "https://evil.example/path?q=1"),
        ] {
            parse_indicator(&base(t, v, "Block"), &b, now()).unwrap();
        }
        let doc = Behaviour { documentation_ranges_private: true, ..Behaviour::default() };
        assert!(parse_indicator(&base("IpAddress", "203.0.113.77", "Block"), &doc, now()).is_err());
    }

    #[test]
    fn matrix_and_switches() {
        assert_eq!(code(&base("DomainName", "a.example", "BlockAndRemediate")), "InvalidInput");
        assert_eq!(code(&base("CertificateThumbprint", &"a".repeat(40), "Block")), "InvalidInput");
        assert_eq!(code(&base("FileMd5", &"a".repeat(32), "Alert")), "InvalidInput");
        let b = Behaviour {
            block_and_remediate_on_url: true,
            accept_legacy_actions: true,
            ..Behaviour::default()
        };
        parse_indicator(&base("Url", "https://a.example/", "BlockAndRemediate"), &b, now()).unwrap();
        parse_indicator(&base("FileMd5", &"a".repeat(32), "Alert"), &b, now()).unwrap();
        let nowarn = Behaviour { warn_on_files: false, ..Behaviour::default() };
        assert!(parse_indicator(&base("FileMd5", &"a".repeat(32), "Warn"), &nowarn, now()).is_err());
        parse_indicator(&base("FileMd5", &"a".repeat(32), "Warn"), &Behaviour::default(), now()).unwrap();
    }

    #[test]
    fn audit_needs_generate_alert() {
        assert_eq!(code(&base("FileMd5", &"a".repeat(32), "Audit")), "BadRequest");
        let mut v = base("FileMd5", &"a".repeat(32), "Audit");
        v["generateAlert"] = json!(true);
        parse_indicator(&v, &Behaviour::default(), now()).unwrap();
    }

    #[test]
    fn case_sensitive_keys_and_missing() {
        let v = json!({"IndicatorValue": "8.8.8.8", "indicatorType": "IpAddress", "action": "Block", "title": "t", "description": "d"});
        assert_eq!(code(&v), "InvalidRequestBody");
        let v = json!({"indicatorType": "IpAddress", "action": "Block", "title": "t", "description": "d"});
        assert_eq!(code(&v), "MissingRequiredParameter");
        let v = json!({"indicatorValue": "8.8.8.8", "indicatorType": "IpAddress", "action": "Block", "title": "t"});
        assert_eq!(code(&v), "MissingRequiredParameter");
    }

    #[test]
    fn expiration_second_precision_and_past() {
        let mut v = base("IpAddress", "8.8.8.8", "Block");
        v["expirationTime"] = json!("2026-01-31T00:00:00.987Z");
        let i = parse_indicator(&v, &Behaviour::default(), now()).unwrap();
        assert_eq!(i.expiration.unwrap().timestamp_subsec_nanos(), 0);
        v["expirationTime"] = json!("2020-01-01T00:00:00Z");
        assert!(parse_indicator(&v, &Behaviour::default(), now()).is_ok());
        let reject = Behaviour { past_expiration: PastExpiration::Reject, ..Behaviour::default() };
        assert_eq!(parse_indicator(&v, &reject, now()).unwrap_err().code, "InvalidInput");
    }
}
