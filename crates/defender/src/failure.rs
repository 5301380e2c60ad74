//! What a failed import item means for the next run: rejected for good, left out because the
//! tenant is full, or simply not applied yet. Over-capacity is decided by the free room the
//! listing showed (a count), and only then by Defender's text, because no public example of the
//! cap-reached text exists (spec §8.2) and the app remembers rejects for days.

use crate::wire::{FailureOrigin, ImportOutcome};

/// How the caller should treat a failed import item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// Defender refused the item itself: resending it unchanged fails again (remember it).
    Rejected,
    /// The tenant had no room for a new indicator: retry once room is made (never remember it).
    OverCapacity,
    /// Not applied for a passing reason (throttling, an error, no result, budget spent): retry.
    Retryable,
}

/// What the caller knows about one failed item beyond Defender's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureContext {
    /// The item would create a new indicator (not update one the tenant already holds): only
    /// creates take a slot under the cap.
    pub creates: bool,
    /// Free slots under the cap when the item was sent, counted from the listing: the cap minus
    /// every listed indicator minus the creates that landed earlier in the run. Room freed by
    /// this run's deletes is left out: Defender may keep a deleted indicator's slot for a while.
    /// `None` when unknown (then only the text can tell).
    pub room_left: Option<i64>,
}

/// Phrases of a refusal that point at the tenant cap rather than at the item (the item's value
/// is cut out of the text first, so `limited-offer.com is invalid` is not read as a limit).
const CAP_PHRASES: [&str; 8] = [
    "15000",
    "15,000",
    "limit",
    "capacity",
    "quota",
    "maximum number",
    "too many indicators",
    "no more indicators",
];

/// Phrases of a passing failure.
const TRANSIENT_PHRASES: [&str; 7] =
    ["throttl", "try again", "timeout", "timed out", "internal", "no result", "temporarily"];

/// Classify a failed import item (`outcome.is_failed`) for what the next run should do.
///
/// - Not judged by Defender ([`FailureOrigin::NotJudged`]): [`FailureClass::Retryable`].
/// - Refused when sent alone ([`FailureOrigin::RequestRefused`], a whole-request 400):
///   [`FailureClass::Rejected`], whatever the text says.
/// - A per-item failure of a create is [`FailureClass::OverCapacity`] when the listing left no
///   room for it (`room_left <= 0`) or when the text speaks of the cap; it is never rejected
///   then, since a full tenant says nothing about the item.
/// - Otherwise a passing text is [`FailureClass::Retryable`], and anything else
///   [`FailureClass::Rejected`].
pub fn classify_failure(outcome: &ImportOutcome, value: &str, ctx: FailureContext) -> FailureClass {
    match outcome.origin {
        FailureOrigin::NotJudged => return FailureClass::Retryable,
        FailureOrigin::RequestRefused => return FailureClass::Rejected,
        FailureOrigin::ItemResult => {}
    }
    let reason = outcome.failure_reason.as_deref().unwrap_or_default().to_ascii_lowercase();
    let value = value.trim().to_ascii_lowercase();
    let reason = if value.is_empty() { reason } else { reason.replace(&value, "") };
    let says = |phrases: &[&str]| phrases.iter().any(|p| reason.contains(p));
    if ctx.creates && (ctx.room_left.is_some_and(|r| r <= 0) || says(&CAP_PHRASES)) {
        return FailureClass::OverCapacity;
    }
    if says(&TRANSIENT_PHRASES) || reason.trim().is_empty() {
        return FailureClass::Retryable;
    }
    if !ctx.creates && says(&CAP_PHRASES) {
        // An update takes no slot; a cap text on it is odd: do not remember it.
        return FailureClass::Retryable;
    }
    FailureClass::Rejected
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(reason: &str, origin: FailureOrigin) -> ImportOutcome {
        ImportOutcome {
            id: None,
            indicator: "v".into(),
            is_failed: true,
            failure_reason: Some(reason.into()),
            origin,
        }
    }

    fn create(room: i64) -> FailureContext {
        FailureContext { creates: true, room_left: Some(room) }
    }

    #[test]
    fn a_full_tenant_is_over_capacity_whatever_the_text() {
        let odd = failed("Cannot do that right now for this tenant.", FailureOrigin::ItemResult);
        assert_eq!(classify_failure(&odd, "a.example", create(0)), FailureClass::OverCapacity);
        assert_eq!(classify_failure(&odd, "a.example", create(-3)), FailureClass::OverCapacity);
        // With room to spare, the same text is about the item.
        assert_eq!(classify_failure(&odd, "a.example", create(400)), FailureClass::Rejected);
        // An update takes no slot.
        let update = FailureContext { creates: false, room_left: Some(0) };
        assert_eq!(classify_failure(&odd, "a.example", update), FailureClass::Rejected);
    }

    #[test]
    fn a_cap_text_is_over_capacity_even_when_the_count_says_room() {
        let cap = failed(
            "The maximum number of active indicators (15000) for this tenant has been reached.",
            FailureOrigin::ItemResult,
        );
        assert_eq!(classify_failure(&cap, "a.example", create(200)), FailureClass::OverCapacity);
        let unknown = FailureContext { creates: true, room_left: None };
        assert_eq!(classify_failure(&cap, "a.example", unknown), FailureClass::OverCapacity);
        let update = FailureContext { creates: false, room_left: Some(200) };
        assert_eq!(classify_failure(&cap, "a.example", update), FailureClass::Retryable);
    }

    #[test]
    fn the_value_in_a_reason_is_not_read_as_a_limit() {
        let bad = failed("Domain name limited-offer.com is invalid.", FailureOrigin::ItemResult);
        assert_eq!(classify_failure(&bad, "limited-offer.com", create(50)), FailureClass::Rejected);
    }

    #[test]
    fn origins_decide_before_the_text() {
        let refused = failed(
            "The field title must be a string with a maximum length of 4000",
            FailureOrigin::RequestRefused,
        );
        assert_eq!(classify_failure(&refused, "a.example", create(0)), FailureClass::Rejected);
        let unjudged = failed("not applied: the split budget ran out", FailureOrigin::NotJudged);
        assert_eq!(classify_failure(&unjudged, "a.example", create(50)), FailureClass::Retryable);
        let none = failed("Defender returned no result for this item", FailureOrigin::ItemResult);
        assert_eq!(classify_failure(&none, "a.example", create(50)), FailureClass::Retryable);
        let busy = failed("Internal error, try again later", FailureOrigin::ItemResult);
        assert_eq!(classify_failure(&busy, "a.example", create(50)), FailureClass::Retryable);
    }
}
