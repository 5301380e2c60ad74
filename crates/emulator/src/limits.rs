//! Sliding-window rate limits per (tenant, app, endpoint family) (spec §8.1, §12.16).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::EndpointFamily;
use crate::clock::{add_std, sub_std};

/// One sliding window: at most `limit` accepted calls within any `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Calls allowed per window.
    pub limit: u32,
    /// Window length.
    pub length: Duration,
}

/// Per-minute and per-hour windows of one endpoint family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyLimits {
    /// The "per minute" window.
    pub per_minute: Window,
    /// The "per hour" window.
    pub per_hour: Window,
}

impl FamilyLimits {
    fn new(per_minute: u32, per_hour: u32) -> Self {
        Self {
            per_minute: Window { limit: per_minute, length: Duration::from_secs(60) },
            per_hour: Window { limit: per_hour, length: Duration::from_secs(3600) },
        }
    }

    fn unlimited() -> Self {
        Self::new(u32::MAX, u32::MAX)
    }
}

/// Rate limits of every API endpoint family. The token endpoint is not limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// E1 list.
    pub list: FamilyLimits,
    /// E2 get (undocumented; same as list).
    pub get: FamilyLimits,
    /// E3 submit.
    pub submit: FamilyLimits,
    /// E4 import (30/min; hourly not stated, 1,500 assumed).
    pub import: FamilyLimits,
    /// E5 delete.
    pub delete: FamilyLimits,
    /// E6 BatchDelete.
    pub batch_delete: FamilyLimits,
    /// Advanced hunting, each API on its own (MDE: 45/min and 1,500/h, documented; Graph: the same assumed).
    pub hunting: FamilyLimits,
}

impl RateLimits {
    /// The documented limits: 100/min & 1,500/h; import and BatchDelete 30/min & 1,500/h.
    pub fn documented() -> Self {
        Self {
            list: FamilyLimits::new(100, 1500),
            get: FamilyLimits::new(100, 1500),
            submit: FamilyLimits::new(100, 1500),
            import: FamilyLimits::new(30, 1500),
            delete: FamilyLimits::new(100, 1500),
            batch_delete: FamilyLimits::new(30, 1500),
            hunting: FamilyLimits::new(45, 1500),
        }
    }

    /// Same counts, windows divided by `factor` (60 => a "minute" lasts 1 s). Non-positive factors are ignored.
    pub fn scaled(self, factor: f64) -> Self {
        if !(factor.is_finite() && factor > 0.0) {
            return self;
        }
        let s = |w: Window| Window {
            limit: w.limit,
            length: Duration::try_from_secs_f64(w.length.as_secs_f64() / factor)
                .unwrap_or(Duration::MAX)
                .max(Duration::from_millis(1)),
        };
        let f = |l: FamilyLimits| FamilyLimits { per_minute: s(l.per_minute), per_hour: s(l.per_hour) };
        Self {
            list: f(self.list),
            get: f(self.get),
            submit: f(self.submit),
            import: f(self.import),
            delete: f(self.delete),
            batch_delete: f(self.batch_delete),
            hunting: f(self.hunting),
        }
    }

    /// No limits at all.
    pub fn unlimited() -> Self {
        let u = FamilyLimits::unlimited();
        Self { list: u, get: u, submit: u, import: u, delete: u, batch_delete: u, hunting: u }
    }

    fn for_family(&self, family: EndpointFamily) -> Option<FamilyLimits> {
        match family {
            EndpointFamily::List => Some(self.list),
            EndpointFamily::Get => Some(self.get),
            EndpointFamily::Submit => Some(self.submit),
            EndpointFamily::Import => Some(self.import),
            EndpointFamily::Delete => Some(self.delete),
            EndpointFamily::BatchDelete => Some(self.batch_delete),
            EndpointFamily::AdvancedQueries | EndpointFamily::RunHuntingQuery => Some(self.hunting),
            EndpointFamily::Token | EndpointFamily::Other => None,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::documented()
    }
}

/// Keeps accepted-call timestamps per (app, family). A throttled (429) call is NOT recorded, so a client
/// that honours `Retry-After` gets through exactly when the window frees up (documented choice).
#[derive(Debug)]
pub(crate) struct Limiter {
    inner: Mutex<LimiterInner>,
}

#[derive(Debug)]
struct LimiterInner {
    limits: RateLimits,
    calls: HashMap<(String, EndpointFamily), VecDeque<DateTime<Utc>>>,
}

impl Limiter {
    pub(crate) fn new(limits: RateLimits) -> Self {
        Self { inner: Mutex::new(LimiterInner { limits, calls: HashMap::new() }) }
    }

