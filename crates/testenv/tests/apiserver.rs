//! The API-server semantics the controller, verifier and registrar rely on, proven against the
//! real local control plane (kube-apiserver + etcd + kube-controller-manager).

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Resource, ResourceExt};
use obol_api::{PaymentRoute, ServiceOffer};
use obol_testenv::{TestEnv, eventually};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn offer(name: &str) -> ServiceOffer {
    serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": name},
        "spec": {
            "upstream": {"service": "demo", "port": 8080},
            "payment": {
                "network": "base-sepolia",
                "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "price": {"perRequest": "0.001"}
            }
        }
    }))
    .expect("a ServiceOffer")
}

#[tokio::test]
async fn server_side_apply_field_ownership() {
    let env = TestEnv::get().await;
    let ns = env.namespace("ssa").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client(), ns.name());
    let cm = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": data});
    let m1 = PatchParams::apply("manager-one");
    let m2 = PatchParams::apply("manager-two");

    cms.patch("owned", &m1, &Patch::Apply(cm(json!({"a": "1", "b": "2"}))))
        .await
        .unwrap();
    // The same manager drops `b` from its intent: the server removes it.
    let applied = cms
        .patch("owned", &m1, &Patch::Apply(cm(json!({"a": "1"}))))
        .await
        .unwrap();
    let data = applied.data.unwrap();
    assert_eq!(data.get("a").map(String::as_str), Some("1"));
    assert!(
        !data.contains_key("b"),
        "field dropped by its manager must disappear"
    );

    // A no-op apply keeps the resourceVersion (no write, no watch event).
    let again = cms
        .patch("owned", &m1, &Patch::Apply(cm(json!({"a": "1"}))))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), applied.metadata.resource_version);

    // Another manager setting the same field conflicts unless it forces.
    let err = cms
        .patch("owned", &m2, &Patch::Apply(cm(json!({"a": "9"}))))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409), "{err}");
    let forced = cms
        .patch(
            "owned",
            &m2.clone().force(),
            &Patch::Apply(cm(json!({"a": "9"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap().get("a").map(String::as_str), Some("9"));
    // Ownership moved: now the first manager conflicts.
    let err = cms
        .patch("owned", &m1, &Patch::Apply(cm(json!({"a": "1"}))))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409), "{err}");
}

#[tokio::test]
async fn generation_moves_on_spec_not_status() {
    let env = TestEnv::get().await;
    let ns = env.namespace("gen").await;
    let offers: Api<ServiceOffer> = Api::namespaced(env.client(), ns.name());
    let created = offers
        .create(&PostParams::default(), &offer("gen"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let status = json!({"status": {"phase": "Reconciling", "observedGeneration": 1}});
    let after_status = offers
        .patch_status("gen", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "status must not move generation"
    );
    assert_eq!(after_status.status.unwrap().observed_generation, Some(1));

    let spec = json!({"spec": {"payment": {"price": {"perRequest": "0.002"}}}});
    let after_spec = offers
        .patch("gen", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(after_spec.metadata.generation, Some(2));
    // Metadata-only changes do not move it either.
    let label = json!({"metadata": {"labels": {"x": "y"}}});
    let after_label = offers
        .patch("gen", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    assert_eq!(after_label.metadata.generation, Some(2));
}

#[tokio::test]
async fn status_subresource_keeps_spec_and_status_apart() {
    let env = TestEnv::get().await;
    let ns = env.namespace("status").await;
    let offers: Api<ServiceOffer> = Api::namespaced(env.client(), ns.name());
    let mut so = offer("split");
    so.status = Some(obol_api::ServiceOfferStatus {
        endpoint: Some("/smuggled".into()),
        ..Default::default()
    });
    let created = offers.create(&PostParams::default(), &so).await.unwrap();
    assert!(
        created.status.is_none(),
        "status sent to the main resource is ignored"
    );

    // A spec change sent to /status is ignored; the status part is kept.
    let both = json!({
        "spec": {"payment": {"price": {"perRequest": "9"}}},
        "status": {"endpoint": "/services/split"}
    });
    let patched = offers
        .patch_status("split", &PatchParams::default(), &Patch::Merge(&both))
        .await
        .unwrap();
    assert_eq!(
        patched.spec.payment.price.per_request.as_deref(),
        Some("0.001")
    );
    assert_eq!(
        patched.status.unwrap().endpoint.as_deref(),
        Some("/services/split")
    );
}

#[tokio::test]
async fn finalizer_holds_deletion_until_removed() {
    let env = TestEnv::get().await;
    let ns = env.namespace("fin").await;
    let offers: Api<ServiceOffer> = Api::namespaced(env.client(), ns.name());
    let mut so = offer("held");
    so.metadata.finalizers = Some(vec![obol_api::FINALIZER.to_owned()]);
    offers.create(&PostParams::default(), &so).await.unwrap();

    offers
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    let held = offers.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.finalizers(), [obol_api::FINALIZER]);
    // Removing our finalizer lets the delete finish.
    let clear = json!({"metadata": {"finalizers": null}});
    offers
        .patch("held", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .unwrap();
    eventually(WAIT, || async {
        match offers.get_opt("held").await.unwrap() {
            None => Some(()),
            Some(_) => None,
        }
    })
    .await;
}

#[tokio::test]
async fn garbage_collector_removes_owned_children() {
    let env = TestEnv::get().await;
    let ns = env.namespace("gc").await;
    let offers: Api<ServiceOffer> = Api::namespaced(env.client(), ns.name());
    let routes: Api<PaymentRoute> = Api::namespaced(env.client(), ns.name());
    let owner = offers
        .create(&PostParams::default(), &offer("owner"))
        .await
        .unwrap();
    // kube's helper sets `controller: true` only; the controller must add blockOwnerDeletion.
    let mut owner_ref = owner.controller_owner_ref(&()).unwrap();
    owner_ref.block_owner_deletion = Some(true);
    let child: PaymentRoute = serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1",
        "kind": "PaymentRoute",
        "metadata": {"name": "x402-owner", "ownerReferences": [owner_ref]},
        "spec": {
            "pattern": "/services/owner/*",
            "price": "1000",
            "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "network": "eip155:84532"
        }
    }))
    .unwrap();
    let child = routes.create(&PostParams::default(), &child).await.unwrap();
    let refs = child.owner_references();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].controller, Some(true));
    assert_eq!(refs[0].block_owner_deletion, Some(true));

    offers
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually(WAIT, || async {
        routes
            .get_opt("x402-owner")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn watch_from_a_resource_version_sees_later_changes() {
    let env = TestEnv::get().await;
    let ns = env.namespace("watch").await;
    let routes: Api<PaymentRoute> = Api::namespaced(env.client(), ns.name());
    let list = routes.list(&Default::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut events = routes
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    let pr: PaymentRoute = serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1", "kind": "PaymentRoute",
        "metadata": {"name": "watched"},
        "spec": {"pattern": "/w/*", "price": "1", "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "network": "eip155:84532"}
    }))
    .unwrap();
    routes.create(&PostParams::default(), &pr).await.unwrap();
    let status = json!({"status": {"admitted": true, "lastAdmittedGeneration": 1}});
    routes
        .patch_status("watched", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let mut seen = vec![];
    while seen.len() < 2 {
        let event = tokio::time::timeout(WAIT, events.try_next())
            .await
            .expect("watch event in time")
            .unwrap()
            .expect("watch stream open");
        match event {
            WatchEvent::Added(o) => seen.push(("added", o.status.is_some_and(|s| s.admitted))),
            WatchEvent::Modified(o) => {
                seen.push(("modified", o.status.is_some_and(|s| s.admitted)))
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(seen, [("added", false), ("modified", true)]);
}

#[tokio::test]
async fn lease_create_and_renew_with_optimistic_concurrency() {
    let env = TestEnv::get().await;
    let ns = env.namespace("lease").await;
    let leases: Api<Lease> = Api::namespaced(env.client(), ns.name());
    let lease = |holder: &str, renew: &str| -> Lease {
        serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "serviceoffer-controller"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": renew}
        }))
        .unwrap()
    };
    let created = leases
        .create(
            &PostParams::default(),
            &lease("replica-a", "2026-01-01T00:00:00.000000Z"),
        )
        .await
        .unwrap();
    let stale_rv = created.resource_version();

    let mut renewed = lease("replica-a", "2026-01-01T00:00:05.000000Z");
    renewed.metadata.resource_version = stale_rv.clone();
    let renewed = leases
        .replace("serviceoffer-controller", &PostParams::default(), &renewed)
        .await
        .unwrap();
    assert_ne!(renewed.resource_version(), stale_rv);
    let renew_time = renewed.spec.unwrap().renew_time.unwrap();
    assert_eq!(renew_time.0.to_string(), "2026-01-01T00:00:05Z");

    // A second replica writing with the old resourceVersion loses: it must re-read first.
    let mut takeover = lease("replica-b", "2026-01-01T00:00:06.000000Z");
    takeover.metadata.resource_version = stale_rv;
    let err = leases
        .replace("serviceoffer-controller", &PostParams::default(), &takeover)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409), "{err}");
    let current = leases.get("serviceoffer-controller").await.unwrap();
    assert_eq!(
        current.spec.unwrap().holder_identity.as_deref(),
        Some("replica-a")
    );
}

#[tokio::test]
async fn namespace_deletion_removes_its_content() {
    let env = TestEnv::get().await;
    let ns = env.namespace("nsdel").await;
    let name = ns.name().to_owned();
    let offers: Api<ServiceOffer> = Api::namespaced(env.client(), &name);
    offers
        .create(&PostParams::default(), &offer("inside"))
        .await
        .unwrap();
    drop(ns);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client());
    eventually(Duration::from_secs(60), || async {
        namespaces
            .get_opt(&name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        offers
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // The object kind itself is untouched.
    assert_eq!(ServiceOffer::kind(&()), "ServiceOffer");
}
