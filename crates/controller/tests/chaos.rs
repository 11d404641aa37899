//! Chaos: while 100 offers converge (and 20 are deleted), the controller process is killed
//! (SIGKILL) at random points and restarted. Afterwards every live offer is Ready with exactly
//! one child of each kind, deleted offers left nothing behind, and no child is orphaned.
#![allow(clippy::unwrap_used)] // tests

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::process::ControllerProcess;
use common::*;
use futures::StreamExt;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Resource, ResourceExt};
use obol_api::gateway::HttpRoute;
use obol_api::traefik::Middleware;
use obol_api::{PaymentRoute, ServiceOffer};
use obol_testenv::TestEnv;
use rand::Rng;
use serde_json::json;

const OFFERS: usize = 100;
const DELETED: usize = 20;
const KILLS: usize = 12;

/// `owner uid -> count` of children of kind `K`, and the children whose owner is gone.
async fn children<K>(
    api: &Api<K>,
    live: &HashMap<String, String>,
) -> (HashMap<String, usize>, Vec<String>)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut per_owner = HashMap::new();
    let mut orphans = Vec::new();
    for child in api.list(&ListParams::default()).await.unwrap().items {
        let owner = child
            .owner_references()
            .first()
            .map(|o| o.uid.clone())
            .unwrap_or_default();
        if live.values().any(|uid| *uid == owner) {
            *per_owner.entry(owner).or_insert(0) += 1;
        } else {
            orphans.push(child.name_any());
        }
    }
    (per_owner, orphans)
}

#[tokio::test]
async fn chaos_kills_during_convergence_leave_no_orphan_or_duplicate() {
    let env = TestEnv::get().await;
    let ns = env.namespace("chaos").await;
    let _janitor = Janitor::new(&env, ns.name());
    let client = env.client();
    let upstream = Upstream::start().await;
    upstream.expose(&client, ns.name(), "up").await;
    let _stand_ins = stand_ins(&client, ns.name());
    let offers: Api<ServiceOffer> = Api::namespaced(client.clone(), ns.name());
    let flags = [
        "--probe-interval",
        "2s",
        "--lease-duration",
        "3s",
        "--lease-grace",
        "1s",
    ];

    // Offers are created in the background while the controller is killed over and over.
    let creator = {
        let offers = offers.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..OFFERS)
                .for_each_concurrent(10, |i| {
                    let offers = offers.clone();
                    async move {
                        let spec = json!({"payment": {"network": "base-sepolia", "payTo": PAY_TO,
                            "price": {"perRequest": format!("0.{:06}", i + 1)}}});
                        create(&offers, &mk_offer(&format!("c{i}"), "up", spec)).await;
                    }
                })
                .await;
        })
    };
    let started = Instant::now();
    let mut kills = 0;
    let mut deleted = false;
    while kills < KILLS {
        // The same identity after a restart: the new process holds the lease at once, so the
        // kills land while it reconciles rather than while it waits.
        let proc =
            ControllerProcess::spawn(env.kubeconfig_path(), ns.name(), "chaos-replica", &flags);
        let delay = rand::rng().random_range(100..1500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        proc.kill();
        kills += 1;
        if kills == KILLS / 2 && !deleted {
            for i in 0..DELETED {
                let _ = offers
                    .delete(&format!("c{i}"), &DeleteParams::default())
                    .await;
            }
            deleted = true;
        }
    }
    creator.await.unwrap();
    println!("chaos: {kills} kill points in {:?}", started.elapsed());

    // A new identity: it must wait for the killed holder's lease to expire (3 s), then converge.
    let restarted = Instant::now();
    let _final = ControllerProcess::spawn(env.kubeconfig_path(), ns.name(), "survivor", &flags);
    let live = OFFERS - DELETED;
    obol_testenv::eventually(Duration::from_secs(120), || async {
        let all = offers.list(&ListParams::default()).await.ok()?;
        (all.items.len() == live && all.items.iter().all(is_ready)).then_some(())
    })
    .await;
    println!(
        "chaos: all {live} Ready {:?} after the final restart",
        restarted.elapsed()
    );

    let items = offers.list(&ListParams::default()).await.unwrap().items;
    let uids: HashMap<String, String> = items
        .iter()
        .map(|o| (o.name_any(), o.uid().unwrap()))
        .collect();
    for i in 0..DELETED {
        assert!(
            !uids.contains_key(&format!("c{i}")),
            "deleted offer c{i} still exists"
        );
    }
    for o in &items {
        assert!(o.finalizers().iter().any(|f| f == obol_api::FINALIZER));
    }
    // Garbage collection of the deleted offers' children is asynchronous.
    let mw: Api<Middleware> = Api::namespaced(client.clone(), ns.name());
    let pr: Api<PaymentRoute> = Api::namespaced(client.clone(), ns.name());
    let hr: Api<HttpRoute> = Api::namespaced(client.clone(), ns.name());
    let (mws, prs, hrs) = obol_testenv::eventually(Duration::from_secs(30), || async {
        let (m, mo) = children(&mw, &uids).await;
        let (p, po) = children(&pr, &uids).await;
        let (h, ho) = children(&hr, &uids).await;
        (mo.is_empty() && po.is_empty() && ho.is_empty()).then_some((m, p, h))
    })
    .await;
    for (kind, per_owner) in [
        ("Middleware", mws),
        ("PaymentRoute", prs),
        ("HTTPRoute", hrs),
    ] {
        assert_eq!(per_owner.len(), live, "{kind}: one per live offer");
        assert!(
            per_owner.values().all(|n| *n == 1),
            "{kind}: duplicates {per_owner:?}"
        );
    }
    for o in &items {
        let i: usize = o.name_any().trim_start_matches('c').parse().unwrap();
        let p = pr.get(&format!("x402-c{i}")).await.unwrap();
        assert_eq!(
            p.spec.price,
            (i + 1).to_string(),
            "crossed PaymentRoute for c{i}"
        );
    }
    drop(upstream);
}
