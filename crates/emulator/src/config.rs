//! Emulator configuration: clients, tenant, limits and the switches for every [UNCERTAIN] spec item.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::hunting::HuntingConfig;
use crate::limits::RateLimits;

/// Application permission granted to a client (spec §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// `Ti.ReadWrite`: sees and changes only the indicators it created.
    ReadWrite,
    /// `Ti.ReadWrite.All`: sees and changes every indicator in the tenant.
    ReadWriteAll,
    /// No TI role: tokens are issued but every API call gets 403 `Forbidden`.
    None,
}

impl Role {
    /// The `roles` claim value, if any.
    pub fn claim(self) -> Option<&'static str> {
        match self {
            Role::ReadWrite => Some("Ti.ReadWrite"),
            Role::ReadWriteAll => Some("Ti.ReadWrite.All"),
            Role::None => None,
        }
    }
}

/// A registered app (service principal) allowed to get tokens.
#[derive(Clone)]
pub struct ClientCredential {
    /// Application (client) id.
    pub client_id: String,
    /// Client secret, if secret authentication is allowed.
    pub secret: Option<String>,
    /// PEM public key (SPKI `PUBLIC KEY`) for certificate client assertions.
    pub certificate_public_key_pem: Option<String>,
    /// Expected `x5t` header of RS256 assertions (base64url SHA-1 of the certificate); `None` = not checked.
    pub certificate_thumbprint_x5t: Option<String>,
    /// Expected `x5t#S256` header of PS256 assertions (base64url SHA-256 of the certificate DER);
    /// `None` = not checked.
    pub certificate_thumbprint_x5t_s256: Option<String>,
    /// Granted TI role.
    pub role: Role,
    /// Recorded as `createdByDisplayName` on indicators this app creates.
    pub display_name: String,
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredential")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("certificate", &self.certificate_public_key_pem.is_some())
            .field("certificate_thumbprint_x5t", &self.certificate_thumbprint_x5t)
            .field("certificate_thumbprint_x5t_s256", &self.certificate_thumbprint_x5t_s256)
            .field("role", &self.role)
            .field("display_name", &self.display_name)
            .finish()
    }
}

impl ClientCredential {
    /// A secret-authenticated client.
    pub fn with_secret(client_id: &str, secret: &str, role: Role, display_name: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            secret: Some(secret.to_owned()),
            certificate_public_key_pem: None,
            certificate_thumbprint_x5t: None,
            certificate_thumbprint_x5t_s256: None,
            role,
            display_name: display_name.to_owned(),
        }
    }

    /// A certificate-authenticated client: PS256 and RS256 client assertions verified with
    /// `public_key_pem`, RS256's `x5t` checked against `x5t` when given (see [`Self::with_x5t_s256`]).
    pub fn with_certificate(
        client_id: &str,
        public_key_pem: &str,
        x5t: Option<&str>,
        role: Role,
        display_name: &str,
    ) -> Self {
        Self {
            client_id: client_id.to_owned(),
            secret: None,
            certificate_public_key_pem: Some(public_key_pem.to_owned()),
            certificate_thumbprint_x5t: x5t.map(str::to_owned),
            certificate_thumbprint_x5t_s256: None,
            role,
            display_name: display_name.to_owned(),
        }
    }

    /// Also check PS256 assertions' `x5t#S256` header (base64url SHA-256 of the certificate DER).
    #[must_use]
    pub fn with_x5t_s256(mut self, x5t_s256: &str) -> Self {
        self.certificate_thumbprint_x5t_s256 = Some(x5t_s256.to_owned());
        self
    }
}

/// Parses `ID:SECRET[:ROLE]` (ROLE: `Ti.ReadWrite` | `Ti.ReadWrite.All` | `None`, default `Ti.ReadWrite.All`),
/// as used by `iocsync emulator --client`. The display name defaults to the client id.
pub fn parse_client_spec(s: &str) -> Result<ClientCredential, String> {
    let mut parts = s.splitn(3, ':');
    let id = parts.next().unwrap_or_default().trim();
    let secret =
        parts.next().ok_or_else(|| format!("client spec must be ID:SECRET[:ROLE], got no ':' in {id:?}"))?;
    if id.is_empty() {
        return Err("client spec must be ID:SECRET[:ROLE]; the ID is empty".to_owned());
    }
    if secret.is_empty() {
        return Err(format!("client spec for {id}: the SECRET is empty"));
    }
    let role = match parts.next().map(str::trim) {
        None | Some("") | Some("Ti.ReadWrite.All") => Role::ReadWriteAll,
        Some("Ti.ReadWrite") => Role::ReadWrite,
        Some("None") | Some("none") => Role::None,
        Some(other) => {
            return Err(format!(
                "client spec for {id}: unknown role {other:?}; use Ti.ReadWrite, Ti.ReadWrite.All or None"
            ));
        }
    };
    Ok(ClientCredential::with_secret(id, secret, role, id))
}

