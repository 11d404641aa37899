//! The `serviceoffer-controller` binary: flags and environment, the Lease, the admin endpoints,
//! a clean exit on SIGTERM that releases the Lease.
#![allow(clippy::unwrap_used)] // tests

mod common;

use std::time::Duration;

use common::process::ControllerProcess;
use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use obol_api::ServiceOffer;
use obol_testenv::net::{free_port, http_get};
use obol_testenv::{TestEnv, eventually};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

fn holder(lease: Option<Lease>) -> Option<String> {
    lease?.spec?.holder_identity
}

#[tokio::test]
async fn binary_leads_serves_probes_and_releases_the_lease_on_sigterm() {
    let env = TestEnv::get().await;
    let ns = env.namespace("bin").await;
    let _janitor = Janitor::new(&env, ns.name());
    let client = env.client();
    let upstream = Upstream::start().await;
    upstream.expose(&client, ns.name(), "up").await;
    let _stand_ins = stand_ins(&client, ns.name());
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    let mut proc = ControllerProcess::spawn(
        env.kubeconfig_path(),
        ns.name(),
        "bin-a",
        &["--listen", &admin, "--log", "info,kube=warn"],
    );

    eventually(T, || async {
        http_get(port, "/healthz").await.filter(|(c, _)| *c == 200)
    })
    .await;
    eventually(T, || async {
        http_get(port, "/readyz").await.filter(|(c, _)| *c == 200)
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns.name());
    let lease = holder(leases.get_opt("serviceoffer-controller").await.unwrap());
    assert_eq!(lease.as_deref(), Some("bin-a"));

    let offers: Api<ServiceOffer> = Api::namespaced(client.clone(), ns.name());
    create(&offers, &mk_offer("b", "up", json!({}))).await;
    wait_offer(&offers, "b", T, is_ready).await;
    let (code, metrics) = http_get(port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("obol_controller_leader 1"), "{metrics}");
    assert!(
        metrics.contains("obol_controller_reconciles_total{result=\"ok\"}"),
        "{metrics}"
    );

    // SIGTERM: graceful stop, exit 0, the Lease released for the next replica.
    obol_testenv::process::sigterm(proc.pid());
    let status = obol_testenv::process::exit_within(&mut proc.child, T)
        .await
        .expect("no exit after SIGTERM");
    assert!(status.success(), "{status:?}; log {}", proc.log.display());
    let after = holder(leases.get_opt("serviceoffer-controller").await.unwrap());
    assert_ne!(after.as_deref(), Some("bin-a"), "lease not released");
    // --log is honoured: info lines with `info`, none with the fixture's default `warn` (the
    // standby test below).
    let log = std::fs::read_to_string(&proc.log).unwrap();
    assert!(log.contains("Admin endpoints listening"), "{log}");
}

#[tokio::test]
async fn two_replicas_one_leads_and_the_standby_takes_over_after_a_kill() {
    let env = TestEnv::get().await;
    let ns = env.namespace("bin2").await;
    let _janitor = Janitor::new(&env, ns.name());
    let client = env.client();
    let upstream = Upstream::start().await;
    upstream.expose(&client, ns.name(), "up").await;
    let _stand_ins = stand_ins(&client, ns.name());
    let lease_flags = ["--lease-duration", "4s", "--lease-grace", "1s"];
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns.name());
    let a = ControllerProcess::spawn(env.kubeconfig_path(), ns.name(), "replica-a", &lease_flags);
    eventually(T, || async {
        (holder(leases.get_opt("serviceoffer-controller").await.ok()?).as_deref()
            == Some("replica-a"))
        .then_some(())
    })
    .await;
    let port_b = free_port();
    let admin_b = format!("127.0.0.1:{port_b}");
    let mut flags_b = lease_flags.to_vec();
    flags_b.extend(["--listen", admin_b.as_str()]);
    let b = ControllerProcess::spawn(env.kubeconfig_path(), ns.name(), "replica-b", &flags_b);
    let offers: Api<ServiceOffer> = Api::namespaced(client.clone(), ns.name());
    create(&offers, &mk_offer("one", "up", json!({}))).await;
    wait_offer(&offers, "one", T, is_ready).await;
    // The standby serves /healthz but is not ready: it reconciles nothing.
    let (code, _) = eventually(T, || async { http_get(port_b, "/readyz").await }).await;
    assert_eq!(code, 503);

    // SIGKILL the leader: nothing releases the lease; B takes over once it expires.
    a.kill();
    let died = std::time::Instant::now();
    eventually(T, || async {
        (holder(leases.get_opt("serviceoffer-controller").await.ok()?).as_deref()
            == Some("replica-b"))
        .then_some(())
    })
    .await;
    let takeover = died.elapsed();
    println!("lease: the standby took over {takeover:?} after the leader was killed (lease 4 s)");
    assert!(takeover < Duration::from_secs(4 + 5), "{takeover:?}");
    create(&offers, &mk_offer("two", "up", json!({}))).await;
    wait_offer(&offers, "two", T, is_ready).await;
    let log = std::fs::read_to_string(&b.log).unwrap();
    assert!(!log.contains(" INFO "), "--log warn, yet:\n{log}");
}
