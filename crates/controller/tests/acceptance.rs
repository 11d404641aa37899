//! The seed's acceptance criteria against the local control plane, one test each.
//! The controller runs in-process, scoped to the test's namespace.

#![allow(clippy::unwrap_used)] // tests

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::future::join_all;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use obol_api::condition::{reasons, types};
use obol_api::gateway::HttpRoute;
use obol_api::traefik::Middleware;
use obol_api::{PaymentRoute, RegistrationRequest, ServiceOffer};
use serde_json::json;

// Generous: the control plane is shared with other tests on a 2-core machine.
const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn ac1_ready_without_any_agent() {
    let s = scene("ac1").await;
    let (ns, client) = (&s.ns, s.env.client());
    let _stand_ins = stand_ins(&client, ns.name());
    let _controller = start_controller(&client, run_config(ns.name()));

    let offers = &s.offers;
    create(offers, &mk_offer("demo", "up", json!({}))).await;
    let offer = wait_offer(offers, "demo", T, is_ready).await;

    assert!(offer.finalizers().iter().any(|f| f == obol_api::FINALIZER));
    assert!(has(&offer, types::REGISTERED, "True", reasons::DISABLED));
    let status = offer.status.clone().unwrap();
    assert_eq!(status.endpoint.as_deref(), Some("/services/demo"));
    let mw = Api::<Middleware>::namespaced(client.clone(), ns.name())
        .get("x402-demo")
        .await
        .unwrap();
    assert_eq!(
        mw.spec.forward_auth.unwrap().address,
        format!(
            "http://x402-verifier.x402.svc.cluster.local:8080/verify/{}/x402-demo",
            ns.name()
        )
    );
    let pr = Api::<PaymentRoute>::namespaced(client.clone(), ns.name())
        .get("x402-demo")
        .await
        .unwrap();
    assert_eq!(
        (pr.spec.price.as_str(), pr.spec.network.as_str()),
        ("1000", "eip155:84532")
    );
    assert_eq!(pr.spec.pattern, "/services/demo/*");
    let route = Api::<HttpRoute>::namespaced(client.clone(), ns.name())
        .get("so-demo")
        .await
        .unwrap();
    assert_eq!(route.spec.rules[0].backend_refs[0].name, "up");
    for obj_owner in [
        mw.metadata.owner_references,
        pr.metadata.owner_references,
        route.metadata.owner_references,
    ] {
        assert_eq!(obj_owner.unwrap()[0].uid, offer.uid().unwrap());
    }
}

#[tokio::test]
async fn ac2_kubectl_delete_leaves_no_child() {
    let s = scene("ac2").await;
    let (ns, client) = (&s.ns, s.env.client());
    let _stand_ins = stand_ins(&client, ns.name());
    let _controller = start_controller(&client, run_config(ns.name()));
    let offers = &s.offers;
    create(
        offers,
        &mk_offer("gone", "up", json!({"registration": {"enabled": true}})),
    )
    .await;
    wait_offer(offers, "gone", T, is_ready).await;
    let rrs: Api<RegistrationRequest> = Api::namespaced(client.clone(), ns.name());
    obol_testenv::eventually(T, || async {
        rrs.get_opt("so-gone-registration").await.ok().flatten()
    })
    .await;

    // Async: the controller runs on this (current-thread) runtime while kubectl waits.
    let out = tokio::process::Command::new("kubectl")
        .args([
            "delete",
            "serviceoffer",
            "gone",
            "-n",
            ns.name(),
            "--wait=true",
            "--timeout=60s",
        ])
        .env("KUBECONFIG", s.env.kubeconfig_path())
        .output()
        .await
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (c, n) = (client.clone(), ns.name().to_owned());
    obol_testenv::eventually(T, || {
        let (c, n) = (c.clone(), n.clone());
        async move {
            let left = count::<Middleware>(&c, &n).await?
                + count::<PaymentRoute>(&c, &n).await?
                + count::<HttpRoute>(&c, &n).await?
                + count::<RegistrationRequest>(&c, &n).await?
                + count::<ServiceOffer>(&c, &n).await?;
            (left == 0).then_some(())
        }
    })
    .await;
}

