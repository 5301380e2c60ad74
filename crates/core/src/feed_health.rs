//! A pure judgement of one fetched feed: does it look like the feed, or like an error page, an
//! empty file, a sudden shrink or a parse gone wrong (DESIGN principle 2)?

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What one fetch of a feed produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FeedStats {
    /// Body size in bytes.
    pub bytes: u64,
    /// Values the parser accepted.
    pub accepted: u64,
    /// Values the parser rejected.
    pub rejected: u64,
    /// The body looks like an HTML page (see [`looks_like_html`]).
    pub looks_like_html: bool,
    /// The body is empty or holds no values at all.
    pub empty: bool,
}

/// Thresholds of [`judge`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthRules {
    /// Suspect when `accepted` fell by more than this fraction against the last good copy.
    pub max_shrink_fraction: f64,
    /// Suspect when rejected / (accepted + rejected) exceeds this fraction.
    pub max_reject_fraction: f64,
    /// The reject rule applies only from this many values on (tiny feeds are noisy).
    pub min_values_for_reject_rule: u64,
}

impl Default for HealthRules {
    fn default() -> Self {
        HealthRules { max_shrink_fraction: 0.5, max_reject_fraction: 0.5, min_values_for_reject_rule: 10 }
    }
}

/// The verdict on one fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Health {
    /// Use this content (and make it the new last good copy).
    Good,
    /// Do not trust it; fall back to the last good copy. The reason is for the operator.
    Suspect(String),
}

/// Judges one fetch on its own: an HTML page, an empty body, nothing accepted, or mostly rejects
/// is suspect. The shrink against earlier fetches is [`judge_with_baseline`]'s part.
pub fn judge(current: &FeedStats, rules: &HealthRules) -> Health {
    if current.looks_like_html {
        return Health::Suspect("the body is an HTML page, not the feed (error or login page?)".to_owned());
    }
    if current.empty || current.bytes == 0 || current.accepted + current.rejected == 0 {
        return Health::Suspect("the feed is empty".to_owned());
    }
    if current.accepted == 0 {
        return Health::Suspect(format!(
            "no value accepted ({} rejected): the source may have answered an error page",
            current.rejected
        ));
    }
    let total = current.accepted + current.rejected;
    if total >= rules.min_values_for_reject_rule
        && current.rejected as f64 > rules.max_reject_fraction * total as f64
    {
        return Health::Suspect(format!(
            "{} of {total} values were rejected (more than {:.0}%): wrong format or column?",
            current.rejected,
            rules.max_reject_fraction * 100.0
        ));
    }
    Health::Good
}

/// A feed's shrink baseline, kept across runs (DESIGN principle 2): the largest accepted count
/// since the last accepted shrink, so a feed that loses a little every run meets the same guard
/// as one that loses it all at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Baseline {
    /// Accepted values the feed is judged against.
    pub accepted: u64,
    /// Consecutive runs that found the feed shrunk below the guard.
    pub shrink_runs: u32,
    /// When the current shrink was first seen.
    pub shrink_since: Option<DateTime<Utc>>,
}

/// When a shrunken feed's new size is accepted: after both this many runs and this much time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptShrink {
    /// Consecutive runs.
    pub runs: u32,
    /// Time since the shrink was first seen.
    pub after: chrono::Duration,
}

impl Default for AcceptShrink {
    fn default() -> Self {
        AcceptShrink { runs: 3, after: chrono::Duration::hours(24) }
    }
}

/// The verdict of [`judge_with_baseline`]: the health, the baseline to store, and a report note
/// when a shrink was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// Use the copy, or fall back.
    pub health: Health,
    /// The baseline to store for the next run.
    pub baseline: Baseline,
    /// Set when this run accepted a smaller size as the new baseline.
    pub note: Option<String>,
}

