//! The features the local stack shows beyond selling and buying (issue 17): registration and
//! discovery, commands that work in a new shell, least privilege, the facilitator's refusal
//! reasons, and concurrent payers. Each function checks one of them on a running stack.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use obol_devstack::chain::Rpc;
use obol_devstack::demo::{authorization, demo_requirement};
use obol_devstack::stack::State;
use obol_testenv::{eventually, repo_root};
use obol_x402::{PrivateKey, U256};
use serde_json::{Value, json};

pub use obol_testenv::process::described as text;

/// `obol` with the stack's run directory.
pub fn obol(run: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(args)
        .current_dir(repo_root())
        .env("OBOL_DEV_RUN_DIR", run)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The running stack, as the checks below read it. Stops the stack when dropped, whatever
/// happened (`obol dev down` also stops its control plane); the run directory is kept when
/// that fails.
pub struct Stack {
    pub run: PathBuf,
    pub env: BTreeMap<String, String>,
    /// What `obol dev up` printed on stdout (the summary with the "Try" lines).
    pub summary: String,
}

impl Stack {
    /// `obol dev up EXTRA…` in a run directory of its own (`obol-NAME-<pid>` under the temp
    /// directory), then its `obol dev env`. The guard exists before `up` is judged, so a failed
    /// start is still stopped.
    pub fn up(name: &str, extra: &[&str]) -> Self {
        let run = std::env::temp_dir().join(format!("obol-{name}-{}", std::process::id()));
        let mut args = vec!["dev", "up"];
        args.extend_from_slice(extra);
        let out = obol(&run, &args);
        let mut stack = Self {
            run,
            env: BTreeMap::new(),
            summary: String::from_utf8_lossy(&out.stdout).into_owned(),
        };
        assert!(out.status.success(), "obol dev up failed\n{}", text(&out));
        let out = obol(&stack.run, &["dev", "env"]);
        assert!(out.status.success(), "{}", text(&out));
        stack.env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.strip_prefix("export ")?.split_once('=')?;
                Some((k.to_owned(), v.trim_matches('\'').to_owned()))
            })
            .collect();
        stack
    }

    /// A variable of `obol dev env`.
    pub fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("obol dev env has no {name}"))
    }

    /// A client of the stack's control plane.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.var("KUBECONFIG")).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// `who`'s USDC balance as `obol dev balance` prints it.
    pub fn balance(&self, who: &str) -> String {
        let out = obol(&self.run, &["dev", "balance"]);
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let line = stdout
            .lines()
            .find(|l| l.starts_with(who))
            .unwrap()
            .to_owned();
        line.split_whitespace().nth(2).unwrap().to_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let out = obol(&self.run, &["dev", "down"]);
        if out.status.success() {
            let _ = std::fs::remove_dir_all(&self.run);
        } else {
            eprintln!(
                "obol dev down failed (logs kept in {})\n{}",
                self.run.display(),
                text(&out)
            );
        }
    }
}

/// The stack's recorded state (`<run>/stack.json`).
fn state(stack: &Stack) -> State {
    let raw = std::fs::read_to_string(stack.run.join("stack.json")).unwrap();
    serde_json::from_str(&raw).unwrap()
}

fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.trim().strip_prefix(field))
        .map(|v| v.trim_start_matches(':').trim())
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
}

/// The demo offer is an ERC-8004 agent on the local chain (id 0: the registry is fresh), and
/// the gateway serves its discovery document, whose endpoint works as written.
pub async fn registration_and_discovery(stack: &Stack, http: &reqwest::Client) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(["sell", "status", "demo", "-n", "demo"])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(status_field(&status, "Agent ID"), "0", "{status}");
    let tx = status_field(&status, "Registration tx");
    assert!(
        tx.starts_with("0x") && tx.len() == 66,
        "registration tx {tx:?}\n{status}"
    );
    assert!(
        stack
            .summary
            .contains(&format!("agent 0 (transaction {tx})")),
        "{}",
        stack.summary
    );

    let gateway = stack.var("OBOL_GATEWAY_URL");
    let doc: Value = http
        .get(format!("{gateway}/.well-known/agent-registration.json"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["registrations"][0],
        json!({"agentId": 0, "agentRegistry": "eip155:84532:0x8004A818BFB912233c491871b3d84c89A494BD9e"}),
        "{doc}"
    );
    let endpoint = doc["services"][0]["endpoint"].as_str().unwrap();
    assert_eq!(endpoint, format!("{gateway}/services/demo"), "{doc}");
    let answer = http.get(format!("{endpoint}/")).send().await.unwrap();
    assert_eq!(
        answer.status(),
        402,
        "the announced endpoint is the paid one"
    );
    storefront_catalogue(stack, http).await;
}