fn pay_to(i: usize) -> String {
    format!("0x{:040x}", 0x1000 + i)
}

#[tokio::test]
async fn ac3_fifty_offers_at_once_none_crossed() {
    let s = scene("ac3").await;
    let (ns, client) = (&s.ns, s.env.client());
    let _stand_ins = stand_ins(&client, ns.name());
    let _controller = start_controller(&client, run_config(ns.name()));
    let offers = &s.offers;
    let started = Instant::now();
    join_all((0..50).map(|i| {
        let offers = offers.clone();
        async move {
            let spec = json!({"payment": {"network": "base-sepolia", "payTo": pay_to(i),
                "price": {"perRequest": format!("0.{:06}", i + 1)}}});
            create(&offers, &mk_offer(&format!("o{i}"), "up", spec)).await
        }
    }))
    .await;
    obol_testenv::eventually(Duration::from_secs(120), || async {
        let all = offers.list(&ListParams::default()).await.ok()?;
        (all.items.len() == 50 && all.items.iter().all(is_ready)).then_some(())
    })
    .await;
    println!("ac3: 50 offers Ready in {:?}", started.elapsed());

    let prs = Api::<PaymentRoute>::namespaced(client.clone(), ns.name())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(prs.items.len(), 50);
    let by_name: std::collections::HashMap<String, String> = offers
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| (o.name_any(), o.uid().unwrap()))
        .collect();
    for pr in prs.items {
        let owner = &pr.metadata.owner_references.as_ref().unwrap()[0];
        let i: usize = owner.name.trim_start_matches('o').parse().unwrap();
        assert_eq!(pr.name_any(), format!("x402-o{i}"));
        assert_eq!(owner.uid, by_name[&owner.name], "owner uid");
        assert_eq!(pr.spec.price, (i + 1).to_string(), "{}", pr.name_any());
        assert_eq!(pr.spec.pay_to, pay_to(i));
        assert_eq!(pr.spec.pattern, format!("/services/o{i}/*"));
    }
}

