//! The payment gate of one matched route: the pure decisions of [`crate::decide`] around the
//! replay cache and the facilitator calls. Local checks run before any network call, the
//! payment is settled before the request is let through (ForwardAuth cannot see the
//! upstream's answer), and every exit is a deliberate reply.

use axum::http::StatusCode;
use obol_x402::facilitator::FacilitatorError;
use obol_x402::wire::ResourceInfo;
use obol_x402::{B256, Requirement};
use tracing::{debug, info, warn};

use crate::decide::{self, Forwarded, Reply};
use crate::error::Denial;
use crate::metrics::Outcome;
use crate::replay::ReplayError;
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
        Ok(None) => {
            metrics.payment_required.get_or_create(&route.labels).inc();
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
                    decide::payment_required(requirement, &resource, fwd.wants_html, None)
                })
            });
            return (reply, Outcome::PaymentRequired);
        }
        Err(denial) => Err(denial),
    };
    let resource = decide::resource(route, fwd);
    let ctx = Ctx {
        state,
        route,
        requirement,
        resource: &resource,
        wants_html: fwd.wants_html,
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
    let (payer, nonce) = (verified.payer, verified.nonce);
    let nonce_id = short_hash(&nonce);
    match state.replay.begin(payer, nonce, verified.valid_before, now) {
        Ok(()) => {}
        Err(ReplayError::Replayed) => return ctx.refuse(Denial::Replayed),
        Err(ReplayError::Full) => return ctx.refuse(Denial::Busy),
    }
    let release = |denial: Denial| {
        state.replay.release(payer, nonce);
        ctx.refuse(denial)
    };
    let Ok(request) = requirement.facilitator_request(payload, &resource) else {
        return release(Denial::UnsupportedVersion);
    };
    let facilitator = match state.facilitators.for_route(route) {
        Ok(f) => f,
        Err(denial) => return release(denial),
    };
    if let Err(error) = facilitator.verify(&request).await {
        ctx.log_facilitator(&error, &nonce_id);
        return release(Denial::from_facilitator(&error));
    }
    match facilitator.settle(&request).await {
        Ok(settle) => {
            // From here on the authorization is spent: never accept it again.
            state.replay.settled(payer, nonce);
            metrics.payment_verified.get_or_create(&route.labels).inc();
            metrics.charged_requests.get_or_create(&route.labels).inc();
            info!(route = %route.key, %payer, nonce = %nonce_id, tx = settle.transaction().unwrap_or(""), "Payment settled");
            (decide::paid(route, &verified, &settle), Outcome::Verified)
        }
        Err(error) => {
            // A settle that failed or whose result is unknown may still have moved funds:
            // keep the nonce burned.
            state.replay.settled(payer, nonce);
            ctx.log_facilitator(&error, &nonce_id);
            ctx.refuse(Denial::from_facilitator(&error))
        }
    }
}

struct Ctx<'a> {
    state: &'a AppState,
    route: &'a RouteEntry,
    requirement: &'a Requirement,
    resource: &'a ResourceInfo,
    wants_html: bool,
}

impl Ctx<'_> {
    /// A refused payment: count it and answer with the denial's status.
    fn refuse(&self, denial: Denial) -> (Reply, Outcome) {
        let metrics = &self.state.metrics;
        metrics.denied(denial.metric_label());
        let outcome = match denial.status() {
            StatusCode::PAYMENT_REQUIRED => {
                metrics
                    .payment_failed
                    .get_or_create(&self.route.labels)
                    .inc();
                Outcome::Failed
            }
            StatusCode::SERVICE_UNAVAILABLE => Outcome::Unavailable,
            _ => Outcome::BadRequest,
        };
        debug!(route = %self.route.key, reason = denial.metric_label(), "Payment refused");
        let reply = decide::refused(self.requirement, self.resource, self.wants_html, &denial);
        (reply, outcome)
    }

    fn log_facilitator(&self, error: &FacilitatorError, nonce_id: &str) {
        let kind = error.metric_label();
        self.state.metrics.facilitator_error(kind);
        let endpoint = error.endpoint().as_str();
        if kind == "rejected" {
            info!(route = %self.route.key, endpoint, reason = error.reason().unwrap_or(""), nonce = %nonce_id, "Facilitator refused the payment");
        } else {
            warn!(route = %self.route.key, endpoint, kind, nonce = %nonce_id, "Facilitator unavailable");
        }
    }
}

/// A log-safe nonce identifier: the first 8 bytes of its SHA-256, hex.
fn short_hash(nonce: &B256) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(nonce.as_slice())[..8])
}
