//! Gateway mode `proxy` with real parts: anvil with the test USDC, the official TypeScript
//! facilitator settling on it, real Traefik in front routing to the verifier's gateway listener
//! (the route header set by a headers middleware, as the HTTPRoute's filter does). Balances are
//! read on chain.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod gateway_support;
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256, U256};
use axum::http::StatusCode;
use gateway_support::*;
use http_body_util::BodyExt as _;
use obol_devstack::chain::{DEV_ACCOUNTS, Rpc, dev_address};
use obol_devstack::facilitator::{PaidChain, PaidChainTools};
use obol_testenv::repo_root;
use obol_testenv::tools::x402_peers;
use obol_testenv::traefik::FileTraefik;
use obol_verifier::facilitators::Facilitators;
use obol_verifier::{AppState, RouteEntry, RouteKey, RouteTable};
use obol_x402::wire::Authorization;
use obol_x402::{HttpFacilitator, HttpFacilitatorConfig, PrivateKey, Requirement};

const PRICE: u64 = 1000;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Live {
    rpc: Rpc,
    usdc: Address,
    seller: Address,
    payer: PrivateKey,
    req: Requirement,
    traefik_url: String,
    up: Arc<UpstreamScript>,
    _traefik: FileTraefik,
    _chain: PaidChain,
    _dir: PathBuf,
}

/// How Traefik hands paid traffic to the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Gateway mode `proxy`: Traefik routes to the verifier's gateway listener.
    Proxy,
    /// ForwardAuth: Traefik asks `/verify/demo/demo`, then strips the prefix and calls the
    /// upstream itself.
    ForwardAuth,
}

impl Live {
    async fn start() -> Self {
        Self::start_in(Mode::Proxy).await
    }

    async fn start_in(mode: Mode) -> Self {
        let dir = obol_testenv::scratch_dir("gw-live");
        let tools = PaidChainTools {
            anvil: obol_testenv::tools::anvil(),
            x402_peers: x402_peers(),
            repo: repo_root(),
        };
        let chain = PaidChain::start(&tools, &dir, U256::from(10_000_000u64), false)
            .await
            .unwrap();
        let (rpc, usdc) = (chain.rpc().clone(), chain.usdc);
        let payer: PrivateKey = DEV_ACCOUNTS[1].1.parse().unwrap();
        assert_eq!(payer.address(), chain.payer);
        let seller = dev_address(2);
        let (up_addr, up) = upstream().await;
        let mut spec = match mode {
            Mode::Proxy => proxy_spec(up_addr),
            Mode::ForwardAuth => support::spec("/services/demo/*", "1000"),
        };
        spec.pay_to = seller.to_string();
        spec.price = PRICE.to_string();
        let route = RouteEntry::load(RouteKey::new("demo", "demo"), Some(1), &spec, None).unwrap();
        let req = route.requirement.clone().unwrap();
        let table = Arc::new(RouteTable::new());
        table.reset(vec![route]);
        let client = HttpFacilitator::new(HttpFacilitatorConfig::new(
            chain.facilitator.url().parse().unwrap(),
        ))
        .unwrap();
        let state = AppState::new(table, Facilitators::single(Arc::new(client)));
        let config = obol_verifier::gateway::upstream::UpstreamConfig {
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            ..test_config()
        };
        let dynamic_config = match mode {
            Mode::Proxy => {
                let gw = gateway(state, config).await;
                format!(
                    "http:\n  routers:\n    demo:\n      rule: \"PathPrefix(`/services/demo`)\"\n      entryPoints: [web]\n      middlewares: [route-demo]\n      service: gateway\n  middlewares:\n    route-demo:\n      headers:\n        customRequestHeaders:\n          X-Obol-Payment-Route: demo/demo\n  services:\n    gateway:\n      loadBalancer:\n        servers:\n          - url: \"http://{gw}\"\n"
                )
            }
            Mode::ForwardAuth => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let verifier = listener.local_addr().unwrap();
                let app = obol_verifier::app(state);
                tokio::spawn(async move { axum::serve(listener, app).await });
                format!(
                    "http:\n  routers:\n    demo:\n      rule: \"PathPrefix(`/services/demo`)\"\n      entryPoints: [web]\n      middlewares: [x402, strip]\n      service: upstream\n  middlewares:\n    x402:\n      forwardAuth:\n        address: \"http://{verifier}/verify/demo/demo\"\n    strip:\n      stripPrefix:\n        prefixes: [\"/services/demo\"]\n  services:\n    upstream:\n      loadBalancer:\n        servers:\n          - url: \"http://{up_addr}\"\n"
                )
            }
        };
        let traefik = FileTraefik::start(&dir, &dynamic_config);
        let web = traefik.web;
        let traefik_url = format!("127.0.0.1:{web}");
        let addr = traefik_url.parse().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err()
            || get(addr, "/services/demo/json", &[]).await.status != StatusCode::PAYMENT_REQUIRED
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "Traefik never routed to the gateway"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            rpc,
            usdc,
            seller,
            payer,
            req,
            traefik_url,
            up,
            _traefik: traefik,
            _chain: chain,
            _dir: dir,
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.traefik_url.parse().unwrap()
    }

    fn pay(&self, nonce: u8) -> String {
        let auth = Authorization {
            from: self.payer.address(),
            to: self.req.pay_to,
            value: self.req.amount,
            valid_after: 0,
            valid_before: now() + 300,
            nonce: B256::repeat_byte(nonce),
        };
        self.req.signed_v2_header(&self.payer, auth).unwrap()
    }

    async fn seller_balance(&self) -> U256 {
        self.rpc.balance_of(self.usdc, self.seller).await.unwrap()
    }

    async fn assert_mined(&self, tx: &str) {
        let receipt = self
            .rpc
            .call("eth_getTransactionReceipt", serde_json::json!([tx]))
            .await
            .unwrap();
        assert_eq!(receipt["status"], "0x1", "{tx}: {receipt}");
    }
}