#[tokio::test]
async fn ac6_per_condition_reasons_in_status() {
    let s = scene("ac6").await;
    let (ns, client) = (&s.ns, s.env.client());
    let _stand_ins = stand_ins(&client, ns.name());
    let _controller = start_controller(&client, run_config(ns.name()));
    let offers = &s.offers;
    create(offers, &mk_offer("r", "later", json!({}))).await;

    wait_offer(offers, "r", T, |o| {
        has(
            o,
            types::UPSTREAM_HEALTHY,
            "False",
            reasons::MISSING_SERVICE,
        )
    })
    .await;
    let expect = [
        (
            types::PAYMENT_GATE_READY,
            "True",
            reasons::PAYMENT_ROUTE_ADMITTED,
        ),
        (
            types::ROUTE_PUBLISHED,
            "False",
            reasons::WAITING_FOR_UPSTREAM,
        ),
        (types::REGISTERED, "True", reasons::DISABLED),
        (types::READY, "False", reasons::RECONCILING),
    ];
    let o = wait_offer(offers, "r", T, |o| {
        expect.iter().all(|(t, s, r)| has(o, t, s, r))
    })
    .await;
    let status = o.status.clone().unwrap();
    assert_eq!(status.phase, Some(obol_api::Phase::Reconciling));
    for c in &status.conditions {
        assert!(
            c.last_transition_time.is_some() && c.observed_generation == o.metadata.generation,
            "{c:?}"
        );
    }
    drop(o);

    let upstream = Upstream::start().await;
    upstream.expose(&client, ns.name(), "later").await;
    let o = wait_offer(offers, "r", T, is_ready).await;
    assert!(has(
        &o,
        types::UPSTREAM_HEALTHY,
        "True",
        reasons::HEALTH_CHECK_PASSED
    ));
    assert!(has(
        &o,
        types::ROUTE_PUBLISHED,
        "True",
        reasons::HTTP_ROUTE_ACCEPTED
    ));
    assert!(has(&o, types::READY, "True", reasons::RECONCILED));

    // An invalid spec: Ready=False/InvalidSpec, phase Failed, no children, no hot loop.
    create(offers, &mk_offer("bad", "later", json!({"payment": {"network": "no-such-chain", "payTo": PAY_TO, "price": {"perRequest": "0.001"}}}))).await;
    let bad = wait_offer(offers, "bad", T, |o| {
        has(o, types::READY, "False", reasons::INVALID_SPEC)
    })
    .await;
    assert_eq!(
        bad.status.as_ref().unwrap().phase,
        Some(obol_api::Phase::Failed)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = offers.get("bad").await.unwrap();
    assert_eq!(
        again.resource_version(),
        bad.resource_version(),
        "status rewritten: hot loop"
    );
    assert!(
        Api::<PaymentRoute>::namespaced(client.clone(), ns.name())
            .get_opt("x402-bad")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn ac7_failing_registration_leaves_the_offer_ready() {
    let s = scene("ac7").await;
    let (ns, client) = (&s.ns, s.env.client());
    let _stand_ins = stand_ins(&client, ns.name());
    let _controller = start_controller(&client, run_config(ns.name()));
    let offers = &s.offers;
    create(
        offers,
        &mk_offer(
            "reg",
            "up",
            json!({"registration": {"enabled": true, "name": "Reg"}}),
        ),
    )
    .await;
    wait_offer(offers, "reg", T, |o| {
        is_ready(o) && has(o, types::REGISTERED, "False", reasons::PENDING)
    })
    .await;

    let rrs: Api<RegistrationRequest> = Api::namespaced(client.clone(), ns.name());
    let set_phase = |phase: &'static str| {
        let rrs = rrs.clone();
        async move {
            let patch =
                json!({"status": {"phase": phase, "errorMessage": "insufficient funds for gas"}});
            rrs.patch_status(
                "so-reg-registration",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .unwrap();
        }
    };
    set_phase("Failed").await;
    let o = wait_offer(offers, "reg", T, |o| {
        has(o, types::REGISTERED, "False", reasons::REGISTRATION_FAILED)
    })
    .await;
    assert!(is_ready(&o), "a failed registration must not block Ready");
    set_phase("OffChainOnly").await;
    let o = wait_offer(offers, "reg", T, |o| {
        has(o, types::REGISTERED, "True", reasons::OFF_CHAIN_ONLY)
    })
    .await;
    assert!(is_ready(&o));
}

/// Gateway mode `proxy`: no Middleware, the HTTPRoute goes to the verifier's gateway port with
/// the route header, only once the PaymentRoute (carrying where the upstream is) is admitted;
/// switching to `forwardAuth` and back swaps the children and removes the stale Middleware.
#[tokio::test]
async fn gateway_modes_proxy_and_forward_auth_and_the_switch_between_them() {
    let s = scene("gwmode").await;
    let (ns, client, upstream) = (&s.ns, s.env.client(), &s.upstream);
    let (_gateway, verifier) = stand_ins(&client, ns.name());
    verifier.pause();
    let _controller = start_controller(&client, run_config(ns.name()));
    let offers = &s.offers;
    let prs: Api<PaymentRoute> = Api::namespaced(client.clone(), ns.name());
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), ns.name());
    let mws: Api<Middleware> = Api::namespaced(client.clone(), ns.name());
    create(
        offers,
        &mk_offer("px", "up", json!({"gateway": {"mode": "proxy"}})),
    )
    .await;

    // Fail closed: the PaymentRoute exists, unadmitted, and no HTTPRoute is published.
    let pr =
        obol_testenv::eventually(T, || async { prs.get_opt("x402-px").await.ok().flatten() }).await;
    let proxy = pr
        .spec
        .proxy
        .expect("the PaymentRoute says where to forward");
    assert_eq!(
        proxy.upstream,
        format!("http://localhost:{}", upstream.addr.port()),
        "an ExternalName upstream is named where the probe reached it"
    );
    assert_eq!(proxy.strip_prefix.as_deref(), Some("/services/px"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        routes.get_opt("so-px").await.unwrap().is_none(),
        "no route before admission"
    );
    verifier.resume();
    // The stand-in acts on events after its resume: one on the PaymentRoute.
    prs.patch(
        "x402-px",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"test/nudge": "1"}}})),
    )
    .await
    .unwrap();
    wait_offer(offers, "px", T, is_ready).await;
    let route = routes.get("so-px").await.unwrap();
    let rule = &route.spec.rules[0];
    let backend = &rule.backend_refs[0];
    assert_eq!(
        (
            backend.name.as_str(),
            backend.namespace.as_deref(),
            backend.port
        ),
        ("x402-verifier", Some("x402"), Some(8081))
    );
    let set = &rule.filters[0]
        .request_header_modifier
        .as_ref()
        .unwrap()
        .set[0];
    assert_eq!(
        (set.name.as_str(), set.value.clone()),
        (
            obol_api::proxy::ROUTE_HEADER,
            format!("{}/x402-px", ns.name())
        )
    );
    assert!(
        mws.get_opt("x402-px").await.unwrap().is_none(),
        "no Middleware"
    );

    // To forwardAuth: the Middleware appears, the route goes to the upstream, nothing forwarded.
    patch_spec(offers, "px", json!({"gateway": {"mode": "forwardAuth"}})).await;
    wait_offer(offers, "px", T, is_ready).await;
    let route = obol_testenv::eventually(T, || async {
        let r = routes.get("so-px").await.ok()?;
        (r.spec.rules[0].backend_refs[0].name == "up").then_some(r)
    })
    .await;
    assert_eq!(route.spec.rules[0].filters[0].type_, "ExtensionRef");
    assert!(mws.get_opt("x402-px").await.unwrap().is_some());
    assert_eq!(prs.get("x402-px").await.unwrap().spec.proxy, None);

    // Back to proxy: the stale Middleware goes once the route no longer names it.
    patch_spec(offers, "px", json!({"gateway": {"mode": "proxy"}})).await;
    wait_offer(offers, "px", T, is_ready).await;
    obol_testenv::eventually(T, || async {
        mws.get_opt("x402-px").await.ok()?.is_none().then_some(())
    })
    .await;
    let route = routes.get("so-px").await.unwrap();
    assert_eq!(route.spec.rules[0].backend_refs[0].name, "x402-verifier");
}

