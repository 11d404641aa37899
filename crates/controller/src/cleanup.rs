//! The finalizer's cleanup: withdraw the HTTPRoute (traffic stops first), delete the
//! RegistrationRequest and wait for it to disappear (its registrar tombstones the on-chain
//! registration), bounded by a deadline after which a Warning Event is published and the offer
//! is released anyway. Owner-reference garbage collection removes the other children.

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use obol_api::{RegistrationRequest, ServiceOffer};

use jiff::Timestamp;

use crate::apply;
use crate::error::{Error, Result};
use crate::plan::deletion::{self, Verdict};
use crate::reconcile::{Context, event, write_status};

/// Deletion: withdraw the HTTPRoute, delete the RegistrationRequest and wait (bounded) until
/// it is gone; garbage collection removes the rest once the finalizer is released. `now` is
/// the reconcile's one clock reading; [`plan::deletion::verdict`] decides.
pub(crate) async fn cleanup(offer: &ServiceOffer, ctx: &Context, now: Timestamp) -> Result<Action> {
    let ns = offer.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = offer.name_any();
    if let Some(uid) = offer.uid() {
        ctx.healthy_once.lock().remove(&uid);
    }
    let route = obol_api::names::http_route(&name);
    apply::withdraw(&ctx.client, &ctx.http_routes, &ns, &route, true)
        .await
        .map_err(Error::kube("withdraw HTTPRoute"))?;
    let rr_name = obol_api::names::registration_request(&name);
    apply::withdraw(&ctx.client, &ctx.registrations, &ns, &rr_name, true)
        .await
        .map_err(Error::kube("delete RegistrationRequest"))?;
    let rrs: Api<RegistrationRequest> = Api::namespaced(ctx.client.clone(), &ns);
    let gone = rrs
        .get_opt(&rr_name)
        .await
        .map_err(Error::kube("get RegistrationRequest"))?
        .is_none();
    let deleting_since = offer.metadata.deletion_timestamp.as_ref().map(|t| t.0);
    match deletion::verdict(gone, deleting_since, now, ctx.cleanup_timeout) {
        Verdict::Release => Ok(Action::await_change()),
        Verdict::GiveUp => {
            let note = format!(
                "RegistrationRequest {rr_name} still exists after {:?}; releasing the offer anyway",
                ctx.cleanup_timeout
            );
            event(
                ctx,
                offer,
                EventType::Warning,
                "RegistrationCleanupTimedOut",
                &note,
            )
            .await;
            Ok(Action::await_change())
        }
        Verdict::Wait => {
            // Say why the offer lingers: phase Deleting (written once; conditions unchanged).
            let mut status = offer.status.clone().unwrap_or_default();
            status.phase = Some(obol_api::Phase::Deleting);
            write_status(ctx, offer, &status).await?;
            Err(Error::CleanupPending {
                namespace: ns,
                name: rr_name,
            })
        }
    }
}
