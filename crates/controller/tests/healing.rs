//! Self-healing, spec changes, unhealthy upstreams, path conflicts, bounded deletion and
//! leader election, against the local control plane.
#![allow(clippy::unwrap_used)] // tests

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use obol_api::condition::{reasons, types};
use obol_api::gateway::HttpRoute;
use obol_api::traefik::Middleware;
use obol_api::{PaymentRoute, RegistrationRequest};
use obol_testenv::eventually;
use serde_json::json;

// Generous: the control plane is shared with other tests on a 2-core machine.
const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn deleted_http_route_and_middleware_are_recreated() {
    let s = scene("heal").await;
    let client = s.env.client();
    let _stand_ins = stand_ins(&client, s.ns.name());
    let _controller = start_controller(&client, run_config(s.ns.name()));
    create(&s.offers, &mk_offer("h", "up", json!({}))).await;
    wait_offer(&s.offers, "h", T, is_ready).await;

    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), s.ns.name());
    let mws: Api<Middleware> = Api::namespaced(client.clone(), s.ns.name());
    let old_route = routes.get("so-h").await.unwrap().uid();
    let old_mw = mws.get("x402-h").await.unwrap().uid();
    routes
        .delete("so-h", &DeleteParams::default())
        .await
        .unwrap();
    mws.delete("x402-h", &DeleteParams::default())
        .await
        .unwrap();
    let started = Instant::now();
    eventually(T, || async {
        let r = routes.get_opt("so-h").await.ok().flatten()?;
        let m = mws.get_opt("x402-h").await.ok().flatten()?;
        (r.uid() != old_route && m.uid() != old_mw).then_some(())
    })
    .await;
    println!(
        "heal: HTTPRoute and Middleware recreated in {:?}",
        started.elapsed()
    );

    // An external edit of a child's spec is reverted too.
    let pr: Api<PaymentRoute> = Api::namespaced(client.clone(), s.ns.name());
    let edit = json!({"spec": {"price": "1"}});
    pr.patch("x402-h", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    eventually(T, || async {
        pr.get("x402-h")
            .await
            .ok()
            .filter(|p| p.spec.price == "1000")
            .map(|_| ())
    })
    .await;
    wait_offer(&s.offers, "h", T, is_ready).await;
}

#[tokio::test]
async fn spec_change_updates_children_and_observed_generation() {
    let s = scene("spec").await;
    let client = s.env.client();
    let _stand_ins = stand_ins(&client, s.ns.name());
    let _controller = start_controller(&client, run_config(s.ns.name()));
    create(&s.offers, &mk_offer("c", "up", json!({}))).await;
    wait_offer(&s.offers, "c", T, is_ready).await;

    patch_spec(
        &s.offers,
        "c",
        json!({"payment": {"price": {"perRequest": "0.25"}}, "path": "/paid/c"}),
    )
    .await;
    let o = wait_offer(&s.offers, "c", T, |o| {
        is_ready(o) && o.metadata.generation == Some(2)
    })
    .await;
    assert_eq!(o.status.unwrap().observed_generation, Some(2));
    let pr = Api::<PaymentRoute>::namespaced(client.clone(), s.ns.name())
        .get("x402-c")
        .await
        .unwrap();
    assert_eq!(
        (pr.spec.price.as_str(), pr.spec.pattern.as_str()),
        ("250000", "/paid/c/*")
    );
    let route = Api::<HttpRoute>::namespaced(client.clone(), s.ns.name())
        .get("so-c")
        .await
        .unwrap();
    let path = route.spec.rules[0].matches[0].path.clone().unwrap();
    assert_eq!(path.value, "/paid/c");
}

#[tokio::test]
async fn unhealthy_upstream_turns_the_condition_false_with_the_reason() {
    let s = scene("sick").await;
    let client = s.env.client();
    let _stand_ins = stand_ins(&client, s.ns.name());
    let _controller = start_controller(&client, run_config(s.ns.name()));
    create(&s.offers, &mk_offer("u", "up", json!({}))).await;
    wait_offer(&s.offers, "u", T, is_ready).await;

    s.upstream.set_status(503);
    let o = wait_offer(&s.offers, "u", T, |o| {
        has(o, types::UPSTREAM_HEALTHY, "False", reasons::UNHEALTHY)
    })
    .await;
    let status = o.status.clone().unwrap();
    let msg = &obol_api::condition::find(&status.conditions, types::UPSTREAM_HEALTHY)
        .unwrap()
        .message;
    assert!(msg.contains("503"), "{msg}");
    assert!(has(&o, types::READY, "False", reasons::RECONCILING));
    // The upstream answered once: the route stays published while it is sick.
    assert!(has(
        &o,
        types::ROUTE_PUBLISHED,
        "True",
        reasons::HTTP_ROUTE_ACCEPTED
    ));
    let events: Api<Event> = Api::namespaced(client.clone(), s.ns.name());
    eventually(T, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some(reasons::UNHEALTHY)
                    && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;

    s.upstream.set_status(200);
    wait_offer(&s.offers, "u", T, is_ready).await;
}

#[tokio::test]
async fn path_conflict_oldest_wins() {
    let s = scene("conflict").await;
    let client = s.env.client();
    let _stand_ins = stand_ins(&client, s.ns.name());
    let _controller = start_controller(&client, run_config(s.ns.name()));
    create(
        &s.offers,
        &mk_offer("first", "up", json!({"path": "/shared"})),
    )
    .await;
    wait_offer(&s.offers, "first", T, is_ready).await;
    // creationTimestamp has second resolution: make the second offer strictly newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create(
        &s.offers,
        &mk_offer("second", "up", json!({"path": "/shared/"})),
    )
    .await;
    let o = wait_offer(&s.offers, "second", T, |o| {
        has(o, types::ROUTE_PUBLISHED, "False", reasons::PATH_CONFLICT)
    })
    .await;
    assert!(!is_ready(&o));
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), s.ns.name());
    let prs: Api<PaymentRoute> = Api::namespaced(client.clone(), s.ns.name());
    assert!(routes.get_opt("so-second").await.unwrap().is_none());
    assert!(prs.get_opt("x402-second").await.unwrap().is_none());
    assert!(is_ready(&s.offers.get("first").await.unwrap()));

    // The owner goes away: the path passes to the next claimant.
    s.offers
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    wait_offer(&s.offers, "second", T, is_ready).await;
}