/// The gateway serves the storefront's catalogue free: `/.well-known/x402.json` lists the demo
/// offer's paid resource under the gateway's own URL with its price, payee and chain, and
/// `/openapi.json` has the same resource as a paid operation.
async fn storefront_catalogue(stack: &Stack, http: &reqwest::Client) {
    use obol_api::routes::{OPENAPI, WELL_KNOWN_X402};
    let gateway = stack.var("OBOL_GATEWAY_URL");
    let get = |path: &str| {
        let url = format!("{gateway}{path}");
        async move {
            let r = http.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url} is free");
            r.json::<Value>().await.unwrap()
        }
    };
    let manifest = get(WELL_KNOWN_X402).await;
    let key = obol_devstack::discovery::catalogue_key("demo", "demo");
    let item = obol_devstack::discovery::paid_item(&manifest, &key)
        .unwrap_or_else(|| panic!("no paid {key} item in {manifest}"));
    let resource = item["resource"].as_str().unwrap();
    assert!(
        resource.starts_with(&format!("{gateway}/services/demo")),
        "{item}"
    );
    let accepts = &item["accepts"][0];
    assert_eq!(accepts["scheme"], "exact", "{item}");
    assert_eq!(accepts["network"], "eip155:84532", "{item}");
    assert_eq!(
        accepts["amount"],
        obol_devstack::stack::DEMO_PRICE_ATOMIC.to_string(),
        "{item}"
    );
    assert!(
        accepts["payTo"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(stack.var("OBOL_SELLER_ADDRESS")),
        "{item}"
    );
    let template = item["routeTemplate"].as_str().unwrap();
    let openapi = get(OPENAPI).await;
    assert_eq!(openapi["openapi"], "3.1.0", "{openapi}");
    let path: Vec<String> = template
        .split('/')
        .map(|s| match s.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => s.to_owned(),
        })
        .collect();
    let ops = &openapi["paths"][path.join("/")];
    let paid = ops
        .as_object()
        .unwrap_or_else(|| panic!("no {template} in {openapi}"))
        .values()
        .all(|op| op["x-x402"]["gate"] == "paid" && op["x-x402"]["accepts"][0] == *accepts);
    assert!(paid, "{ops}");
}

