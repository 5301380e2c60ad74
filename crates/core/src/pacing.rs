//! Client-side call pacing: the pure "when may I call next" arithmetic over sliding windows.
//!
//! Defender documents per-endpoint limits (e.g. 100 calls per minute and 1,500 per hour for
//! listing, 30 per minute for import). A [`Pacer`] keeps the timestamps of recent calls per
//! [`CallFamily`] and answers when the next call of a family may start without any window
//! holding more than its limit. Timestamps are unix milliseconds (`i64`); there is no clock,
//! no sleeping and no async runtime here: the caller passes `now_ms` and does the waiting.
//!
//! Window semantics: a window of length `L` with limit `N` is respected at time `t` when at most
//! `N` recorded calls have a stamp in `(t - L, t]`. A call may start at `t` when fewer than `N`
//! stamps lie in `(t - L, ∞)` (stamps in the future, e.g. from a skewed clock, count too).
//!
//! The history can be exported as [`CallStamp`]s and loaded back, so a process started by cron
//! every few minutes still respects the hourly budget of the runs before it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One rate-limited endpoint family of the Defender Indicators API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallFamily {
    /// `GET /api/indicators` (list, paged).
    List,
    /// `GET /api/indicators/{id}` (get one; undocumented limit, paced like list).
    Get,
    /// `POST /api/indicators` (submit one).
    Submit,
    /// `POST /api/indicators/import` (batch submit, <= 500 items).
    Import,
    /// `DELETE /api/indicators/{id}` (delete one).
    Delete,
    /// `POST /api/indicators/BatchDelete` (delete by ids, <= 500).
    BatchDelete,
    /// An advanced-hunting query (MDE `advancedqueries/run` or Graph `runHuntingQuery`).
    Hunting,
}

impl CallFamily {
    /// Every family, in a stable order.
    pub const ALL: [CallFamily; 7] = [
        CallFamily::List,
        CallFamily::Get,
        CallFamily::Submit,
        CallFamily::Import,
        CallFamily::Delete,
        CallFamily::BatchDelete,
        CallFamily::Hunting,
    ];

    /// Stable snake_case name, used when the history is persisted.
    pub fn as_str(self) -> &'static str {
        match self {
            CallFamily::List => "list",
            CallFamily::Get => "get",
            CallFamily::Submit => "submit",
            CallFamily::Import => "import",
            CallFamily::Delete => "delete",
            CallFamily::BatchDelete => "batch_delete",
            CallFamily::Hunting => "hunting",
        }
    }
}

impl fmt::Display for CallFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a call-family name that is not one of [`CallFamily::as_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown API call family {0:?} (expected list, get, submit, import, delete, batch_delete or hunting)"
)]
pub struct UnknownFamily(pub String);

impl FromStr for CallFamily {
    type Err = UnknownFamily;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallFamily::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| UnknownFamily(s.to_owned()))
    }
}

/// One sliding window: at most `limit` calls in any span of `length_ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Maximum number of calls inside the window.
    pub limit: u32,
    /// Window length in milliseconds (always >= 1).
    pub length_ms: i64,
}

impl Window {
    /// A window of `limit` calls per `length_ms` milliseconds (length clamped to >= 1 ms).
    pub fn new(limit: u32, length_ms: i64) -> Self {
        Window { limit, length_ms: length_ms.max(1) }
    }
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// The sliding windows that apply to every [`CallFamily`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacingLimits {
    windows: BTreeMap<CallFamily, Vec<Window>>,
}

