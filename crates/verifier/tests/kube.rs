//! Against the real local control plane (scripts/testenv): creating a PaymentRoute makes the
//! verifier gate it and mark it admitted (deleting it removes its metric series); a route it cannot load is refused with the reason
//! and fails closed; creation → gating and creation → admitted latency over 200 routes.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures::StreamExt as _;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use obol_api::condition::{self, ConditionStatus, types};
use obol_api::{PaymentRoute, PaymentRouteSpec};
use obol_testenv::{TestEnv, eventually};
use obol_verifier::RouteTable;
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

fn route(name: &str, spec: PaymentRouteSpec) -> PaymentRoute {
    PaymentRoute::new(name, spec)
}

/// A verifier (router + kube route source) over the test's namespace of the control plane
/// (scoped, so it never admits routes of other tests running at the same time).
fn start_verifier(env: &TestEnv, namespace: &str) -> (Harness, tokio::task::JoinHandle<()>) {
    let table = Arc::new(RouteTable::new());
    let h = Harness::with_table(table.clone());
    let task = tokio::spawn(obol_verifier::k8s::run(
        env.client(),
        Some(namespace.to_owned()),
        table,
        h.state.metrics.clone(),
    ));
    (h, task)
}

async fn admitted_at(api: &Api<PaymentRoute>, name: &str) -> Option<PaymentRoute> {
    let pr = api.get_opt(name).await.ok()??;
    pr.admitted_at_current_generation().then_some(pr)
}

