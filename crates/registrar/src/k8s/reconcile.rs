//! One reconcile of a live RegistrationRequest: fresh read → [`plan::decide`] → one chain step
//! → [`plan::apply`] → status write. Each step persists its result before the next one runs,
//! so the fence is on the API server before `register` is ever sent.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Client, ResourceExt as _};
use obol_api::{REGISTRAR_FINALIZER, RegistrationRequest};
use tracing::{info, instrument, warn};

use crate::backoff::Backoff;
use crate::chain::{self, Chains, Recovery, Submitted};
use crate::error::{ChainError, Error, Result};
use crate::metrics::{RegistrarMetrics, ResultLabel};
use crate::plan::{self, Outcome};
use crate::request;

use super::{cleanup, status};

/// What reconciles share.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Event publisher.
    pub recorder: Recorder,
    /// RPC endpoints and the key.
    pub chains: Arc<Chains>,
    /// Base URL of the served documents; `None` registers `data:` URIs.
    pub public_url: Option<String>,
    /// Retry schedule.
    pub backoff: Backoff,
    /// How often a pending transaction is looked at again.
    pub poll_interval: Duration,
    /// Tombstone attempts before a deletion is released anyway.
    pub tombstone_attempts: u32,
    /// The clock (injected so decisions never read time themselves).
    pub now: fn() -> Timestamp,
    /// Metrics.
    pub metrics: Arc<RegistrarMetrics>,
}

/// The controller's reconcile: the finalizer wraps [`apply`] and [`cleanup::cleanup`].
#[instrument(skip_all, fields(ns = rr.namespace().unwrap_or_default(), name = rr.name_any()))]
pub async fn reconcile(rr: Arc<RegistrationRequest>, ctx: Arc<Context>) -> Result<Action> {
    let ns = rr.namespace().unwrap_or_default();
    let api: Api<RegistrationRequest> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, REGISTRAR_FINALIZER, rr, |event| async {
        match event {
            FinalizerEvent::Apply(rr) => apply(&api, &rr, &ctx).await,
            FinalizerEvent::Cleanup(rr) => cleanup::cleanup(&api, &rr, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let label = match &result {
        Ok(_) => "ok",
        Err(e) => e.metric_label(),
    };
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabel {
            result: label.to_owned(),
        })
        .inc();
    result
}

/// Requeue policy after an error: a scheduled retry waits as long as it asked; anything else
/// (API server trouble, conflicts) retries soon.
pub fn error_policy(_rr: Arc<RegistrationRequest>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Error::Finalizer(inner) = error
        && let kube::runtime::finalizer::Error::CleanupFailed(Error::RetryAt(after)) =
            inner.as_ref()
    {
        return Action::requeue(*after);
    }
    warn!(%error, "Reconcile failed");
    Action::requeue(ctx.backoff.initial)
}

pub(super) fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// The outcome of a failed chain step.
pub(super) fn failed(e: ChainError) -> Outcome {
    let message = e.to_string();
    if e.is_permanent() {
        Outcome::Permanent { message }
    } else {
        Outcome::Transient { message }
    }
}

async fn apply(
    api: &Api<RegistrationRequest>,
    cached: &RegistrationRequest,
    ctx: &Context,
) -> Result<Action> {
    let name = cached.name_any();
    let rr = status::read_fresh(api, &name).await?;
    let current = rr.status.clone().unwrap_or_default();
    let generation = rr.metadata.generation;
    let now = (ctx.now)();
    let derived = match request::derive(&rr, ctx.public_url.as_deref()) {
        Ok(d) => d,
        Err(why) => {
            let next = plan::apply(
                &current,
                generation,
                Outcome::Permanent { message: why },
                now,
                &ctx.backoff,
            );
            status::write(api, &rr, &next).await?;
            return Ok(Action::await_change());
        }
    };
    let action = plan::decide(&plan::Inputs {
        generation,
        status: &current,
        has_key: ctx.chains.has_key(),
        register_uri: &derived.register_uri,
        live_uri: &derived.live_uri,
        now,
    });
    let registry = derived.target.registry;
    let outcome = match action {
        plan::Action::Idle => {
            return Ok(Action::await_change());
        }
        plan::Action::Wait { until: at } => return Ok(Action::requeue(until(now, at))),
        plan::Action::OffChainOnly => Outcome::OffChainOnly,
        plan::Action::Fence { uri } => match ctx.chains.client(derived.target.chain_id) {
            Err(e) => failed(e),
            Ok(chain) => match chain.block_number().await {
                Ok(from_block) => Outcome::Fenced { from_block, uri },
                Err(e) => failed(e),
            },
        },
        plan::Action::Submit {
            uri,
            from_block,
            tx_hash,
            send,
        } => {
            let submitted = match ctx.chains.client(derived.target.chain_id) {
                Ok(chain) => {
                    chain
                        .submit(registry, &uri, from_block, tx_hash, send)
                        .await
                }
                Err(e) => Err(e),
            };
            match submitted {
                Ok(Submitted::Sent(tx_hash)) => {
                    ctx.metrics.sent("register");
                    info!(%tx_hash, "Sent register");
                    Outcome::Sent { tx_hash }
                }
                Ok(Submitted::Recovered(Recovery::Found { agent_id, tx_hash })) => {
                    info!(agent_id, "Registration confirmed");
                    Outcome::Recovered { agent_id, tx_hash }
                }
                Ok(Submitted::Recovered(Recovery::InFlight)) => Outcome::InFlight,
                Ok(Submitted::Recovered(Recovery::Absent)) => Outcome::Unfenced,
                Err(e) => failed(e),
            }
        }
        plan::Action::UpdateUri { agent_id, uri } => {
            let done = match ctx.chains.client(derived.target.chain_id) {
                Ok(chain) => {
                    ctx.metrics.sent("set_agent_uri");
                    chain.set_agent_uri(registry, agent_id, &uri).await
                }
                Err(e) => Err(e),
            };
            match done {
                Ok(_) => Outcome::UriUpdated { uri },
                Err(e) => failed(e),
            }
        }
        plan::Action::SyncMetadata { agent_id } => {
            let desired = chain::desired_metadata(&rr.spec.metadata, true);
            let done = match ctx.chains.client(derived.target.chain_id) {
                Ok(chain) => chain.sync_metadata(registry, agent_id, &desired).await,
                Err(e) => Err(e),
            };
            match done {
                Ok(written) => {
                    for _ in 0..written {
                        ctx.metrics.sent("metadata");
                    }
                    Outcome::MetadataSynced
                }
                Err(e) => failed(e),
            }
        }
    };
    let requeue = match &outcome {
        Outcome::InFlight => Action::requeue(ctx.poll_interval),
        Outcome::Transient { message } => {
            warn!(error = %message, "Chain step failed; will retry");
            Action::requeue(ctx.backoff.initial)
        }
        Outcome::Permanent { message } => {
            warn!(error = %message, "Registration failed");
            Action::await_change()
        }
        _ => Action::requeue(Duration::from_millis(100)),
    };
    let next = plan::apply(&current, generation, outcome, now, &ctx.backoff);
    status::write(api, &rr, &next).await?;
    Ok(
        match next
            .next_attempt_time
            .as_deref()
            .and_then(|t| t.parse().ok())
        {
            Some(at) => Action::requeue(until(now, at)),
            None => requeue,
        },
    )
}
