//! What a drain ([`obol_api::drain`]) changes: the end carried into the PaymentRoute, the
//! `Drained` condition and when to look at the offer again; and the readiness mark the
//! verifier's discovery reads ([`obol_api::labels::OFFER_READY_ANNOTATION`]).

use std::time::Duration;

use jiff::Timestamp;
use obol_api::PaymentRoute;
use obol_api::condition::{Condition, ConditionStatus, reasons, types};
use obol_api::drain::{self, DrainState};

use super::Desired;

/// Added to a wake-up at a drain boundary, so the reconcile it causes is past the boundary.
pub const BOUNDARY_SLACK: Duration = Duration::from_millis(20);

/// Carries the drain's end into the PaymentRoute once the drain started (the verifier's
/// discovery then lists the offer as unavailable until that end).
pub fn carry_drain(desired: &mut Desired, state: DrainState) {
    desired.payment_route.spec.drain_ends_at = state.route_end().map(drain::format);
}

/// Marks the PaymentRoute with the offer's readiness (`"true"`/`"false"`): discovery lists
/// only Ready offers.
pub fn mark_ready(payment_route: &mut PaymentRoute, ready: bool) {
    payment_route
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(
            obol_api::labels::OFFER_READY_ANNOTATION.to_owned(),
            ready.to_string(),
        );
}

/// `Drained`, for an offer with `spec.drainAt` (`None` otherwise).
pub fn drained_condition(state: DrainState) -> Option<Condition> {
    let c = |ok, reason, message: String| {
        Condition::new(
            types::DRAINED,
            ConditionStatus::from_bool(ok),
            reason,
            message,
        )
    };
    match state {
        DrainState::Selling => None,
        DrainState::Scheduled(d) => Some(c(
            false,
            reasons::DRAIN_SCHEDULED,
            format!(
                "Drain starts at {}; the route is withdrawn at {}",
                drain::format(d.starts),
                drain::format(d.ends)
            ),
        )),
        DrainState::Draining(d) => Some(c(
            false,
            reasons::DRAINING,
            format!(
                "Draining: discovery lists the offer as unavailable; the route gates until {}, then is withdrawn",
                drain::format(d.ends)
            ),
        )),
        DrainState::Drained(d) => Some(c(
            true,
            reasons::DRAINED,
            format!(
                "Drain ended at {}; the route is withdrawn (remove spec.drainAt to sell again)",
                drain::format(d.ends)
            ),
        )),
    }
}

/// When to reconcile the offer again: after `interval`, or just past the drain's next
/// boundary when that comes sooner.
pub fn requeue_after(interval: Duration, state: DrainState, now: Timestamp) -> Duration {
    match state.next_change(now) {
        Some(left) => interval.min(left + BOUNDARY_SLACK),
        None => interval,
    }
}