/// What to do with an `expirationTime` in the past (spec §5, [UNCERTAIN]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PastExpiration {
    /// Accept it; the indicator then expires (leaves the list after the cleanup lag).
    #[default]
    Accept,
    /// Reject with 400 `InvalidInput`.
    Reject,
}

/// BatchDelete with some unknown ids (spec §3 E6, [UNCERTAIN]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchDeleteMode {
    /// Validate all ids first; any unknown id => 404 and nothing is deleted (spec default).
    #[default]
    Atomic,
    /// Delete the ids that exist, then answer 404 naming the unknown ones.
    Partial,
}

/// Status for a `Ti.ReadWrite` caller deleting an indicator another creator owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForeignDeleteStatus {
    /// 403 `Forbidden` (default): loud, so a client that treats 404-on-delete as "already gone" cannot
    /// mask an ownership bug; closest to the documented BatchDelete 403 "not exposed" case.
    #[default]
    Forbidden,
    /// 404 `ResourceNotFound`, consistent with the caller not being able to see the row.
    NotFound,
}

/// Switches for every behaviour the spec marks [UNCERTAIN]; `Default` is the spec's stated default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// Empty list result => 404 instead of 200 + `[]` (§3 E1; default false).
    pub empty_list_404: bool,
    /// Accept `BlockAndRemediate` on `Url` indicators (§7; docs say no, 2023 observation yes; default false).
    pub block_and_remediate_on_url: bool,
    /// Accept legacy actions `Alert` / `AlertAndBlock` on create (§7; default false).
    pub accept_legacy_actions: bool,
    /// Accept `Warn` on file-hash indicators (§7; overview lists it, portal rows exist; default true).
    pub warn_on_files: bool,
    /// Past `expirationTime` on submit (§5; default accept-and-expire).
    pub past_expiration: PastExpiration,
    /// BatchDelete with unknown ids (§3 E6; default atomic).
    pub batch_delete: BatchDeleteMode,
    /// Emit `source` / `sourceType` keys (§4; absent from 2021+ captures; default false).
    pub include_source_fields: bool,
    /// Treat documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32) as private (§5; default false).
    pub documentation_ranges_private: bool,
    /// How long an expired indicator stays listed before "cleanup" removes it (§3 E1, §12.14; default 0).
    pub expiry_cleanup_lag: Duration,
    /// Include `@odata.context` on the import response (§3 E4; default false).
    pub import_odata_context: bool,
    /// `Ti.ReadWrite` caller deleting another creator's indicator (default 403).
    pub foreign_delete: ForeignDeleteStatus,
    /// Upsert matches values case-insensitively (§6 [UNCERTAIN]; default false: exact, as submitted).
    pub case_insensitive_match: bool,
    /// Device-group scope (`rbacGroupNames`) is part of the upsert key (§6 [UNCERTAIN]; default false).
    pub rbac_in_match_key: bool,
    /// Known device-group names; `Some` => unknown `rbacGroupNames` get 400 `InvalidInput` (§5 [UNCERTAIN];
    /// default `None`: any name accepted).
    pub known_device_groups: Option<Vec<String>>,
    /// 401 from bearer validation has an empty body (only `WWW-Authenticate`) instead of the JSON envelope
    /// (§10 [UNCERTAIN]; default false).
    pub unauthorized_empty_body: bool,
    /// `@odata.nextLink` carries an opaque `$skiptoken` instead of `$skip` (§3 E1 [UNCERTAIN]; default false).
    pub next_link_skip_token: bool,
    /// `$top` caps the whole result (strict OData) instead of sizing each page with a
    /// `@odata.nextLink` to the rest (§3 E1 [INF]; default false: page size).
    pub top_limits_total: bool,
    /// Deleted indicators keep counting toward the cap for this long (§3 E6 [OBS]: integrations pause
    /// ~20 s after big deletes; default 0 = freed at once).
    pub capacity_release_lag: Duration,
    /// The tenant silently drops `externalId` on submit and import (stores and lists `null`) (§13.2:
    /// the field is accepted and echoed by every capture so far; this switch models a tenant that
    /// does not keep it, so a client relying on it as an ownership marker can be tested; default false).
    pub drop_external_id: bool,
    /// Record what end users see in block notifications: every indicator created (or seeded) with a
    /// non-null `application` adds its text to [`crate::Emulator::notifications`] (§13.1: Defender shows
    /// `application` in place of the blocked file or domain; default false: nothing recorded).
    pub notification_log: bool,
    /// Model-binding failures fail the whole request (§13.7 [UNCERTAIN]; default false): an import
    /// item with a wrong field type, an unknown enum value, an unknown property or a string field
    /// longer than [`MAX_FIELD_LEN`](crate::MAX_FIELD_LEN) makes the whole import answer 400
    /// `InvalidRequestBody` (naming the item) and nothing is committed, instead of a per-item
    /// `isFailed`. BatchDelete refuses the whole request for a malformed id whatever this switch says.
    pub whole_request_400: bool,
    /// Text of the cap-reached refusal, in place of the default message naming the limit (§8.2
    /// [UNCERTAIN]: no public example; default `None`).
    pub capacity_message: Option<String>,
    /// List ignores `$skip`/`$skiptoken` and always serves the first page, while still sending a
    /// `@odata.nextLink` when more rows exist (a broken proxy or server; default false).
    pub list_ignores_skip: bool,
    /// Offsets shift during a listing (§13.9 [OBS]): a page asked for with `$skip=s` starts
    /// `list_shift × (s / page length)` rows earlier, as if that many indicators had been created
    /// ahead of the offset before each page, so pages repeat ids of earlier pages (default 0).
    pub list_shift: usize,
    /// Rows created by others are listed (and got) with unexpected field types: `severity: 3`,
    /// `rbacGroupNames: "x"`, `expirationTime: 12`, `generateAlert: "yes"`, `rbacGroupIds: 7`,
    /// `bypassDurationHours: "2h"`, `title: 42`, `createdByDisplayName: {}` (default false).
    pub odd_foreign_fields: bool,
    /// The list endpoint answers 404 with an HTML page (a proxy, a wrong host) instead of JSON
    /// (default false; compare `empty_list_404`, which carries Defender's error envelope).
    pub list_404_html: bool,
    /// IPv6 `IpAddress` values must be written with all 8 groups, as the documentation asks
    /// (§13.6 [UNCERTAIN]: a compressed form may be refused or never match); a `::` form gets 400
    /// `InvalidIpAddress` (default false).
    pub refuse_compressed_ipv6: bool,
    /// An update merges instead of replacing (§13.8 [UNCERTAIN]): optional fields the update
    /// leaves out (`recommendedActions`, `educateUrl`, `category`, `rbacGroupNames`,
    /// `mitreTechniques`) keep their old values, so a client that "clears" a field by omitting
    /// it never gets there (default false).
    pub merge_updates: bool,
    /// The tenant stores a value in its own spelling (§13.6/§13.8 [UNCERTAIN]) and lists it so:
    /// IPv6 compressed (`2001:db8::1` for `2001:db8:0:0:0:0:0:1`), a URL's scheme and host
    /// lower-cased and an empty path written `/`. Upserts match on the stored spelling, so the
    /// same value sent again in either form is the same indicator (default false).
    pub normalize_values: bool,
    /// The tenant does not keep (or echo) the optional fields `recommendedActions`, `educateUrl`,
    /// `mitreTechniques` and `category`: they read back as null or empty (§13.8 [UNCERTAIN];
    /// default false).
    pub drop_optional_fields: bool,
}