#[tokio::test]
async fn through_traefik_an_upstream_500_costs_nothing_and_a_stream_is_paid_once_at_its_end() {
    let live = Live::start().await;
    let start = live.seller_balance().await;

    // The upstream fails: the answer passes through, nothing moves on chain.
    live.up.failing.store(true, Ordering::SeqCst);
    let pay = live.pay(1);
    let r = get(
        live.addr(),
        "/services/demo/flaky",
        &[("payment-signature", &pay)],
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert_eq!(r.header("x-payment-settled"), Some("false"));
    assert_eq!(live.seller_balance().await, start);
    // Healthy again: the same authorization pays, once, and the receipt names the transaction.
    live.up.failing.store(false, Ordering::SeqCst);
    let r = get(
        live.addr(),
        "/services/demo/flaky",
        &[("payment-signature", &pay)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let tx = r
        .receipt_tx(false)
        .expect("PAYMENT-RESPONSE reached the client");
    live.assert_mined(&tx).await;
    assert_eq!(live.seller_balance().await, start + U256::from(PRICE));

    // An SSE stream of 200 events: every event arrives before anything is settled.
    let before = live.seller_balance().await;
    let response = send(
        live.addr(),
        "GET",
        "/services/demo/sse?events=200&wait",
        &[("payment-signature", &live.pay(2))],
        vec![],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut text = String::new();
    while text.matches("data: ").count() < 200 {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("events flow through Traefik without waiting for the end")
            .unwrap()
            .unwrap();
        if let Some(d) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(d));
        }
    }
    assert_eq!(
        live.seller_balance().await,
        before,
        "not settled before the end"
    );
    live.up.release.notify_one();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        if let Ok(t) = frame.unwrap().into_trailers() {
            trailers = Some(t);
        }
    }
    let trailers = trailers.expect("the receipt trailer came through Traefik");
    let receipt = trailers.get("payment-response").unwrap().to_str().unwrap();
    let tx = obol_x402::codec::decode_settle_response(receipt)
        .unwrap()
        .transaction;
    live.assert_mined(&tx).await;
    assert_eq!(
        live.seller_balance().await,
        before + U256::from(PRICE),
        "moved exactly once"
    );

    // A client that leaves after 10 events pays nothing, and keeps its authorization.
    let before = live.seller_balance().await;
    let pay = live.pay(3);
    let response = send(
        live.addr(),
        "GET",
        "/services/demo/sse?events=100000",
        &[("payment-signature", &pay)],
        vec![],
    )
    .await;
    let mut body = response.into_body();
    let mut events = 0;
    while events < 10 {
        let frame = body.frame().await.unwrap().unwrap();
        if let Some(d) = frame.data_ref() {
            events += String::from_utf8_lossy(d).matches("data: ").count();
        }
    }
    drop(body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = get(
            live.addr(),
            "/services/demo/json",
            &[("payment-signature", &pay)],
        )
        .await;
        if r.status != StatusCode::CONFLICT {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reservation was never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        r.status,
        StatusCode::OK,
        "released, then paid for a whole answer: {}",
        r.text()
    );
    assert_eq!(
        live.seller_balance().await,
        before + U256::from(PRICE),
        "the abandoned stream cost nothing; the whole answer once"
    );
}

/// One scenario's outcome as `tools/browser/paywall.cjs` reports it.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageRun {
    name: String,
    paywall: PaywallSeen,
    state: String,
    message: String,
    answer: Option<String>,
    wallet_calls: Vec<String>,
    console: Vec<String>,
    screenshots: Vec<PathBuf>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaywallSeen {
    status: u16,
    content_type: String,
    csp: String,
    title: String,
    price: String,
}

/// Where the screenshots go: `<target>/paywall-screenshots/<mode>` (the test binary runs from
/// `<target>/<profile>/deps`).
fn screenshot_dir(mode: Mode) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let name = match mode {
        Mode::Proxy => "proxy",
        Mode::ForwardAuth => "forward-auth",
    };
    let dir = target.join("paywall-screenshots").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the scenarios in headless Chromium; one [`PageRun`] per scenario, in order.
async fn in_chromium(
    live: &Live,
    mode: Mode,
    path: &str,
    scenarios: serde_json::Value,
) -> Vec<PageRun> {
    let driver = obol_testenv::tools::browser_driver();
    let input = serde_json::json!({
        "chromium": obol_testenv::tools::chromium(),
        "url": format!("http://{}{path}", live.traefik_url),
        "rpc": live.rpc.url(),
        "chainId": live.req.network.chain_id,
        "screenshots": screenshot_dir(mode),
        "scenarios": scenarios,
    });
    let mut child = tokio::process::Command::new("node")
        .arg(repo_root().join("tools/browser/paywall.cjs"))
        .env("NODE_PATH", driver.join("node_modules"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (apt-get install nodejs npm)");
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("the browser scenarios finish within 240 s")
        .unwrap();
    assert!(
        out.status.success(),
        "tools/browser/paywall.cjs failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn a_person_pays_the_html_paywall_in_chromium_through_the_proxy_gateway() {
    pays_in_chromium(Mode::Proxy).await;
}

#[tokio::test]
async fn a_person_pays_the_html_paywall_in_chromium_through_forward_auth() {
    pays_in_chromium(Mode::ForwardAuth).await;
}

/// A person opens a paid URL in headless Chromium with a test wallet injected into the page:
/// every failure message, then a payment that moves the price on chain.
async fn pays_in_chromium(mode: Mode) {
    let live = Live::start_in(mode).await;
    let payer = live.payer.address();
    let unfunded = dev_address(3);
    let (seller_start, payer_start) = (
        live.seller_balance().await,
        live.rpc.balance_of(live.usdc, payer).await.unwrap(),
    );
    assert_eq!(
        live.rpc.balance_of(live.usdc, unfunded).await.unwrap(),
        U256::ZERO
    );
    let wallet = |extra: serde_json::Value| {
        let mut w = serde_json::json!({ "account": payer.to_string() });
        w.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        w
    };
    let runs = in_chromium(
        &live,
        mode,
        "/services/demo/json?bytes=24",
        serde_json::json!([
            { "name": "no-wallet", "wallet": null },
            { "name": "rejected", "wallet": wallet(serde_json::json!({ "rejectSign": true })) },
            { "name": "wrong-chain", "wallet": wallet(serde_json::json!({ "startChain": "0x1", "refuseSwitch": true })) },
            { "name": "unfunded", "wallet": { "account": unfunded.to_string() } },
            { "name": "bad-signer", "wallet": wallet(serde_json::json!({ "signer": dev_address(2).to_string() })) },
            // Starts on another chain: the page switches the wallet to the offer's chain.
            { "name": "paid", "wallet": wallet(serde_json::json!({ "startChain": "0x1" })) },
        ]),
    )
    .await;
    let names: Vec<_> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "no-wallet",
            "rejected",
            "wrong-chain",
            "unfunded",
            "bad-signer",
            "paid"
        ]
    );
    for run in &runs {
        let seen = &run.paywall;
        assert_eq!(seen.status, 402, "{run:?}");
        assert_eq!(seen.content_type, "text/html; charset=utf-8", "{run:?}");
        assert!(
            seen.csp
                .starts_with("default-src 'none'; script-src 'sha256-"),
            "{run:?}"
        );
        assert!(seen.title.starts_with("Payment required"), "{run:?}");
        assert_eq!(seen.price, "0.001 USDC", "{run:?}");
        // The page's script ran under its policy: no violation, no script error (the 402s
        // themselves are logged as failed loads).
        let unexpected: Vec<_> = run
            .console
            .iter()
            .filter(|m| !m.contains("status of 402 (Payment Required)"))
            .collect();
        assert!(unexpected.is_empty(), "{unexpected:?}");
        for shot in &run.screenshots {
            assert!(
                std::fs::metadata(shot).unwrap().len() > 1000,
                "{}",
                shot.display()
            );
        }
    }
    let by = |name| runs.iter().find(|r| r.name == name).unwrap();
    let expect = |name, state: &str, text: &str| {
        let run = by(name);
        assert_eq!(run.state, state, "{run:?}");
        assert!(run.message.contains(text), "{name}: {:?}", run.message);
        assert_eq!(run.answer, None, "{run:?}");
    };
    expect("no-wallet", "error-no-wallet", "No wallet found");
    expect("rejected", "error-rejected", "Signature rejected");
    expect("wrong-chain", "error-chain", "Wrong network");
    expect("unfunded", "error-balance", "Insufficient USDC balance");
    // The verifier's structured reason code is shown.
    expect(
        "bad-signer",
        "refused",
        "Payment refused (payment_invalid): ",
    );
    assert!(
        !by("unfunded")
            .wallet_calls
            .contains(&"eth_signTypedData_v4".to_owned())
    );
    assert!(
        !by("wrong-chain")
            .wallet_calls
            .contains(&"eth_signTypedData_v4".to_owned())
    );
    // Nothing moved for any of the failures above; the paid run moved the price once.
    let paid = by("paid");
    assert_eq!(paid.state, "paid", "{paid:?}");
    // Proxy mode hands the client PAYMENT-RESPONSE (the page names the transaction); behind
    // ForwardAuth the receipt goes to the upstream only.
    let paid_text = match mode {
        Mode::Proxy => "Paid 0.001 USDC (transaction 0x",
        Mode::ForwardAuth => "Paid 0.001 USDC. The answer:",
    };
    assert!(paid.message.contains(paid_text), "{paid:?}");
    assert_eq!(
        paid.answer.as_deref(),
        Some(format!("{{\"answer\":\"{}\"}}", "x".repeat(24)).as_str())
    );
    assert!(
        paid.wallet_calls
            .contains(&"wallet_switchEthereumChain".to_owned())
    );
    assert_eq!(
        live.seller_balance().await,
        seller_start + U256::from(PRICE)
    );
    assert_eq!(
        live.rpc.balance_of(live.usdc, payer).await.unwrap(),
        payer_start - U256::from(PRICE)
    );
    assert_eq!(
        live.up.hits("/json"),
        1,
        "only the paid retry reached the upstream"
    );
    eprintln!("paywall screenshots: {}", screenshot_dir(mode).display());
}
