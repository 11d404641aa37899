//! Wiring: the document cache and HTTP server (every replica), leader election, and the
//! kube-runtime Controller over RegistrationRequests (the leader only).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use kube::{Api, Client};
use obol_api::RegistrationRequest;
use prometheus_client::registry::Registry;
use tracing::{Instrument as _, info, info_span};

use obol_runtime::lease::Outcome;

use crate::backoff::Backoff;
use crate::chain::Chains;
use crate::error::{Error, Result};
use crate::http::Served;
use crate::k8s::{Context, error_policy, reconcile};
use crate::metrics::RegistrarMetrics;

pub use obol_runtime::lease::LeaseConfig;

/// Everything [`run`] needs besides the client.
pub struct RunConfig {
    /// RPC endpoints and the key.
    pub chains: Arc<Chains>,
    /// Base URL of the served documents (`None`: register `data:` URIs).
    pub public_url: Option<String>,
    /// Watch one namespace (`None`: all).
    pub namespace: Option<String>,
    /// HTTP listen address (`None`: no server).
    pub listen: Option<SocketAddr>,
    /// Leader election (`None`: always lead).
    pub lease: Option<LeaseConfig>,
    /// Retry schedule.
    pub backoff: Backoff,
    /// Pending-transaction poll interval.
    pub poll_interval: Duration,
    /// Tombstone attempts before a deletion is released.
    pub tombstone_attempts: u32,
}

fn scoped(client: &Client, namespace: Option<&str>) -> Api<RegistrationRequest> {
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs until `shutdown` resolves (or leadership is lost: an error, so the process restarts
/// and campaigns again with fresh state).
pub async fn run(
    client: Client,
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let shutdown = shutdown.shared();
    let mut registry = Registry::default();
    let metrics = Arc::new(RegistrarMetrics::register(&mut registry));

    // Every replica serves documents from its own cache.
    let (store, writer) = reflector::store::<RegistrationRequest>();
    let served = Served::new(store.clone(), registry);
    let cache = watcher(
        scoped(&client, config.namespace.as_deref()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .for_each(|_| async {});
    tokio::spawn(cache.instrument(info_span!("document_cache")));
    {
        let served = served.clone();
        tokio::spawn(async move {
            if store.wait_until_ready().await.is_ok() {
                served.set_ready(true);
            }
        });
    }
    if let Some(addr) = config.listen {
        let bound = obol_runtime::admin::spawn(addr, served.router())
            .await
            .map_err(|e| Error::Config(format!("listen on {addr}: {e}")))?;
        info!(%bound, "Serving registration documents and admin endpoints");
    }

    let gauge = metrics.clone();
    let lease = config.lease.clone();
    let outcome = obol_runtime::lease::lead_if(
        client.clone(),
        lease.as_ref(),
        shutdown.clone(),
        move |leading| {
            gauge.leader.set(i64::from(leading));
        },
        || run_controller(client, config, metrics, shutdown),
    )
    .await
    .map_err(|e| Error::Config(format!("lease: {e}")))?;
    match outcome {
        Outcome::Stopped => Ok(()),
        Outcome::Finished(result) => result,
        Outcome::Lost => Err(Error::Config("lost the lease".into())),
    }
}

async fn run_controller(
    client: Client,
    config: RunConfig,
    metrics: Arc<RegistrarMetrics>,
    shutdown: futures::future::Shared<impl Future<Output = ()> + Send + 'static>,
) -> Result<()> {
    let reporter = Reporter {
        controller: obol_api::REGISTRAR_FIELD_MANAGER.into(),
        instance: config.lease.as_ref().map(|l| l.identity.clone()),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        chains: config.chains,
        public_url: config.public_url,
        backoff: config.backoff,
        poll_interval: config.poll_interval,
        tombstone_attempts: config.tombstone_attempts,
        now: jiff::Timestamp::now,
        metrics,
    });
    if let Some(signer) = ctx.chains.signer() {
        info!(%signer, "Registering on chain");
    } else {
        info!("No signing key: requests become OffChainOnly");
    }
    Controller::new(
        scoped(&client, config.namespace.as_deref()),
        watcher::Config::default(),
    )
    .with_config(controller::Config::default().concurrency(4))
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(error) = r {
            tracing::debug!(%error, "Reconcile error");
        }
    })
    .await;
    Ok(())
}
