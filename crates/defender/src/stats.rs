//! Per-family HTTP call counters of one client.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Snapshot of the calls a client made (every HTTP attempt counts, retries included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallStats {
    /// Token endpoint calls.
    pub token: u64,
    /// List page calls.
    pub list: u64,
    /// Import calls.
    pub import: u64,
    /// BatchDelete calls.
    pub batch_delete: u64,
    /// Get-one calls.
    pub get: u64,
    /// 429 answers received (from any endpoint).
    pub throttled: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) token: AtomicU64,
    pub(crate) list: AtomicU64,
    pub(crate) import: AtomicU64,
    pub(crate) batch_delete: AtomicU64,
    pub(crate) get: AtomicU64,
    pub(crate) throttled: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CallStats {
        CallStats {
            token: self.token.load(Ordering::Relaxed),
            list: self.list.load(Ordering::Relaxed),
            import: self.import.load(Ordering::Relaxed),
            batch_delete: self.batch_delete.load(Ordering::Relaxed),
            get: self.get.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}