impl Behaviour {
    /// The named profiles: `default` (the spec's defaults) and `strict` ([`Behaviour::strict`]).
    pub fn profile(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "default" => Some(Self::default()),
            "strict" => Some(Self::strict()),
            _ => None,
        }
    }

    /// The hostile profile: every real-service behaviour that breaks a naive client, at once —
    /// whole-request 400 on model-binding failures, a cap-reached text without the limit in it,
    /// shifting list offsets (one repeated row per page), foreign rows with odd field types, and IPv6
    /// values refused unless written with all 8 groups.
    /// Everything else keeps the spec's defaults. (`list_ignores_skip` and `list_404_html` are
    /// left off: no client can complete a listing against them.)
    pub fn strict() -> Self {
        Self {
            whole_request_400: true,
            capacity_message: Some(STRICT_CAPACITY_MESSAGE.to_owned()),
            list_shift: 1,
            odd_foreign_fields: true,
            refuse_compressed_ipv6: true,
            merge_updates: true,
            normalize_values: true,
            drop_optional_fields: true,
            ..Self::default()
        }
    }
}

/// Cap-reached text of [`Behaviour::strict`]: names neither the number, nor a limit, nor the
/// indicators (a client must tell a full tenant from the listing's count).
pub const STRICT_CAPACITY_MESSAGE: &str = "The request cannot be completed for this tenant.";

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            empty_list_404: false,
            block_and_remediate_on_url: false,
            accept_legacy_actions: false,
            warn_on_files: true,
            past_expiration: PastExpiration::Accept,
            batch_delete: BatchDeleteMode::Atomic,
            include_source_fields: false,
            documentation_ranges_private: false,
            expiry_cleanup_lag: Duration::ZERO,
            import_odata_context: false,
            foreign_delete: ForeignDeleteStatus::Forbidden,
            case_insensitive_match: false,
            rbac_in_match_key: false,
            known_device_groups: None,
            unauthorized_empty_body: false,
            next_link_skip_token: false,
            capacity_release_lag: Duration::ZERO,
            top_limits_total: false,
            drop_external_id: false,
            notification_log: false,
            whole_request_400: false,
            capacity_message: None,
            list_ignores_skip: false,
            list_shift: 0,
            odd_foreign_fields: false,
            list_404_html: false,
            refuse_compressed_ipv6: false,
            merge_updates: false,
            normalize_values: false,
            drop_optional_fields: false,
        }
    }
}

