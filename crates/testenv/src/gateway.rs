//! Test stand-ins for the two parties that write status on the controller's children:
//!
//! - [`accept_http_routes`]: a Gateway that marks every HTTPRoute attached to it `Accepted`
//!   (the local control plane runs no Gateway controller);
//! - [`admit_payment_routes`]: a verifier stand-in that marks PaymentRoutes admitted at their
//!   generation. Tests about admission should prefer the real `x402-verifier` binary
//!   ([`verifier_bin`]); this stand-in is for tests about everything else.
//!
//! Both watch one namespace only, so that parallel tests never act on each other's objects, and
//! stop when the returned [`StandIn`] is dropped. Objects are handled as dynamic JSON, so this
//! crate needs no dependency on the resource types.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Controller name the Gateway stand-in writes into route status.
pub const GATEWAY_CONTROLLER_NAME: &str = "obol.org/test-gateway";

/// A running stand-in; aborted on drop.
pub struct StandIn {
    task: tokio::task::JoinHandle<()>,
    paused: Arc<AtomicBool>,
}

impl StandIn {
    /// Stops acting on new events (already written status stays) until [`StandIn::resume`].
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Acts on events again.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn dynamic_api(
    client: Client,
    namespace: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client, namespace, &resource)
}

/// Runs `act` on every applied object of `api` (while not paused).
fn spawn_stand_in<F, Fut>(api: Api<DynamicObject>, act: F) -> StandIn
where
    F: Fn(Api<DynamicObject>, DynamicObject) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let paused = Arc::new(AtomicBool::new(false));
    let flag = paused.clone();
    let task = tokio::spawn(async move {
        // Concurrent, like a real Gateway or verifier: a burst of objects is not serialized.
        watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .for_each_concurrent(16, |event| {
                let act_now = !flag.load(Ordering::SeqCst);
                let work = event
                    .ok()
                    .filter(|_| act_now)
                    .map(|obj| act(api.clone(), obj));
                async move {
                    if let Some(work) = work {
                        work.await;
                    }
                }
            })
            .await;
    });
    StandIn { task, paused }
}

/// Marks every HTTPRoute in `namespace` whose parent is Gateway `gateway_namespace/gateway`
/// as `Accepted=True` at its current generation.
pub fn accept_http_routes(
    client: Client,
    namespace: &str,
    gateway: &str,
    gateway_namespace: &str,
) -> StandIn {
    let api = dynamic_api(
        client,
        namespace,
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
    );
    let (gateway, gateway_namespace) = (gateway.to_owned(), gateway_namespace.to_owned());
    spawn_stand_in(api, move |api, route| {
        let (gateway, gateway_namespace) = (gateway.clone(), gateway_namespace.clone());
        async move {
            let route_ns = route.namespace().unwrap_or_default();
            let ours = route.data["spec"]["parentRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["name"] == gateway.as_str()
                        && p["namespace"].as_str().unwrap_or(&route_ns) == gateway_namespace
                });
            let generation = route.metadata.generation;
            let accepted_now = route.data["status"]["parents"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|p| p["conditions"].as_array().into_iter().flatten())
                .any(|c| {
                    c["type"] == "Accepted"
                        && c["status"] == "True"
                        && c["observedGeneration"].as_i64() == generation
                });
            if !ours || accepted_now {
                return;
            }
            let patch = json!({"status": {"parents": [{
                "parentRef": {"name": gateway, "namespace": gateway_namespace},
                "controllerName": GATEWAY_CONTROLLER_NAME,
                "conditions": [{
                    "type": "Accepted", "status": "True", "reason": "Accepted",
                    "message": "Accepted by the test gateway", "observedGeneration": generation,
                }],
            }]}});
            let _ = api
                .patch_status(
                    &route.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
        }
    })
}

/// Marks every PaymentRoute in `namespace` admitted at its current generation, as the
/// verifier does after loading a route.
pub fn admit_payment_routes(client: Client, namespace: &str) -> StandIn {
    let api = dynamic_api(
        client,
        namespace,
        "obol.org",
        "v1alpha1",
        "PaymentRoute",
        "paymentroutes",
    );
    spawn_stand_in(api, |api, pr| async move {
        let generation = pr.metadata.generation;
        let status = &pr.data["status"];
        if status["admitted"] == true && status["lastAdmittedGeneration"].as_i64() == generation {
            return;
        }
        let patch = json!({"status": {"admitted": true, "lastAdmittedGeneration": generation}});
        let _ = api
            .patch_status(
                &pr.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
    })
}

/// The real verifier binary: `$OBOL_VERIFIER_BIN`, else `target/debug/x402-verifier`, when it
/// exists.
pub fn verifier_bin() -> Option<PathBuf> {
    let path = std::env::var_os("OBOL_VERIFIER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target/debug/x402-verifier"));
    path.is_file().then_some(path)
}
