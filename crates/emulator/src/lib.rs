//! Local fake of Entra ID (client-credential tokens) and the Microsoft Defender for Endpoint Indicators
//! API, written from `shared/spec/defender-indicators-api.md` (§12 lists what it reproduces).
//!
//! It depends on no other workspace crate on purpose: its wire types are its own, so a misreading of the
//! spec in the client cannot be mirrored here. Start it with [`start`] on a loopback address; the returned
//! [`Emulator`] handle exposes the state, fault injection, the call log and a clean shutdown.

mod clock;
mod config;
mod fault;
mod hunting;
mod kql;
mod limits;
mod odata;
mod server;
mod store;
mod token;
mod validate;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    BatchDeleteMode, Behaviour, ClientCredential, EmulatorConfig, ForeignDeleteStatus, PastExpiration, Role,
    STRICT_CAPACITY_MESSAGE, parse_client_spec,
};
pub use fault::{Fault, FaultRule, Trigger};
pub use hunting::{
    CPU_QUOTA_MESSAGE, GRAPH_AUDIENCE, HuntingApi, HuntingConfig, HuntingGrants, MAX_QUERY_CHARS,
    MAX_RESULT_ROWS, parse_events_jsonl,
};
pub use kql::{Event as HuntingEvent, TABLES as HUNTING_TABLES};
pub use limits::{FamilyLimits, RateLimits, Window};
pub use store::SeedIndicator;

/// Tenant id used when none is configured.
pub const DEFAULT_TENANT_ID: &str = "00000000-0000-4000-8000-000000000001";
/// Client (app) id registered by default; the repository's example config uses it.
pub const DEFAULT_CLIENT_ID: &str = "11111111-1111-4111-8111-111111111111";
/// Secret of the default client. Not a real secret: the emulator only listens on loopback.
pub const DEFAULT_CLIENT_SECRET: &str = "iocsync-emulator-secret";
/// Display name recorded as `createdByDisplayName` for the default client.
pub const DEFAULT_APP_NAME: &str = "iocsync";
/// Longest string field accepted when [`Behaviour::whole_request_400`] is on (§4: title length
/// [UNCERTAIN]; one connector truncates at 4,000).
pub const MAX_FIELD_LEN: usize = 4_000;
/// Audience of tokens for the Defender API (the WindowsDefenderATP resource).
pub const DEFAULT_AUDIENCE: &str = "https://api.securitycenter.microsoft.com";

/// The API endpoint family a call belongs to; rate limits, faults and the call log are kept per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum EndpointFamily {
    /// `POST /{tenant}/oauth2/...token`.
    Token,
    /// `GET /api/indicators` (E1).
    List,
    /// `GET /api/indicators/{id}` (E2).
    Get,
    /// `POST /api/indicators` (E3).
    Submit,
    /// `POST /api/indicators/import` (E4).
    Import,
    /// `DELETE /api/indicators/{id}` (E5).
    Delete,
    /// `POST /api/indicators/BatchDelete` (E6).
    BatchDelete,
    /// `POST /api/advancedqueries/run` (MDE advanced hunting, spec §13.13).
    AdvancedQueries,
    /// `POST /v1.0/security/runHuntingQuery` (Graph advanced hunting, spec §13.13).
    RunHuntingQuery,
    /// Anything else (unknown paths, wrong methods).
    Other,
}

/// One entry of the call log: what was called, by whom, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Emulator clock time when the call arrived.
    pub at: chrono::DateTime<chrono::Utc>,
    /// HTTP method.
    pub method: String,
    /// Request path (without the query string).
    pub path: String,
    /// Endpoint family.
    pub family: EndpointFamily,
    /// HTTP status sent (200 for a dropped 200 response).
    pub status: u16,
    /// Items in an import or BatchDelete body, when it could be parsed.
    pub batch_size: Option<usize>,
    /// Caller app id (from the bearer token, or the token request form).
    pub client_id: Option<String>,
    /// Whether the call got a 429.
    pub throttled: bool,
    /// The injected fault applied to this call, if any.
    pub fault: Option<Fault>,
    /// Ids this call wrote: the items an import created or updated, the ids a delete or
    /// BatchDelete removed (so a test can compare a client's journal with what landed).
    pub written: Vec<String>,
}

/// What an end user sees in a block notification for one indicator (spec §13.1): Defender shows the
/// indicator's `application` text in place of the blocked file name or domain. Recorded when an
/// indicator with a non-null `application` is created or seeded while `Behaviour::notification_log`
/// is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Id of the indicator.
    pub indicator_id: String,
    /// `indicatorType`.
    pub indicator_type: String,
    /// `indicatorValue` (what the notification would show without `application`).
    pub indicator_value: String,
    /// `action`.
    pub action: String,
    /// `createdBy` of the indicator.
    pub created_by: String,
    /// The text shown to the end user in place of the blocked file or domain.
    pub shown: String,
}

