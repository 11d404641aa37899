//! Wiring: admin server, leader election, watches and the kube-runtime Controller.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Client};
use obol_api::gateway::HttpRoute;
use obol_api::traefik::Middleware;
use obol_api::{PaymentRoute, RegistrationRequest, ServiceOffer};
use prometheus_client::registry::Registry;
use tracing::info;

use obol_runtime::admin::{Admin, Ready};
use obol_runtime::lease::Outcome;

use crate::error::{Error, Result};
use crate::metrics::ControllerMetrics;
use crate::plan::Settings;
use crate::reconcile::{Context, error_policy, reconcile};

pub use obol_runtime::lease::LeaseConfig;

/// Everything [`run`] needs besides the client.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Child settings.
    pub settings: Settings,
    /// Deadline of one upstream probe.
    pub probe_timeout: Duration,
    /// Re-probe interval.
    pub probe_interval: Duration,
    /// Bounded wait for the RegistrationRequest on deletion.
    pub cleanup_timeout: Duration,
    /// Most reconciles at once.
    pub concurrency: u16,
    /// Leader election; `None` runs unconditionally (tests, single replica).
    pub lease: Option<LeaseConfig>,
    /// Address of the admin endpoints; `None` serves none.
    pub listen: Option<SocketAddr>,
    /// Watch only this namespace; `None` watches all.
    pub namespace: Option<String>,
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `shutdown` resolves (or leadership is lost, an error).
pub async fn run(
    client: Client,
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let mut registry = Registry::default();
    let metrics = Arc::new(ControllerMetrics::register(&mut registry));
    let ready = Ready::default();
    if let Some(addr) = config.listen {
        let router = Admin::with_registry(registry, ready.clone()).router();
        let bound = obol_runtime::admin::spawn(addr, router)
            .await
            .map_err(Error::Admin)?;
        info!(%bound, "Admin endpoints listening");
    }
    let shutdown = shutdown.shared();
    let gauge = metrics.clone();
    let lease = config.lease.clone();
    let outcome = obol_runtime::lease::lead_if(
        client.clone(),
        lease.as_ref(),
        shutdown.clone(),
        move |leading| {
            gauge.leader.set(i64::from(leading));
        },
        || run_controller(client, config, metrics, ready, shutdown),
    )
    .await?;
    match outcome {
        Outcome::Stopped => Ok(()),
        Outcome::Finished(result) => result,
        Outcome::Lost => Err(Error::LeadershipLost),
    }
}

fn child_watch<K>(
    client: &Client,
    namespace: Option<&str>,
    writer: reflector::store::Writer<K>,
    synced: Arc<Synced>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    // Only our own children; default list-then-watch (the 1.20 API server has no streaming
    // lists), with backoff so a failing watch never spins.
    let labels = format!(
        "{}={}",
        obol_api::labels::MANAGED_BY,
        obol_api::FIELD_MANAGER
    );
    watcher(
        scoped::<K>(client, namespace),
        watcher::Config::default().labels(&labels),
    )
    .default_backoff()
    .inspect_ok(move |event| {
        if matches!(event, watcher::Event::InitDone) {
            synced.mark(std::any::type_name::<K>());
        }
    })
    .reflect(writer)
    .touched_objects()
}

async fn run_controller(
    client: Client,
    config: RunConfig,
    metrics: Arc<ControllerMetrics>,
    ready: Ready,
    shutdown: futures::future::Shared<impl Future<Output = ()> + Send + 'static>,
) -> Result<()> {
    let (middlewares, mw_writer) = reflector::store::<Middleware>();
    let (payment_routes, pr_writer) = reflector::store::<PaymentRoute>();
    let (http_routes, hr_writer) = reflector::store::<HttpRoute>();
    let (registrations, rr_writer) = reflector::store::<RegistrationRequest>();
    let ns = config.namespace.as_deref();
    // Offers trigger a reconcile only when something the reconcile reads changed (not on our
    // own status writes); the store still sees every version.
    let synced = Arc::new(Synced {
        ready: ready.clone(),
        seen: parking_lot::Mutex::default(),
    });
    let (offers, offers_writer) = reflector::store::<ServiceOffer>();
    let offers_synced = synced.clone();
    let offer_events = watcher(
        scoped::<ServiceOffer>(&client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .inspect_ok(move |event| {
        if matches!(event, watcher::Event::InitDone) {
            offers_synced.mark("ServiceOffer");
        }
    })
    .reflect(offers_writer)
    .applied_objects()
    .predicate_filter(offer_trigger, PredicateConfig::default());
    let controller = Controller::for_stream(offer_events, offers.clone())
        .owns_stream(child_watch(&client, ns, mw_writer, synced.clone()))
        .owns_stream(child_watch(&client, ns, pr_writer, synced.clone()))
        .owns_stream(child_watch(&client, ns, hr_writer, synced.clone()))
        .owns_stream(child_watch(&client, ns, rr_writer, synced.clone()))
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(shutdown);
    let reporter = Reporter {
        controller: obol_api::FIELD_MANAGER.into(),
        instance: config.lease.as_ref().map(|l| l.identity.clone()),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        settings: config.settings,
        probe_timeout: config.probe_timeout,
        probe_interval: config.probe_interval,
        cleanup_timeout: config.cleanup_timeout,
        offers: offers.clone(),
        middlewares: middlewares.clone(),
        payment_routes: payment_routes.clone(),
        http_routes: http_routes.clone(),
        registrations: registrations.clone(),
        metrics,
        healthy_once: parking_lot::Mutex::new(HashSet::new()),
        clock: Arc::new(obol_runtime::clock::SystemClock),
    });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    ready.set(false);
    Ok(())
}

/// What of an offer a reconcile depends on besides status: spec (generation), deletion,
/// finalizers, labels and annotations.
fn offer_trigger(offer: &ServiceOffer) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = &offer.metadata;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.labels.hash(&mut h);
    meta.annotations.hash(&mut h);
    Some(h.finish())
}

/// Readiness: every watch (offers and the four child kinds) has delivered its first full list.
/// (Tracked on the watch streams: a reflector store's `wait_until_ready` wakes only one waiter,
/// and the Controller is already waiting on the offers store.)
struct Synced {
    ready: Ready,
    seen: parking_lot::Mutex<HashSet<&'static str>>,
}

impl Synced {
    const KINDS: usize = 5;

    fn mark(&self, kind: &'static str) {
        let mut seen = self.seen.lock();
        if seen.insert(kind) && seen.len() == Self::KINDS {
            info!("Watches synced");
            self.ready.set(true);
        }
    }
}
