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
use obol_devstack::facilitator::PaidChain;
use obol_testenv::repo_root;
use obol_testenv::tools::{free_port, tool, traefik, x402_peers};
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
    _chain: PaidChain,
    _traefik: tokio::process::Child,
    _dir: PathBuf,
}

impl Live {
    async fn start() -> Self {
        let dir = obol_testenv::scratch_dir("gw-live");
        let chain = PaidChain::start(
            &tool("ANVIL_BIN", "anvil.sh"),
            &x402_peers(),
            &repo_root(),
            &dir,
            U256::from(10_000_000u64),
        )
        .await
        .unwrap();
        let rpc = chain.anvil.rpc().clone();
        let usdc = chain.usdc;
        let payer: PrivateKey = DEV_ACCOUNTS[1].1.parse().unwrap();
        let seller = dev_address(2);
        let (up_addr, up) = upstream().await;
        let mut spec = proxy_spec(up_addr);
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
        let gw = gateway(state, config).await;
        let (web, ping) = (free_port(), free_port());
        let dynamic = dir.join("dynamic.yml");
        std::fs::write(
            &dynamic,
            format!(
                "http:\n  routers:\n    demo:\n      rule: \"PathPrefix(`/services/demo`)\"\n      entryPoints: [web]\n      middlewares: [route-demo]\n      service: gateway\n  middlewares:\n    route-demo:\n      headers:\n        customRequestHeaders:\n          X-Obol-Payment-Route: demo/demo\n  services:\n    gateway:\n      loadBalancer:\n        servers:\n          - url: \"http://{gw}\"\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("traefik.log")).unwrap();
        let traefik = tokio::process::Command::new(traefik())
            .args([
                "--global.checkNewVersion=false",
                "--global.sendAnonymousUsage=false",
                &format!("--entryPoints.web.address=127.0.0.1:{web}"),
                &format!("--entryPoints.traefik.address=127.0.0.1:{ping}"),
                "--ping=true",
                &format!("--providers.file.filename={}", dynamic.display()),
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
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
            _chain: chain,
            _traefik: traefik,
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