/// Judges `current` against the feed's stored `baseline` (`None`: a first fetch, or a new
/// source): the checks of [`judge`], with the shrink measured against the baseline instead of the
/// last copy. A shrink that holds for `accept` becomes the new baseline, with a note.
pub fn judge_with_baseline(
    current: &FeedStats,
    baseline: Option<&Baseline>,
    rules: &HealthRules,
    accept: &AcceptShrink,
    now: DateTime<Utc>,
) -> Judged {
    let old = baseline.copied().unwrap_or_default();
    if let Health::Suspect(why) = judge(current, rules) {
        // A broken copy says nothing about the feed's size: the baseline stays as it was.
        return Judged { health: Health::Suspect(why), baseline: old, note: None };
    }
    let floor = old.accepted as f64 * (1.0 - rules.max_shrink_fraction);
    if old.accepted > 0 && (current.accepted as f64) < floor {
        let runs = old.shrink_runs.saturating_add(1);
        let since = old.shrink_since.unwrap_or(now);
        if runs >= accept.runs && now - since >= accept.after {
            let note = format!(
                "accepted values fell from {} to {} and stayed there for {runs} runs since {}: the smaller size is \
                 the feed's new baseline (accept_shrink_after)",
                old.accepted,
                current.accepted,
                since.format("%Y-%m-%d %H:%M UTC")
            );
            let baseline = Baseline { accepted: current.accepted, shrink_runs: 0, shrink_since: None };
            return Judged { health: Health::Good, baseline, note: Some(note) };
        }
        let why = format!(
            "accepted values fell from {} to {} (more than {:.0}% below the feed's baseline); run {runs} of the \
             {} runs and {}h after which a smaller size is accepted",
            old.accepted,
            current.accepted,
            rules.max_shrink_fraction * 100.0,
            accept.runs,
            accept.after.num_hours()
        );
        let baseline = Baseline { accepted: old.accepted, shrink_runs: runs, shrink_since: Some(since) };
        return Judged { health: Health::Suspect(why), baseline, note: None };
    }
    let baseline =
        Baseline { accepted: old.accepted.max(current.accepted), shrink_runs: 0, shrink_since: None };
    Judged { health: Health::Good, baseline, note: None }
}

