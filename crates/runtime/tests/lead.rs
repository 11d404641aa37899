//! Terms of leadership on the local control plane (scripts/testenv): one replica leads while
//! another waits; shutdown while waiting runs nothing; a finished term releases the Lease for
//! the next replica; a term whose Lease is taken away ends as lost.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use obol_runtime::lease::{LeaseConfig, Outcome, lead};
use obol_testenv::{TestEnv, eventually};

const WAIT: Duration = Duration::from_secs(20);

fn config(namespace: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: "term".into(),
        namespace: namespace.into(),
        identity: identity.into(),
        duration: Duration::from_secs(3),
        grace: Duration::from_secs(1),
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt("term").await.ok()??.spec?.holder_identity
}

#[tokio::test]
async fn terms_wait_release_and_lose() {
    let env = TestEnv::get().await;
    let ns = env.namespace("leader").await;
    let leases: Api<Lease> = Api::namespaced(env.client(), ns.name());

    // A leads until told to stop.
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let a = {
        let (client, cfg) = (env.client(), config(ns.name(), "a"));
        tokio::spawn(async move {
            lead(
                client,
                &cfg,
                std::future::pending(),
                |_| {},
                || async {
                    stopped_a.await.unwrap();
                    7
                },
            )
            .await
        })
    };
    eventually(WAIT, || async {
        (holder(&leases).await.as_deref() == Some("a")).then_some(())
    })
    .await;

    // B waits behind A; shutdown comes first, and B's work never runs.
    let ran = Arc::new(AtomicBool::new(false));
    let b = lead(
        env.client(),
        &config(ns.name(), "b"),
        tokio::time::sleep(Duration::from_secs(2)),
        |_| {},
        || {
            let ran = ran.clone();
            async move { ran.store(true, Ordering::SeqCst) }
        },
    )
    .await
    .unwrap();
    assert_eq!(b, Outcome::Stopped);
    assert!(
        !ran.load(Ordering::SeqCst),
        "a waiting replica ran the leader's work"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));

    // A's work returns: its value comes back and the Lease is released, not left to expire.
    stop_a.send(()).unwrap();
    assert_eq!(a.await.unwrap().unwrap(), Outcome::Finished(7));
    let after = holder(&leases).await;
    assert!(
        after.as_deref().is_none_or(str::is_empty),
        "still held by {after:?}"
    );

    // C leads next; it is told when leadership starts and ends. Another writer then takes the
    // Lease: C's term ends as lost and its work is dropped.
    let told = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let c = {
        let (client, cfg, told) = (env.client(), config(ns.name(), "c"), told.clone());
        tokio::spawn(async move {
            lead(
                client,
                &cfg,
                std::future::pending(),
                move |leading| told.lock().push(leading),
                std::future::pending::<()>,
            )
            .await
        })
    };
    // Wait until C itself was told it leads, not merely until the Lease names it: C writes the
    // holder first and reads the Lease back after, so an intruder between the two would make C
    // see a foreign holder before it ever led (and wait out the intruder's hour).
    eventually(WAIT, || async {
        (holder(&leases).await.as_deref() == Some("c") && *told.lock() == [true]).then_some(())
    })
    .await;
    let intruder = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 3600},
    });
    leases
        .patch(
            "term",
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(&intruder),
        )
        .await
        .unwrap();
    let c = tokio::time::timeout(WAIT, c)
        .await
        .expect("C noticed the loss");
    assert_eq!(c.unwrap().unwrap(), Outcome::Lost);
    assert_eq!(*told.lock(), vec![true, false]);
}
