//! Entra ID token source and Defender for Endpoint Indicators API client.
//!
//! The only code of iocsync that talks to Microsoft: it gets client-credential tokens (secret or
//! certificate assertion), lists indicators page by page, imports and batch-deletes them in
//! batches of at most 500, paces every call to the documented per-endpoint limits (one
//! [`iocsync_core::pacing::Pacer`] per client) and retries throttling, 5xx and network failures.
//! A batch Defender refuses as a whole is split until the bad items stand alone (within a
//! per-client budget); a listing either completes — de-duplicated, bounded in rows, pages and
//! bytes, read leniently — or fails, never returning a partial tenant; [`classify_failure`]
//! tells a rejected item from a full tenant by the listing's count before the text.
//! Secrets and tokens never appear in `Debug`, `Display`, logs or errors.

mod client;
mod config;
mod error;
mod failure;
mod stats;
pub mod tls;
mod token;
pub mod wire;

pub use client::{BatchDeleteOutcome, DefenderClient, MAX_BATCH, MAX_LISTED_ROWS, PAGE_SIZE};
pub use config::{
    AssertionAlgorithm, ClientConfig, Cloud, Credential, MAX_RESPONSE_BYTES, REGIONAL_HOSTS, RetryPolicy,
    SPLIT_BUDGET, api_host_warning, is_known_api_host, parse_secure_url, scope_for,
};
pub use error::{Error, ErrorKind};
pub use failure::{FailureClass, FailureContext, classify_failure};
pub use iocsync_core::pacing::{CallFamily, CallStamp, PacingLimits};
pub use stats::{CallStats, CallsByStatus, ThrottledBy};
pub use token::{Thumbprints, certificate_thumbprints, thumbprint_from_certificate_pem};
pub use wire::{Action, FailureOrigin, ImportItem, ImportOutcome, Indicator};
