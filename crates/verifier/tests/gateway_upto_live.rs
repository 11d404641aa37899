//! Metered billing (`upto`) with real parts: anvil with the test USDC and our test Permit2 and
//! upto proxy at their canonical addresses, the official TypeScript facilitator (its `upto`
//! scheme registered) settling on it, the official client signing, the verifier's gateway in
//! front of the fake OpenAI-compatible upstream. Each answer moves exactly
//! `⌈(prompt × 0.15 + completion × 0.6) USDC ÷ 10⁶⌉` (atomic units) on chain, read as balance
//! deltas; an answer without usage moves the declared fallback; an upstream error moves nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod gateway_support;
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, U256};
use axum::http::StatusCode;
use gateway_support::*;
use obol_devstack::chain::{Anvil, DEV_ACCOUNTS, Rpc, dev_address};
use obol_devstack::facilitator::{ReferenceFacilitator, run_node_script};
use obol_devstack::llm::{LlmConfig, LlmServer};
use obol_testenv::repo_root;
use obol_testenv::tools::{tool, x402_peers};
use obol_verifier::facilitators::Facilitators;
use obol_verifier::{AppState, RouteEntry, RouteKey, RouteTable};
use obol_x402::permit2::PERMIT2_ADDRESS;
use obol_x402::{HttpFacilitator, HttpFacilitatorConfig, codec};
use serde_json::{Value, json};

/// 0.15 USDC per million prompt tokens, 0.6 per million completion tokens (atomic units).
const IN_RATE: &str = "150000";
const OUT_RATE: &str = "600000";
/// The `exact` price and the no-usage fallback: 1000 tokens at the higher rate.
const FALLBACK: u64 = 600;
/// The `upto` maximum: 4000 tokens at the higher rate.
const MAXIMUM: u64 = 2400;
const PATH: &str = "/services/demo/v1/chat/completions";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Live {
    rpc: Rpc,
    usdc: Address,
    payer: Address,
    seller: Address,
    gw: std::net::SocketAddr,
    _llm: LlmServer,
    _anvil: Anvil,
    _facilitator: ReferenceFacilitator,
    dir: PathBuf,
}

impl Live {
    async fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("obol-gw-upto-{}-{}", std::process::id(), now()));
        std::fs::create_dir_all(&dir).unwrap();
        let anvil = Anvil::start(&tool("ANVIL_BIN", "anvil.sh"), &dir.join("anvil.log"))
            .await
            .unwrap();
        let rpc = anvil.rpc().clone();
        let contracts = repo_root().join("contracts");
        let network = obol_x402::Network::resolve("base-sepolia").unwrap();
        let usdc = network.usdc.as_ref().unwrap().address;
        rpc.install_test_usdc_at(&contracts, usdc, "USDC", "2")
            .await
            .unwrap();
        rpc.install_upto_permit2(&contracts).await.unwrap();
        let payer = dev_address(1);
        rpc.mint(usdc, payer, U256::from(10_000_000u64))
            .await
            .unwrap();
        rpc.approve(usdc, payer, PERMIT2_ADDRESS, U256::MAX)
            .await
            .unwrap();
        let facilitator = ReferenceFacilitator::start(
            &x402_peers(),
            &repo_root().join("tools/x402-peers/facilitator.cjs"),
            rpc.url(),
            DEV_ACCOUNTS[0].1,
            &dir.join("facilitator.log"),
        )
        .await
        .unwrap();
        let llm = LlmServer::start("127.0.0.1:0", LlmConfig::default())
            .await
            .unwrap();
        let seller = dev_address(2);
        let mut spec = proxy_spec(llm.url().trim_start_matches("http://").parse().unwrap());
        spec.pay_to = seller.to_string();
        spec.price = FALLBACK.to_string();
        spec.metering = Some(obol_api::Metering {
            input_per_mtok: IN_RATE.into(),
            output_per_mtok: OUT_RATE.into(),
            max_tokens_per_request: 4000,
            max_amount: MAXIMUM.to_string(),
        });
        let route = RouteEntry::load(RouteKey::new("demo", "demo"), Some(1), &spec, None).unwrap();
        assert!(route.metering.is_some());
        let table = Arc::new(RouteTable::new());
        table.reset(vec![route]);
        let client = HttpFacilitator::new(HttpFacilitatorConfig::new(
            facilitator.url().parse().unwrap(),
        ))
        .unwrap();
        let state = AppState::new(table, Facilitators::single(Arc::new(client)));
        let config = obol_verifier::gateway::upstream::UpstreamConfig {
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            ..test_config()
        };
        let gw = gateway(state, config).await;
        Self {
            rpc,
            usdc,
            payer,
            seller,
            gw,
            _llm: llm,
            _anvil: anvil,
            _facilitator: facilitator,
            dir,
        }
    }

    async fn balances(&self) -> (U256, U256) {
        (
            self.rpc.balance_of(self.usdc, self.payer).await.unwrap(),
            self.rpc.balance_of(self.usdc, self.seller).await.unwrap(),
        )
    }

    async fn post(&self, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        read(send(self.gw, "POST", PATH, &all, body.to_string().into_bytes()).await).await
    }

    /// The 402 of the route, decoded from `PAYMENT-REQUIRED`.
    async fn required(&self) -> Value {
        let r = self.post(&chat("hello", 1, false, None), &[]).await;
        assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text());
        let header = r.header("payment-required").unwrap();
        serde_json::to_value(codec::decode_payment_required(header).unwrap()).unwrap()
    }

    /// The official client's `upto` payment for `required`, as a `PAYMENT-SIGNATURE` value.
    async fn sign(&self, required: &Value) -> String {
        let out = run_node_script(
            &x402_peers(),
            &repo_root().join("tools/x402-peers/sign.cjs"),
            &[("BUYER_KEY", DEV_ACCOUNTS[1].1), ("SCHEMES", "upto")],
            required.to_string().as_bytes(),
        )
        .await
        .unwrap();
        let payload: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(payload["accepted"]["scheme"], "upto", "{payload}");
        codec::encode_header(&payload).unwrap()
    }

    /// Pays for `body`, reads the answer whole, and returns it with the on-chain movement
    /// (payer's loss, seller's gain).
    async fn paid(&self, required: &Value, body: &Value) -> (Answer, U256, U256) {
        let pay = self.sign(required).await;
        let (payer, seller) = self.balances().await;
        let r = self.post(body, &[("payment-signature", &pay)]).await;
        let (payer_after, seller_after) = self.balances().await;
        (r, payer - payer_after, seller_after - seller)
    }
}