#[tokio::test]
async fn a_created_route_is_gated_admitted_updated_and_removed() {
    let env = TestEnv::get().await;
    let ns = env.namespace("verifier").await;
    let api: Api<PaymentRoute> = Api::namespaced(env.client(), ns.name());
    let (h, task) = start_verifier(&env, ns.name());
    eventually(WAIT, || async { h.state.table.is_synced().then_some(()) }).await;
    let path = format!("/verify/{}/demo", ns.name());
    let fwd = [("x-forwarded-uri", "/services/demo/x")];
    // Not created yet: fail closed.
    assert_eq!(
        h.get(&path, &fwd).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let mut spec = spec("/services/demo/*", "1000");
    api.create(&PostParams::default(), &route("demo", spec.clone()))
        .await
        .expect("create");
    let pr = eventually(WAIT, || admitted_at(&api, "demo")).await;
    let status = pr.status.expect("status");
    let c = condition::find(&status.conditions, types::ADMITTED).expect("Admitted condition");
    assert_eq!(c.status, ConditionStatus::True);
    let r = h.get(&path, &fwd).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.json()["accepts"][0]["maxAmountRequired"], "1000");

    // A paid request goes through the real table.
    let req = h.requirement(ns.name(), "demo");
    let r = h
        .get(&path, &[fwd[0], ("x-payment", &header(&req, 1, 1))])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // A spec change is admitted at the new generation and priced anew.
    spec.price = "2000".into();
    let patch = serde_json::json!({"spec": {"price": "2000"}});
    api.patch("demo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let pr = eventually(WAIT, || admitted_at(&api, "demo")).await;
    assert_eq!(pr.metadata.generation, Some(2));
    let r = eventually(WAIT, || async {
        let r = h.get(&path, &fwd).await;
        (r.json()["accepts"][0]["maxAmountRequired"] == "2000").then_some(r)
    })
    .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);

    // The route's series are on the scrape while it exists...
    let series = format!("offer_namespace=\"{}\"", ns.name());
    let scrape = h.get("/metrics", &[]).await.text();
    assert!(
        scrape.contains(&format!(
            "obol_x402_verifier_payment_verified_total{{route=\"/services/demo/*\",{series}"
        )),
        "{scrape}"
    );

    // Deleted: fail closed again, and its series leave the scrape.
    api.delete("demo", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(WAIT, || async {
        (h.get(&path, &fwd).await.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    let scrape = h.get("/metrics", &[]).await.text();
    assert!(!scrape.contains(&series), "{scrape}");
    task.abort();
}

#[tokio::test]
async fn a_route_that_cannot_be_loaded_is_refused_with_the_reason() {
    let env = TestEnv::get().await;
    let ns = env.namespace("verifier-bad").await;
    let api: Api<PaymentRoute> = Api::namespaced(env.client(), ns.name());
    let (h, task) = start_verifier(&env, ns.name());
    let mut bad = spec("/services/bad/*", "1000");
    bad.network = "invalid-chain".into();
    api.create(&PostParams::default(), &route("bad", bad))
        .await
        .expect("create");
    let cond = eventually(WAIT, || async {
        let pr = api.get_opt("bad").await.ok()??;
        let status = pr.status?;
        let c = condition::find(&status.conditions, types::ADMITTED)?.clone();
        Some((status.admitted, c))
    })
    .await;
    assert!(!cond.0, "never admitted");
    assert_eq!(cond.1.status, ConditionStatus::False);
    assert_eq!(cond.1.reason, "UnknownNetwork");
    assert!(
        cond.1.message.contains("invalid-chain"),
        "{}",
        cond.1.message
    );
    let path = format!("/verify/{}/bad", ns.name());
    let r = h
        .get(&path, &[("x-forwarded-uri", "/services/bad/x")])
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.reason().as_deref(), Some("unknown_route"));
    task.abort();
}

/// Creation → gating active (the route is in the verifier's table and answers 402) and
/// creation → admitted (the status says so), over 200 routes created one after another. The
/// figures are printed for BENCHMARKS.md (`--no-capture`); the bound asserted is only a sanity
/// limit, the goal (p99 < 1 s) is judged from the printed figures.
#[tokio::test]
async fn creation_to_gating_latency_over_200_routes() {
    const N: usize = 200;
    let env = TestEnv::get().await;
    let ns = env.namespace("verifier-lat").await;
    let api: Api<PaymentRoute> = Api::namespaced(env.client(), ns.name());
    let (h, task) = start_verifier(&env, ns.name());
    eventually(WAIT, || async { h.state.table.is_synced().then_some(()) }).await;
    let names: Vec<String> = (0..N).map(|i| format!("r{i:03}")).collect();
    // When each route is first in the table (polled every millisecond, lock-free reads) and
    // first seen admitted (from a watch: no polling delay).
    let gated = Arc::new(parking_lot::Mutex::new(HashMap::<String, Instant>::new()));
    let poll = {
        let (table, gated, names, ns) = (
            h.state.table.clone(),
            gated.clone(),
            names.clone(),
            ns.name().to_owned(),
        );
        tokio::spawn(async move {
            loop {
                for name in &names {
                    if table.get(&ns, name).is_some() {
                        gated
                            .lock()
                            .entry(name.clone())
                            .or_insert_with(Instant::now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let admitted = Arc::new(parking_lot::Mutex::new(HashMap::<String, Instant>::new()));
    let watch = {
        let (api, admitted) = (api.clone(), admitted.clone());
        tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects();
            futures::pin_mut!(stream);
            while let Some(Ok(pr)) = stream.next().await {
                if pr.admitted_at_current_generation() {
                    admitted
                        .lock()
                        .entry(pr.name_any())
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    let mut created = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let pr = route(name, spec(&format!("/services/r{i:03}/*"), "1000"));
        created.insert(name.clone(), Instant::now());
        api.create(&PostParams::default(), &pr)
            .await
            .expect("create");
    }
    eventually(Duration::from_secs(120), || async {
        (admitted.lock().len() == N && gated.lock().len() == N).then_some(())
    })
    .await;
    poll.abort();
    watch.abort();
    let summary = |label: &str, seen: &HashMap<String, Instant>| {
        let mut ms: Vec<f64> = created
            .iter()
            .map(|(name, t0)| seen[name].saturating_duration_since(*t0).as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
        println!(
            "creation -> {label} over {N} routes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(0.50),
            pct(0.99),
            ms[ms.len() - 1]
        );
        pct(0.99)
    };
    let gated_p99 = summary("gating active", &gated.lock());
    let admitted_p99 = summary("admitted", &admitted.lock());
    // Every route is gated by the verifier, not just marked.
    for i in [0, N / 2, N - 1] {
        let path = format!("/verify/{}/r{i:03}", ns.name());
        let uri = format!("/services/r{i:03}/x");
        let r = h.get(&path, &[("x-forwarded-uri", &uri)]).await;
        assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
        // A path the route's pattern does not cover is refused, never free.
        let r = h.get(&path, &[("x-forwarded-uri", "/x")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    assert!(
        gated_p99 < 10_000.0 && admitted_p99 < 10_000.0,
        "propagation beyond any sane bound"
    );
    task.abort();
}

/// Discovery follows the controller's readiness mark (an annotation: no new generation, no new
/// admission) and a drain's end, both written to the real API server.
#[tokio::test]
async fn discovery_lists_ready_offers_and_says_when_a_drain_ends() {
    let env = TestEnv::get().await;
    let ns = env.namespace("verifier-listing").await;
    let api: Api<PaymentRoute> = Api::namespaced(env.client(), ns.name());
    let (h, task) = start_verifier(&env, ns.name());
    eventually(WAIT, || async { h.state.table.is_synced().then_some(()) }).await;
    let items = || {
        let m = obol_verifier::discovery::manifest(&h.state.table.snapshot(), "");
        m["items"].as_array().cloned().unwrap_or_default()
    };
    let mark = |ready: &str| {
        let mut annotations = serde_json::Map::new();
        annotations.insert(
            obol_api::labels::OFFER_READY_ANNOTATION.to_owned(),
            ready.into(),
        );
        json!({"metadata": {"annotations": annotations}})
    };

    let mut pr = route("demo", spec("/services/demo/*", "1000"));
    pr.metadata.annotations = Some(
        [(
            obol_api::labels::OFFER_READY_ANNOTATION.to_owned(),
            "false".to_owned(),
        )]
        .into(),
    );
    api.create(&PostParams::default(), &pr)
        .await
        .expect("create");
    let admitted = eventually(WAIT, || admitted_at(&api, "demo")).await;
    assert!(items().is_empty(), "not Ready: loaded, gating, not listed");
    assert!(h.state.table.get(ns.name(), "demo").is_some());

    api.patch(
        "demo",
        &PatchParams::default(),
        &Patch::Merge(&mark("true")),
    )
    .await
    .expect("mark");
    let listed = eventually(WAIT, || async { items().into_iter().next() }).await;
    assert_eq!(listed["available"], true);
    assert!(listed.get("drainEndsAt").is_none());
    let pr = api.get("demo").await.unwrap();
    assert_eq!(
        pr.metadata.generation, admitted.metadata.generation,
        "the mark changes no generation"
    );

    let end = "2030-01-02T03:04:05Z";
    api.patch(
        "demo",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"drainEndsAt": end}})),
    )
    .await
    .expect("drain");
    let draining = eventually(WAIT, || async {
        items()
            .into_iter()
            .next()
            .filter(|i| i["available"] == false)
    })
    .await;
    assert_eq!(draining["drainEndsAt"], end);

    api.patch(
        "demo",
        &PatchParams::default(),
        &Patch::Merge(&mark("false")),
    )
    .await
    .expect("unmark");
    eventually(WAIT, || async { items().is_empty().then_some(()) }).await;
    task.abort();
}
