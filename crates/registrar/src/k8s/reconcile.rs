//! One reconcile of a live RegistrationRequest: fresh read → [`step::advance`] (decide, one
//! chain step, next status) → status write. Each step persists its result before the next one
//! runs, so the fence is on the API server before `register` is ever sent.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Client, ResourceExt as _};
use obol_api::{REGISTRAR_FINALIZER, RegistrationRequest};
use tracing::{instrument, warn};

use crate::backoff::Backoff;
use crate::chain::Chains;
use crate::error::{Error, Result};
use crate::metrics::{RegistrarMetrics, ResultLabel};
use crate::step::{self, Requeue};

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

impl Context {
    /// What a step needs.
    pub fn env(&self) -> step::Env<'_> {
        step::Env {
            chains: &self.chains,
            metrics: &self.metrics,
            public_url: self.public_url.as_deref(),
            backoff: &self.backoff,
            poll_interval: self.poll_interval,
        }
    }
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

async fn apply(
    api: &Api<RegistrationRequest>,
    cached: &RegistrationRequest,
    ctx: &Context,
) -> Result<Action> {
    let rr = status::read_fresh(api, &cached.name_any()).await?;
    let advanced = step::advance(&ctx.env(), &rr, (ctx.now)()).await;
    if let Some(next) = &advanced.status {
        status::write(api, &rr, next).await?;
    }
    Ok(match advanced.requeue {
        Requeue::AwaitChange => Action::await_change(),
        Requeue::After(after) => Action::requeue(after),
    })
}