/// A chat request: `words` prompt words, `max_tokens` completion tokens.
fn chat(prompt: &str, max_tokens: u64, stream: bool, model: Option<&str>) -> Value {
    let mut v = json!({
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    });
    if let Some(m) = model {
        v["model"] = json!(m);
    }
    v
}

/// The settled amount a receipt states.
fn amount(receipt: Option<&str>) -> String {
    let settle = codec::decode_settle_response(receipt.expect("a receipt")).unwrap();
    assert!(settle.success, "{settle:?}");
    settle.amount.unwrap_or_default()
}

#[tokio::test]
async fn upto_answers_settle_exactly_the_tokens_they_used_on_chain() {
    let live = Live::start().await;

    // The 402 offers upto (the maximum, through the Permit2 proxy) first and exact second.
    let required = live.required().await;
    let accepts = required["accepts"].as_array().unwrap();
    assert_eq!(accepts.len(), 2, "{required}");
    assert_eq!(accepts[0]["scheme"], "upto");
    assert_eq!(accepts[0]["amount"], MAXIMUM.to_string());
    assert_eq!(accepts[0]["extra"]["assetTransferMethod"], "permit2");
    assert_eq!(
        accepts[0]["extra"]["facilitatorAddress"],
        dev_address(0).to_checksum(None)
    );
    assert_eq!(accepts[1]["scheme"], "exact");
    assert_eq!(accepts[1]["amount"], FALLBACK.to_string());

    // JSON: 5 prompt + 100 completion tokens = ⌈(5 × 150000 + 100 × 600000) ÷ 10⁶⌉ = ⌈60.75⌉.
    let (r, paid, got) = live
        .paid(
            &required,
            &chat("one two three four five", 100, false, None),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["usage"]["completion_tokens"], 100);
    assert_eq!(amount(r.header("payment-response")), "61");
    assert_eq!((paid, got), (U256::from(61u64), U256::from(61u64)));

    // SSE, the client not asking for usage: the gateway asks for it, and the stream's last
    // usage event is charged: 3 + 50 tokens = ⌈30.45⌉. The receipt is a trailer.
    let (r, paid, got) = live.paid(&required, &chat("a b c", 50, true, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("\"prompt_tokens\":3"), "{}", r.text());
    assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
    let trailers = r.trailers.as_ref().expect("the receipt trailer");
    assert_eq!(
        amount(
            trailers
                .get("payment-response")
                .and_then(|v| v.to_str().ok())
        ),
        "31"
    );
    assert_eq!((paid, got), (U256::from(31u64), U256::from(31u64)));

    // More than the maximum: 1 + 5000 tokens would cost 3001, the maximum is charged.
    let (r, paid, _) = live.paid(&required, &chat("x", 5000, false, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(amount(r.header("payment-response")), MAXIMUM.to_string());
    assert_eq!(paid, U256::from(MAXIMUM));

    // No usage in the answer: the declared fallback, not the maximum.
    let (r, paid, got) = live
        .paid(&required, &chat("a b", 10, false, Some("fake-no-usage")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(amount(r.header("payment-response")), FALLBACK.to_string());
    assert_eq!((paid, got), (U256::from(FALLBACK), U256::from(FALLBACK)));

    // The upstream fails: passed through, nothing moves.
    let (r, paid, got) = live
        .paid(&required, &chat("a b", 10, false, Some("fake-error-500")))
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert_eq!(r.header("x-payment-settled"), Some("false"));
    assert_eq!((paid, got), (U256::ZERO, U256::ZERO));

    let _ = std::fs::remove_dir_all(&live.dir);
}