/// The "Try" lines of `obol dev up`, pasted into a new login-less shell in another directory
/// with the system's PATH only: each one works (a second offer created with `--register`
/// registers within seconds).
pub async fn try_lines_work_in_a_new_shell(stack: &Stack, http: &reqwest::Client) {
    let lines: Vec<&str> = stack
        .summary
        .lines()
        .skip_while(|l| !l.starts_with("Try"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert!(lines.len() >= 6, "{}", stack.summary);
    assert!(lines[0].starts_with("eval "), "{}", stack.summary);
    let script = format!(
        "set -eu\n{}\n",
        lines
            .iter()
            .map(|l| format!("echo '>>> {}'\n{l}", l.replace('\'', "")))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let out = std::process::Command::new("/bin/bash")
        .args(["-c", &script])
        .env_clear()
        .env("HOME", home)
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "a Try line failed\n{all}");
    for expected in [
        "HTTP/1.1 402 Payment Required",
        "HTTP/1.1 200 OK",
        "hello from the demo upstream",
        "\"agentId\": 0",
        "\"offer\":\"demo/x402-demo\"",
        "\"openapi\":\"3.1.0\"",
        "ServiceOffer mine is Ready",
        "seller 0x",
        "serviceoffer.obol.org/mine",
        // The llm offer paid per token: 5 + 40 tokens = ⌈24.75⌉ atomic units.
        "\"amount\":\"25\"",
        "\"outputTokens\":40",
    ] {
        assert!(all.contains(expected), "no {expected:?} in\n{all}");
    }

    // The user's offer registers on its own, within seconds.
    let kubeconfig = stack.var("KUBECONFIG").to_owned();
    let status = eventually(Duration::from_secs(20), || {
        let kubeconfig = kubeconfig.clone();
        async move {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
                .args(["sell", "status", "mine", "-n", "demo"])
                .env("KUBECONFIG", kubeconfig)
                .output()
                .ok()?;
            let status = String::from_utf8_lossy(&out.stdout).into_owned();
            (status_field(&status, "Agent ID") == "1").then_some(status)
        }
    })
    .await;
    assert!(status.contains("OnChainConfirmed"), "{status}");
    let gateway = stack.var("OBOL_GATEWAY_URL");
    let doc: Value = http
        .get(format!("{gateway}/.well-known/agent-registration.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<u64> = doc["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["agentId"].as_u64())
        .collect();
    assert_eq!(ids, [0, 1], "{doc}");
}

/// Components act under their own ServiceAccounts with deploy/'s RBAC, and every secret file
/// is owner-only.
pub async fn least_privilege(stack: &Stack) {
    let run = &stack.run;
    // The buyer's authorizations live in the cluster now (a PurchaseRequest's ConfigMaps); the
    // key that signed them stays in a file here.
    let mut secrets = vec![run.join("registrar.key"), run.join("buyer.key")];
    for c in [
        "verifier",
        "controller",
        "registrar",
        "buyer",
        "gateway-adapter",
    ] {
        secrets.push(run.join(format!("kube/{c}.kubeconfig")));
    }
    for path in &secrets {
        assert_eq!(
            obol_devstack::files::mode(path).unwrap(),
            0o600,
            "{}",
            path.display()
        );
    }
    // The verifier's identity reads PaymentRoutes and nothing else of ours.
    let client = client_for(&run.join("kube/verifier.kubeconfig")).await;
    let routes: kube::Api<obol_api::PaymentRoute> = kube::Api::all(client.clone());
    routes.list(&Default::default()).await.unwrap();
    let offers: kube::Api<obol_api::ServiceOffer> = kube::Api::all(client);
    match offers.list(&Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("the verifier may list ServiceOffers: {other:?}"),
    }
    for (component, pattern) in [
        ("verifier", "system:serviceaccount:x402:x402-verifier"),
        (
            "controller",
            "system:serviceaccount:obol-system:serviceoffer-controller",
        ),
        (
            "registrar",
            "system:serviceaccount:obol-system:erc8004-registrar",
        ),
        ("buyer", "system:serviceaccount:llm:x402-buyer"),
    ] {
        let config =
            std::fs::read_to_string(run.join(format!("kube/{component}.kubeconfig"))).unwrap();
        assert!(config.contains(pattern), "{component}: {config}");
    }
}

async fn client_for(kubeconfig: &Path) -> kube::Client {
    obol_testenv::install_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn facilitator_verify(
    http: &reqwest::Client,
    facilitator: &str,
    req: &obol_x402::Requirement,
    payload: Value,
) -> Value {
    let body = json!({"x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": req.to_v2(), "payload": payload},
        "paymentRequirements": req.to_v2()});
    http.post(format!("{facilitator}/verify"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// With Multicall3 on the local chain, the official facilitator says why it refuses a payment
/// (as on Base Sepolia) instead of "transaction simulation failed" for everything.
pub async fn facilitator_refusals(stack: &Stack, http: &reqwest::Client) {
    let state = state(stack);
    let req = demo_requirement(&state).unwrap();
    let facilitator = stack.var("OBOL_FACILITATOR_URL");

    // A payer without a cent.
    let (broke, _) = obol_devstack::onchain::new_key().unwrap();
    let signed = obol_x402::eip3009::sign_payload(
        &broke,
        &req.domain(),
        authorization(&broke, &req).unwrap(),
    )
    .unwrap();
    let answer = facilitator_verify(
        http,
        facilitator,
        &req,
        serde_json::to_value(&signed).unwrap(),
    )
    .await;
    assert_eq!(
        answer["invalidReason"], "invalid_exact_evm_insufficient_balance",
        "{answer}"
    );

    // An authorization already spent on chain.
    let buyer: PrivateKey = stack.var("OBOL_BUYER_KEY").parse().unwrap();
    let signed = obol_x402::eip3009::sign_payload(
        &buyer,
        &req.domain(),
        authorization(&buyer, &req).unwrap(),
    )
    .unwrap();
    let payload = serde_json::to_value(&signed).unwrap();
    let body = json!({"x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": req.to_v2(), "payload": payload},
        "paymentRequirements": req.to_v2()});
    let settled: Value = http
        .post(format!("{facilitator}/settle"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settled["success"], true, "{settled}");
    let answer = facilitator_verify(http, facilitator, &req, payload).await;
    assert_eq!(
        answer["invalidReason"], "invalid_exact_evm_nonce_already_used",
        "{answer}"
    );
}

/// Payers paying at the same time through the gateway: every payment settles once, and the
/// seller receives exactly the sum.
pub async fn concurrent_payers(stack: &Stack, http: &reqwest::Client) {
    const PAYERS: usize = 4;
    const EACH: usize = 3;
    let state = state(stack);
    let req = demo_requirement(&state).unwrap();
    let rpc = Rpc::new(stack.var("OBOL_RPC_URL"));
    let usdc = stack.var("OBOL_USDC_ADDRESS").parse().unwrap();
    let seller = stack.var("OBOL_SELLER_ADDRESS").parse().unwrap();
    let mut payers = vec![];
    for _ in 0..PAYERS {
        let (key, _) = obol_devstack::onchain::new_key().unwrap();
        rpc.mint(usdc, key.address(), U256::from(1_000_000u64))
            .await
            .unwrap();
        payers.push(key);
    }
    let before = rpc.balance_of(usdc, seller).await.unwrap();
    let url = format!("{}/services/demo/concurrent", stack.var("OBOL_GATEWAY_URL"));
    let started = std::time::Instant::now();
    let runs = payers.iter().map(|key| {
        let (http, url, req) = (http.clone(), url.clone(), req.clone());
        async move {
            let mut statuses = vec![];
            for _ in 0..EACH {
                let header = req
                    .signed_v2_header(key, authorization(key, &req).unwrap())
                    .unwrap();
                let r = http
                    .get(&url)
                    .header("PAYMENT-SIGNATURE", header)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                statuses.push((status, body));
            }
            statuses
        }
    });
    let results: Vec<(u16, String)> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    let elapsed = started.elapsed();
    let failed: Vec<&(u16, String)> = results.iter().filter(|(s, _)| *s != 200).collect();
    assert!(failed.is_empty(), "failed payments: {failed:#?}");
    let after = rpc.balance_of(usdc, seller).await.unwrap();
    assert_eq!(
        after - before,
        req.amount * U256::from(PAYERS * EACH),
        "the seller receives every payment exactly once"
    );
    eprintln!(
        "{} payments by {PAYERS} concurrent payers settled in {elapsed:?}",
        PAYERS * EACH
    );
}

/// The metered offer `llm`: its 402 offers `upto` (the maximum, 4000 tokens at 0.6 USDC per
/// million, through the Permit2 proxy, naming the stack facilitator's signer) before `exact`
/// (1000 tokens' worth), and the official `@x402/fetch` upto client pays one chat completion:
/// 3 prompt + 100 completion tokens move exactly ⌈(3 × 150000 + 100 × 600000) ÷ 10⁶⌉ = 61
/// atomic units from the buyer to the seller, and the receipt it decodes says 61 with the counts.
pub async fn llm_offer_pays_per_token(stack: &Stack, http: &reqwest::Client) {
    let url = format!(
        "{}/services/llm/v1/chat/completions",
        stack.var("OBOL_GATEWAY_URL")
    );
    let body =
        json!({"messages": [{"role": "user", "content": "one two three"}], "max_tokens": 100});
    let unpaid = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(unpaid.status(), 402);
    let header = unpaid.headers()["payment-required"].to_str().unwrap();
    let required =
        serde_json::to_value(obol_x402::codec::decode_payment_required(header).unwrap()).unwrap();
    let accepts = &required["accepts"];
    assert_eq!(
        (&accepts[0]["scheme"], &accepts[0]["amount"]),
        (&json!("upto"), &json!("2400")),
        "{required}"
    );
    assert_eq!(accepts[0]["extra"]["assetTransferMethod"], "permit2");
    assert_eq!(
        accepts[0]["extra"]["facilitatorAddress"],
        obol_devstack::chain::DEV_ACCOUNTS[0].0,
        "{required}"
    );
    assert_eq!(
        (&accepts[1]["scheme"], &accepts[1]["amount"]),
        (&json!("exact"), &json!("600")),
        "{required}"
    );

    let rpc = Rpc::new(stack.var("OBOL_RPC_URL"));
    let usdc = stack.var("OBOL_USDC_ADDRESS").parse().unwrap();
    let (buyer, seller) = (
        stack.var("OBOL_BUYER_ADDRESS").parse().unwrap(),
        stack.var("OBOL_SELLER_ADDRESS").parse().unwrap(),
    );
    let before = (
        rpc.balance_of(usdc, buyer).await.unwrap(),
        rpc.balance_of(usdc, seller).await.unwrap(),
    );
    // The official client pays `body` per token; its output line (status, answer, receipt).
    let official = |body: &Value| {
        let out = std::process::Command::new("node")
            .arg(repo_root().join("tools/x402-peers/pay.cjs"))
            .arg(&url)
            .arg(body.to_string())
            .env(
                "NODE_PATH",
                Path::new(stack.var("OBOL_X402_PEERS")).join("node_modules"),
            )
            .env("BUYER_KEY", stack.var("OBOL_BUYER_KEY"))
            .env("SCHEMES", "upto,exact")
            .output()
            .unwrap();
        assert!(out.status.success(), "pay.cjs: {}", text(&out));
        let line: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["status"], 200, "{line}");
        line
    };
    let line = official(&body);
    let after = (
        rpc.balance_of(usdc, buyer).await.unwrap(),
        rpc.balance_of(usdc, seller).await.unwrap(),
    );
    assert_eq!(
        (before.0 - after.0, after.1 - before.1),
        (U256::from(61u64), U256::from(61u64)),
        "{line}"
    );
    let receipt = &line["receipt"]["PAYMENT-RESPONSE"];
    assert_eq!(
        (&receipt["success"], &receipt["amount"]),
        (&json!(true), &json!("61")),
        "{line}"
    );
    let used = &receipt["extensions"]["metering"];
    assert_eq!(
        (&used["basis"], &used["inputTokens"], &used["outputTokens"]),
        (&json!("usage"), &json!(3), &json!(100)),
        "{line}"
    );
    // An answer without usage is charged the declared fallback (1000 tokens at the output
    // price, 600), one whose usage costs more than the maximum (3 + 5000 tokens: 3001) is
    // charged the maximum 2400 and says so: both show on the dashboard's metering panels.
    let cases = [
        (
            json!({"model": "fake-no-usage", "messages": [{"role": "user", "content": "hi"}]}),
            "600",
            "fallback",
            false,
        ),
        (
            json!({"messages": [{"role": "user", "content": "one two three"}], "max_tokens": 5000}),
            "2400",
            "usage",
            true,
        ),
    ];
    for (body, amount, basis, capped) in cases {
        let line = official(&body);
        let receipt = &line["receipt"]["PAYMENT-RESPONSE"];
        let used = &receipt["extensions"]["metering"];
        assert_eq!(
            (&receipt["amount"], &used["basis"], &used["capped"]),
            (&json!(amount), &json!(basis), &json!(capped)),
            "{line}"
        );
    }
    assert_eq!(
        before.0 - rpc.balance_of(usdc, buyer).await.unwrap(),
        U256::from(61u64 + 600 + 2400)
    );

    // Our buyer signs exact authorizations only: `obol buy http` says the offer also sells per
    // token, and each request through the buyer costs the approximate price (1000 tokens at
    // 0.6 USDC per million = 600 atomic units) whatever the answer used.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(["buy", "http", "llm-exact"])
        .arg(format!("{}/services/llm", stack.var("OBOL_GATEWAY_URL")))
        .args(["--count", "2", "--max-price", "0.0006", "--key-file"])
        .arg(stack.run.join("buyer.key"))
        .args(["-n", "demo", "--yes"])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("also sells per token (x402 upto, at most 0.0024 per request)"),
        "{}",
        text(&out)
    );
    let seller_before = rpc.balance_of(usdc, seller).await.unwrap();
    let paid = http
        .post(format!(
            "{}/upstream/llm-exact/v1/chat/completions",
            stack.var("OBOL_BUYER_URL")
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    let answer: Value = paid.json().await.unwrap();
    assert_eq!(answer["usage"]["completion_tokens"], 100, "{answer}");
    assert_eq!(
        rpc.balance_of(usdc, seller).await.unwrap() - seller_before,
        U256::from(600u64)
    );
}

fn doctor(stack: &Stack) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_obol"));
    // From the repository, as after `obol install`: the shipped manifests are `deploy/`.
    cmd.arg("doctor")
        .env_clear()
        .current_dir(obol_testenv::repo_root());
    for (k, v) in &stack.env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), text(&out))
}

/// The CRD removed and put back by the doctor test: no finalizer holds its objects, and nothing
/// runs on them after the test's purchases.
const REMOVED_CRD: &str = "purchaserequests.obol.org";

/// `obol doctor` passes on the healthy stack (every line `ok`), then names what is wrong, with
/// the fix, exiting 1: a CRD missing (then restored: doctor passes again), the verifier stopped,
/// the facilitator down too. Ends the stack's verifier and facilitator: run it last.
pub async fn doctor_healthy_then_faults(stack: &Stack) {
    let (code, said) = doctor(stack);
    assert_eq!(code, Some(0), "{said}");
    for check in [
        "crds",
        "gateway-crds",
        "gateway",
        "rbac",
        "verifier",
        "facilitator",
        "clock",
        "registrar",
    ] {
        assert!(said.contains(&format!("ok   {check}: ")), "{check}: {said}");
    }
    assert!(
        said.contains("ok   gateway: traefik/traefik-gateway Accepted and Programmed"),
        "{said}"
    );
    let registrar = stack.var("OBOL_REGISTRAR_ADDRESS");
    assert!(
        said.contains(&format!("ok   registrar: {registrar} holds ")),
        "an offer registers (mine), so the registrar's key and balance are checked: {said}"
    );

    // A CRD missing: named, with the fix; restored, doctor passes again.
    let client = stack.client().await;
    let crds: kube::Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = kube::Api::all(client.clone());
    crds.delete(REMOVED_CRD, &Default::default()).await.unwrap();
    let (code, said) = eventually_doctor(stack, &format!("FAIL crds: missing: {REMOVED_CRD}"));
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("fix: obol install") && said.contains("ok   verifier: "),
        "{said}"
    );
    let file = obol_testenv::repo_root().join(format!("deploy/crds/{REMOVED_CRD}.yaml"));
    let crd = obol_deploy::manifest::parse(&std::fs::read_to_string(&file).unwrap(), "crd")
        .unwrap()
        .remove(0);
    // The deletion finishes (its objects go) before the CRD can be created again.
    eventually(Duration::from_secs(60), || {
        let (client, crd) = (client.clone(), crd.clone());
        async move {
            let mut kinds = obol_deploy::apply::Kinds::default();
            obol_deploy::apply::apply(&client, &mut kinds, &crd, "obol-e2e", false)
                .await
                .ok()
        }
    })
    .await;
    let (code, said) = eventually_doctor(stack, "ok   crds: ");
    assert_eq!(code, Some(0), "restored: {said}");

    let pid = |name: &str| {
        state(stack)
            .procs
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no {name} in the stack"))
            .pid
    };
    let kill = |name: &str| {
        let ok = std::process::Command::new("kill")
            .arg(pid(name).to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill {name}");
    };

    kill("verifier");
    let (code, said) = eventually_doctor(stack, "FAIL verifier: ");
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("fix: start the verifier") && said.contains("ok   facilitator: "),
        "{said}"
    );

    kill("facilitator");
    let (code, said) = eventually_doctor(stack, "FAIL facilitator: ");
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("unreachable")
            && said.contains("FAIL clock: ")
            && said.contains("ok   crds: "),
        "{said}"
    );
}

/// Doctor until its output contains `line` (a killed process takes a moment to close its port;
/// a deleted CRD a moment to go).
fn eventually_doctor(stack: &Stack, line: &str) -> (Option<i32>, String) {
    let mut last = (None, String::new());
    for _ in 0..40 {
        last = doctor(stack);
        if last.1.contains(line) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("doctor never said {line:?}:\n{}", last.1);
}

/// The deleted offer's series are gone from the verifier's real `/metrics` (its PaymentRoute
/// went, and the route's label sets with it), while another offer's stay.
pub async fn deleted_offer_series_are_pruned(stack: &Stack, http: &reqwest::Client, offer: &str) {
    let url = format!("{}/metrics", state(stack).verifier_url);
    let gone = format!("offer_name=\"{offer}\"");
    let text = eventually(Duration::from_secs(30), || async {
        let text = http.get(&url).send().await.ok()?.text().await.ok()?;
        (!text.contains(&gone)).then_some(text)
    })
    .await;
    assert!(
        text.contains("obol_x402_verifier_requests_total{") && text.contains("offer_name=\""),
        "the other offers' series stay:\n{text}"
    );
}

/// Every `obol_*` series used by deploy/monitoring (the PrometheusRule's expressions and the
/// dashboard's queries) is one the binaries export: names taken from real `/metrics` scrapes of
/// the verifier, controller, registrar and buyer of this stack, after its payments (a family
/// shows only once it has a sample: the llm payments include a fallback and a capped answer,
/// so every metering series is there and on the dashboard). Also: the rule file is a PrometheusRule whose alerts all have a severity and a runbook section.
pub async fn monitoring_uses_exported_metrics(stack: &Stack, http: &reqwest::Client) {
    let s = state(stack);
    let mut exported = BTreeSet::new();
    for url in [
        &s.verifier_url,
        &s.controller_url,
        &s.registrar_url,
        &s.buyer_url,
    ] {
        let body = http
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            exported.insert(name.to_owned());
        }
    }
    assert!(exported.len() > 10, "{exported:?}");

    let dir = obol_testenv::repo_root().join("deploy/monitoring");
    let rule: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("prometheusrule.yaml")).unwrap())
            .unwrap();
    assert_eq!(rule["kind"], "PrometheusRule");
    let runbook = std::fs::read_to_string(dir.join("RUNBOOK.md")).unwrap();
    let mut exprs = vec![];
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            exprs.push(r["expr"].as_str().unwrap().to_owned());
            if let Some(alert) = r["alert"].as_str() {
                assert!(r["labels"]["severity"].is_string(), "{alert}: no severity");
                assert!(
                    runbook.contains(&format!("## {alert}\n")),
                    "{alert}: no section in RUNBOOK.md"
                );
            }
        }
    }
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("dashboard.json")).unwrap())
            .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("obol_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            used.insert(name);
        }
    }
    assert!(used.len() >= 8, "{used:?}");
    let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "deploy/monitoring uses series no binary exported: {missing:?}\nexported: {exported:?}"
    );
    // After the stack's metered payments (llm: by usage, a fallback, a capped one) every
    // metering series has samples and the dashboard shows each.
    for series in [
        "requests",
        "input_tokens",
        "output_tokens",
        "charged_atomic",
        "unused_atomic",
        "fallback",
        "capped",
    ]
    .map(|s| format!("obol_x402_verifier_metered_{s}_total"))
    {
        assert!(used.contains(&series), "{series} not on the dashboard");
        assert!(exported.contains(&series), "{series}: no sample");
    }
}

