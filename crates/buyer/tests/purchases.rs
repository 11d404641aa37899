//! The buyer's pool from the cluster: a PurchaseRequest and its ConfigMaps on the real local
//! control plane are spendable as soon as they exist, and the buyer writes their status.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use obol_api::purchase_request::{PoolShard, PurchaseRequest, pool_config_map, types};
use obol_buyer::chain::ChainReaders;
use obol_buyer::journal::{Journal, MemStorage};
use obol_buyer::purchases::{self, WatchOptions};
use obol_buyer::{Buyer, BuyerParts, SystemClock};
use obol_testenv::{TestEnv, eventually};
use serde_json::Value;

#[tokio::test]
async fn a_purchase_is_spendable_at_once_and_its_status_follows() {
    let env = TestEnv::get().await;
    let ns = env.namespace("buyer-purchases").await;
    let client = env.client();
    let seller = spawn_seller(Mode::V2, "eip155:84532", USDC_BASE_SEPOLIA).await;
    let (journal, _) = Journal::open(Arc::new(MemStorage::default()), Vec::new(), 1 << 20).unwrap();
    let http = reqwest::Client::new();
    let (buyer, _rx) = Buyer::new(BuyerParts {
        source: None,
        journal: Arc::new(journal),
        chains: Arc::new(ChainReaders::new(&http, &[])),
        client: http,
        clock: Arc::new(SystemClock),
        max_heal: 4,
        expiry_margin: 60,
    });
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let options = WatchOptions {
        namespace: Some(ns.name().to_owned()),
        seller_check: Duration::from_secs(60),
        replica: None,
    };
    tokio::spawn(purchases::run(
        buyer.clone(),
        client.clone(),
        options,
        move || {
            let _ = ready_tx.send(());
        },
    ));
    ready_rx.await.unwrap();
    let app = obol_buyer::proxy::router(buyer.clone());

    // Written in two ConfigMaps: spendable as soon as the objects exist, no volume sync.
    let written = Instant::now();
    create_purchase(
        &client,
        ns.name(),
        "demo",
        &seller.url("/services/demo"),
        &[signed_auths(0, 3), signed_auths(3, 2)],
    )
    .await;
    eventually(Duration::from_secs(5), || async {
        (status(&app).await["demo"]["remaining"] == 5).then_some(())
    })
    .await;
    let spendable = written.elapsed();
    assert!(
        spendable < Duration::from_secs(1),
        "spendable after {spendable:?}"
    );
    let (code, _, _) = call(&app, Method::POST, "/upstream/demo/x", None).await;
    assert_eq!(code, StatusCode::OK);

    // The status the buyer writes: counts, the conditions, what the seller said.
    let purchases: Api<PurchaseRequest> = Api::namespaced(client.clone(), ns.name());
    let s = eventually(Duration::from_secs(10), || async {
        let p = purchases.get("demo").await.ok()?;
        let s = p.status?;
        (s.spent == Some(1)).then_some(s)
    })
    .await;
    assert_eq!((s.remaining, s.held, s.loaded), (Some(4), Some(0), Some(5)));
    assert_eq!(s.observed_generation, Some(1));
    for t in [types::POOL_LOADED, types::SELLER_REACHABLE, types::READY] {
        assert!(
            obol_api::condition::is_true(&s.conditions, t),
            "{t}: {:?}",
            s.conditions
        );
    }
    // The last word is the paid answer or the buyer's own probe of the 402, whichever came last.
    let outcome = s.last_seller.unwrap().outcome;
    assert!(
        ["paid", "payment_required"].contains(&outcome.as_str()),
        "{outcome}"
    );

    // Gone from the cluster, gone from the buyer.
    purchases
        .delete("demo", &DeleteParams::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(10), || async {
        status(&app).await.get("demo").is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_missing_config_map_and_a_seller_asking_more_show_in_the_status() {
    let env = TestEnv::get().await;
    let ns = env.namespace("buyer-purchase-problems").await;
    let client = env.client();
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let (journal, _) = Journal::open(Arc::new(MemStorage::default()), Vec::new(), 1 << 20).unwrap();
    let http = reqwest::Client::new();
    let (buyer, _rx) = Buyer::new(BuyerParts {
        source: None,
        journal: Arc::new(journal),
        chains: Arc::new(ChainReaders::new(&http, &[])),
        client: http,
        clock: Arc::new(SystemClock),
        max_heal: 4,
        expiry_margin: 60,
    });
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let options = WatchOptions {
        namespace: Some(ns.name().to_owned()),
        seller_check: Duration::from_secs(60),
        replica: None,
    };
    tokio::spawn(purchases::run(
        buyer.clone(),
        client.clone(),
        options,
        move || {
            let _ = ready_tx.send(());
        },
    ));
    ready_rx.await.unwrap();
    // The spec names two ConfigMaps; only the first is written.
    create_purchase(
        &client,
        ns.name(),
        "half",
        &seller.url(""),
        &[signed_auths(0, 2)],
    )
    .await;
    let purchases: Api<PurchaseRequest> = Api::namespaced(client.clone(), ns.name());
    let mut p = purchases.get("half").await.unwrap();
    p.spec.pool.push(PoolShard {
        config_map: pool_config_map("half", 1),
        count: 2,
        expires_at: "2106-02-07T06:28:15Z".into(),
    });
    p.spec.count = 4;
    purchases
        .replace("half", &PostParams::default(), &p)
        .await
        .unwrap();
    let s = eventually(Duration::from_secs(10), || async {
        let s = purchases.get("half").await.ok()?.status?;
        let c = obol_api::condition::find(&s.conditions, types::POOL_LOADED)?.clone();
        (s.observed_generation == Some(2) && c.message.contains("purch-half-1")).then_some(c)
    })
    .await;
    assert_eq!(
        (s.status.as_str(), s.reason.as_str()),
        ("False", "WaitingForConfigMaps")
    );
    // The seller's price differs from what the authorizations were signed for (the stub asks
    // 1000, the spec says 500): refused here, nothing sent, and the status says why.
    let mut p = purchases.get("half").await.unwrap();
    p.spec.price = "500".into();
    purchases
        .replace("half", &PostParams::default(), &p)
        .await
        .unwrap();
    let app = obol_buyer::proxy::router(buyer.clone());
    eventually(Duration::from_secs(10), || async {
        let s = status(&app).await;
        // Signed for 1000: every authorization is skipped under a 500 price.
        (s["half"]["remaining"] == 0).then_some(())
    })
    .await;
    let (code, _, body) = call(&app, Method::POST, "/upstream/half/x", None).await;
    assert_eq!(
        code,
        StatusCode::BAD_GATEWAY,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["reason"], "seller_terms_changed", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("price 1000"),
        "{body}"
    );
    assert_eq!(
        seller.state.paid.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let s = eventually(Duration::from_secs(10), || async {
        let s = purchases.get("half").await.ok()?.status?;
        let c = obol_api::condition::find(&s.conditions, types::SELLER_REACHABLE)?.clone();
        (c.reason == "TermsChanged").then_some(c)
    })
    .await;
    assert!(s.message.contains("more than the 500"), "{}", s.message);
}
