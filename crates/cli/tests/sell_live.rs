//! `obol sell` with the real controller and verifier running (scoped to the test's namespace,
//! so they never touch other tests' objects) and the test Gateway marking routes Accepted:
//! create with `--wait` until Ready, the live status, and delete through the controller's
//! finalizer.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Output;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::PostParams;
use obol_testenv::TestEnv;
use obol_testenv::net::free_port;
use obol_testenv::process::{described as text, workspace_bin};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WALLET: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

async fn obol(env: &TestEnv, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(args)
        .env("KUBECONFIG", env.kubeconfig_path())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

async fn healthy_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    port
}

#[tokio::test]
async fn wait_status_and_delete_with_the_real_controller_and_verifier() {
    let env = TestEnv::get().await;
    let ns = env.namespace("cli-live").await;
    let n = ns.name().to_owned();
    let kubeconfig = env.kubeconfig_path().display().to_string();
    let logs = obol_testenv::scratch_dir("cli-live");
    let log = |name: &str| std::fs::File::create(logs.join(name)).unwrap();

    let (verifier_port, gateway_port) = (free_port(), free_port());
    let _verifier = tokio::process::Command::new(workspace_bin("x402-verifier"))
        .args([
            "--route-source",
            "kube",
            "--listen",
            &format!("127.0.0.1:{verifier_port}"),
            "--gateway-listen",
            &format!("127.0.0.1:{gateway_port}"),
            "--namespace",
            &n,
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("OBOL_VERIFIER_FACILITATOR_URL", "http://127.0.0.1:9")
        .stdout(log("verifier.log"))
        .stderr(log("verifier.err"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let gateway = format!("gw-{n}");
    let _controller = tokio::process::Command::new(workspace_bin("serviceoffer-controller"))
        .env("KUBECONFIG", &kubeconfig)
        .env("OBOL_CONTROLLER_NAMESPACE", &n)
        .env(
            "OBOL_CONTROLLER_VERIFIER_URL",
            format!("http://127.0.0.1:{verifier_port}"),
        )
        // New offers are in gateway mode proxy: their routes go to the verifier's Service.
        .env("OBOL_CONTROLLER_VERIFIER_SERVICE", "verifier")
        .env("OBOL_CONTROLLER_VERIFIER_NAMESPACE", &n)
        .env("OBOL_CONTROLLER_GATEWAY_NAME", &gateway)
        .env("OBOL_CONTROLLER_GATEWAY_NAMESPACE", &n)
        .env("OBOL_CONTROLLER_LEADER_ELECT", "false")
        .env(
            "OBOL_CONTROLLER_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("OBOL_CONTROLLER_PROBE_INTERVAL", "2s")
        .stdout(log("controller.log"))
        .stderr(log("controller.err"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let gateway = obol_testenv::gateway::accept_http_routes(env.client(), &n, &gateway, &n);
    let port = healthy_upstream().await.to_string();
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "up"}, "spec": {"type": "ExternalName", "externalName": "localhost"}}))
    .unwrap();
    Api::<Service>::namespaced(env.client(), &n)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let verifier_svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "verifier"}, "spec": {"type": "ExternalName", "externalName": "localhost",
        "ports": [{"name": "gateway", "port": 8081, "targetPort": gateway_port}]}}))
    .unwrap();
    Api::<Service>::namespaced(env.client(), &n)
        .create(&PostParams::default(), &verifier_svc)
        .await
        .unwrap();

    let args = [
        "sell",
        "http",
        "live",
        "-n",
        &n,
        "--upstream",
        "up",
        "--port",
        &port,
        "--wallet",
        WALLET,
        "--price",
        "0.001",
        "--wait",
        "--timeout",
        "90s",
    ];
    let out = obol(&env, &args).await;
    assert!(
        out.status.success(),
        "{}\n(logs in {})",
        text(&out),
        logs.display()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "UpstreamHealthy=True",
        "PaymentGateReady=True",
        "RoutePublished=True",
        "is Ready at /services/live",
    ] {
        assert!(stdout.contains(want), "no {want:?} in:\n{stdout}");
    }

    let out = obol(&env, &["sell", "status", "live", "-n", &n]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("Phase:           Ready"), "{stdout}");
    for (cond, reason) in [
        ("PaymentGateReady", "PaymentRouteAdmitted"),
        ("RoutePublished", "HTTPRouteAccepted"),
        ("Registered", "Disabled"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(cond) && l.contains("True") && l.contains(reason)),
            "{cond}:\n{stdout}"
        );
    }

    let out = obol(
        &env,
        &[
            "sell",
            "delete",
            "live",
            "-n",
            &n,
            "--yes",
            "--timeout",
            "60s",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for kind in ["ServiceOffer", "PaymentRoute", "HTTPRoute"] {
        assert!(
            stdout.contains(&format!("Removed {kind}")),
            "{kind}:\n{stdout}"
        );
    }
    // Gateway mode proxy (what `obol sell http` writes for a new offer) has no Middleware.
    assert!(!stdout.contains("Removed Middleware"), "{stdout}");
    drop(gateway);
    let _ = std::fs::remove_dir_all(&logs);
}