/// `obol buy http --scheme upto` buys the llm offer per token with a fresh payer (ether for
/// gas and test USDC, no Permit2 allowance): it says it approves Permit2 and sends the
/// approval (unlimited, on chain after), signs Permit2 witness authorizations for the maximum
/// and writes a PurchaseRequest of scheme `upto`; the stack's buyer spends one: a 3 + 100
/// token completion settles exactly its cost (61) on chain and the receipt reaches the
/// client; the purchase counts one spent, charged 61 of the 2 400 authorized. A streamed
/// completion's charge reaches the buyer in the trailer: the purchase's charged total is what
/// moved on chain for both (`obol buy status` says so). A second purchase needs no approval.
pub async fn buyer_spends_upto(stack: &Stack, http: &reqwest::Client) {
    let gateway = stack.var("OBOL_GATEWAY_URL");
    let rpc = Rpc::new(stack.var("OBOL_RPC_URL"));
    let usdc: obol_x402::Address = stack.var("OBOL_USDC_ADDRESS").parse().unwrap();
    let seller: obol_x402::Address = stack.var("OBOL_SELLER_ADDRESS").parse().unwrap();
    let nonce = obol_cli::buy::pool::nonces(1)[0];
    let key: PrivateKey = format!("{nonce}").parse().unwrap();
    let payer = key.address();
    rpc.set_balance(payer, U256::from(10u64).pow(U256::from(18u64)))
        .await
        .unwrap();
    rpc.mint(usdc, payer, U256::from(1_000_000u64))
        .await
        .unwrap();
    let key_file = stack.run.join("upto-payer.key");
    std::fs::write(&key_file, format!("{nonce}\n")).unwrap();
    let buy = |name: &str, count: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
            .args(["buy", "http", name])
            .arg(format!("{gateway}/services/llm"))
            .args(["--scheme", "upto", "--rpc-url", stack.var("OBOL_RPC_URL")])
            .args(["--count", count, "--max-price", "0.0024", "--key-file"])
            .arg(&key_file)
            .args(["-n", "demo", "--yes"])
            .env("KUBECONFIG", stack.var("KUBECONFIG"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = buy("llm-upto", "3");
    assert!(out.status.success(), "{}", text(&out));
    for said in [
        "charges per token (x402 upto)",
        "must approve Permit2",
        "Permit2 approved in transaction 0x",
        "PurchaseRequest demo/llm-upto created: 3 authorizations",
    ] {
        assert!(text(&out).contains(said), "{said}: {}", text(&out));
    }
    assert_eq!(
        rpc.allowance(usdc, payer, obol_x402::permit2::PERMIT2_ADDRESS)
            .await
            .unwrap(),
        U256::MAX
    );
    let kube = stack.client().await;
    let purchases: kube::Api<obol_api::PurchaseRequest> =
        kube::Api::namespaced(kube.clone(), "demo");
    let spec = purchases.get("llm-upto").await.unwrap().spec;
    assert_eq!(
        (spec.scheme.as_deref(), spec.price.as_str(), spec.count),
        (Some("upto"), "2400", 3)
    );

    let body =
        json!({"messages": [{"role": "user", "content": "one two three"}], "max_tokens": 100});
    let before = (
        rpc.balance_of(usdc, payer).await.unwrap(),
        rpc.balance_of(usdc, seller).await.unwrap(),
    );
    let paid = http
        .post(format!(
            "{}/upstream/llm-upto/v1/chat/completions",
            stack.var("OBOL_BUYER_URL")
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    let receipt: Value = serde_json::to_value(
        obol_x402::codec::decode_settle_response(
            paid.headers()["payment-response"].to_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let answer: Value = paid.json().await.unwrap();
    assert_eq!(answer["usage"]["completion_tokens"], 100, "{answer}");
    assert_eq!(receipt["amount"], "61", "{receipt}");
    let after = (
        rpc.balance_of(usdc, payer).await.unwrap(),
        rpc.balance_of(usdc, seller).await.unwrap(),
    );
    assert_eq!(
        (before.0 - after.0, after.1 - before.1),
        (U256::from(61u64), U256::from(61u64))
    );
    // The buyer journals what the receipt charged, and the purchase says it against what was
    // authorized.
    let counted = eventually(Duration::from_secs(30), || async {
        let s = purchases.get("llm-upto").await.ok()?.status?;
        (s.spent == Some(1) && s.held == Some(0) && s.receipts == Some(1))
            .then_some((s.remaining, s.charged))
    })
    .await;
    assert_eq!(counted, (Some(2), Some("61".to_owned())));

    // A streamed completion settles when the stream ended: the buyer reads the receipt from
    // the trailer and journals what it charged, which is what moved on chain.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let before = rpc.balance_of(usdc, payer).await.unwrap();
    let paid = http
        .post(format!(
            "{}/upstream/llm-upto/v1/chat/completions",
            stack.var("OBOL_BUYER_URL")
        ))
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    assert!(
        !paid.headers().contains_key("payment-response"),
        "a stream's receipt is not known at its head"
    );
    let events = paid.text().await.unwrap();
    assert!(events.contains("data: [DONE]"), "{events}");
    let moved = eventually(Duration::from_secs(30), || async {
        let now = rpc.balance_of(usdc, payer).await.ok()?;
        (now < before).then(|| before - now)
    })
    .await;
    assert!(
        moved > U256::ZERO && moved <= U256::from(2400u64),
        "{moved}"
    );
    let total = (U256::from(61u64) + moved).to_string();
    let counted = eventually(Duration::from_secs(30), || async {
        let s = purchases.get("llm-upto").await.ok()?.status?;
        (s.spent == Some(2) && s.receipts == Some(2)).then_some((s.remaining, s.charged))
    })
    .await;
    assert_eq!(counted, (Some(1), Some(total.clone())));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(["buy", "status", "llm-upto", "-n", "demo"])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .output()
        .unwrap();
    let unmoved = 4800 - total.parse::<u64>().unwrap();
    let line = format!(
        "charged    {total} atomic units by 2 receipts (authorized 4800; {unmoved} never moved)"
    );
    assert!(
        out.status.success() && text(&out).contains(&line),
        "{line}: {}",
        text(&out)
    );

    // Refill signs exact authorizations: it refuses an upto purchase and writes nothing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(["buy", "refill", "llm-upto", "--count", "1", "--key-file"])
        .arg(&key_file)
        .args(["-n", "demo", "--yes"])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out).contains("is an upto (per-token) purchase"),
        "{}",
        text(&out)
    );
    assert_eq!(purchases.get("llm-upto").await.unwrap().spec.count, 3);

    let out = buy("llm-upto-2", "1");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("has approved Permit2 for enough of the token")
            && !text(&out).contains("Permit2 approved in transaction"),
        "{}",
        text(&out)
    );
}

/// `obol buy http` with an encrypted keystore and a password file (the key never on disk in
/// the clear): a wrong password is refused and writes nothing; the right one buys the demo
/// offer, the stack's buyer pays from the new purchase at once (the seller is paid on chain,
/// `obol buy status` counts the spend), and no output of any of these commands contains the
/// password. The purchase is deleted afterwards.
pub async fn buys_with_a_keystore(stack: &Stack, http: &reqwest::Client) {
    use alloy::signers::local::PrivateKeySigner;
    let dir = stack.run.join("keystore-test");
    std::fs::create_dir_all(&dir).unwrap();
    // Unique, so that finding it in an output cannot be a coincidence.
    let password = format!("pw-{}-kEyStOrE", std::process::id());
    let key: PrivateKey = obol_devstack::chain::DEV_ACCOUNTS[1].1.parse().unwrap();
    PrivateKeySigner::encrypt_keystore(
        &dir,
        &mut rand08::thread_rng(),
        key.signer().to_bytes(),
        &password,
        Some("payer.json"),
    )
    .unwrap();
    std::fs::write(dir.join("password"), format!("{password}\n")).unwrap();
    std::fs::write(dir.join("wrong"), "not-the-password\n").unwrap();
    let kube = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
            .args(args)
            .env("KUBECONFIG", stack.var("KUBECONFIG"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let said = text(&out);
        assert!(
            !said.contains(&password),
            "`obol {}` printed the password",
            args.join(" ")
        );
        (out.status.success(), said)
    };
    let seller_url = format!("{}/services/demo", stack.var("OBOL_GATEWAY_URL"));
    let keystore = dir.join("payer.json").display().to_string();
    let buy = |name: &str, password_file: &str| {
        let password_file = dir.join(password_file).display().to_string();
        kube(&[
            "buy",
            "http",
            name,
            &seller_url,
            "--count",
            "3",
            "--max-price",
            "0.001",
            "--keystore",
            &keystore,
            "--password-file",
            &password_file,
            "-n",
            "demo",
            "--yes",
        ])
    };
    let (ok, said) = buy("keystore-wrong", "wrong");
    assert!(!ok && said.contains("wrong password"), "{said}");
    let (ok, said) = kube(&["buy", "status", "keystore-wrong", "-n", "demo"]);
    assert!(!ok, "a refused purchase was written:\n{said}");

    let rpc = Rpc::new(stack.var("OBOL_RPC_URL"));
    let usdc = stack.var("OBOL_USDC_ADDRESS").parse().unwrap();
    let seller = stack.var("OBOL_SELLER_ADDRESS").parse().unwrap();
    let before = rpc.balance_of(usdc, seller).await.unwrap();
    let (ok, said) = buy("keystore", "password");
    assert!(ok, "{said}");
    let url = format!("{}/upstream/keystore/hello", stack.var("OBOL_BUYER_URL"));
    eventually(Duration::from_secs(10), || async {
        let r = http.get(&url).send().await.ok()?;
        (r.status() == reqwest::StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(
        rpc.balance_of(usdc, seller).await.unwrap() - before,
        U256::from(obol_devstack::stack::DEMO_PRICE_ATOMIC),
        "the buyer paid once from the keystore's authorizations"
    );
    // The buyer writes its counts on its own tick.
    eventually(Duration::from_secs(15), || async {
        let (ok, said) = kube(&["buy", "status", "keystore", "-n", "demo"]);
        (ok && status_field(&said, "spent").starts_with("1 ")).then_some(())
    })
    .await;
    let (ok, said) = kube(&["buy", "delete", "keystore", "-n", "demo", "--yes"]);
    assert!(ok, "{said}");
    eprintln!(
        "keystore purchase: a wrong password refused with nothing written; 3 bought, 1 paid \
         through the buyer and settled on chain, counted spent; deleted"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
