//! A pure judgement of one fetched feed: does it look like the feed, or like an error page, an
//! empty file, a sudden shrink or a parse gone wrong (DESIGN principle 2)?

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

/// Judges `current` against the last good fetch of the same feed.
pub fn judge(current: &FeedStats, last_good: Option<&FeedStats>, rules: &HealthRules) -> Health {
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
    if let Some(last) = last_good.filter(|l| l.accepted > 0) {
        let floor = last.accepted as f64 * (1.0 - rules.max_shrink_fraction);
        if (current.accepted as f64) < floor {
            return Health::Suspect(format!(
                "accepted values fell from {} to {} (more than {:.0}% down)",
                last.accepted,
                current.accepted,
                rules.max_shrink_fraction * 100.0
            ));
        }
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
        assert_eq!(judge(&stats(100, 3), Some(&stats(110, 0)), &HealthRules::default()), Health::Good);
        assert_eq!(judge(&stats(5, 0), None, &HealthRules::default()), Health::Good);
    }

    #[test]
    fn html_and_empty_are_suspect() {
        let mut s = stats(1, 0);
        s.looks_like_html = true;
        assert!(matches!(judge(&s, None, &HealthRules::default()), Health::Suspect(r) if r.contains("HTML")));
        let e = FeedStats::default();
        assert!(
            matches!(judge(&e, None, &HealthRules::default()), Health::Suspect(r) if r.contains("empty"))
        );
    }

    #[test]
    fn shrink_is_suspect() {
        let r = judge(&stats(40, 0), Some(&stats(100, 0)), &HealthRules::default());
        assert!(matches!(r, Health::Suspect(m) if m.contains("100 to 40")));
        assert_eq!(judge(&stats(50, 0), Some(&stats(100, 0)), &HealthRules::default()), Health::Good);
    }

    #[test]
    fn mostly_rejects_is_suspect_only_with_enough_values() {
        assert!(matches!(judge(&stats(4, 6), None, &HealthRules::default()), Health::Suspect(_)));
        assert_eq!(judge(&stats(1, 2), None, &HealthRules::default()), Health::Good);
        assert_eq!(judge(&stats(5, 5), None, &HealthRules::default()), Health::Good);
    }

    #[test]
    fn nothing_accepted_is_suspect_without_last_good_and_below_reject_minimum() {
        let r = judge(&stats(0, 3), None, &HealthRules::default());
        assert!(matches!(r, Health::Suspect(m) if m.contains("no value accepted")));
        let r = judge(&stats(0, 1), Some(&stats(0, 0)), &HealthRules::default());
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
}
