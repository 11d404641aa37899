//! `--route-source kube`: a watcher over PaymentRoutes in all namespaces feeding the route
//! table, and the status writer that reports what was loaded.
//!
//! The watcher uses the default list-then-watch initial mode (Kubernetes 1.20 has no streaming
//! lists) with `.default_backoff()`. `Init … InitDone` becomes one `reset` (the table is then
//! synced and `/readyz` turns ready); later events `apply` or `delete` routes, those already waiting as one batch
//! (one table rebuild). A route that
//! fails to load is removed from the table (fail closed) and reported. One bad object never
//! stops the watch. Status patches run in their own task so a slow API server never delays the
//! table.

use std::sync::Arc;

use futures::StreamExt as _;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt as _};
use obol_api::{PaymentRoute, PaymentRouteStatus, VERIFIER_FIELD_MANAGER};
use tokio::sync::mpsc;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::error::LoadError;
use crate::metrics::VerifierMetrics;
use crate::route::{RouteEntry, RouteKey};
use crate::route_table::{Change, RouteTable};
use crate::status::desired_status;

/// One status write.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The route.
    pub key: RouteKey,
    /// Its new status.
    pub status: PaymentRouteStatus,
}

/// The key of a PaymentRoute (cluster-scoped objects cannot exist for this kind).
pub fn route_key(route: &PaymentRoute) -> RouteKey {
    RouteKey::new(route.namespace().unwrap_or_default(), route.name_any())
}

/// The owning ServiceOffer's name, for metric labels.
fn offer_name(route: &PaymentRoute) -> Option<&str> {
    route
        .metadata
        .owner_references
        .as_deref()?
        .iter()
        .find(|o| o.kind == "ServiceOffer")
        .map(|o| o.name.as_str())
}

/// Whether discovery lists the route: not when the controller marked its offer not Ready
/// (unmarked routes are listed).
pub fn listed(route: &PaymentRoute) -> bool {
    route
        .annotations()
        .get(obol_api::labels::OFFER_READY_ANNOTATION)
        .is_none_or(|v| v != "false")
}

/// Loads one PaymentRoute.
pub fn load_route(route: &PaymentRoute) -> Result<RouteEntry, LoadError> {
    let mut entry = RouteEntry::load(
        route_key(route),
        route.metadata.generation,
        &route.spec,
        offer_name(route),
    )?;
    entry.listed = listed(route);
    Ok(entry)
}

/// What watching one object decides: the entry (or why not) and the status to write.
pub fn observe(
    route: &PaymentRoute,
    now: &str,
) -> (Result<RouteEntry, LoadError>, Option<StatusUpdate>) {
    let loaded = load_route(route);
    let status =
        desired_status(route, loaded.as_ref().map(|_| ()), now).map(|status| StatusUpdate {
            key: route_key(route),
            status,
        });
    (loaded, status)
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

/// Watches PaymentRoutes in `namespace` (all namespaces when `None`) until the stream ends (it
/// does not: the watcher retries with backoff).
pub async fn run(
    client: Client,
    namespace: Option<String>,
    table: Arc<RouteTable>,
    metrics: VerifierMetrics,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(write_statuses(client.clone(), rx).instrument(info_span!("status_writer")));
    let api: Api<PaymentRoute> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    // Events already waiting are taken together: a burst of changes costs one table rebuild.
    let stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .ready_chunks(BATCH);
    futures::pin_mut!(stream);
    let mut initial: Vec<RouteEntry> = Vec::new();
    let mut rejected = 0i64;
    let mut changes: Vec<Change> = Vec::new();
    let mut statuses: Vec<StatusUpdate> = Vec::new();
    let mut listing = false;
    // Statuses go out only once their routes are in the table: "admitted" means gated.
    let flush = |changes: &mut Vec<Change>, statuses: &mut Vec<StatusUpdate>| {
        if !changes.is_empty() {
            let before = table.snapshot();
            let changed = table.update(changes.drain(..));
            let pruned = metrics.prune(&before, &table.snapshot());
            debug!(changed, pruned, "PaymentRoute changes applied");
        }
        for status in statuses.drain(..) {
            send(&tx, Some(status));
        }
    };
    while let Some(events) = stream.next().await {
        for event in events {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    warn!(%error, "PaymentRoute watch failed; retrying");
                    continue;
                }
            };
            match event {
                Event::Init => {
                    flush(&mut changes, &mut statuses);
                    listing = true;
                    initial.clear();
                    rejected = 0;
                }
                Event::InitApply(route) => {
                    let (loaded, status) = observe(&route, &now_rfc3339());
                    match loaded {
                        Ok(entry) => initial.push(entry),
                        Err(error) => {
                            rejected += 1;
                            skip(&route, &error);
                        }
                    }
                    statuses.extend(status);
                }
                Event::InitDone => {
                    let n = initial.len();
                    let before = table.snapshot();
                    table.reset(std::mem::take(&mut initial));
                    metrics.prune(&before, &table.snapshot());
                    metrics.rejected_routes.set(rejected);
                    info!(routes = n, rejected, "PaymentRoutes synced");
                    listing = false;
                    flush(&mut changes, &mut statuses);
                }
                Event::Apply(route) => {
                    let (loaded, status) = observe(&route, &now_rfc3339());
                    match loaded {
                        Ok(entry) => changes.push(Change::Apply(Box::new(entry))),
                        Err(error) => {
                            changes.push(Change::Delete(route_key(&route)));
                            skip(&route, &error);
                        }
                    }
                    statuses.extend(status);
                }
                Event::Delete(route) => changes.push(Change::Delete(route_key(&route))),
            }
        }
        // Statuses of routes seen during an initial list wait for its InitDone.
        if !listing {
            flush(&mut changes, &mut statuses);
        }
    }
}