impl PacingLimits {
    /// The documented Defender limits: list/get/submit/delete 100/min and 1,500/h; import
    /// 30/min (hourly figure not documented, 1,500/h assumed); BatchDelete 30/min and 1,500/h.
    pub fn documented() -> Self {
        let hundred = vec![Window::new(100, MINUTE_MS), Window::new(1_500, HOUR_MS)];
        let thirty = vec![Window::new(30, MINUTE_MS), Window::new(1_500, HOUR_MS)];
        // Advanced hunting: 45 per minute and 1,500 per hour (spec §13.13).
        let hunting = vec![Window::new(45, MINUTE_MS), Window::new(1_500, HOUR_MS)];
        let mut windows = BTreeMap::new();
        for family in CallFamily::ALL {
            let w = match family {
                CallFamily::Import | CallFamily::BatchDelete => thirty.clone(),
                CallFamily::Hunting => hunting.clone(),
                _ => hundred.clone(),
            };
            windows.insert(family, w);
        }
        PacingLimits { windows }
    }

    /// No limits at all: every call may start immediately (tests, or pacing done elsewhere).
    pub fn unlimited() -> Self {
        PacingLimits { windows: BTreeMap::new() }
    }

    /// Time runs `factor` times faster: each window's length is divided by `factor` (rounded
    /// up, at least 1 ms), limits unchanged. `scaled(60.0)` makes a "minute" last one second.
    /// A non-finite or non-positive factor leaves the limits unchanged.
    pub fn scaled(mut self, factor: f64) -> Self {
        if !factor.is_finite() || factor <= 0.0 {
            return self;
        }
        for windows in self.windows.values_mut() {
            for w in windows.iter_mut() {
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                let len = (w.length_ms as f64 / factor).ceil() as i64;
                w.length_ms = len.max(1);
            }
        }
        self
    }

    /// Replace the windows of one family (an empty list removes its limits).
    pub fn with_family(mut self, family: CallFamily, windows: Vec<Window>) -> Self {
        if windows.is_empty() {
            self.windows.remove(&family);
        } else {
            self.windows.insert(family, windows);
        }
        self
    }

    /// The windows that apply to `family` (empty when unlimited).
    pub fn windows(&self, family: CallFamily) -> &[Window] {
        self.windows.get(&family).map_or(&[], Vec::as_slice)
    }

    /// Longest window of any family: stamps older than this can be forgotten.
    pub fn longest_window_ms(&self) -> i64 {
        self.windows.values().flatten().map(|w| w.length_ms).max().unwrap_or(0)
    }
}

impl Default for PacingLimits {
    fn default() -> Self {
        PacingLimits::documented()
    }
}

/// One recorded call start, as exported for persistence (e.g. in the app's state store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStamp {
    /// Which endpoint family was called.
    pub family: CallFamily,
    /// When, in unix milliseconds.
    pub at_ms: i64,
}

/// Sliding-window call pacer: records call stamps and says when the next call may start.
///
/// Pure and synchronous; the async client keeps one behind a mutex per (tenant, app).
#[derive(Debug, Clone)]
pub struct Pacer {
    limits: PacingLimits,
    /// Per family, stamps in ascending order.
    history: BTreeMap<CallFamily, VecDeque<i64>>,
    /// Per family, no call before this time (set from a server's `Retry-After`; not persisted).
    blocked_until: BTreeMap<CallFamily, i64>,
}

impl Pacer {
    /// A pacer with no history.
    pub fn new(limits: PacingLimits) -> Self {
        Pacer { limits, history: BTreeMap::new(), blocked_until: BTreeMap::new() }
    }

    /// The limits this pacer enforces.
    pub fn limits(&self) -> &PacingLimits {
        &self.limits
    }

    /// Earliest time (>= `now_ms`) at which a call of `family` may start without any of its
    /// windows holding more than its limit.
    pub fn next_allowed(&self, family: CallFamily, now_ms: i64) -> i64 {
        let windows = self.limits.windows(family);
        if windows.iter().any(|w| w.limit == 0) {
            // A zero limit can never be satisfied; report "never" rather than spin.
            return i64::MAX;
        }
        let mut at = now_ms.max(self.blocked_until.get(&family).copied().unwrap_or(i64::MIN));
        let Some(stamps) = self.history.get(&family) else {
            return at;
        };
        for w in windows {
            let limit = w.limit as usize;
            let m = stamps.len();
            if m < limit {
                continue;
            }
            // Stamps strictly after t - L must number at most limit - 1, i.e. t - L must be
            // >= the (m - limit)-th stamp (0-based, ascending).
            let earliest = stamps[m - limit].saturating_add(w.length_ms);
            at = at.max(earliest);
        }
        at
    }

