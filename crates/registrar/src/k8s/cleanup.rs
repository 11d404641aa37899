//! Deletion: retire the agent on chain (`setAgentURI` to the tombstone `data:` URI), with
//! bounded retries, then release the finalizer; a Warning Event says when something stays
//! active on chain. A dead RPC never wedges a delete.

use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource as _, ResourceExt as _};
use obol_api::RegistrationRequest;
use tracing::{info, warn};

use crate::chain::{self, Recovery};
use crate::error::{Error, Result};
use crate::plan::{self, CleanupAction, Outcome};
use crate::request;

use super::reconcile::{Context, failed, until};
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
    let outcome = match action {
        CleanupAction::Release { warning } => {
            if let Some(note) = warning {
                warn!(%note, "Releasing without a tombstone");
                ctx.metrics.abandoned_tombstones.inc();
                publish(ctx, &rr, EventType::Warning, "TombstoneAbandoned", note).await;
            }
            return Ok(Action::await_change());
        }
        CleanupAction::Wait { until: at } => return Err(Error::RetryAt(until(now, at))),
        CleanupAction::Tombstone { agent_id } => {
            let uri = request::tombstone_uri(&derived);
            let registry = derived.target.registry;
            let done = match ctx.chains.client(derived.target.chain_id) {
                Ok(chain) => {
                    ctx.metrics.sent("tombstone");
                    let r = chain.set_agent_uri(registry, agent_id, &uri).await;
                    if r.is_ok() {
                        let retired = chain::desired_metadata(&rr.spec.metadata, false);
                        if let Err(error) = chain.sync_metadata(registry, agent_id, &retired).await
                        {
                            warn!(%error, "Tombstoned, but x402.supported stays set");
                        }
                    }
                    r
                }
                Err(e) => Err(e),
            };
            match done {
                Ok(tx_hash) => {
                    info!(agent_id, %tx_hash, "Tombstoned");
                    publish(
                        ctx,
                        &rr,
                        EventType::Normal,
                        "Tombstoned",
                        format!("Agent {agent_id} deactivated on chain"),
                    )
                    .await;
                    Outcome::Tombstoned { uri }
                }
                Err(e) if e.is_permanent() => {
                    let note = plan::clip(&format!(
                        "Could not tombstone agent {agent_id}; it stays active on chain: {e}"
                    ));
                    ctx.metrics.abandoned_tombstones.inc();
                    publish(ctx, &rr, EventType::Warning, "TombstoneAbandoned", note).await;
                    return Ok(Action::await_change());
                }
                Err(e) => failed(e),
            }
        }
        CleanupAction::Recover {
            uri,
            from_block,
            tx_hash,
        } => {
            let found = match ctx.chains.client(derived.target.chain_id) {
                Ok(chain) => {
                    chain
                        .recover(derived.target.registry, &uri, from_block, tx_hash)
                        .await
                }
                Err(e) => Err(e),
            };
            match found {
                Ok(Recovery::Found { agent_id, tx_hash }) => {
                    Outcome::Recovered { agent_id, tx_hash }
                }
                Ok(Recovery::InFlight) => Outcome::Transient {
                    message: "registration transaction still pending".into(),
                },
                Ok(Recovery::Absent) => return Ok(Action::await_change()),
                Err(e) => failed(e),
            }
        }
    };
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
