//! The ForwardAuth gate of one matched route: the pure decisions of [`crate::decide`] around
//! the reservation and the facilitator calls. Local checks run before any network call, the
//! payment is reserved before `/verify` and settled before the request is let through
//! (ForwardAuth cannot see the upstream's answer), and every exit is a deliberate reply.

use obol_x402::Requirement;
use tracing::{info, warn};

use crate::admit::{Admitted, Ctx, short_hash};
use crate::decide::{self, Forwarded, Reply};
use crate::error::Denial;
use crate::metrics::Outcome;
use crate::reservations::{Fingerprint, Lease, Record};
use crate::route::RouteEntry;
use crate::state::AppState;

/// Gates one request on a matched route. `payment` is the payment header, if any.
pub async fn gate(
    state: &AppState,
    route: &RouteEntry,
    fwd: &Forwarded<'_>,
    payment: Result<Option<&str>, Denial>,
) -> (Reply, Outcome) {
    let metrics = &state.metrics;
    metrics.requests.get_or_create(&route.labels).inc();
    let Some(requirement) = &route.requirement else {
        return (decide::free(Some(route)), Outcome::Free);
    };
    let header = match payment {
        Ok(Some(header)) => Ok(header),
        Ok(None) => return unpaid(state, route, requirement, fwd),
        Err(denial) => Err(denial),
    };
    let resource = decide::resource(route, fwd);
    let ctx = Ctx {
        state,
        route,
        requirement,
        resource: &resource,
        wants_html: fwd.wants_html,
        // ForwardAuth never sees the answer: it sells `exact` only.
        upto: None,
    };
    let header = match header {
        Ok(header) => header,
        Err(denial) => return ctx.refuse(denial),
    };
    let now = state.clock.now_unix();
    let (payload, verified) = match decide::check_payment(requirement, header, now) {
        Ok(ok) => ok,
        Err(denial) => return ctx.refuse(denial),
    };
    let nonce_id = short_hash(&verified.nonce);
    let (mut lease, settle) = match ctx.admit(payload, &verified, now).await {
        Err(denial) => return ctx.refuse(denial),
        Ok(Admitted::Reserve { mut lease, receipt }) => {
            // ForwardAuth cannot see whether the answer arrives: once let through it is spent.
            mark(state, route, &mut lease, Record::Spent, &nonce_id).await;
            metrics.payment_verified.get_or_create(&route.labels).inc();
            return (
                decide::reserved(route, &verified, &receipt),
                Outcome::Verified,
            );
        }
        Ok(Admitted::Fresh {
            lease,
            request,
            facilitator,
        }) => (lease, facilitator.settle(&request).await),
    };
    match settle {
        Ok(settle) => {
            // From here on the authorization is spent: never accept it again.
            mark(state, route, &mut lease, Record::Spent, &nonce_id).await;
            metrics.payment_verified.get_or_create(&route.labels).inc();
            metrics.charged_requests.get_or_create(&route.labels).inc();
            info!(route = %route.key, payer = %verified.payer, nonce = %nonce_id, tx = settle.transaction().unwrap_or(""), "Payment settled");
            (decide::paid(route, &verified, &settle), Outcome::Verified)
        }
        Err(error) => {
            let denial = ctx.facilitator_denial(&error, &verified, &nonce_id);
            if denial.releases_authorization() {
                // Refused before anything was sent on chain: the authorization is intact.
                if let Err(error) = state.reservations.release(&lease).await {
                    warn!(route = %route.key, %error, nonce = %nonce_id, "Cannot release a reservation; it expires by itself");
                }
            } else {
                // Sent, maybe sent, or already used: funds may have moved, so the nonce stays
                // burned (only chain evidence can re-serve it). An unknown outcome is logged
                // for an operator to reconcile.
                let unknown = Record::Unknown {
                    fingerprint: Fingerprint::of(requirement),
                };
                mark(state, route, &mut lease, unknown, &nonce_id).await;
                if !denial.says_already_used() {
                    let tx = denial
                        .failed_settlement()
                        .map(|s| s.transaction)
                        .unwrap_or_default();
                    warn!(route = %route.key, payer = %verified.payer, nonce = %nonce_id, tx, "Settlement outcome unknown; reconcile on chain");
                }
            }
            ctx.refuse(denial)
        }
    }
}

/// The 402 of a request without a payment on a priced route (cached per route).
pub fn unpaid(
    state: &AppState,
    route: &RouteEntry,
    requirement: &Requirement,
    fwd: &Forwarded<'_>,
) -> (Reply, Outcome) {
    state
        .metrics
        .payment_required
        .get_or_create(&route.labels)
        .inc();
    let reply = route.unpaid.get_or_build(fwd, || {
        let resource = decide::resource(route, fwd);
        let templated = match &route.unpaid_template.0 {
            Some(t) if !fwd.wants_html => t.render(
                &resource.url,
                resource.description.as_deref().unwrap_or_default(),
            ),
            _ => None,
        };
        templated.unwrap_or_else(|| {
            decide::payment_required_with(
                requirement,
                &resource,
                fwd.wants_html,
                None,
                route.bazaar.as_ref(),
            )
        })
    });
    (reply, Outcome::PaymentRequired)
}

/// Moves a reservation on; a store that fails here leaves the record `Held` until its deadline,
/// after which only chain evidence can re-serve it (never a second charge).
pub(crate) async fn mark(
    state: &AppState,
    route: &RouteEntry,
    lease: &mut Lease,
    record: Record,
    nonce: &str,
) {
    match state.reservations.set(lease, record).await {
        Ok(true) => {}
        Ok(false) => warn!(route = %route.key, nonce, "Reservation taken over while held"),
        Err(error) => warn!(route = %route.key, %error, nonce, "Cannot record a settled payment"),
    }
}