    /// Take a slot for `family` at `now_ms` if one is free (recording the call) or return
    /// the time at which to try again.
    pub fn try_acquire(&mut self, family: CallFamily, now_ms: i64) -> Result<(), i64> {
        let at = self.next_allowed(family, now_ms);
        if at <= now_ms {
            self.record(family, now_ms);
            Ok(())
        } else {
            Err(at)
        }
    }

    /// Record a call of `family` at `at_ms` (whether or not it was allowed) and forget stamps
    /// older than the longest window relative to the newest stamp.
    pub fn record(&mut self, family: CallFamily, at_ms: i64) {
        let stamps = self.history.entry(family).or_default();
        // Keep ascending order; out-of-order stamps (loaded history, clock steps) are inserted.
        let pos = stamps.partition_point(|&s| s <= at_ms);
        stamps.insert(pos, at_ms);
        let newest = stamps.back().copied().unwrap_or(at_ms);
        self.prune(newest);
    }

    /// Move a stamp recorded at `started_ms` to `finished_ms` (when the response arrived), so
    /// the window counts from the later of the two: the server saw the call somewhere between.
    /// Does nothing if no such stamp exists or `finished_ms` is not later.
    pub fn complete(&mut self, family: CallFamily, started_ms: i64, finished_ms: i64) {
        if finished_ms <= started_ms {
            return;
        }
        let Some(stamps) = self.history.get_mut(&family) else {
            return;
        };
        if let Some(pos) = stamps.iter().position(|&s| s == started_ms) {
            stamps.remove(pos);
            let new_pos = stamps.partition_point(|&s| s <= finished_ms);
            stamps.insert(new_pos, finished_ms);
        }
    }

    /// Allow no call of `family` before `until_ms` (the server said so with a 429 `Retry-After`),
    /// so every task sharing this pacer backs off, not only the one that was throttled.
    pub fn block_until(&mut self, family: CallFamily, until_ms: i64) {
        let e = self.blocked_until.entry(family).or_insert(until_ms);
        *e = (*e).max(until_ms);
    }

    /// Forget stamps that can no longer affect any window at `now_ms`.
    pub fn prune(&mut self, now_ms: i64) {
        let horizon = now_ms.saturating_sub(self.limits.longest_window_ms());
        for stamps in self.history.values_mut() {
            while stamps.front().is_some_and(|&s| s <= horizon) {
                stamps.pop_front();
            }
        }
        self.history.retain(|_, s| !s.is_empty());
    }

    /// Number of recorded calls of `family` inside the window span `(now_ms - length_ms, now_ms]`.
    pub fn count_in(&self, family: CallFamily, now_ms: i64, length_ms: i64) -> usize {
        let start = now_ms.saturating_sub(length_ms);
        self.history.get(&family).map_or(0, |s| s.iter().filter(|&&t| t > start && t <= now_ms).count())
    }

    /// Every remembered stamp, ordered by family then time, for persistence.
    pub fn export(&self) -> Vec<CallStamp> {
        self.history
            .iter()
            .flat_map(|(&family, stamps)| stamps.iter().map(move |&at_ms| CallStamp { family, at_ms }))
            .collect()
    }

