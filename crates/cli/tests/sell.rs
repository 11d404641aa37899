//! `obol sell` against the real local control plane, through the real binary.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use obol_api::{PaymentRoute, ServiceOffer};
use obol_testenv::process::described as text;
use obol_testenv::{TestEnv, TestNamespace, eventually};
use serde_json::json;

const WALLET: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

async fn obol(env: &TestEnv, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(args)
        .env("KUBECONFIG", env.kubeconfig_path())
        .env_remove("X402_WALLET")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

/// The upstream as the local stack declares a process on loopback: an `ExternalName` Service
/// for `localhost` (Endpoints may not name 127.0.0.0/8).
async fn upstream(env: &TestEnv, ns: &TestNamespace, name: &str) {
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": "ExternalName", "externalName": "localhost"}
    }))
    .unwrap();
    Api::<Service>::namespaced(env.client(), ns.name())
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
}

/// A loopback HTTP server answering every request with `status`; returns its port.
async fn http_server(status: u16) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = sock.read(&mut buf).await;
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = sock.write_all(reply.as_bytes()).await;
        }
    });
    port
}

async fn offers_in(env: &TestEnv, ns: &TestNamespace) -> Vec<ServiceOffer> {
    Api::<ServiceOffer>::namespaced(env.client(), ns.name())
        .list(&Default::default())
        .await
        .unwrap()
        .items
}