    pub(crate) fn set_limits(&self, limits: RateLimits) {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.limits = limits;
        g.calls.clear();
    }

    /// Records the call if allowed; otherwise returns the whole seconds to wait (>= 1).
    pub(crate) fn check(&self, app: &str, family: EndpointFamily, now: DateTime<Utc>) -> Result<(), u64> {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(limits) = g.limits.for_family(family) else { return Ok(()) };
        let q = g.calls.entry((app.to_owned(), family)).or_default();
        let longest = limits.per_minute.length.max(limits.per_hour.length);
        let horizon = sub_std(now, longest);
        while q.front().is_some_and(|t| *t <= horizon) {
            q.pop_front();
        }
        let mut wait = Duration::ZERO;
        for w in [limits.per_minute, limits.per_hour] {
            let start = sub_std(now, w.length);
            let in_window: Vec<&DateTime<Utc>> = q.iter().filter(|t| **t > start).collect();
            if w.limit == 0 {
                // Nothing is ever allowed; ask for a whole window.
                wait = wait.max(w.length);
            } else if in_window.len() >= w.limit as usize {
                // The window frees a slot when its oldest relevant call leaves it.
                let idx = in_window.len() - w.limit as usize;
                let frees_at = add_std(*in_window[idx], w.length);
                wait = wait.max((frees_at - now).to_std().unwrap_or_default());
            }
        }
        if wait > Duration::ZERO {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(secs.max(1));
        }
        q.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn minute_window_throttles_and_frees() {
        let l = Limiter::new(RateLimits::documented());
        let now = t0();
        for _ in 0..30 {
            l.check("a", EndpointFamily::Import, now).unwrap();
        }
        assert_eq!(l.check("a", EndpointFamily::Import, now), Err(60));
        // Another app and another family have their own windows.
        assert!(l.check("b", EndpointFamily::Import, now).is_ok());
        assert!(l.check("a", EndpointFamily::List, now).is_ok());
        let later = now + chrono::Duration::milliseconds(59_500);
        assert_eq!(l.check("a", EndpointFamily::Import, later), Err(1));
        assert!(l.check("a", EndpointFamily::Import, now + chrono::Duration::seconds(60)).is_ok());
    }

    #[test]
    fn hour_window_applies() {
        let l = Limiter::new(RateLimits::documented());
        let mut now = t0();
        for i in 0..1500 {
            if i % 100 == 0 && i > 0 {
                now += chrono::Duration::seconds(61);
            }
            l.check("a", EndpointFamily::List, now).unwrap();
        }
        now += chrono::Duration::seconds(61);
        let wait = l.check("a", EndpointFamily::List, now).unwrap_err();
        assert!(wait > 60 && wait <= 3600, "{wait}");
    }

    #[test]
    fn absurd_limits_do_not_panic() {
        let zero = FamilyLimits::new(0, 0);
        let l = Limiter::new(RateLimits { list: zero, ..RateLimits::documented() });
        assert_eq!(l.check("a", EndpointFamily::List, t0()), Err(3600));
        let huge = RateLimits::documented().scaled(1e-300);
        assert_eq!(huge.list.per_minute.length, Duration::MAX);
        let l = Limiter::new(huge);
        assert!(l.check("a", EndpointFamily::List, t0()).is_ok());
    }

    #[test]
    fn scaled_divides_windows() {
        let s = RateLimits::documented().scaled(60.0);
        assert_eq!(s.import.per_minute.length, Duration::from_secs(1));
        assert_eq!(s.import.per_hour.length, Duration::from_secs(60));
        assert_eq!(s.import.per_minute.limit, 30);
    }
}