#[tokio::test]
async fn a_route_table_reaches_the_payment_route_and_ties_show_in_a_condition() {
    let s = scene("routes").await;
    let (ns, client) = (&s.ns, s.env.client());
    let _stand_ins = stand_ins(&client, ns.name());
    let _controller = start_controller(&client, run_config(ns.name()));
    let offers = &s.offers;
    let prs: Api<PaymentRoute> = Api::namespaced(client.clone(), ns.name());
    let table = json!({"routes": [
        {"path": "/v1/*"},
        {"path": "/health", "gate": "free"},
        {"path": "/v1/chat/completions", "price": "0.01", "methods": ["POST"],
         "summary": "Chat", "inputSchema": {"type": "object", "properties": {"model": {"type": "string"}}}},
    ]});
    create(offers, &mk_offer("rt", "up", table)).await;
    let offer = wait_offer(offers, "rt", T, is_ready).await;
    assert!(has(
        &offer,
        types::ROUTE_TABLE,
        "True",
        reasons::ROUTES_DISTINCT
    ));
    let pr = prs.get("x402-rt").await.unwrap();
    assert_eq!(pr.spec.pattern, "/services/rt/*");
    let rules: Vec<(&str, &str, Option<&str>)> = pr
        .spec
        .routes
        .iter()
        .map(|r| (r.pattern.as_str(), r.gate.as_str(), r.price.as_deref()))
        .collect();
    assert_eq!(
        rules,
        [
            ("/services/rt/v1/chat/completions", "paid", Some("10000")),
            ("/services/rt/health", "free", None),
            ("/services/rt/v1/*", "paid", None),
        ],
        "most specific first, prices in atomic units"
    );
    let chat = &pr.spec.routes[0];
    assert_eq!(chat.methods, ["POST"]);
    assert_eq!(
        chat.input_schema.as_ref().unwrap()["properties"]["model"]["type"],
        "string",
        "the API server kept the schema whole"
    );

    // Two routes that match /services/rt/a/b equally specifically: the first serves, the
    // offer says so; the offer stays Ready.
    patch_spec(
        offers,
        "rt",
        json!({"routes": [{"path": "/a/*"}, {"path": "/*/b"}]}),
    )
    .await;
    let offer = wait_offer(offers, "rt", T, |o| {
        is_ready(o) && has(o, types::ROUTE_TABLE, "False", reasons::ROUTES_OVERLAP)
    })
    .await;
    let message = message_of(&offer, types::ROUTE_TABLE);
    assert!(
        message.contains("/services/rt/a/* and /services/rt/*/b"),
        "{message}"
    );

    // A reserved path: refused as an invalid spec, with the field and what to do.
    patch_spec(
        offers,
        "rt",
        json!({"routes": [{"path": "/.well-known/x402.json", "gate": "free"}]}),
    )
    .await;
    let offer = wait_offer(offers, "rt", T, |o| {
        has(o, types::READY, "False", reasons::INVALID_SPEC)
    })
    .await;
    let message = message_of(&offer, types::READY);
    assert!(
        message.contains("spec.routes[].path") && message.contains("discovery"),
        "{message}"
    );
}

