//! Three gateway replicas sharing one real `redis-server` for their reservations: one payment
//! reaches the upstream once whichever replicas its copies hit, and a Redis that dies mid-load
//! turns paid requests into 503s (none reaches the upstream unpaid) until it is back.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod gateway_support;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use gateway_support::*;
use obol_devstack::redis::Redis;
use obol_verifier::facilitators::Facilitators;
use obol_verifier::reservations::Reservations;
use obol_verifier::reservations::redis::RedisStore;
use obol_verifier::{AppState, RouteTable};
use support::*;

struct Replicas {
    gateways: Vec<SocketAddr>,
    facilitator: Arc<FakeFacilitator>,
    up: Arc<UpstreamScript>,
    redis: Redis,
    req: obol_x402::Requirement,
    _dir: std::path::PathBuf,
}

async fn replicas(n: usize) -> Replicas {
    let dir = obol_testenv::scratch_dir("gw-redis");
    let redis = Redis::start(&obol_testenv::tools::redis_server(), &dir.join("redis.log"))
        .await
        .unwrap();
    let (addr, up) = upstream().await;
    let facilitator = FakeFacilitator::new();
    let clock = Arc::new(obol_verifier::clock::FixedClock::new(NOW));
    let mut gateways = vec![];
    for _ in 0..n {
        let table = Arc::new(RouteTable::new());
        table.reset(vec![demo_proxy_entry(addr)]);
        let store = RedisStore::new(&redis.url(), Duration::from_millis(300), 16).unwrap();
        let state = AppState::new(table, Facilitators::single(facilitator.clone()))
            .with_clock(clock.clone())
            .with_reservations(Reservations::new(Arc::new(store), 3600));
        gateways.push(gateway(state, test_config()).await);
    }
    let req = Harness::new(vec![demo_proxy_entry(addr)]).requirement("demo", "demo");
    Replicas {
        gateways,
        facilitator,
        up,
        redis,
        req,
        _dir: dir,
    }
}

#[tokio::test]
async fn thirty_two_copies_across_three_replicas_reach_the_upstream_once() {
    let r = replicas(3).await;
    let pay = header(&r.req, 1, 2);
    let mut tasks = vec![];
    for i in 0..32 {
        let (gw, pay) = (r.gateways[i % 3], pay.clone());
        tasks.push(tokio::spawn(async move {
            get(gw, "/services/demo/json", &[("payment-signature", &pay)])
                .await
                .status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        if status == StatusCode::OK {
            ok += 1;
        } else {
            assert!(
                [StatusCode::CONFLICT, StatusCode::PAYMENT_REQUIRED].contains(&status),
                "{status}"
            );
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(r.up.hits("/json"), 1);
    assert_eq!(r.facilitator.calls().1, 1);
}

#[tokio::test]
async fn a_redis_that_dies_mid_load_fails_closed_and_traffic_resumes_when_it_is_back() {
    let mut r = replicas(3).await;
    let run = |from: u8, to: u8, gateways: Vec<SocketAddr>, req: obol_x402::Requirement| async move {
        let mut tasks = vec![];
        for nonce in from..to {
            let gw = gateways[usize::from(nonce) % gateways.len()];
            let pay = header(&req, nonce, 2);
            tasks.push(tokio::spawn(async move {
                let a = get(gw, "/services/demo/json", &[("payment-signature", &pay)]).await;
                (a.status, a.json()["reason"].as_str().map(str::to_owned))
            }));
        }
        let mut out = vec![];
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    };
    let before = run(1, 21, r.gateways.clone(), r.req.clone()).await;
    assert!(
        before.iter().all(|(s, _)| *s == StatusCode::OK),
        "{before:?}"
    );
    // Redis dies while requests keep coming.
    let load = tokio::spawn(run(21, 81, r.gateways.clone(), r.req.clone()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    r.redis.kill().await;
    let during = load.await.unwrap();
    let after_kill = run(81, 101, r.gateways.clone(), r.req.clone()).await;
    for (status, reason) in during.iter().chain(after_kill.iter()) {
        assert!(
            *status == StatusCode::OK
                || (*status == StatusCode::SERVICE_UNAVAILABLE
                    && reason.as_deref() == Some("reservations_unavailable")),
            "{status} {reason:?}"
        );
    }
    assert!(
        after_kill
            .iter()
            .all(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE),
        "with Redis down nothing is served: {after_kill:?}"
    );
    // Nothing reached the upstream without being settled.
    assert_eq!(r.up.hits("/json"), r.facilitator.calls().1);
    r.redis.restart().await.unwrap();
    let mut resumed = vec![];
    for _ in 0..3 {
        resumed = run(101, 111, r.gateways.clone(), r.req.clone()).await;
        if resumed.iter().all(|(s, _)| *s == StatusCode::OK) {
            break;
        }
    }
    assert!(
        resumed.iter().all(|(s, _)| *s == StatusCode::OK),
        "{resumed:?}"
    );
    assert_eq!(r.up.hits("/json"), r.facilitator.calls().1);
}