#[tokio::test]
async fn deletion_waits_for_the_registration_request_but_not_forever() {
    let s = scene("drain").await;
    let client = s.env.client();
    let _stand_ins = stand_ins(&client, s.ns.name());
    let mut config = run_config(s.ns.name());
    config.cleanup_timeout = Duration::from_secs(4);
    let _controller = start_controller(&client, config);
    create(
        &s.offers,
        &mk_offer("d", "up", json!({"registration": {"enabled": true}})),
    )
    .await;
    wait_offer(&s.offers, "d", T, is_ready).await;
    let rrs: Api<RegistrationRequest> = Api::namespaced(client.clone(), s.ns.name());
    eventually(T, || async {
        rrs.get_opt("so-d-registration").await.ok().flatten()
    })
    .await;
    // A registrar that never finishes its tombstone: a finalizer nobody removes.
    let hold = json!({"metadata": {"finalizers": ["test.obol.org/hold"]}});
    rrs.patch(
        "so-d-registration",
        &PatchParams::default(),
        &Patch::Merge(&hold),
    )
    .await
    .unwrap();

    let started = Instant::now();
    s.offers
        .delete("d", &DeleteParams::default())
        .await
        .unwrap();
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), s.ns.name());
    eventually(T, || async {
        routes
            .get_opt("so-d")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lingering = s.offers.get_opt("d").await.unwrap();
    let lingering = lingering.expect("released before the deadline");
    assert_eq!(
        lingering.status.unwrap().phase,
        Some(obol_api::Phase::Deleting)
    );
    eventually(T, || async {
        s.offers
            .get_opt("d")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    let waited = started.elapsed();
    println!("drain: offer released after {waited:?} (deadline 4 s)");
    // deletionTimestamp has second resolution: the deadline can pass up to 1 s early.
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
    let events: Api<Event> = Api::namespaced(client.clone(), s.ns.name());
    let list = events.list(&ListParams::default()).await.unwrap();
    assert!(list.items.iter().any(
        |e| e.reason.as_deref() == Some("RegistrationCleanupTimedOut")
            && e.type_.as_deref() == Some("Warning")
    ));
    let release = json!({"metadata": {"finalizers": null}});
    rrs.patch(
        "so-d-registration",
        &PatchParams::default(),
        &Patch::Merge(&release),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn one_leader_reconciles_and_the_standby_takes_over() {
    let s = scene("lease").await;
    let client = s.env.client();
    let _stand_ins = stand_ins(&client, s.ns.name());
    let mut a = run_config(s.ns.name());
    a.lease = Some(lease("so-test", s.ns.name(), "replica-a"));
    let mut b = run_config(s.ns.name());
    b.lease = Some(lease("so-test", s.ns.name(), "replica-b"));
    let first = start_controller(&client, a);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = start_controller(&client, b);
    create(&s.offers, &mk_offer("l1", "up", json!({}))).await;
    wait_offer(&s.offers, "l1", T, is_ready).await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), s.ns.name());
    let holder =
        |l: k8s_openapi::api::coordination::v1::Lease| l.spec.and_then(|s| s.holder_identity);
    assert_eq!(
        holder(leases.get("so-test").await.unwrap()).as_deref(),
        Some("replica-a")
    );

    // The leader stops (its lease task releases the lease): the standby takes over.
    first.task.abort();
    let died = Instant::now();
    eventually(T, || async {
        (holder(leases.get("so-test").await.ok()?).as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    println!(
        "lease: standby took over {:?} after the leader stopped",
        died.elapsed()
    );
    create(&s.offers, &mk_offer("l2", "up", json!({}))).await;
    wait_offer(&s.offers, "l2", T, is_ready).await;
    assert!(!second.task.is_finished());
}

#[tokio::test]
async fn paused_offer_withdraws_its_route_and_resumes() {
    let s = scene("pause").await;
    let client = s.env.client();
    let _stand_ins = stand_ins(&client, s.ns.name());
    let _controller = start_controller(&client, run_config(s.ns.name()));
    create(&s.offers, &mk_offer("p", "up", json!({}))).await;
    wait_offer(&s.offers, "p", T, is_ready).await;

    let pause = |v: &'static str| {
        let offers = s.offers.clone();
        async move {
            let patch =
                json!({"metadata": {"annotations": {obol_api::labels::PAUSED_ANNOTATION: v}}});
            offers
                .patch("p", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    pause("true").await;
    let o = wait_offer(&s.offers, "p", T, |o| {
        has(o, types::ROUTE_PUBLISHED, "False", reasons::PAUSED)
    })
    .await;
    assert!(has(&o, types::PAYMENT_GATE_READY, "False", reasons::PAUSED));
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), s.ns.name());
    eventually(T, || async {
        routes
            .get_opt("so-p")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        Api::<PaymentRoute>::namespaced(client.clone(), s.ns.name())
            .get_opt("x402-p")
            .await
            .unwrap()
            .is_some()
    );

    pause("false").await;
    wait_offer(&s.offers, "p", T, is_ready).await;
}