fn message_of(offer: &ServiceOffer, t: &str) -> String {
    let status = offer.status.as_ref().unwrap();
    obol_api::condition::find(&status.conditions, t)
        .unwrap()
        .message
        .clone()
}

/// The readiness mark discovery reads, on the PaymentRoute.
fn ready_mark(pr: &PaymentRoute) -> Option<String> {
    pr.annotations()
        .get(obol_api::labels::OFFER_READY_ANNOTATION)
        .cloned()
}

async fn wait_pr(
    api: &Api<PaymentRoute>,
    name: &str,
    check: impl Fn(&PaymentRoute) -> bool,
) -> PaymentRoute {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < T {
        if let Ok(Some(pr)) = api.get_opt(name).await {
            if check(&pr) {
                return pr;
            }
            last = Some(pr);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name}: condition not met within {T:?}; last: {last:#?}");
}

#[tokio::test]
async fn a_drained_offer_gates_until_its_end_then_its_route_is_withdrawn() {
    use jiff::{SignedDuration, Timestamp};
    let s = scene("drain").await;
    let (ns, client) = (&s.ns, s.env.client());
    let _stand_ins = stand_ins(&client, ns.name());
    // Re-probes far apart: the withdrawal at the drain's end must come from the requeue at
    // that moment, not from a periodic re-probe.
    let mut config = run_config(ns.name());
    config.probe_interval = Duration::from_secs(600);
    let _controller = start_controller(&client, config);
    let offers = &s.offers;
    let prs: Api<PaymentRoute> = Api::namespaced(client.clone(), ns.name());
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), ns.name());
    create(offers, &mk_offer("dr", "up", json!({}))).await;
    wait_offer(offers, "dr", T, is_ready).await;
    wait_pr(&prs, "x402-dr", |pr| {
        ready_mark(pr).as_deref() == Some("true")
    })
    .await;

    let grace = 20;
    let drain_at = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let ends = drain_at + SignedDuration::from_secs(grace);
    patch_spec(
        offers,
        "dr",
        json!({"drainAt": drain_at.to_string(), "drainGracePeriod": format!("{grace}s")}),
    )
    .await;
    // Draining: the route still gates, the PaymentRoute carries the end, the offer is Ready.
    let o = wait_offer(offers, "dr", T, |o| {
        is_ready(o) && has(o, types::DRAINED, "False", reasons::DRAINING)
    })
    .await;
    let pr = wait_pr(&prs, "x402-dr", |pr| {
        pr.admitted_at_current_generation() && ready_mark(pr).as_deref() == Some("true")
    })
    .await;
    assert_eq!(
        pr.spec.drain_ends_at.as_deref(),
        Some(ends.to_string().as_str())
    );
    assert!(
        Timestamp::now() < ends,
        "the drain was observed under way (grace {grace}s)"
    );
    assert!(
        routes.get_opt("so-dr").await.unwrap().is_some(),
        "the route still gates while draining"
    );
    assert!(
        message_of(&o, types::DRAINED).contains(&ends.to_string()),
        "{}",
        message_of(&o, types::DRAINED)
    );

    // The end: withdrawn at that moment, phase Drained, the gate kept, discovery's mark off.
    let o = wait_offer(offers, "dr", T, |o| {
        o.status.as_ref().and_then(|s| s.phase) == Some(obol_api::Phase::Drained)
    })
    .await;
    let seen = Timestamp::now();
    assert!(seen >= ends, "not before the end: {seen} < {ends}");
    assert!(
        seen < ends + SignedDuration::from_secs(10),
        "withdrawn at the end ({ends}), not at a later re-probe: {seen}"
    );
    assert!(routes.get_opt("so-dr").await.unwrap().is_none());
    for (t, status, reason) in [
        (types::DRAINED, "True", reasons::DRAINED),
        (types::PAYMENT_GATE_READY, "False", reasons::DRAINED),
        (types::ROUTE_PUBLISHED, "False", reasons::DRAINED),
        (types::READY, "False", reasons::RECONCILING),
    ] {
        assert!(has(&o, t, status, reason), "{t}: {:?}", condition(&o, t));
    }
    wait_pr(&prs, "x402-dr", |pr| {
        ready_mark(pr).as_deref() == Some("false")
    })
    .await;

    // Removing the drain sells the offer again.
    patch_spec(
        offers,
        "dr",
        json!({"drainAt": null, "drainGracePeriod": null}),
    )
    .await;
    let o = wait_offer(offers, "dr", T, |o| {
        is_ready(o) && condition(o, types::DRAINED).is_none()
    })
    .await;
    assert!(routes.get_opt("so-dr").await.unwrap().is_some());
    assert!(o.spec.drain_at.is_none());
    let pr = wait_pr(&prs, "x402-dr", |pr| {
        ready_mark(pr).as_deref() == Some("true")
    })
    .await;
    assert_eq!(pr.spec.drain_ends_at, None);
}

