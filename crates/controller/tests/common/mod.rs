//! Shared fixtures of the integration tests: a real upstream HTTP server on loopback behind an
//! `ExternalName` Service, the controller running in-process, offers, waits.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::unwrap_used)] // test fixtures

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use obol_api::condition::{self as cond, types};
use obol_api::{Phase, ServiceOffer};
use obol_controller::plan::{GatewayRef, ServiceRef, Settings};
use obol_controller::{LeaseConfig, RunConfig};
use obol_testenv::gateway::{self, StandIn};
use serde_json::json;

pub mod process;

pub const GATEWAY: &str = "traefik-gateway";
pub const GATEWAY_NS: &str = "traefik";
pub const PAY_TO: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// A real HTTP server answering `GET /health` with a settable status code.
pub struct Upstream {
    pub addr: SocketAddr,
    code: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Self {
        let code = Arc::new(AtomicU16::new(200));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c = code.clone();
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let c = c.clone();
                async move {
                    axum::http::StatusCode::from_u16(c.load(Ordering::SeqCst))
                        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, code, task }
    }

    pub fn set_status(&self, code: u16) {
        self.code.store(code, Ordering::SeqCst);
    }

    /// Creates Service `name` for this loopback server: an `ExternalName` Service for
    /// `localhost` whose port 8080 (`http`) targets the server's port. (Endpoints may not name
    /// loopback addresses, and test servers bind loopback only.)
    pub async fn expose(&self, client: &Client, ns: &str, name: &str) {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"type": "ExternalName", "externalName": "localhost",
                     "ports": [{"name": "http", "port": 8080, "targetPort": self.addr.port()}]},
        }))
        .unwrap();
        Api::<Service>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &svc)
            .await
            .unwrap();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn run_config(ns: &str) -> RunConfig {
    RunConfig {
        settings: Settings {
            verifier_url: "http://x402-verifier.x402.svc.cluster.local:8080".into(),
            verifier_gateway: ServiceRef {
                name: "x402-verifier".into(),
                namespace: "x402".into(),
                port: 8081,
            },
            gateway: GatewayRef {
                name: GATEWAY.into(),
                namespace: GATEWAY_NS.into(),
            },
            public_base_url: "https://example.com".into(),
        },
        probe_timeout: Duration::from_secs(1),
        probe_interval: Duration::from_secs(1),
        cleanup_timeout: Duration::from_secs(30),
        concurrency: 16,
        lease: None,
        listen: None,
        namespace: Some(ns.to_owned()),
    }
}

pub fn lease(name: &str, ns: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: name.into(),
        namespace: ns.into(),
        identity: identity.into(),
        duration: Duration::from_secs(4),
        grace: Duration::from_secs(1),
    }
}

/// The controller running in this process until dropped.
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<obol_controller::Result<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn start_controller(client: &Client, config: RunConfig) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = client.clone();
    let task = tokio::spawn(async move {
        obol_controller::run(client, config, async {
            let _ = stopped.await;
        })
        .await
    });
    Running {
        stop: Some(stop),
        task,
    }
}

/// Both stand-ins for `ns`: the Gateway accepting routes and the verifier admitting routes.
pub fn stand_ins(client: &Client, ns: &str) -> (StandIn, StandIn) {
    (
        gateway::accept_http_routes(client.clone(), ns, GATEWAY, GATEWAY_NS),
        gateway::admit_payment_routes(client.clone(), ns),
    )
}

