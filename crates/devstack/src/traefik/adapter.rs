//! The adapter loop: watch, render, write the file, report `Accepted` on each route and
//! `Accepted`/`Programmed` on the Gateway it plays (as Traefik's Gateway provider does).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use obol_api::condition::{Condition, ConditionStatus, same_ignoring_time, set_condition};
use obol_api::gateway::{
    ACCEPTED, Gateway, HttpRoute, PROGRAMMED, ParentReference, RouteParentStatus,
};
use obol_api::traefik::Middleware;
use obol_deploy::Object;
use tracing::{info, warn};

use super::render::{GatewayRef, Rendered, ServiceAddr, render};

/// `controllerName` the adapter writes into route status.
pub const CONTROLLER_NAME: &str = "obol.org/dev-traefik-adapter";

/// Adapter settings.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// The Gateway played.
    pub gateway: GatewayRef,
    /// Traefik's dynamic configuration file (written atomically).
    pub file: PathBuf,
}

/// Adapter failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the configuration file.
    #[error("writing {path}: {source}")]
    Write {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Rendering YAML.
    #[error("rendering the Traefik configuration: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

fn service_addr(svc: &Service) -> ServiceAddr {
    let Some((host, _)) = obol_api::upstream::external_target(svc, 0) else {
        return ServiceAddr::Unreachable;
    };
    let ports = svc
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| {
            let (_, target) = obol_api::upstream::external_target(svc, p.port)?;
            (target != p.port).then_some((p.port, target))
        })
        .collect();
    ServiceAddr::Host(host, ports)
}

/// The parent status the adapter wants on a route.
fn desired_parent(result: &Result<(), (String, String)>, generation: Option<i64>) -> Condition {
    let (status, reason, message) = match result {
        Ok(()) => (
            ConditionStatus::True,
            "Accepted".to_owned(),
            "Served by the local Traefik".to_owned(),
        ),
        Err((reason, message)) => (ConditionStatus::False, reason.clone(), message.clone()),
    };
    let mut c = Condition::new(ACCEPTED, status, &reason, message);
    c.observed_generation = generation;
    c
}

/// The Namespace and the Gateway the adapter plays, listening on `port` (what `obol dev up`
/// applies before starting it; a cluster has them from its Traefik installation). Pure.
pub fn gateway_objects(gw: &GatewayRef, port: u16) -> Vec<Object> {
    [
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": gw.namespace}}),
        serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                           "metadata": {"name": gw.name, "namespace": gw.namespace},
                           "spec": {"gatewayClassName": super::render::DEV_GATEWAY_CLASS,
                                    "listeners": [{"name": gw.entry_point, "port": port, "protocol": "HTTP"}]}}),
    ]
    .into_iter()
    .map(Object)
    .collect()
}

/// The Gateway's conditions once the adapter serves it: `Accepted` and `Programmed`, at its
/// generation. `None` when `current` already says so (nothing to write). Pure.
pub fn gateway_conditions(
    current: &[Condition],
    generation: Option<i64>,
    now: &str,
) -> Option<Vec<Condition>> {
    let mut conditions = current.to_vec();
    for (type_, reason, message) in [
        (ACCEPTED, "Accepted", "Played by the local Traefik adapter"),
        (
            PROGRAMMED,
            "Programmed",
            "Its routes are in the local Traefik's configuration file",
        ),
    ] {
        let mut c = Condition::new(type_, ConditionStatus::True, reason, message);
        c.observed_generation = generation;
        set_condition(&mut conditions, c, now);
    }
    (!same_ignoring_time(current, &conditions)).then_some(conditions)
}