#[tokio::test]
async fn the_payment_route_says_whether_its_offer_is_ready() {
    let s = scene("mark").await;
    let (ns, client, upstream) = (&s.ns, s.env.client(), &s.upstream);
    let _stand_ins = stand_ins(&client, ns.name());
    let _controller = start_controller(&client, run_config(ns.name()));
    let offers = &s.offers;
    let prs: Api<PaymentRoute> = Api::namespaced(client.clone(), ns.name());
    create(offers, &mk_offer("mk", "up", json!({}))).await;
    wait_offer(offers, "mk", T, is_ready).await;
    let ready = wait_pr(&prs, "x402-mk", |pr| {
        ready_mark(pr).as_deref() == Some("true")
    })
    .await;
    let generation = ready.metadata.generation;

    // The upstream fails: the offer is not Ready, the route stays (it answered once), the
    // mark turns off without a new generation (no new admission needed).
    upstream.set_status(503);
    wait_offer(offers, "mk", T, |o| {
        has(o, types::UPSTREAM_HEALTHY, "False", reasons::UNHEALTHY)
    })
    .await;
    let down = wait_pr(&prs, "x402-mk", |pr| {
        ready_mark(pr).as_deref() == Some("false")
    })
    .await;
    assert_eq!(down.metadata.generation, generation);
    upstream.set_status(200);
    wait_offer(offers, "mk", T, is_ready).await;
    wait_pr(&prs, "x402-mk", |pr| {
        ready_mark(pr).as_deref() == Some("true")
    })
    .await;
}
