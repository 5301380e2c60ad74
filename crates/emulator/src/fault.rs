//! Fault injection per endpoint family: statuses, dropped connections, delays, malformed bodies.

use std::sync::Mutex;
use std::time::Duration;

use rand::{RngExt as _, SeedableRng, rngs::StdRng};

use crate::EndpointFamily;

/// What an injected fault does. Except `Delay` and `DropAfterCommit`, a fault answers instead of the
/// real handler, so the request has no side effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status: 500/502/503/504 with the error envelope; 429 with `Retry-After: 1`.
    Status(u16),
    /// Send 200 headers and part of a body, then reset the connection; nothing is applied.
    Drop,
    /// Apply the request, then reset the connection mid-response ("committed but never answered").
    DropAfterCommit,
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// 200 with a truncated JSON body; nothing is applied.
    Malformed,
}

/// When a rule fires. Counting is per rule, over the calls of its family since the rule was added.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// Only the Nth matching call (1-based).
    Nth(u32),
    /// The first N matching calls.
    FirstN(u32),
    /// Each matching call with this probability, from an RNG seeded with `EmulatorConfig::fault_seed`.
    Probability(f64),
    /// Every matching call.
    Always,
}

/// A fault-injection rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRule {
    /// The family it applies to; `None` = every API family (not the token endpoint).
    pub family: Option<EndpointFamily>,
    /// What happens.
    pub fault: Fault,
    /// When it happens.
    pub trigger: Trigger,
}

impl FaultRule {
    /// Shorthand for a rule.
    pub fn new(family: Option<EndpointFamily>, fault: Fault, trigger: Trigger) -> Self {
        Self { family, fault, trigger }
    }
}

#[derive(Debug)]
pub(crate) struct Faults {
    inner: Mutex<FaultsInner>,
}

#[derive(Debug)]
struct FaultsInner {
    rules: Vec<(FaultRule, u32)>,
    rng: StdRng,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        Self { inner: Mutex::new(FaultsInner { rules: Vec::new(), rng: StdRng::seed_from_u64(seed) }) }
    }

    pub(crate) fn add(&self, rule: FaultRule) {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).rules.push((rule, 0));
    }

    pub(crate) fn clear(&self) {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).rules.clear();
    }

    /// Counts this call against every matching rule; returns the first rule's fault that fires.
    pub(crate) fn check(&self, family: EndpointFamily) -> Option<Fault> {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let FaultsInner { rules, rng } = &mut *g;
        let mut fired = None;
        for (rule, count) in rules.iter_mut() {
            let matches = match rule.family {
                Some(f) => f == family,
                None => !matches!(family, EndpointFamily::Token),
            };
            if !matches {
                continue;
            }
            *count = count.saturating_add(1);
            let fire = match rule.trigger {
                Trigger::Nth(n) => *count == n,
                Trigger::FirstN(n) => *count <= n,
                Trigger::Probability(p) => rng.random_bool(p.clamp(0.0, 1.0)),
                Trigger::Always => true,
            };
            if fire && fired.is_none() {
                fired = Some(rule.fault);
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_and_first_n_count_per_family() {
        let f = Faults::new(1);
        f.add(FaultRule::new(Some(EndpointFamily::Import), Fault::Status(503), Trigger::Nth(3)));
        assert_eq!(f.check(EndpointFamily::Import), None);
        assert_eq!(f.check(EndpointFamily::List), None);
        assert_eq!(f.check(EndpointFamily::Import), None);
        assert_eq!(f.check(EndpointFamily::Import), Some(Fault::Status(503)));
        assert_eq!(f.check(EndpointFamily::Import), None);
        f.clear();
        f.add(FaultRule::new(None, Fault::Malformed, Trigger::FirstN(2)));
        assert_eq!(f.check(EndpointFamily::Token), None);
        assert_eq!(f.check(EndpointFamily::List), Some(Fault::Malformed));
        assert_eq!(f.check(EndpointFamily::Get), Some(Fault::Malformed));
        assert_eq!(f.check(EndpointFamily::Get), None);
    }

    #[test]
    fn probability_is_seeded() {
        let run = |seed| {
            let f = Faults::new(seed);
            f.add(FaultRule::new(None, Fault::Status(500), Trigger::Probability(0.5)));
            (0..64).map(|_| f.check(EndpointFamily::List).is_some()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let hits = run(7).iter().filter(|b| **b).count();
        assert!(hits > 10 && hits < 54, "{hits}");
    }
}
