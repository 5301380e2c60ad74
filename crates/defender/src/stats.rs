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
    /// 429 answers by endpoint family: token, list, import, batch_delete, get (in that order).
    pub throttled_by: ThrottledBy,
}

/// 429 answers per endpoint family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ThrottledBy {
    /// Token endpoint.
    pub token: u64,
    /// List.
    pub list: u64,
    /// Import.
    pub import: u64,
    /// BatchDelete.
    pub batch_delete: u64,
    /// Get one (and anything else).
    pub get: u64,
}

/// Answers by endpoint (`token`, `list`, `import`, ...) and HTTP status (0: no answer, a
/// transport failure), for the daemon's `iocsync_api_calls_total`.
pub type CallsByStatus = std::collections::BTreeMap<(String, u16), u64>;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) by_status: std::sync::Mutex<CallsByStatus>,
    pub(crate) token: AtomicU64,
    pub(crate) list: AtomicU64,
    pub(crate) import: AtomicU64,
    pub(crate) batch_delete: AtomicU64,
    pub(crate) get: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) throttled_token: AtomicU64,
    pub(crate) throttled_list: AtomicU64,
    pub(crate) throttled_import: AtomicU64,
    pub(crate) throttled_batch_delete: AtomicU64,
    pub(crate) throttled_other: AtomicU64,
}

impl Counters {
    /// Counts one answer (or transport failure, `status` 0) of `endpoint`.
    pub(crate) fn answered(&self, endpoint: &str, status: u16) {
        let mut m = self.by_status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry((endpoint.to_owned(), status)).or_insert(0) += 1;
    }

    pub(crate) fn by_status(&self) -> CallsByStatus {
        self.by_status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 429 in the total and under its family (`None`: the token endpoint).
    pub(crate) fn throttled(&self, family: Option<crate::CallFamily>) {
        use crate::CallFamily as F;
        Self::bump(&self.throttled);
        Self::bump(match family {
            None => &self.throttled_token,
            Some(F::List) => &self.throttled_list,
            Some(F::Import) => &self.throttled_import,
            Some(F::BatchDelete) => &self.throttled_batch_delete,
            Some(_) => &self.throttled_other,
        });
    }

    pub(crate) fn snapshot(&self) -> CallStats {
        CallStats {
            token: self.token.load(Ordering::Relaxed),
            list: self.list.load(Ordering::Relaxed),
            import: self.import.load(Ordering::Relaxed),
            batch_delete: self.batch_delete.load(Ordering::Relaxed),
            get: self.get.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            throttled_by: ThrottledBy {
                token: self.throttled_token.load(Ordering::Relaxed),
                list: self.throttled_list.load(Ordering::Relaxed),
                import: self.throttled_import.load(Ordering::Relaxed),
                batch_delete: self.throttled_batch_delete.load(Ordering::Relaxed),
                get: self.throttled_other.load(Ordering::Relaxed),
            },
        }
    }
}

/// The report's `api_calls` object: the calls DESIGN.md lists (token, list, import, BatchDelete).
impl From<&CallStats> for iocsync_core::report::ApiCalls {
    fn from(s: &CallStats) -> Self {
        iocsync_core::report::ApiCalls {
            token: s.token,
            list: s.list,
            import: s.import,
            batch_delete: s.batch_delete,
        }
    }
}
