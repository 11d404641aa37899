//! Scale: offers to Ready with the controller binary; prints the time, the controller's memory
//! and its CPU use while idle after convergence. The suite runs 100 offers; the figures of the
//! issue (1 000 offers, 60 s idle, release binary) come from
//! `OBOL_SCALE_OFFERS=1000 OBOL_SCALE_IDLE_SECS=60 OBOL_CONTROLLER_BIN=target/release/serviceoffer-controller
//! cargo test -p obol-controller --test scale -- --nocapture` (nextest stops a test at 300 s).
#![allow(clippy::unwrap_used)] // tests

mod common;

use std::time::{Duration, Instant};

use common::process::ControllerProcess;
use common::*;
use futures::StreamExt;
use kube::Api;
use kube::api::ListParams;
use obol_api::ServiceOffer;
use obol_testenv::TestEnv;
use serde_json::json;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn scale_offers_to_ready() {
    let offers_wanted = usize::try_from(env_number("OBOL_SCALE_OFFERS", 100)).unwrap();
    let idle = Duration::from_secs(env_number("OBOL_SCALE_IDLE_SECS", 5));
    let env = TestEnv::get().await;
    let ns = env.namespace("scale").await;
    let _janitor = Janitor::new(&env, ns.name());
    let client = env.client();
    let upstream = Upstream::start().await;
    upstream.expose(&client, ns.name(), "up").await;
    let _stand_ins = stand_ins(&client, ns.name());
    let offers: Api<ServiceOffer> = Api::namespaced(client.clone(), ns.name());
    let controller = ControllerProcess::spawn(env.kubeconfig_path(), ns.name(), "scale", &[]);
    let rss_start = {
        tokio::time::sleep(Duration::from_secs(1)).await;
        controller.rss_kib()
    };

    let started = Instant::now();
    futures::stream::iter(0..offers_wanted)
        .for_each_concurrent(50, |i| {
            let offers = offers.clone();
            async move {
                create(&offers, &mk_offer(&format!("s{i}"), "up", json!({}))).await;
            }
        })
        .await;
    let created = started.elapsed();
    let peak = std::cell::Cell::new(0);
    obol_testenv::eventually(Duration::from_secs(600), || async {
        peak.set(peak.get().max(controller.rss_kib()));
        tokio::time::sleep(Duration::from_millis(800)).await;
        let all = offers.list(&ListParams::default()).await.ok()?;
        let ready = all.items.iter().filter(|o| is_ready(o)).count();
        (all.items.len() == offers_wanted && ready == offers_wanted).then_some(())
    })
    .await;
    let converged = started.elapsed();
    let rss_ready = controller.rss_kib();

    // Idle: nothing changes; only the periodic re-probe (every 30 s by default) runs.
    let cpu0 = controller.cpu_time();
    tokio::time::sleep(idle).await;
    let idle_cpu = controller.cpu_time() - cpu0;
    let rss_idle = controller.rss_kib();
    println!(
        "scale: {offers_wanted} offers created in {created:?}, all Ready after {converged:?}; \
         controller RSS start {} MiB, peak {} MiB, after convergence {} MiB, after idle {} MiB; \
         idle CPU {:?} over {idle:?} ({:.2}% of one core)",
        rss_start / 1024,
        peak.get().max(rss_ready) / 1024,
        rss_ready / 1024,
        rss_idle / 1024,
        idle_cpu,
        idle_cpu.as_secs_f64() * 100.0 / idle.as_secs_f64()
    );
    assert!(rss_idle > 0);
    drop(upstream);
}