/// An offer `name` for upstream Service `upstream` (port 8080), priced `0.001` on Base Sepolia,
/// with `extra` merged into the spec.
pub fn mk_offer(name: &str, upstream: &str, extra: serde_json::Value) -> ServiceOffer {
    let mut spec = json!({
        "type": "http",
        "upstream": {"service": upstream, "port": 8080, "healthPath": "/health"},
        "payment": {"network": "base-sepolia", "payTo": PAY_TO, "price": {"perRequest": "0.001"}},
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1", "kind": "ServiceOffer",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

pub async fn create(api: &Api<ServiceOffer>, offer: &ServiceOffer) -> ServiceOffer {
    api.create(&PostParams::default(), offer).await.unwrap()
}

pub async fn patch_spec(api: &Api<ServiceOffer>, name: &str, spec: serde_json::Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": spec})),
    )
    .await
    .unwrap();
}

/// Waits until `check` holds on the offer's status; returns the offer.
pub async fn wait_offer(
    api: &Api<ServiceOffer>,
    name: &str,
    timeout: Duration,
    check: impl Fn(&ServiceOffer) -> bool,
) -> ServiceOffer {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < timeout {
        if let Ok(o) = api.get(name).await {
            if check(&o) {
                return o;
            }
            last = Some(o);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{name}: condition not met within {timeout:?}; last status: {:#?}",
        last.and_then(|o| o.status)
    );
}

pub fn is_ready(o: &ServiceOffer) -> bool {
    o.status.as_ref().is_some_and(|s| {
        s.phase == Some(Phase::Ready) && s.observed_generation == o.metadata.generation
    })
}

/// `(status, reason)` of condition `t`.
pub fn condition(o: &ServiceOffer, t: &str) -> Option<(String, String)> {
    let s = o.status.as_ref()?;
    cond::find(&s.conditions, t).map(|c| (c.status.as_str().to_owned(), c.reason.clone()))
}

pub fn has(o: &ServiceOffer, t: &str, status: &str, reason: &str) -> bool {
    condition(o, t).is_some_and(|(s, r)| s == status && r == reason)
}

pub const REQUIRED: [&str; 3] = [
    types::UPSTREAM_HEALTHY,
    types::PAYMENT_GATE_READY,
    types::ROUTE_PUBLISHED,
];

/// Strips the controller's finalizer from every offer left in a namespace when dropped, so that
/// the namespace can be deleted after the test's controller has stopped (or the test failed).
/// Declare it right after the namespace guard: it must drop before it.
pub struct Janitor {
    ns: String,
    kubeconfig: std::path::PathBuf,
}

impl Janitor {
    pub fn new(env: &obol_testenv::TestEnv, ns: &str) -> Self {
        Self {
            ns: ns.to_owned(),
            kubeconfig: env.kubeconfig_path().to_owned(),
        }
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        let (ns, path) = (self.ns.clone(), self.kubeconfig.clone());
        // Drop cannot await and the test's runtime may be blocked here: own thread, own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let kubeconfig = kube::config::Kubeconfig::read_from(&path).ok()?;
                let options = kube::config::KubeConfigOptions::default();
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .ok()?;
                let client = Client::try_from(config).ok()?;
                let offers: Api<ServiceOffer> = Api::namespaced(client, &ns);
                let strip = json!({"metadata": {"finalizers": null}});
                for o in offers.list(&Default::default()).await.ok()?.items {
                    let name = kube::ResourceExt::name_any(&o);
                    let _ = offers
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&strip))
                        .await;
                }
                Some(())
            })
        })
        .join();
    }
}

/// How many objects of kind `K` namespace `ns` holds (`None` when the list fails).
pub async fn count<K>(client: &Client, ns: &str) -> Option<usize>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .list(&kube::api::ListParams::default())
        .await
        .ok()
        .map(|list| list.items.len())
}

/// One test's namespace, cleaned up when dropped, with an [`Upstream`] exposed in it as
/// Service `up` and the namespace's ServiceOffer API.
pub struct Scene {
    /// The shared control plane.
    pub env: obol_testenv::TestEnv,
    // Drops before the namespace.
    _janitor: Janitor,
    /// The namespace.
    pub ns: obol_testenv::TestNamespace,
    /// The upstream behind Service `up`.
    pub upstream: Upstream,
    /// ServiceOffers in `ns`.
    pub offers: Api<ServiceOffer>,
}

/// A [`Scene`] in a new namespace named after `prefix`.
pub async fn scene(prefix: &str) -> Scene {
    let env = obol_testenv::TestEnv::get().await;
    let ns = env.namespace(prefix).await;
    let upstream = Upstream::start().await;
    upstream.expose(&env.client(), ns.name(), "up").await;
    let offers = Api::namespaced(env.client(), ns.name());
    Scene {
        _janitor: Janitor::new(&env, ns.name()),
        env,
        ns,
        upstream,
        offers,
    }
}