/// Errors starting or stopping the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The emulator only serves loopback; a different listen address was requested.
    #[error(
        "refusing to listen on {0}: the emulator only serves loopback addresses (use 127.0.0.1:PORT or [::1]:PORT)"
    )]
    NonLoopback(SocketAddr),
    /// Binding the listen socket failed.
    #[error("cannot listen on {addr}: {source} (is the port in use? use port 0 for any free port)")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file could not be read or parsed.
    #[error("cannot load emulator state from {path}: {message} (fix or delete the file to start empty)")]
    State {
        /// The state file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The configuration is unusable.
    #[error("invalid emulator configuration: {0}")]
    Config(String),
}

/// Binds the listen address, loads the state file (if any) and spawns the server task.
pub async fn start(config: EmulatorConfig) -> Result<Emulator, EmulatorError> {
    server::start(config).await
}

/// Handle to a running emulator. Dropping it stops the server (without waiting); prefer [`Emulator::shutdown`].
pub struct Emulator {
    addr: SocketAddr,
    app: Arc<server::App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("addr", &self.addr).field("tenant_id", &self.app.tenant_id).finish()
    }
}

impl Emulator {
    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: both the token authority and the API base.
    pub fn base_url(&self) -> String {
        self.app.base_url.clone()
    }

    /// The single tenant this emulator serves.
    pub fn tenant_id(&self) -> &str {
        &self.app.tenant_id
    }

    /// The full current state (all creators), sorted by id; expired rows past the cleanup lag are gone.
    pub fn indicators(&self) -> Vec<wire::Indicator> {
        self.app.all_indicators()
    }

    /// Inserts an indicator as if created in the portal or by another app, bypassing validation and the cap.
    pub fn seed(&self, seed: SeedIndicator) -> String {
        self.app.seed(seed)
    }

    /// Seeds several indicators; returns their ids in order.
    pub fn seed_many(&self, seeds: impl IntoIterator<Item = SeedIndicator>) -> Vec<String> {
        seeds.into_iter().map(|s| self.app.seed(s)).collect()
    }

    /// Adds a fault-injection rule; its `Nth`/`FirstN` counting starts now.
    pub fn inject(&self, rule: FaultRule) {
        self.app.faults.add(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.app.faults.clear();
    }

    /// The call log, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.app.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The block-notification log (oldest first): what end users would see in place of the blocked
    /// file or domain, one entry per indicator created or seeded with a non-null `application`
    /// while `Behaviour::notification_log` is on.
    pub fn notifications(&self) -> Vec<Notification> {
        self.app.notifications.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Empties the block-notification log.
    pub fn clear_notifications(&self) {
        self.app.notifications.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// Empties the call log.
    pub fn clear_calls(&self) {
        self.app.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// Adds events to the advanced-hunting tables.
    pub fn add_hunting_events(&self, events: impl IntoIterator<Item = HuntingEvent>) {
        self.app.hunting.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(events);
    }

    /// Every hunting query received, oldest first (both APIs, accepted or refused).
    pub fn hunting_queries(&self) -> Vec<String> {
        self.app.hunting.queries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The next `n` hunting queries fail with the CPU-quota error (429, [`CPU_QUOTA_MESSAGE`]).
    pub fn exhaust_hunting_quota(&self, n: u32) {
        *self.app.hunting.quota_failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = n;
    }

    /// Replaces who may run hunting queries.
    pub fn set_hunting_grants(&self, grants: HuntingGrants) {
        *self.app.hunting.grants.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = grants;
    }

    /// Forced expiry: every token issued so far gets 401 from now on.
    pub fn expire_tokens(&self) {
        self.app.tokens.expire_all();
    }

    /// Sets the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: std::time::Duration) {
        self.app.tokens.set_lifetime(lifetime);
    }

    /// Replaces the rate limits (and resets the windows).
    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.app.limiter.set_limits(limits);
    }

    /// Replaces the behaviour switches.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.app.behaviour.write().unwrap_or_else(std::sync::PoisonError::into_inner) = behaviour;
    }

    /// Graceful stop: stops accepting, lets in-flight requests finish (up to 5 s), saves the state file.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(std::time::Duration::from_secs(5), &mut task).await.is_err()
        {
            task.abort();
        }
        if let Err(e) = self.app.save_state() {
            tracing::warn!(error = %e, "emulator: could not save state file on shutdown");
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if self.task.is_some()
            && let Err(e) = self.app.save_state()
        {
            tracing::warn!(error = %e, "emulator: could not save state file on drop");
        }
    }
}
