//! The console's audit log: who did what and when (manual list changes, sync now, approvals,
//! undo requests). Append-only in the state database; the engine functions that act for a
//! console user record their own rows, so no page can act without leaving one.

use super::lock;
use crate::state::StateStore;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

pub use crate::state::AuditRow;

/// Appends one audit row and returns its sequence number.
pub fn record_audit(
    store: &Arc<Mutex<StateStore>>,
    user: &str,
    action: &str,
    detail: &serde_json::Value,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let seq = lock(store).append_audit(now, user, action, detail)?;
    tracing::info!(seq, user, action, "audit");
    Ok(seq)
}

/// The newest `limit` audit rows, newest first.
pub fn audit_log(store: &Arc<Mutex<StateStore>>, limit: usize) -> anyhow::Result<Vec<AuditRow>> {
    Ok(lock(store).audit_log(limit)?)
}

/// Records an audit row, logging (not failing) when the database refuses: the action it
/// describes already happened.
pub(crate) fn record_or_warn(
    store: &Arc<Mutex<StateStore>>,
    user: &str,
    action: &str,
    detail: &serde_json::Value,
    now: DateTime<Utc>,
) {
    if let Err(e) = record_audit(store, user, action, detail, now) {
        tracing::error!(user, action, "could not record the audit row: {e:#}");
    }
}
