//! Merge across feeds: one [`Desired`] per (type, value); priority decides conflicts.

use crate::model::{Desired, Skip};
use iocsync_ioc::{IndicatorType, Reason};
use std::collections::BTreeMap;

/// Merges the per-feed outputs of `apply_policy`, given in config order.
///
/// Values are deduplicated by (type, value): the copy with the highest `priority` wins; on a
/// tie the feed listed first (lower index) wins, and within one feed the first occurrence.
/// The winner's provenance becomes the union of every copy's feeds; each merged-away copy is
/// a `duplicate` skip naming the feed it was kept from. Output is sorted by (type, value).
pub fn merge(per_feed: Vec<Vec<Desired>>) -> (Vec<Desired>, Vec<Skip>) {
    let mut kept: BTreeMap<(IndicatorType, String), Desired> = BTreeMap::new();
    let mut skips = Vec::new();
    for feed in per_feed {
        for d in feed {
            let key = (d.kind, d.value.clone());
            match kept.get_mut(&key) {
                None => {
                    kept.insert(key, d);
                }
                Some(cur) => {
                    let loser = if d.priority > cur.priority { std::mem::replace(cur, d) } else { d };
                    let from = cur.feeds.first().cloned().unwrap_or_default();
                    skips.push(Skip::of(&loser, Reason::Duplicate, format!("kept from feed {from}")));
                    union_feeds(&mut cur.feeds, &loser.feeds);
                }
            }
        }
    }
    (kept.into_values().collect(), skips)
}

/// Adds `extra` to the sorted, deduplicated provenance list `feeds`, keeping the primary
/// (first) feed in front.
fn union_feeds(feeds: &mut Vec<String>, extra: &[String]) {
    let primary = feeds.first().cloned();
    feeds.extend(extra.iter().cloned());
    let mut rest: Vec<String> = feeds.drain(..).filter(|f| Some(f) != primary.as_ref()).collect();
    rest.sort();
    rest.dedup();
    if let Some(p) = primary {
        feeds.push(p);
    }
    feeds.extend(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Severity};
    use crate::testutil::desired;

    fn from(feed: &str, prio: i32, v: &str, sev: Severity) -> Desired {
        let mut d = desired(IndicatorType::DomainName, v, Action::Block);
        d.feeds = vec![feed.to_owned()];
        d.priority = prio;
        d.severity = sev;
        d
    }

    #[test]
    fn higher_priority_wins_and_provenance_is_union() {
        let a = vec![from("a", 1, "x.example", Severity::Low), from("a", 1, "only-a.example", Severity::Low)];
        let b = vec![from("b", 5, "x.example", Severity::High)];
        let (m, s) = merge(vec![a, b]);
        assert_eq!(m.len(), 2);
        let x = m.iter().find(|d| d.value == "x.example").unwrap();
        assert_eq!(x.severity, Severity::High, "priority 5 beats 1");
        assert_eq!(x.feeds, vec!["b".to_owned(), "a".to_owned()]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].reason, Reason::Duplicate);
        assert_eq!(s[0].feed.as_deref(), Some("a"));
        assert_eq!(s[0].detail.as_deref(), Some("kept from feed b"));
    }

    #[test]
    fn tie_goes_to_the_feed_listed_first() {
        let a = vec![from("a", 3, "x.example", Severity::Low)];
        let b = vec![from("b", 3, "x.example", Severity::High)];
        let (m, s) = merge(vec![a, b]);
        assert_eq!(m[0].severity, Severity::Low);
        assert_eq!(m[0].feeds, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(s[0].detail.as_deref(), Some("kept from feed a"));
    }

    #[test]
    fn same_value_other_type_is_not_a_duplicate_and_output_sorted() {
        let mut u = desired(IndicatorType::Url, "http://x.example/", Action::Block);
        u.feeds = vec!["a".into()];
        let a = vec![from("a", 0, "z.example", Severity::Low), u, from("a", 0, "b.example", Severity::Low)];
        let (m, s) = merge(vec![a]);
        assert!(s.is_empty());
        let keys: Vec<_> = m.iter().map(|d| (d.kind, d.value.as_str())).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn within_feed_duplicate_keeps_first() {
        let mut first = from("a", 0, "x.example", Severity::Low);
        first.recency = -1;
        let mut second = from("a", 0, "x.example", Severity::High);
        second.recency = -9;
        let (m, s) = merge(vec![vec![first, second]]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].recency, -1);
        assert_eq!(m[0].feeds, vec!["a".to_owned()]);
        assert_eq!(s.len(), 1);
    }
}
