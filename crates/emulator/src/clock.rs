//! Injectable time source, so expiry, token lifetime and rate windows are testable without sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A source of "now" for the emulator; tests inject [`ManualClock`] to control time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant as seen by the emulator.
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to, for deterministic tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// Creates a manual clock frozen at `start`.
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self { now: Mutex::new(start) })
    }

    /// Moves the clock forward (or backward, with a negative duration).
    pub fn advance(&self, d: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.checked_add_signed(d).unwrap_or(if d < chrono::Duration::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        });
    }

    /// Sets the clock to an absolute instant.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `t + d`, saturating at the end of time instead of panicking on absurd durations.
pub(crate) fn add_std(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, saturating at the beginning of time.
pub(crate) fn sub_std(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Formats a timestamp the way Defender does: UTC with exactly 7 fractional digits.
pub(crate) fn format_ts7(t: DateTime<Utc>) -> String {
    let ticks = (t.timestamp_subsec_nanos() % 1_000_000_000) / 100;
    format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// Formats an expiration time at second precision, e.g. `2026-01-31T00:00:00Z`.
pub(crate) fn format_ts_secs(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses an ISO 8601 / RFC 3339 timestamp; a missing offset is taken as UTC.
pub(crate) fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_digit_fraction() {
        let t = parse_ts("2025-11-03T10:15:22.1234567Z").unwrap();
        assert_eq!(format_ts7(t), "2025-11-03T10:15:22.1234567Z");
        let t = parse_ts("2025-11-03T10:15:22Z").unwrap();
        assert_eq!(format_ts7(t), "2025-11-03T10:15:22.0000000Z");
        assert_eq!(format_ts_secs(t), "2025-11-03T10:15:22Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = parse_ts("2025-01-01T00:00:00Z").unwrap();
        let c = ManualClock::new(start);
        assert_eq!(c.now(), start);
        c.advance(chrono::Duration::seconds(5));
        assert_eq!(c.now(), start + chrono::Duration::seconds(5));
        c.set(start);
        assert_eq!(c.now(), start);
    }

    #[test]
    fn parse_variants() {
        assert!(parse_ts("2026-01-31").is_some());
        assert!(parse_ts("2026-01-31T00:00:00.0Z").is_some());
        assert!(parse_ts("2026-01-31T00:00:00+02:00").is_some());
        assert!(parse_ts("yesterday").is_none());
    }
}
