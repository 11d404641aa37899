//! AC4 of the seed: route propagation from offer creation to an admitted PaymentRoute and a
//! Ready offer, with the real `x402-verifier` admitting routes when its binary is built
//! (`OBOL_VERIFIER_BIN`, else `target/debug/x402-verifier`), else the admission stand-in.
//! Also shows the fail-closed order: no HTTPRoute before admission.
#![allow(clippy::unwrap_used)] // tests

mod common;

use std::time::{Duration, Instant};

use common::*;
use kube::Api;
use obol_api::condition::{reasons, types};
use obol_api::gateway::HttpRoute;
use obol_api::{PaymentRoute, ServiceOffer};
use obol_testenv::TestEnv;
use serde_json::json;

// Generous: the control plane is shared with other tests on a 2-core machine.
const T: Duration = Duration::from_secs(60);

/// Starts admission: the real verifier when its binary runs, else the stand-in.
async fn start_admission(env: &TestEnv, ns: &str) -> Admission {
    if let Some(bin) = obol_testenv::gateway::verifier_bin() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("ac4-verifier-{port}.log")))
                .unwrap();
        let child = std::process::Command::new(&bin)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--gateway-listen",
                "127.0.0.1:0",
                "--facilitator-url",
                "http://127.0.0.1:9",
            ])
            .env("KUBECONFIG", env.kubeconfig_path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn();
        if let Ok(mut child) = child {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if child.try_wait().ok().flatten().is_none() {
                println!("ac4: admission by the real verifier {}", bin.display());
                return Admission::Real(child);
            }
        }
        println!(
            "ac4: {} did not stay up; using the admission stand-in",
            bin.display()
        );
    }
    Admission::StandIn(obol_testenv::gateway::admit_payment_routes(
        env.client(),
        ns,
    ))
}

enum Admission {
    Real(std::process::Child),
    #[allow(dead_code)] // held for its Drop
    StandIn(obol_testenv::gateway::StandIn),
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Self::Real(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn ac4_creation_admitted_ready_timing() {
    let env = TestEnv::get().await;
    let ns = env.namespace("ac4").await;
    let _janitor = Janitor::new(&env, ns.name());
    let client = env.client();
    let upstream = Upstream::start().await;
    upstream.expose(&client, ns.name(), "up").await;
    let _gateway =
        obol_testenv::gateway::accept_http_routes(client.clone(), ns.name(), GATEWAY, GATEWAY_NS);
    let _controller = start_controller(&client, run_config(ns.name()));
    let offers: Api<ServiceOffer> = Api::namespaced(client.clone(), ns.name());
    let prs: Api<PaymentRoute> = Api::namespaced(client.clone(), ns.name());
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), ns.name());

    // Fail closed: without admission the PaymentRoute exists, the HTTPRoute does not.
    create(&offers, &mk_offer("early", "up", json!({}))).await;
    let o = wait_offer(&offers, "early", T, |o| {
        has(
            o,
            types::PAYMENT_GATE_READY,
            "False",
            reasons::ADMISSION_PENDING,
        )
    })
    .await;
    assert!(has(
        &o,
        types::ROUTE_PUBLISHED,
        "False",
        reasons::WAITING_FOR_PAYMENT_GATE
    ));
    assert!(prs.get_opt("x402-early").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        routes.get_opt("so-early").await.unwrap().is_none(),
        "route published before admission"
    );

    let _admission = start_admission(&env, ns.name()).await;
    wait_offer(&offers, "early", T, is_ready).await;

    // With admission running: creation -> admitted -> Ready.
    let t0 = Instant::now();
    create(&offers, &mk_offer("timed", "up", json!({}))).await;
    let admitted = obol_testenv::eventually(T, || async {
        prs.get_opt("x402-timed")
            .await
            .ok()
            .flatten()
            .filter(|p| p.admitted_at_current_generation())
            .map(|_| t0.elapsed())
    })
    .await;
    wait_offer(&offers, "timed", T, is_ready).await;
    let ready = t0.elapsed();
    println!("ac4: creation -> admitted {admitted:?}, creation -> Ready {ready:?}");
    assert!(
        ready < Duration::from_secs(5),
        "AC4: propagation took {ready:?}"
    );
}