/// Most watch events applied in one table rebuild.
const BATCH: usize = 1024;

fn skip(route: &PaymentRoute, error: &LoadError) {
    warn!(
        %error,
        ns = %route.namespace().unwrap_or_default(),
        name = %route.name_any(),
        reason = error.reason(),
        "Skipping PaymentRoute that cannot be loaded"
    );
}

fn send(tx: &mpsc::UnboundedSender<StatusUpdate>, update: Option<StatusUpdate>) {
    if let Some(update) = update {
        // The writer only stops with the process.
        let _ = tx.send(update);
    }
}

/// Attempts per status write; a later event for the route writes again anyway.
const STATUS_ATTEMPTS: u32 = 4;

/// Status writes in flight at once: a burst of new routes is admitted in parallel. Two writes
/// for one route may land out of order; each write causes a watch event that recomputes the
/// status from the object, so a stale one is corrected by the next.
const STATUS_CONCURRENCY: usize = 8;

async fn write_statuses(client: Client, rx: mpsc::UnboundedReceiver<StatusUpdate>) {
    let params = PatchParams {
        field_manager: Some(VERIFIER_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let updates = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|u| (u, rx)) });
    updates
        .for_each_concurrent(STATUS_CONCURRENCY, |update| {
            write_status(&client, &params, update)
        })
        .await;
}

async fn write_status(client: &Client, params: &PatchParams, update: StatusUpdate) {
    let StatusUpdate { key, status } = update;
    let api: Api<PaymentRoute> = Api::namespaced(client.clone(), &key.namespace);
    let patch = serde_json::json!({ "status": status });
    for attempt in 1..=STATUS_ATTEMPTS {
        match api
            .patch_status(&key.name, params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                debug!(route = %key, admitted = status.admitted, "PaymentRoute status written");
                return;
            }
            // A deleted route needs no status.
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(error) if attempt == STATUS_ATTEMPTS => {
                warn!(%error, route = %key, "Cannot write PaymentRoute status");
            }
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(annotation: Option<&str>) -> PaymentRoute {
        let mut pr = PaymentRoute::new(
            "x402-demo",
            crate::testing::mk_spec("/services/demo/*", "1000"),
        );
        pr.metadata.namespace = Some("ns".into());
        if let Some(v) = annotation {
            pr.metadata.annotations = Some(
                [(
                    obol_api::labels::OFFER_READY_ANNOTATION.to_owned(),
                    v.to_owned(),
                )]
                .into(),
            );
        }
        pr
    }

    /// Discovery lists a route unless the controller marked its offer not Ready; the route is
    /// loaded (and gates) either way.
    #[test]
    fn the_readiness_mark_decides_the_listing_only() {
        for (annotation, want) in [
            (None, true),
            (Some("true"), true),
            (Some("false"), false),
            (Some("yes"), true),
        ] {
            let pr = route(annotation);
            assert_eq!(listed(&pr), want, "{annotation:?}");
            assert_eq!(load_route(&pr).unwrap().listed, want, "{annotation:?}");
        }
    }
}