    /// Merge persisted stamps into the history (duplicates of existing stamps are kept: each
    /// stamp is one call).
    pub fn load(&mut self, stamps: impl IntoIterator<Item = CallStamp>) {
        for s in stamps {
            let v = self.history.entry(s.family).or_default();
            let pos = v.partition_point(|&t| t <= s.at_ms);
            v.insert(pos, s.at_ms);
        }
        if let Some(newest) = self.history.values().filter_map(|v| v.back().copied()).max() {
            self.prune(newest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn max_in_any_window(stamps: &[i64], w: Window) -> usize {
        // The worst window ends at some stamp: count stamps in (s - L, s].
        stamps
            .iter()
            .map(|&end| stamps.iter().filter(|&&t| t > end - w.length_ms && t <= end).count())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn documented_limits_match_the_spec() {
        let l = PacingLimits::documented();
        assert_eq!(l.windows(CallFamily::List), &[Window::new(100, 60_000), Window::new(1_500, 3_600_000)]);
        assert_eq!(l.windows(CallFamily::Import)[0], Window::new(30, 60_000));
        assert_eq!(l.windows(CallFamily::BatchDelete)[1], Window::new(1_500, 3_600_000));
        assert!(PacingLimits::unlimited().windows(CallFamily::Import).is_empty());
    }

    #[test]
    fn scaled_by_sixty_makes_a_minute_one_second() {
        let l = PacingLimits::documented().scaled(60.0);
        assert_eq!(l.windows(CallFamily::Import), &[Window::new(30, 1_000), Window::new(1_500, 60_000)]);
        assert_eq!(PacingLimits::documented().scaled(f64::NAN), PacingLimits::documented());
        assert_eq!(PacingLimits::documented().scaled(1e12).windows(CallFamily::List)[0].length_ms, 1);
    }

    #[test]
    fn thirty_first_import_waits_for_the_first_to_leave_the_window() {
        let mut p = Pacer::new(PacingLimits::documented());
        for i in 0..30 {
            assert_eq!(p.try_acquire(CallFamily::Import, 1_000 + i), Ok(()));
        }
        assert_eq!(p.try_acquire(CallFamily::Import, 2_000), Err(61_000));
        // Other families are independent.
        assert_eq!(p.try_acquire(CallFamily::List, 2_000), Ok(()));
        assert_eq!(p.try_acquire(CallFamily::Import, 61_000), Ok(()));
        assert_eq!(p.next_allowed(CallFamily::Import, 61_000), 61_001);
    }

    #[test]
    fn hourly_budget_survives_export_and_load() {
        let limits = PacingLimits::documented();
        let mut p = Pacer::new(limits.clone());
        // 1,500 list calls spread over 50 minutes: 30 per minute keeps the minute window happy.
        let mut t = 0;
        for _ in 0..1_500 {
            p.try_acquire(CallFamily::List, t).unwrap();
            t += 2_000;
        }
        let exported = p.export();
        assert_eq!(exported.len(), 1_500);
        let mut fresh = Pacer::new(limits);
        fresh.load(exported);
        // The hour is full: the next call must wait until the first stamp is an hour old.
        assert_eq!(fresh.next_allowed(CallFamily::List, t), HOUR_MS);
    }

    #[test]
    fn complete_moves_the_stamp_later() {
        let mut p =
            Pacer::new(PacingLimits::unlimited().with_family(CallFamily::Get, vec![Window::new(1, 100)]));
        p.try_acquire(CallFamily::Get, 0).unwrap();
        assert_eq!(p.next_allowed(CallFamily::Get, 0), 100);
        p.complete(CallFamily::Get, 0, 40);
        assert_eq!(p.next_allowed(CallFamily::Get, 0), 140);
    }

    #[test]
    fn block_until_holds_back_a_family_only() {
        let mut p = Pacer::new(PacingLimits::unlimited());
        p.block_until(CallFamily::Import, 5_000);
        p.block_until(CallFamily::Import, 3_000);
        assert_eq!(p.next_allowed(CallFamily::Import, 1_000), 5_000);
        assert_eq!(p.try_acquire(CallFamily::Import, 4_999), Err(5_000));
        assert_eq!(p.try_acquire(CallFamily::List, 1_000), Ok(()));
        assert_eq!(p.try_acquire(CallFamily::Import, 5_000), Ok(()));
    }

    #[test]
    fn zero_limit_never_allows() {
        let mut p =
            Pacer::new(PacingLimits::unlimited().with_family(CallFamily::Get, vec![Window::new(0, 100)]));
        assert_eq!(p.next_allowed(CallFamily::Get, 5), i64::MAX);
        p.record(CallFamily::Get, 0);
        assert_eq!(p.next_allowed(CallFamily::Get, 5), i64::MAX);
    }

    #[test]
    fn family_names_round_trip() {
        for f in CallFamily::ALL {
            assert_eq!(f.as_str().parse::<CallFamily>(), Ok(f));
        }
        assert!("Import".parse::<CallFamily>().is_err());
    }

    fn arb_windows() -> impl Strategy<Value = Vec<Window>> {
        prop::collection::vec((1u32..6, 1i64..500).prop_map(|(n, l)| Window::new(n, l)), 1..3)
    }

    proptest! {
        /// Following next_allowed, no window ever holds more than its limit.
        #[test]
        fn following_next_allowed_never_exceeds_a_window(
            windows in arb_windows(),
            requests in prop::collection::vec((0i64..300, 0usize..2), 1..60),
        ) {
            let limits = PacingLimits::unlimited()
                .with_family(CallFamily::Import, windows.clone())
                .with_family(CallFamily::List, windows.clone());
            let mut p = Pacer::new(limits);
            let families = [CallFamily::Import, CallFamily::List];
            let mut now = 0i64;
            let mut taken: BTreeMap<CallFamily, Vec<i64>> = BTreeMap::new();
            for (gap, fi) in requests {
                now += gap;
                let family = families[fi];
                let at = p.next_allowed(family, now);
                prop_assert!(at >= now);
                now = at;
                prop_assert_eq!(p.try_acquire(family, now), Ok(()));
                taken.entry(family).or_default().push(now);
            }
            for stamps in taken.values() {
                for w in &windows {
                    prop_assert!(max_in_any_window(stamps, *w) <= w.limit as usize);
                }
            }
        }

        /// next_allowed is the earliest such time: one millisecond earlier would overflow a window.
        #[test]
        fn next_allowed_is_tight(
            windows in arb_windows(),
            stamps in prop::collection::vec(0i64..1_000, 0..30),
            now in 0i64..1_500,
        ) {
            let mut p = Pacer::new(PacingLimits::unlimited().with_family(CallFamily::Get, windows.clone()));
            p.load(stamps.iter().map(|&at_ms| CallStamp { family: CallFamily::Get, at_ms }));
            let at = p.next_allowed(CallFamily::Get, now);
            prop_assert!(at >= now);
            let all = p.export();
            let count_after = |t: i64, w: &Window| all.iter().filter(|s| s.at_ms > t - w.length_ms).count();
            for w in &windows {
                prop_assert!(count_after(at, w) < w.limit as usize);
            }
            if at > now {
                prop_assert!(windows.iter().any(|w| count_after(at - 1, w) >= w.limit as usize));
            }
        }

        /// Export then load reproduces the same answers.
        #[test]
        fn export_load_round_trip(
            stamps in prop::collection::vec((0i64..5_000, 0usize..6), 0..80),
            now in 0i64..6_000,
        ) {
            let limits = PacingLimits::documented().scaled(60.0);
            let mut a = Pacer::new(limits.clone());
            for (at, fi) in &stamps {
                a.record(CallFamily::ALL[*fi], *at);
            }
            let mut b = Pacer::new(limits);
            b.load(a.export());
            for f in CallFamily::ALL {
                prop_assert_eq!(a.next_allowed(f, now), b.next_allowed(f, now));
            }
        }
    }
}
