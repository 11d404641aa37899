//! End to end, with parts nobody here wrote: `obol dev up` (real control plane, anvil, the
//! official x402 reference facilitator, real Traefik), then: the printed "Try" lines in a new
//! shell (a second offer registers on chain), the demo's ERC-8004 registration and the
//! discovery document through the gateway, least privilege (ServiceAccount tokens, 0600
//! secrets), the facilitator's specific refusal reasons, concurrent payers; once per gateway
//! mode (the demo offer in `proxy`, a second offer of the same upstream made by `obol sell
//! http` in `forwardAuth`): `obol sell test`, payments by the official `@x402/fetch` client
//! (which gets the settlement receipt in proxy mode) and a replay; the official v1 client, our
//! buyer paying the demo offer and an `@x402/express` seller, the seed's plan on a purchase
//! made by `obol buy`, the offer's deletion (its metric series pruned), `obol doctor` healthy
//! and with faults, and `obol dev down`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use obol_devstack::facilitator::NodePeer;
use obol_testenv::tools::{x402_peers, x402_v1_client};
use obol_testenv::{eventually, repo_root};
use serde_json::Value;

mod dev_stack_features;

use dev_stack_features::{Stack, text};

fn obol_kube(stack: &Stack, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(args)
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn buy_status(stack: &Stack, name: &str) -> Value {
    let out = obol_kube(stack, &["buy", "status", name, "-n", "demo", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn condition(purchase: &Value, type_: &str) -> String {
    purchase["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("-")
        .to_owned()
}

/// A buyer of our own, on the stack's control plane and chain, serving namespace `ns`.
struct OwnBuyer {
    child: std::process::Child,
    url: String,
}

impl OwnBuyer {
    async fn start(stack: &Stack, ns: &str, state: &Path, port: u16) -> Self {
        let bin = Path::new(env!("CARGO_BIN_EXE_obol")).with_file_name("x402-buyer");
        assert!(
            bin.is_file(),
            "{} missing: cargo build --bins",
            bin.display()
        );
        let child = std::process::Command::new(bin)
            .args([
                "--source",
                "kube",
                "--namespace",
                ns,
                "--rpc-url",
                stack.var("OBOL_RPC_URL"),
            ])
            .arg(format!("--state={}", state.join("consumed.json").display()))
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg("--log=warn")
            .env("KUBECONFIG", stack.var("KUBECONFIG"))
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let health = format!("{url}/healthz");
        eventually(Duration::from_secs(30), || async {
            reqwest::get(&health)
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        Self { child, url }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for OwnBuyer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn seed_plan(stack: &Stack, kube: &kube::Client, key_file: &Path, gateway: &str) {
    let ns = "seed-plan";
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(kube.clone());
    let ns_obj: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    namespaces
        .create(&Default::default(), &ns_obj)
        .await
        .unwrap();
    let state = stack.run.join("seed-plan-state");
    let port = obol_testenv::tools::free_port();
    let mut buyer = OwnBuyer::start(stack, ns, &state, port).await;
    let out = obol_kube(
        stack,
        &[
            "buy",
            "http",
            "plan",
            &format!("{gateway}/services/demo"),
            "--count",
            "5",
            "--max-price",
            "0.001",
            "--key-file",
            &key_file.display().to_string(),
            "-n",
            ns,
            "--yes",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let seller_before: f64 = stack.balance("seller").parse().unwrap();
    let http = reqwest::Client::new();
    let spend = |url: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("{url}/upstream/plan/step"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for _ in 0..2 {
        let (code, body) = spend(buyer.url.clone()).await;
        assert_eq!(code, 200, "{body}");
    }
    buyer.kill9();
    let buyer = OwnBuyer::start(stack, ns, &state, port).await;
    let (code, body) = spend(buyer.url.clone()).await;
    assert_eq!(
        code, 200,
        "the 3rd settles cleanly after the restart: {body}"
    );
    let metrics = http
        .get(format!("{}/metrics", buyer.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("obol_x402_buyer_auth_already_used_total{"),
        "no authorization was refused as already used:\n{metrics}"
    );
    let seller_after: f64 = stack.balance("seller").parse().unwrap();
    assert!(
        (seller_after - seller_before - 0.003).abs() < 1e-9,
        "three settlements on chain: {seller_before} -> {seller_after}"
    );
    let purchases: kube::Api<obol_api::PurchaseRequest> = kube::Api::namespaced(kube.clone(), ns);
    let counted = eventually(Duration::from_secs(30), || async {
        let p = purchases.get("plan").await.ok()?;
        let s = p.status?;
        (s.spent == Some(3) && s.held == Some(0)).then_some((s.remaining, s.healed))
    })
    .await;
    assert_eq!(counted, (Some(2), Some(0)));
}

/// What the official client got: status, body, the payment header it sent (name, value), and
/// the receipts it received (`PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`, decoded).
struct Paid {
    status: u16,
    body: String,
    header: String,
    payment: String,
    receipt: Value,
}

/// Pays `url` with the official client.
fn pay_with_official_client(stack: &Stack, url: &str) -> Paid {
    let peers = x402_peers();
    let out = std::process::Command::new("node")
        .arg(repo_root().join("tools/x402-peers/pay.cjs"))
        .arg(url)
        .env("NODE_PATH", peers.join("node_modules"))
        .env("BUYER_KEY", stack.var("OBOL_BUYER_KEY"))
        .output()
        .unwrap();
    assert!(out.status.success(), "pay.cjs: {}", text(&out));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    Paid {
        status: u16::try_from(line["status"].as_u64().unwrap()).unwrap(),
        body: line["body"].as_str().unwrap().to_owned(),
        header: line["sent"]["header"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        payment: line["sent"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        receipt: line["receipt"].clone(),
    }
}

/// `obol <args>` against the stack's control plane, in namespace `demo`.
fn obol_demo(stack: &Stack, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(args)
        .args(["-n", "demo"])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .env("OBOL_GATEWAY_URL", stack.var("OBOL_GATEWAY_URL"))
        .output()
        .unwrap()
}

/// One offer, end to end in its gateway mode: `obol sell test`, unpaid 402, paid by the
/// official client (on chain; the receipt reaches the client in proxy mode), a replay refused.
async fn sells_in_its_mode(stack: &Stack, http: &reqwest::Client, offer: &str, proxy: bool) {
    let mode = if proxy { "proxy" } else { "forwardAuth" };
    let out = obol_demo(stack, &["sell", "test", offer]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("gateway mode {mode}")),
        "{}",
        text(&out)
    );
    let offer_url = format!("{}/services/{offer}/e2e", stack.var("OBOL_GATEWAY_URL"));

    // Unpaid: 402 with both the v2 header and the v1 body.
    let unpaid = http.get(&offer_url).send().await.unwrap();
    assert_eq!(unpaid.status(), 402, "{mode}");
    assert!(unpaid.headers().contains_key("payment-required"), "{mode}");
    let body: Value = unpaid.json().await.unwrap();
    assert_eq!(body["x402Version"], 1, "{mode}");
    assert_eq!(body["accepts"][0]["maxAmountRequired"], "1000", "{mode}");

    // Paid by the official @x402/fetch client: 200, and the test USDC moved on chain.
    let seller_before = stack.balance("seller");
    let paid = pay_with_official_client(stack, &offer_url);
    assert_eq!(paid.status, 200, "{mode}: {}", paid.body);
    assert!(
        paid.body.contains("hello from the demo upstream"),
        "{mode}: {}",
        paid.body
    );
    let seller_after = stack.balance("seller");
    assert_ne!(
        seller_before, seller_after,
        "{mode}: the seller was paid on chain"
    );
    assert!(
        !paid.payment.is_empty(),
        "the client attached a payment header"
    );
    if proxy {
        // The client holds the receipt of the settlement that paid the seller.
        for name in ["PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE"] {
            let receipt = &paid.receipt[name];
            assert_eq!(receipt["success"], true, "{name}: {}", paid.receipt);
            let tx = receipt["transaction"].as_str().unwrap_or_default();
            assert!(tx.starts_with("0x") && tx.len() == 66, "{name}: {receipt}");
        }
    }

    // The same payment replayed: refused, nothing moves.
    let replay = http
        .get(&offer_url)
        .header(paid.header.as_str(), paid.payment.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        402,
        "{mode}: a replayed authorization must not pass"
    );
    assert_eq!(stack.balance("seller"), seller_after, "{mode}");
}

/// Pays `url` with the official v1 client (`x402-fetch` 1.2.0); returns (status, body).
fn pay_with_official_v1_client(stack: &Stack, url: &str) -> (u16, String) {
    let client = x402_v1_client();
    let out = std::process::Command::new("node")
        .arg(repo_root().join("tools/x402-v1-client/pay.cjs"))
        .arg(url)
        .env("NODE_PATH", client.join("node_modules"))
        .env("BUYER_KEY", stack.var("OBOL_BUYER_KEY"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "x402-v1-client/pay.cjs: {}",
        text(&out)
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        line["sent"].as_str().is_some_and(|s| !s.is_empty()),
        "the v1 client attached X-PAYMENT: {line}"
    );
    (
        u16::try_from(line["status"].as_u64().unwrap()).unwrap(),
        line["body"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn local_stack_sells_and_buys_with_real_parts() {
    let stack = Stack::up("dev-e2e", &[]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let gateway = stack.var("OBOL_GATEWAY_URL").to_owned();
    let offer_url = format!("{gateway}/services/demo/e2e");

    dev_stack_features::registration_and_discovery(&stack, &http).await;
    dev_stack_features::try_lines_work_in_a_new_shell(&stack, &http).await;
    dev_stack_features::least_privilege(&stack).await;
    dev_stack_features::facilitator_refusals(&stack, &http).await;
    dev_stack_features::concurrent_payers(&stack, &http).await;
    dev_stack_features::llm_offer_pays_per_token(&stack, &http).await;
    dev_stack_features::buys_with_a_keystore(&stack, &http).await;
    dev_stack_features::buyer_spends_upto(&stack, &http).await;

    // The demo offer is in proxy mode, as `obol sell http` writes new offers.
    sells_in_its_mode(&stack, &http, "demo", true).await;

    // Paid by the official v1 client (x402-fetch 1.2.0 on x402 1.2.0), which refuses a 402
    // body its schema does not accept (an `"outputSchema": null` did).
    let before_v1 = stack.balance("seller");
    let (status, body) = pay_with_official_v1_client(&stack, &offer_url);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hello from the demo upstream"), "{body}");
    assert_ne!(
        stack.balance("seller"),
        before_v1,
        "the v1 payment settled on chain"
    );

    // The same upstream sold in forwardAuth mode by `obol sell http`.
    let out = obol_demo(&stack, &["sell", "status", "demo", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let demo: Value = serde_json::from_slice(&out.stdout).unwrap();
    let port = demo["spec"]["upstream"]["port"].to_string();
    let out = obol_demo(
        &stack,
        &[
            "sell",
            "http",
            "demo-fa",
            "--upstream",
            "demo",
            "--port",
            &port,
            "--price",
            "0.001",
            "--wallet",
            stack.var("OBOL_SELLER_ADDRESS"),
            "--gateway-mode",
            "forwardAuth",
            "--wait",
            "--timeout",
            "90s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("gateway mode: forwardAuth"),
        "{}",
        text(&out)
    );
    // Ready means the route is accepted; Traefik loads its file on its own schedule.
    let fa_url = format!("{gateway}/services/demo-fa/");
    eventually(Duration::from_secs(30), || async {
        let r = http.get(&fa_url).send().await.ok()?;
        (r.status() == 402).then_some(())
    })
    .await;
    sells_in_its_mode(&stack, &http, "demo-fa", false).await;

    // Our buyer pays the same offer with a pre-signed authorization.
    let spent_before = buy_status(&stack, "demo")["status"]["spent"]
        .as_u64()
        .unwrap_or(0);
    let buyer = stack.var("OBOL_BUYER_URL").to_owned();
    let paid = http
        .get(format!("{buyer}/upstream/demo/via-buyer"))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    assert!(
        paid.text()
            .await
            .unwrap()
            .contains("\"path\":\"/via-buyer\"")
    );

    // That payment came from the purchase `obol dev up` made with `obol buy http`: its status
    // moves (written by the buyer through the API).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = buy_status(&stack, "demo");
        if s["status"]["spent"].as_u64() == Some(spent_before + 1) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spent was {spent_before}, one payment later: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["spec"]["count"], 50);
    assert_eq!(status["status"]["remaining"], 49 - spent_before, "{status}");
    assert_eq!(status["status"]["held"], 0);
    for c in ["PoolLoaded", "SellerReachable", "Ready"] {
        assert_eq!(condition(&status, c), "True", "{c}: {status}");
    }

    // A price above --max-price is refused before anything is signed or written.
    let key_file = stack.run.join("buyer.key");
    let out = obol_kube(
        &stack,
        &[
            "buy",
            "http",
            "cheap",
            &format!("{gateway}/services/demo"),
            "--count",
            "3",
            "--max-price",
            "0.0005",
            "--key-file",
            &key_file.display().to_string(),
            "-n",
            "demo",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("above --max-price 0.0005"),
        "{}",
        text(&out)
    );
    let kube = stack.client().await;
    let purchases: kube::Api<obol_api::PurchaseRequest> =
        kube::Api::namespaced(kube.clone(), "demo");
    assert!(
        purchases.get_opt("cheap").await.unwrap().is_none(),
        "nothing written"
    );
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(kube.clone(), "demo");
    let pool_cms = cms
        .list(&kube::api::ListParams::default().labels("obol.org/purchaserequest=cheap"))
        .await
        .unwrap();
    assert!(pool_cms.items.is_empty(), "no ConfigMap written");

    // Our buyer pays a seller protected by the official @x402/express middleware: bought with
    // `obol buy http` (its v2 402 probed), loaded through the API.
    let seller = NodePeer::start(
        &x402_peers(),
        &repo_root().join("tools/x402-peers/seller.cjs"),
        &[
            ("FACILITATOR_URL", stack.var("OBOL_FACILITATOR_URL")),
            ("PAY_TO", stack.var("OBOL_SELLER_ADDRESS")),
            ("SELLER_PORT", "0"),
        ],
        &stack.run.join("express-seller.log"),
    )
    .await
    .unwrap();
    let out = obol_kube(
        &stack,
        &[
            "buy",
            "http",
            "express",
            &format!("{}/paid/item", seller.url()),
            "--count",
            "5",
            "--max-price",
            "0.001",
            "--key-file",
            &key_file.display().to_string(),
            "-n",
            "demo",
            "--yes",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let paid = http
        .get(format!("{buyer}/upstream/express/"))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    assert!(
        paid.headers().contains_key("payment-response"),
        "the express seller settled"
    );

    // The seed's manual plan, automated on the demo offer (our verifier, the official
    // facilitator, anvil): buy 5, spend 2, kill -9 the buyer, restart it, spend the 3rd: it
    // settles cleanly, nothing is sent twice.
    seed_plan(&stack, &kube, &key_file, &gateway).await;

    // Before the offer goes: its series are what the monitoring files query.
    dev_stack_features::monitoring_uses_exported_metrics(&stack, &http).await;

    // The offer is deleted: the route goes away.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(["sell", "delete", "demo", "-n", "demo", "--yes"])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let gone = eventually(Duration::from_secs(30), || async {
        let r = http.get(&offer_url).send().await.ok()?;
        (r.status() == 404).then_some(r.status())
    })
    .await;
    assert_eq!(gone, 404);
    dev_stack_features::deleted_offer_series_are_pruned(&stack, &http, "demo").await;

    // Last: obol doctor, healthy, then with a CRD missing (and restored), the verifier and the
    // facilitator stopped.
    dev_stack_features::doctor_healthy_then_faults(&stack).await;
}
