//! `obol sell` with the real controller and verifier running (scoped to the test's namespace,
//! so they never touch other tests' objects) and the test Gateway marking routes Accepted:
//! create with `--wait` until Ready, the live status, and delete through the controller's
//! finalizer.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::process::Output;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::PostParams;
use obol_testenv::net::free_port;
use obol_testenv::process::{described as text, workspace_bin};
use obol_testenv::{TestEnv, TestNamespace};
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

/// The real controller and verifier scoped to a namespace of their own, the test Gateway
/// marking routes Accepted, a healthy upstream behind Service `up`, and the verifier's Service
/// `verifier` (gateway port 8081) for offers in gateway mode proxy. Its processes stop when it
/// is dropped.
struct Live {
    env: TestEnv,
    _ns: TestNamespace,
    /// The namespace's name.
    n: String,
    /// The verifier's gateway listener (what the Gateway would forward to).
    gateway_port: u16,
    /// The upstream's port.
    upstream_port: String,
    logs: PathBuf,
    _verifier: tokio::process::Child,
    _controller: tokio::process::Child,
    _gateway: obol_testenv::gateway::StandIn,
}

impl Live {
    async fn start(prefix: &str) -> Self {
        let env = TestEnv::get().await;
        let ns = env.namespace(prefix).await;
        let n = ns.name().to_owned();
        let kubeconfig = env.kubeconfig_path().display().to_string();
        let logs = obol_testenv::scratch_dir(prefix);
        let log = |name: &str| std::fs::File::create(logs.join(name)).unwrap();

        let (verifier_port, gateway_port) = (free_port(), free_port());
        let verifier = tokio::process::Command::new(workspace_bin("x402-verifier"))
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
        let controller = tokio::process::Command::new(workspace_bin("serviceoffer-controller"))
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
        let upstream_port = healthy_upstream().await.to_string();
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

        Self {
            env,
            _ns: ns,
            n,
            gateway_port,
            upstream_port,
            logs,
            _verifier: verifier,
            _controller: controller,
            _gateway: gateway,
        }
    }