/// True when `bytes` starts (after a BOM and whitespace) like an HTML document: a doctype, or a
/// `<html>`, `<head>`, `<body>` or `<title>` tag within the first KiB of a body that opens with `<`.
pub fn looks_like_html(bytes: &[u8]) -> bool {
    let b = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let head = &b[start..b.len().min(start + 1024)];
    if head.first() != Some(&b'<') {
        return false;
    }
    let lower = head.to_ascii_lowercase();
    [&b"<!doctype html"[..], b"<html", b"<head", b"<body", b"<title"]
        .iter()
        .any(|needle| lower.windows(needle.len()).any(|w| w == *needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(accepted: u64, rejected: u64) -> FeedStats {
        FeedStats { bytes: 100, accepted, rejected, looks_like_html: false, empty: false }
    }

    #[test]
    fn good_feed_is_good() {
        let b110 = Baseline { accepted: 110, ..Baseline::default() };
        let accept = AcceptShrink::default();
        assert_eq!(
            judge_with_baseline(&stats(100, 3), Some(&b110), &HealthRules::default(), &accept, Utc::now())
                .health,
            Health::Good
        );
        assert_eq!(judge(&stats(5, 0), &HealthRules::default()), Health::Good);
    }

    #[test]
    fn html_and_empty_are_suspect() {
        let mut s = stats(1, 0);
        s.looks_like_html = true;
        assert!(matches!(judge(&s, &HealthRules::default()), Health::Suspect(r) if r.contains("HTML")));
        let e = FeedStats::default();
        assert!(matches!(judge(&e, &HealthRules::default()), Health::Suspect(r) if r.contains("empty")));
    }

    #[test]
    fn shrink_is_suspect() {
        let b100 = Baseline { accepted: 100, ..Baseline::default() };
        let j = |n| {
            judge_with_baseline(
                &stats(n, 0),
                Some(&b100),
                &HealthRules::default(),
                &AcceptShrink::default(),
                Utc::now(),
            )
        };
        assert!(matches!(j(40).health, Health::Suspect(m) if m.contains("100 to 40")));
        assert_eq!(j(50).health, Health::Good);
    }

    #[test]
    fn mostly_rejects_is_suspect_only_with_enough_values() {
        assert!(matches!(judge(&stats(4, 6), &HealthRules::default()), Health::Suspect(_)));
        assert_eq!(judge(&stats(1, 2), &HealthRules::default()), Health::Good);
        assert_eq!(judge(&stats(5, 5), &HealthRules::default()), Health::Good);
    }

    #[test]
    fn nothing_accepted_is_suspect_without_last_good_and_below_reject_minimum() {
        let r = judge(&stats(0, 3), &HealthRules::default());
        assert!(matches!(r, Health::Suspect(m) if m.contains("no value accepted")));
        let r = judge(&stats(0, 1), &HealthRules::default());
        assert!(matches!(r, Health::Suspect(m) if m.contains("no value accepted")));
    }

    #[test]
    fn html_sniffing() {
        assert!(looks_like_html(b"\xef\xbb\xbf  \n<!DOCTYPE html><html>"));
        assert!(looks_like_html(b"<HTML><body>Error 502</body>"));
        assert!(looks_like_html(b"<head><title>Login</title>"));
        assert!(!looks_like_html(b"1.2.3.4\n<html>"));
        assert!(!looks_like_html(b"{\"type\":\"bundle\",\"description\":\"<html>\"}"));
        assert!(!looks_like_html(b"<?xml version=\"1.0\"?><feed/>"));
        assert!(!looks_like_html(b""));
    }

    #[test]
    fn slow_drain_meets_the_guard_and_a_lasting_shrink_is_accepted() {
        use chrono::TimeZone;
        let t = |h: i64| Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h);
        let rules = HealthRules::default();
        let accept = AcceptShrink::default();
        // 20% less each run: the baseline stays at the first size, so the fourth run is suspect.
        let mut b = judge_with_baseline(&stats(1000, 0), None, &rules, &accept, t(0)).baseline;
        for (i, n) in [800, 640, 512].into_iter().enumerate() {
            let j = judge_with_baseline(&stats(n, 0), Some(&b), &rules, &accept, t(i as i64 + 1));
            assert_eq!(j.health, Health::Good, "{n}");
            b = j.baseline;
        }
        assert_eq!(b.accepted, 1000);
        let j = judge_with_baseline(&stats(409, 0), Some(&b), &rules, &accept, t(4));
        assert!(matches!(&j.health, Health::Suspect(w) if w.contains("baseline")), "{j:?}");
        // It holds: runs 2 and 3 within 24h are still suspect; past 3 runs and 24h it is accepted.
        let mut b = j.baseline;
        for h in [5, 6] {
            let j = judge_with_baseline(&stats(409, 0), Some(&b), &rules, &accept, t(h));
            assert!(matches!(j.health, Health::Suspect(_)), "hour {h}");
            b = j.baseline;
        }
        assert_eq!(b.shrink_runs, 3);
        let j = judge_with_baseline(&stats(409, 0), Some(&b), &rules, &accept, t(28));
        assert_eq!(j.health, Health::Good);
        assert_eq!(j.baseline, Baseline { accepted: 409, shrink_runs: 0, shrink_since: None });
        assert!(j.note.unwrap().contains("new baseline"));
    }

    #[test]
    fn a_broken_copy_leaves_the_baseline_alone() {
        let b = Baseline { accepted: 100, shrink_runs: 1, shrink_since: None };
        let j = judge_with_baseline(
            &stats(0, 50),
            Some(&b),
            &HealthRules::default(),
            &AcceptShrink::default(),
            Utc::now(),
        );
        assert!(matches!(j.health, Health::Suspect(_)));
        assert_eq!(j.baseline, b);
    }
}
