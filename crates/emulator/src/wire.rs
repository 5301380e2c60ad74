//! Wire types of the Defender Indicators API, written from the spec (not shared with the client).

use serde::{Deserialize, Serialize};

/// One indicator exactly as the API returns it: every key present, `null` for unset scalars, `[]` for
/// unset lists (spec §4). Timestamps are kept as the wire strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Indicator {
    /// Server-assigned decimal id, increasing per tenant.
    pub id: String,
    /// The IoC value as submitted.
    pub indicator_value: String,
    /// `FileSha1`, `FileSha256`, `FileMd5`, `CertificateThumbprint`, `IpAddress`, `DomainName`, `Url`.
    pub indicator_type: String,
    /// `Allowed`, `Audit`, `Warn`, `Block`, `BlockAndRemediate` (or legacy values).
    pub action: String,
    /// App id (API) or UPN (portal) of the creator.
    pub created_by: String,
    /// `Informational`, `Low`, `Medium`, `High`.
    pub severity: String,
    /// Undocumented numeric category.
    pub category: Option<i64>,
    /// Free-form application tag; frozen after create.
    pub application: Option<String>,
    /// Custom notification link.
    pub educate_url: Option<String>,
    /// Warn bypass duration.
    pub bypass_duration_hours: Option<serde_json::Number>,
    /// Alert title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Recommended actions text.
    pub recommended_actions: Option<String>,
    /// Creation time, 7 fractional digits.
    pub creation_time_date_time_utc: String,
    /// Expiration time at second precision, or null for never.
    pub expiration_time: Option<String>,
    /// Last update time, 7 fractional digits.
    pub last_update_time: String,
    /// Null until the first update, then the updating app id.
    pub last_updated_by: Option<String>,
    /// Device group names (`[]` = all devices).
    pub rbac_group_names: Vec<String>,
    /// Device group ids (`[]` = all devices).
    pub rbac_group_ids: Vec<serde_json::Value>,
    /// Undocumented.
    pub notification_id: Option<String>,
    /// Undocumented.
    pub notification_body: Option<String>,
    /// Create-only version string.
    pub version: Option<String>,
    /// MITRE ATT&CK technique ids.
    pub mitre_techniques: Vec<String>,
    /// Historical detection flag.
    pub historical_detection: bool,
    /// Look-back period (type undocumented).
    pub look_back_period: Option<serde_json::Value>,
    /// Whether an alert is generated.
    pub generate_alert: bool,
    /// Free text.
    pub additional_info: Option<String>,
    /// Creator display name (app name or UPN).
    pub created_by_display_name: String,
    /// Caller correlation id.
    pub external_id: Option<String>,
    /// `PublicApi` or `Portal`.
    pub created_by_source: String,
    /// Create-only certificate details.
    pub certificate_info: Option<CertificateInfo>,
    /// Legacy `source` field, only emitted when `Behaviour::include_source_fields` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Legacy `sourceType` field (`User` / `AadApp`), only emitted with `include_source_fields`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
}

/// Certificate details attached to a `CertificateThumbprint` indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CertificateInfo {
    /// Issuer DN.
    pub issuer: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Subject DN.
    pub subject: Option<String>,
    /// SHA-256 of the certificate.
    pub sha256: Option<String>,
}

/// One per-item result of `POST /api/indicators/import`, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// Id of the created/updated indicator; null on failure.
    pub id: Option<String>,
    /// The submitted indicator value.
    pub indicator: String,
    /// Whether this item failed.
    pub is_failed: bool,
    /// Why it failed (free text).
    pub failure_reason: Option<String>,
}

/// The API error envelope `{"error":{"code","message","target"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error body.
    pub error: ErrorBody,
}

/// Body of an API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code, e.g. `InvalidIpAddress`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Fresh per-request correlation GUID.
    pub target: String,
}

/// An Entra ID token-endpoint error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraError {
    /// OAuth error, e.g. `invalid_client`.
    pub error: String,
    /// `AADSTSnnnn: text`.
    pub error_description: String,
    /// Numeric AADSTS codes.
    pub error_codes: Vec<u32>,
    /// Server time.
    pub timestamp: String,
    /// Fresh GUID.
    pub trace_id: String,
    /// Fresh GUID.
    pub correlation_id: String,
}