    /// `obol ARGS` run in directory `dir`.
    async fn obol_in(&self, dir: &std::path::Path, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_obol"))
            .args(args)
            .current_dir(dir)
            .env("KUBECONFIG", self.env.kubeconfig_path())
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

#[tokio::test]
async fn wait_status_and_delete_with_the_real_controller_and_verifier() {
    let live = Live::start("cli-live").await;
    let (env, n, port, logs) = (&live.env, &live.n, &live.upstream_port, &live.logs);
    let args = [
        "sell",
        "http",
        "live",
        "-n",
        n,
        "--upstream",
        "up",
        "--port",
        port,
        "--wallet",
        WALLET,
        "--price",
        "0.001",
        "--wait",
        "--timeout",
        "90s",
    ];
    let out = obol(env, &args).await;
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

    let out = obol(env, &["sell", "status", "live", "-n", n]).await;
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
        env,
        &[
            "sell",
            "delete",
            "live",
            "-n",
            n,
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
    drop(live);
}

/// A route's JSON Schemas given as `--route …,input-schema=@FILE,output-schema=@FILE` (files
/// relative to the working directory, as a shell user types them) reach the offer, and the
/// verifier's 402 for that route carries `extensions.bazaar` built from them, in the
/// `PAYMENT-REQUIRED` document and in the body; the table's free route answers without payment
/// and an unlisted path 404.
#[tokio::test]
async fn route_schemas_from_files_reach_the_402_as_bazaar() {
    let live = Live::start("cli-schemas").await;
    let dir = obol_testenv::scratch_dir("cli-schemas-files");
    let input = json!({"type": "object", "properties": {"model": {"type": "string"}},
                       "required": ["model"], "examples": [{"model": "m1"}]});
    let output = json!({"type": "object", "description": "The completion"});
    std::fs::write(dir.join("in.json"), input.to_string()).unwrap();
    std::fs::write(dir.join("out.json"), output.to_string()).unwrap();
    let sell = |route: &'static str| {
        let (n, port) = (live.n.clone(), live.upstream_port.clone());
        let dir = dir.clone();
        let live = &live;
        async move {
            let args = [
                "sell",
                "http",
                "schemas",
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
                "--route",
                route,
                "--route",
                "path=/health,gate=free",
                "--wait",
                "--timeout",
                "90s",
            ];
            live.obol_in(&dir, &args).await
        }
    };

    // A file that is not there, or not JSON, or JSON that is no schema: refused, nothing written.
    std::fs::write(dir.join("list.json"), "[1, 2]").unwrap();
    for (route, words) in [
        (
            "path=/v1/chat,input-schema=@missing.json",
            "cannot read the --route schema file \"missing.json\"",
        ),
        (
            "path=/v1/chat,input-schema=@list.json",
            "invalid --route input-schema/output-schema of \"/v1/chat\": use a JSON Schema object",
        ),
    ] {
        let out = sell(route).await;
        assert!(!out.status.success(), "{route}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(words),
            "{route}: {}",
            text(&out)
        );
    }
    let offers: Api<obol_api::ServiceOffer> = Api::namespaced(live.env.client(), &live.n);
    assert!(offers.get_opt("schemas").await.unwrap().is_none());

    let out =
        sell("path=/v1/chat,methods=POST,input-schema=@in.json,output-schema=@out.json").await;
    assert!(
        out.status.success(),
        "{}\n(logs in {})",
        text(&out),
        live.logs.display()
    );
    let offer = offers.get("schemas").await.unwrap();
    assert_eq!(offer.spec.routes[0].input_schema.as_ref(), Some(&input));
    assert_eq!(offer.spec.routes[0].output_schema.as_ref(), Some(&output));

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}/services/schemas", live.gateway_port);
    let answer = http
        .post(format!("{base}/v1/chat"))
        .header("accept", "application/json")
        .json(&json!({"model": "m1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 402);
    let header = answer
        .headers()
        .get(obol_x402::codec::headers::PAYMENT_REQUIRED)
        .expect("PAYMENT-REQUIRED")
        .to_str()
        .unwrap()
        .to_owned();
    let document: serde_json::Value = obol_x402::codec::decode_header(&header).unwrap();
    let body: serde_json::Value = answer.json().await.unwrap();
    for (which, doc) in [("PAYMENT-REQUIRED", &document), ("body", &body)] {
        let bazaar = &doc["extensions"]["bazaar"];
        assert_eq!(
            bazaar["info"]["input"],
            json!({"type": "http", "method": "POST", "bodyType": "json", "body": {"model": "m1"}}),
            "{which}: {doc}"
        );
        assert_eq!(
            bazaar["info"]["output"]["description"], "The completion",
            "{which}: {doc}"
        );
        assert_eq!(
            bazaar["schema"]["properties"]["input"]["properties"]["body"], input,
            "{which}: {doc}"
        );
    }
    let free = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(free.status(), 200, "the free route needs no payment");
    let unlisted = http.get(format!("{base}/other")).send().await.unwrap();
    assert_eq!(unlisted.status(), 404, "the table is exhaustive");
    let _ = std::fs::remove_dir_all(&dir);
    drop(live);
}

/// `obol sell stop drain -n NAMESPACE EXTRA…`.
async fn stop(live: &Live, extra: &[&str]) -> Output {
    let mut args = vec!["sell", "stop", "drain", "-n", &live.n];
    args.extend_from_slice(extra);
    live.obol_in(&std::env::temp_dir(), &args).await
}

/// `obol sell stop --wait` with the real controller: out of time while the route still gates
/// (exit 4, saying it is draining); the drain removed while waiting (exit 1); a short grace
/// waited out until the controller reports `Drained` (exit 0, phase Drained); `--cancel
/// --wait` until Ready again.
#[tokio::test]
async fn stop_wait_follows_the_drain_to_its_end() {
    let live = Live::start("cli-stop").await;
    let n = live.n.as_str();
    let dir = std::env::temp_dir();
    let out = live
        .obol_in(
            &dir,
            &[
                "sell",
                "http",
                "drain",
                "-n",
                n,
                "--upstream",
                "up",
                "--port",
                &live.upstream_port,
                "--wallet",
                WALLET,
                "--price",
                "0.001",
                "--wait",
                "--timeout",
                "90s",
            ],
        )
        .await;
    assert!(
        out.status.success(),
        "{}\n(logs in {})",
        text(&out),
        live.logs.display()
    );
    let out = stop(&live, &["--grace", "1h", "--wait", "--timeout", "3s"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not Drained after 3s; Drained=False (Draining)"),
        "{}",
        text(&out)
    );

    // Waiting, then the drain is cancelled: the waiter says so.
    let waiter = stop(&live, &["--grace", "1h", "--wait", "--timeout", "60s"]);
    let cancel = async {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        stop(&live, &["--cancel"]).await
    };
    let (waited, cancelled) = tokio::join!(waiter, cancel);
    assert!(cancelled.status.success(), "{}", text(&cancelled));
    assert_eq!(waited.status.code(), Some(1), "{}", text(&waited));
    assert!(
        String::from_utf8_lossy(&waited.stderr).contains("the drain was removed while waiting"),
        "{}",
        text(&waited)
    );

    let started = std::time::Instant::now();
    let out = stop(&live, &["--grace", "3s", "--wait"]).await;
    assert!(
        out.status.success(),
        "{}\n(logs in {})",
        text(&out),
        live.logs.display()
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "the grace was waited out"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("is Drained: its route is withdrawn"),
        "{stdout}"
    );
    let status = live
        .obol_in(&dir, &["sell", "status", "drain", "-n", n])
        .await;
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("Phase:           Drained"), "{status}");

    // Sold again: --cancel --wait follows it until Ready.
    let out = stop(&live, &["--cancel", "--wait", "--timeout", "60s"]).await;
    assert!(
        out.status.success(),
        "{}\n(logs in {})",
        text(&out),
        live.logs.display()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ServiceOffer drain is Ready at"),
        "{stdout}"
    );
    drop(live);
}
