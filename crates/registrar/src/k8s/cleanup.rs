//! Deletion: retire the agent on chain (`setAgentURI` to the tombstone `data:` URI,
//! `unsetAgentWallet`, the retired metadata), or make sure a registration still in flight
//! either shows up (then retire it) or can never be mined (its nonce burnt), with bounded
//! retries; then release the finalizer. A Warning Event says when something stays active on
//! chain. A dead RPC never wedges a delete.

use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource as _, ResourceExt as _};
use obol_api::RegistrationRequest;
use tracing::{info, warn};

use crate::document::Target;
use crate::error::{Error, Result};
use crate::plan::{self, CleanupAction, Outcome};
use crate::request;
use crate::step::{self, Retired, until};

use super::reconcile::Context;
use super::status;

/// Cleanup for the finalizer helper: `Ok` releases the finalizer, [`Error::RetryAt`] keeps it.
pub async fn cleanup(
    api: &Api<RegistrationRequest>,
    cached: &RegistrationRequest,
    ctx: &Context,
) -> Result<Action> {
    let name = cached.name_any();
    let mut rr = status::read_fresh(api, &name).await?;
    let now = (ctx.now)();
    let mut current = rr.status.clone().unwrap_or_default();
    if let Some(begun) = plan::begin_cleanup(&current, now) {
        let rv = status::write(api, &rr, &begun).await?;
        rr.metadata.resource_version = rv;
        rr.status = Some(begun.clone());
        current = begun;
    }
    let generation = rr.metadata.generation;
    let action = plan::decide_cleanup(&current, ctx.chains.has_key(), ctx.tombstone_attempts, now);
    let derived = match request::derive(&rr, ctx.public_url.as_deref()) {
        Ok(d) => d,
        Err(why) => {
            // An invalid spec never registered anything.
            info!(reason = %why, "Releasing an invalid request");
            return Ok(Action::await_change());
        }
    };
    let target = match current.agent_registry.as_deref() {
        Some(fenced) => match Target::from_agent_registry(fenced) {
            Ok(t) => t,
            Err(why) => {
                warn!(reason = %why, "Unreadable agentRegistry; using the spec's target");
                derived.target
            }
        },
        None => derived.target,
    };
    let outcome = match action {
        CleanupAction::Wait { until: at } => return Err(Error::RetryAt(until(now, at))),
        action => match step::retire(&ctx.env(), &rr, &derived, target, action).await {
            Retired::Release { warning } => {
                if let Some(note) = warning {
                    warn!(%note, "Releasing without a tombstone");
                    ctx.metrics.abandoned_tombstones.inc();
                    publish(ctx, &rr, EventType::Warning, "TombstoneAbandoned", note).await;
                }
                return Ok(Action::await_change());
            }
            Retired::Outcome(outcome) => outcome,
        },
    };
    if let (Outcome::Tombstoned { .. }, Some(agent_id)) = (&outcome, current.agent_id.as_deref()) {
        info!(agent_id, "Tombstoned");
        publish(
            ctx,
            &rr,
            EventType::Normal,
            "Tombstoned",
            format!("Agent {agent_id} deactivated on chain"),
        )
        .await;
    }
    let next = plan::apply(&current, generation, outcome.clone(), now, &ctx.backoff);
    status::write(api, &rr, &next).await?;
    match outcome {
        Outcome::Tombstoned { .. } => Ok(Action::await_change()),
        Outcome::Recovered { .. } => Err(Error::RetryAt(Duration::ZERO)),
        _ => {
            let at = next
                .next_attempt_time
                .as_deref()
                .and_then(|t| t.parse().ok());
            Err(Error::RetryAt(
                at.map_or(ctx.backoff.initial, |at| until(now, at)),
            ))
        }
    }
}

async fn publish(
    ctx: &Context,
    rr: &RegistrationRequest,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Tombstone".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&ev, &rr.object_ref(&())).await {
        warn!(%error, "Could not publish an Event");
    }
}