fn sell_http<'a>(ns: &'a str, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sell",
        "http",
        name,
        "-n",
        ns,
        "--upstream",
        "up",
        "--wallet",
        WALLET,
        "--price",
        "0.001",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn dry_run_prints_the_manifest_and_writes_nothing() {
    let env = TestEnv::get().await;
    let ns = env.namespace("cli-dry").await;
    let out = obol(&env, &sell_http(ns.name(), "demo", &["--dry-run"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let so: ServiceOffer = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(so.spec.payment.pay_to, WALLET);
    assert_eq!(so.metadata.namespace.as_deref(), Some(ns.name()));
    assert!(offers_in(&env, &ns).await.is_empty());
}

#[tokio::test]
async fn every_refused_precondition_says_why_and_creates_nothing() {
    let env = TestEnv::get().await;
    let ns = env.namespace("cli-refuse").await;
    let sick = http_server(503).await.to_string();
    upstream(&env, &ns, "sick").await;
    let n = ns.name();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "missing service",
            sell_http(n, "demo", &[]),
            "upstream Service",
        ),
        (
            "bad wallet",
            vec![
                "sell",
                "http",
                "demo",
                "-n",
                n,
                "--upstream",
                "up",
                "--wallet",
                "0x12",
                "--price",
                "1",
            ],
            "invalid wallet",
        ),
        (
            "no wallet",
            vec![
                "sell",
                "http",
                "demo",
                "-n",
                n,
                "--upstream",
                "up",
                "--price",
                "1",
            ],
            "wallet required",
        ),
        (
            "bad price",
            sell_http(n, "demo", &["--per-hour", "1"]),
            "exactly one kind of price",
        ),
        (
            "zero price",
            vec![
                "sell",
                "http",
                "demo",
                "-n",
                n,
                "--upstream",
                "up",
                "--wallet",
                WALLET,
                "--price",
                "0",
            ],
            "rounds to zero",
        ),
        (
            "unknown network",
            sell_http(n, "demo", &["--network", "mars"]),
            "unknown network",
        ),
        (
            "bad name",
            sell_http(n, "Demo_1", &[]),
            "invalid offer name",
        ),
        (
            "bad path",
            sell_http(n, "demo", &["--path", "no-slash"]),
            "--path",
        ),
        (
            "bad port",
            sell_http(n, "demo", &["--port", "99999"]),
            "invalid port",
        ),
        (
            "unhealthy upstream",
            vec![
                "sell",
                "http",
                "demo",
                "-n",
                n,
                "--upstream",
                "sick",
                "--port",
                &sick,
                "--wallet",
                WALLET,
                "--price",
                "1",
            ],
            "answered HTTP 503",
        ),
    ];
    let mut wrong = vec![];
    for (case, args, want) in cases {
        let out = obol(&env, &args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(3) || !stderr.contains(want) {
            wrong.push(format!("{case}: {}", text(&out)));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(
        offers_in(&env, &ns).await.is_empty(),
        "a refused command wrote an offer"
    );
}

#[tokio::test]
async fn create_update_status_list_and_delete() {
    let env = TestEnv::get().await;
    let ns = env.namespace("cli-life").await;
    let port = http_server(200).await.to_string();
    upstream(&env, &ns, "up").await;
    let n = ns.name();

    let out = obol(&env, &sell_http(n, "demo", &["--port", &port])).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("ServiceOffer {n}/demo created")),
        "{stdout}"
    );
    assert!(stdout.contains("charged 0.001 USDC"), "{stdout}");
    let out = obol(&env, &sell_http(n, "demo", &["--port", &port])).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("updated"),
        "{}",
        text(&out)
    );

    let offers: Api<ServiceOffer> = Api::namespaced(env.client(), n);
    let so = offers.get("demo").await.unwrap();
    assert_eq!(so.spec.upstream.service, "up");
    assert_eq!(so.spec.upstream.port.to_string(), port);

    // Status as a controller would write it; the CLI shows every condition.
    let status = json!({"status": {"phase": "Reconciling", "observedGeneration": so.metadata.generation,
        "endpoint": "/services/demo", "conditions": [
        {"type": "UpstreamHealthy", "status": "True", "reason": "HealthCheckPassed", "message": "GET /health returned 200", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "PaymentGateReady", "status": "False", "reason": "AdmissionPending", "message": "waiting for the verifier", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    offers
        .patch_status("demo", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let out = obol(&env, &["sell", "status", "demo", "-n", n]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("Phase:           Reconciling"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("PaymentGateReady") && l.contains("AdmissionPending")),
        "{stdout}"
    );
    let out = obol(&env, &["sell", "status", "demo", "-n", n, "-o", "json"]).await;
    let json: ServiceOffer = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.status.unwrap().conditions.len(), 2);
    let out = obol(&env, &["sell", "list", "-n", n]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .contains("demo"),
        "{}",
        text(&out)
    );

    // An owned child, as the controller would create; delete waits for it to go too.
    let mut owner = so.controller_owner_ref(&()).unwrap();
    owner.block_owner_deletion = Some(true);
    let pr: PaymentRoute = serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1", "kind": "PaymentRoute",
        "metadata": {"name": "x402-demo", "ownerReferences": [owner]},
        "spec": {"pattern": "/services/demo/*", "price": "1000", "payTo": WALLET, "network": "eip155:84532"}
    }))
    .unwrap();
    let routes: Api<PaymentRoute> = Api::namespaced(env.client(), n);
    routes.create(&PostParams::default(), &pr).await.unwrap();

    let out = obol(&env, &["sell", "delete", "demo", "-n", n]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "no terminal, no --yes: refuse\n{}",
        text(&out)
    );
    assert!(offers.get_opt("demo").await.unwrap().is_some());
    let out = obol(&env, &["sell", "delete", "demo", "-n", n, "--yes"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Removed PaymentRoute"), "{stdout}");
    assert!(offers.get_opt("demo").await.unwrap().is_none());
    assert!(routes.get_opt("x402-demo").await.unwrap().is_none());
    let out = obol(&env, &["sell", "delete", "demo", "-n", n, "--yes"]).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let out = obol(&env, &["sell", "status", "nope", "-n", n]).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
}

#[tokio::test]
async fn wait_follows_conditions_and_times_out_with_the_blocking_reason() {
    let env = TestEnv::get().await;
    let ns = env.namespace("cli-wait").await;
    let port = http_server(200).await.to_string();
    upstream(&env, &ns, "up").await;
    let n = ns.name().to_owned();

    // Nobody reconciles: --wait gives up, naming what blocks.
    let out = obol(
        &env,
        &sell_http(&n, "idle", &["--port", &port, "--wait", "--timeout", "2s"]),
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("blocked by"),
        "{}",
        text(&out)
    );

    // A stand-in for the controller marks the offer Ready while the CLI waits.
    // (Replace with the real serviceoffer-controller once it lands: issue #5.)
    let offers: Api<ServiceOffer> = Api::namespaced(env.client(), &n);
    let standin = tokio::spawn({
        let offers = offers.clone();
        async move {
            let so = eventually(Duration::from_secs(20), || async {
                offers.get_opt("ready").await.unwrap()
            })
            .await;
            let conditions: Vec<_> = ["UpstreamHealthy", "PaymentGateReady", "RoutePublished", "Ready"]
                .iter()
                .map(|t| json!({"type": t, "status": "True", "reason": "Ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}))
                .collect();
            let status = json!({"status": {"phase": "Ready", "observedGeneration": so.metadata.generation,
                "endpoint": "/services/ready", "conditions": conditions}});
            offers
                .patch_status("ready", &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
    });
    let out = obol(
        &env,
        &sell_http(
            &n,
            "ready",
            &["--port", &port, "--wait", "--timeout", "30s"],
        ),
    )
    .await;
    standin.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PaymentGateReady=True"), "{stdout}");
    assert!(stdout.contains("is Ready at /services/ready"), "{stdout}");
}

#[tokio::test]
async fn stop_drains_with_its_own_field_manager_and_cancel_undoes_it() {
    let env = TestEnv::get().await;
    let ns = env.namespace("cli-stop").await;
    let port = http_server(200).await.to_string();
    upstream(&env, &ns, "up").await;
    let n = ns.name();
    let out = obol(&env, &sell_http(n, "demo", &["--port", &port])).await;
    assert!(out.status.success(), "{}", text(&out));
    let offers: Api<ServiceOffer> = Api::namespaced(env.client(), n);

    let before = jiff::Timestamp::now().as_second();
    let out = obol(&env, &["sell", "stop", "demo", "-n", n, "--grace", "1h"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("ServiceOffer {n}/demo is draining"))
            && stdout.contains("keeps gating until"),
        "{stdout}"
    );
    let so = offers.get("demo").await.unwrap();
    let at: jiff::Timestamp = so.spec.drain_at.as_deref().unwrap().parse().unwrap();
    assert!((before..=before + 60).contains(&at.as_second()), "{at}");
    assert_eq!(so.spec.drain_grace_period.as_deref(), Some("1h"));
    assert_eq!(
        so.spec.upstream.service, "up",
        "the rest of the spec is kept"
    );

    // `obol sell http` again (its own field manager) leaves the drain alone.
    let out = obol(&env, &sell_http(n, "demo", &["--port", &port])).await;
    assert!(out.status.success(), "{}", text(&out));
    let so = offers.get("demo").await.unwrap();
    assert!(so.spec.drain_at.is_some(), "the drain survives a re-apply");

    let out = obol(&env, &["sell", "stop", "demo", "-n", n, "--now"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stops now"));
    let so = offers.get("demo").await.unwrap();
    assert_eq!(so.spec.drain_grace_period.as_deref(), Some("0s"));

    let out = obol(&env, &["sell", "stop", "demo", "-n", n, "--grace", "2d"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --grace"));
    let out = obol(
        &env,
        &["sell", "stop", "demo", "-n", n, "--now", "--grace", "1h"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let out = obol(&env, &["sell", "stop", "demo", "-n", n, "--cancel"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let so = offers.get("demo").await.unwrap();
    assert_eq!((so.spec.drain_at, so.spec.drain_grace_period), (None, None));
    assert_eq!(so.spec.payment.pay_to, WALLET);

    let out = obol(&env, &["sell", "stop", "nope", "-n", n]).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
}