/// Everything [`crate::start`] needs. `Default` gives a usable loopback emulator with one all-powerful client.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Listen address; must be loopback (default `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// The one tenant served.
    pub tenant_id: String,
    /// Registered apps.
    pub clients: Vec<ClientCredential>,
    /// Max rows per list page before `@odata.nextLink` (default 10,000).
    pub page_size: usize,
    /// Active-indicator cap across all creators (default 15,000).
    pub capacity: usize,
    /// Token lifetime (default 3599 s).
    pub token_lifetime: Duration,
    /// Rate limits (default [`RateLimits::documented`]).
    pub rate_limits: RateLimits,
    /// Uncertain-behaviour switches.
    pub behaviour: Behaviour,
    /// JSON state file, loaded on start and saved after mutations and on shutdown.
    pub state_file: Option<PathBuf>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Seed for probabilistic fault triggers.
    pub fault_seed: u64,
    /// Advanced hunting: seeded events and who may query (spec §13.13).
    pub hunting: HuntingConfig,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tenant_id: crate::DEFAULT_TENANT_ID.to_owned(),
            clients: vec![ClientCredential::with_secret(
                crate::DEFAULT_CLIENT_ID,
                crate::DEFAULT_CLIENT_SECRET,
                Role::ReadWriteAll,
                crate::DEFAULT_APP_NAME,
            )],
            page_size: 10_000,
            capacity: 15_000,
            token_lifetime: Duration::from_secs(3599),
            rate_limits: RateLimits::documented(),
            behaviour: Behaviour::default(),
            state_file: None,
            clock: Arc::new(SystemClock),
            fault_seed: 0,
            hunting: HuntingConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_spec_parses_roles() {
        let c = parse_client_spec("app1:s3cr:et").unwrap_err();
        assert!(c.contains("unknown role"), "{c}");
        let c = parse_client_spec("app1:secret").unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.secret.as_deref(), c.role),
            ("app1", Some("secret"), Role::ReadWriteAll)
        );
        let c = parse_client_spec("app2:pw:Ti.ReadWrite").unwrap();
        assert_eq!(c.role, Role::ReadWrite);
        assert!(parse_client_spec("app3").is_err());
        assert!(parse_client_spec(":pw").is_err());
        assert!(parse_client_spec("app:").is_err());
    }

    #[test]
    fn debug_redacts_secret() {
        let c = parse_client_spec("app1:hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