/// Runs until the watches end (they retry with backoff, so: until the task is dropped).
pub async fn run(client: Client, config: AdapterConfig) -> Result<(), Error> {
    let (routes, routes_w) = reflector::store::<HttpRoute>();
    let (mws, mws_w) = reflector::store::<Middleware>();
    let (svcs, svcs_w) = reflector::store::<Service>();
    let (gws, gws_w) = reflector::store::<Gateway>();
    let wc = watcher::Config::default;
    let r = reflector::reflector(routes_w, watcher(Api::all(client.clone()), wc()))
        .default_backoff()
        .map(|_| ());
    let m = reflector::reflector(mws_w, watcher(Api::all(client.clone()), wc()))
        .default_backoff()
        .map(|_| ());
    let s = reflector::reflector(svcs_w, watcher(Api::all(client.clone()), wc()))
        .default_backoff()
        .map(|_| ());
    let g = reflector::reflector(
        gws_w,
        watcher(
            Api::namespaced(client.clone(), &config.gateway.namespace),
            wc().fields(&format!("metadata.name={}", config.gateway.name)),
        ),
    )
    .default_backoff()
    .map(|_| ());
    // The reflectors fill the stores only while their stream is polled: drive it in its own
    // task and turn every event into a wake-up (coalesced: capacity one).
    let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
    let driver = tokio::spawn(async move {
        let mut changes = stream::select(stream::select(r, m), stream::select(s, g)).boxed();
        while changes.next().await.is_some() {
            let _ = wake.try_send(());
        }
    });
    let _abort_driver = AbortOnDrop(driver);
    routes.wait_until_ready().await.ok();
    mws.wait_until_ready().await.ok();
    svcs.wait_until_ready().await.ok();
    // Not waited for: routes are served even where no Gateway (or its CRD) exists; the
    // Gateway's events wake the loop once it is there.
    let mut last_written: Option<String> = None;
    loop {
        let rendered = snapshot(&config.gateway, &routes, &mws, &svcs);
        let text = serde_yaml::to_string(&rendered.config)?;
        if last_written.as_deref() != Some(text.as_str()) {
            write_atomically(&config.file, &text)?;
            info!(routers = rendered.config.http.routers.len(), file = %config.file.display(), "Traefik configuration written");
            last_written = Some(text);
        }
        report(&client, &config.gateway, &routes, &rendered).await;
        report_gateway(&client, &gws).await;
        if woken.recv().await.is_none() {
            return Ok(());
        }
        // Let a burst of changes settle before rendering again.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while woken.try_recv().is_ok() {}
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn snapshot(
    gw: &GatewayRef,
    routes: &Store<HttpRoute>,
    mws: &Store<Middleware>,
    svcs: &Store<Service>,
) -> Rendered {
    let routes: Vec<HttpRoute> = routes.state().iter().map(|r| (**r).clone()).collect();
    let mws: Vec<Middleware> = mws.state().iter().map(|m| (**m).clone()).collect();
    let services: BTreeMap<(String, String), ServiceAddr> = svcs
        .state()
        .iter()
        .map(|s| {
            let key = (
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default(),
            );
            (key, service_addr(s))
        })
        .collect();
    render(gw, &routes, &mws, &services)
}

fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("yml.tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Marks the played Gateway `Accepted` and `Programmed` (the configuration file is written).
async fn report_gateway(client: &Client, gws: &Store<Gateway>) {
    let now = jiff::Timestamp::now().to_string();
    for gw in gws.state() {
        let current: Vec<Condition> = gw
            .status
            .iter()
            .flat_map(|s| s.conditions.clone())
            .collect();
        let Some(conditions) = gateway_conditions(&current, gw.metadata.generation, &now) else {
            continue;
        };
        let ns = gw.metadata.namespace.clone().unwrap_or_default();
        let name = gw.metadata.name.clone().unwrap_or_default();
        let api: Api<Gateway> = Api::namespaced(client.clone(), &ns);
        let body = serde_json::json!({"status": {"conditions": conditions}});
        if let Err(error) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            warn!(%error, %ns, %name, "Cannot write Gateway status");
        }
    }
}

async fn report(client: &Client, gw: &GatewayRef, routes: &Store<HttpRoute>, rendered: &Rendered) {
    let now = jiff::Timestamp::now().to_string();
    for verdict in &rendered.verdicts {
        let key = reflector::ObjectRef::new(&verdict.name).within(&verdict.namespace);
        let Some(route) = routes.get(&key) else {
            continue;
        };
        let current: Vec<Condition> = route
            .status
            .iter()
            .flat_map(|s| &s.parents)
            .filter(|p| p.controller_name == CONTROLLER_NAME)
            .flat_map(|p| p.conditions.clone())
            .collect();
        let mut conditions = current.clone();
        set_condition(
            &mut conditions,
            desired_parent(&verdict.result, verdict.generation),
            &now,
        );
        if same_ignoring_time(&current, &conditions) {
            continue;
        }
        let parent = RouteParentStatus {
            parent_ref: ParentReference {
                name: gw.name.clone(),
                namespace: Some(gw.namespace.clone()),
                section_name: Some(gw.entry_point.clone()),
                ..Default::default()
            },
            controller_name: CONTROLLER_NAME.to_owned(),
            conditions,
        };
        let api: Api<HttpRoute> = Api::namespaced(client.clone(), &verdict.namespace);
        let body = serde_json::json!({"status": {"parents": [parent]}});
        let params = PatchParams::default();
        if let Err(error) = api
            .patch_status(&verdict.name, &params, &Patch::Merge(&body))
            .await
        {
            warn!(%error, ns = %verdict.namespace, name = %verdict.name, "Cannot write HTTPRoute status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_played_gateway_is_accepted_and_programmed_once() {
        let now = "2026-01-01T00:00:00Z";
        let written = gateway_conditions(&[], Some(1), now).unwrap();
        let types: Vec<&str> = written.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [ACCEPTED, PROGRAMMED]);
        assert!(
            written
                .iter()
                .all(|c| c.is_true() && c.observed_generation == Some(1))
        );
        // Already so: nothing to write, whatever the time.
        assert_eq!(
            gateway_conditions(&written, Some(1), "2026-01-02T00:00:00Z"),
            None
        );
        // A new generation is observed again.
        assert!(gateway_conditions(&written, Some(2), now).is_some());

        let gw = GatewayRef {
            name: "gw".into(),
            namespace: "traefik".into(),
            entry_point: "web".into(),
        };
        let objects = gateway_objects(&gw, 8000);
        let ids: Vec<String> = objects.iter().map(Object::id).collect();
        assert_eq!(ids, ["Namespace traefik", "Gateway traefik/gw"]);
        let typed: Gateway = serde_json::from_value(objects[1].0.clone()).unwrap();
        assert_eq!(typed.spec.listeners[0].name, "web");
        assert_eq!(typed.spec.listeners[0].port, 8000);
    }
}
