//! A metered (`upto`) route with real parts, shared by the test and the benchmark: anvil with
//! the test USDC and our test Permit2 and upto proxy at their canonical addresses, the official
//! TypeScript facilitator settling on it, the verifier's gateway in front of the fake
//! OpenAI-compatible upstream.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256, U256};
use axum::http::StatusCode;
use obol_devstack::chain::{DEV_ACCOUNTS, Rpc, dev_address};
use obol_devstack::facilitator::{PaidChain, PaidChainTools, run_node_script};
use obol_devstack::llm::{LlmConfig, LlmServer};
use obol_testenv::repo_root;
use obol_testenv::tools::x402_peers;
use obol_verifier::facilitators::Facilitators;
use obol_verifier::{AppState, RouteEntry, RouteKey, RouteTable};
use obol_x402::permit2::UPTO_PROXY_ADDRESS;
use obol_x402::wire::{Permit2Authorization, Permitted, UptoPaymentPayload, UptoWitness};
use obol_x402::{HttpFacilitator, HttpFacilitatorConfig, PrivateKey, Requirement, codec};
use serde_json::{Value, json};

use super::{Answer, gateway, proxy_spec, read, send, test_config};

/// 0.15 USDC per million prompt tokens, 0.6 per million completion tokens (atomic units).
pub const IN_RATE: &str = "150000";
pub const OUT_RATE: &str = "600000";
/// The `exact` price and the no-usage fallback: 1000 tokens at the higher rate.
pub const FALLBACK: u64 = 600;
/// The `upto` maximum: 4000 tokens at the higher rate.
pub const MAXIMUM: u64 = 2400;
pub const PATH: &str = "/services/demo/v1/chat/completions";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub struct Live {
    pub rpc: Rpc,
    pub usdc: Address,
    pub payer: Address,
    pub seller: Address,
    pub gw: std::net::SocketAddr,
    /// The route's `exact` requirement.
    pub exact: Requirement,
    _llm: LlmServer,
    _chain: PaidChain,
    pub dir: PathBuf,
}

impl Live {
    pub async fn start() -> Self {
        let dir = obol_testenv::scratch_dir("gw-upto");
        let tools = PaidChainTools {
            anvil: obol_testenv::tools::anvil(),
            x402_peers: x402_peers(),
            repo: repo_root(),
        };
        let chain = PaidChain::start(&tools, &dir, U256::from(10_000_000u64), true)
            .await
            .unwrap();
        let (rpc, usdc, payer) = (chain.rpc().clone(), chain.usdc, chain.payer);
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
        let exact = route.requirement.clone().unwrap();
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
        Self {
            rpc,
            usdc,
            payer,
            seller,
            gw,
            exact,
            _llm: llm,
            _chain: chain,
            dir,
        }
    }

    pub async fn balances(&self) -> (U256, U256) {
        (
            self.rpc.balance_of(self.usdc, self.payer).await.unwrap(),
            self.rpc.balance_of(self.usdc, self.seller).await.unwrap(),
        )
    }

    pub async fn post(&self, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        read(send(self.gw, "POST", PATH, &all, body.to_string().into_bytes()).await).await
    }

    /// The 402 of the route, decoded from `PAYMENT-REQUIRED`.
    pub async fn required(&self) -> Value {
        let r = self.post(&chat("hello", 1, false, None), &[]).await;
        assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text());
        let header = r.header("payment-required").unwrap();
        serde_json::to_value(codec::decode_payment_required(header).unwrap()).unwrap()
    }

    /// The official client's `upto` payment for `required`, as a `PAYMENT-SIGNATURE` value.
    pub async fn sign(&self, required: &Value) -> String {
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

    /// An `upto` payment for the route's maximum signed here (obol-x402's Permit2 signing,
    /// which the test above checks against the official client): fast enough for many requests.
    pub fn sign_here(&self, nonce: u64) -> String {
        let key: PrivateKey = DEV_ACCOUNTS[1].1.parse().unwrap();
        let auth = Permit2Authorization {
            from: self.payer,
            permitted: Permitted {
                token: self.usdc,
                amount: U256::from(MAXIMUM),
            },
            spender: UPTO_PROXY_ADDRESS,
            nonce: U256::from(nonce) | (U256::from(now()) << 64),
            deadline: now() + 600,
            witness: UptoWitness {
                to: self.seller,
                facilitator: dev_address(0),
                valid_after: 0,
            },
        };
        let payload = obol_x402::permit2::sign_payload(&key, 84_532, auth).unwrap();
        let upto = obol_x402::verify::UptoRequirement {
            base: Requirement {
                amount: U256::from(MAXIMUM),
                ..self.exact.clone()
            },
            facilitator: dev_address(0),
        };
        let payment = UptoPaymentPayload {
            x402_version: obol_x402::wire::V2Tag::default(),
            resource: None,
            accepted: upto.to_v2(),
            payload,
            extensions: None,
        };
        codec::encode_header(&payment).unwrap()
    }

    /// An `exact` payment of the route's price (EIP-3009), signed here.
    pub fn sign_exact(&self, nonce: u64) -> String {
        let key: PrivateKey = DEV_ACCOUNTS[1].1.parse().unwrap();
        let auth = obol_x402::wire::Authorization {
            from: self.payer,
            to: self.exact.pay_to,
            value: self.exact.amount,
            valid_after: 0,
            valid_before: now() + 600,
            nonce: B256::from(U256::from(nonce) | (U256::from(now()) << 64)),
        };
        self.exact.signed_v2_header(&key, auth).unwrap()
    }

    /// Pays for `body`, reads the answer whole, and returns it with the on-chain movement
    /// (payer's loss, seller's gain).
    pub async fn paid(&self, required: &Value, body: &Value) -> (Answer, U256, U256) {
        let pay = self.sign(required).await;
        let (payer, seller) = self.balances().await;
        let r = self.post(body, &[("payment-signature", &pay)]).await;
        let (payer_after, seller_after) = self.balances().await;
        (r, payer - payer_after, seller_after - seller)
    }
}

/// A chat request: `words` prompt words, `max_tokens` completion tokens.
pub fn chat(prompt: &str, max_tokens: u64, stream: bool, model: Option<&str>) -> Value {
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

/// The metering report a receipt carries (`extensions.metering`).
pub fn report(receipt: Option<&str>) -> Value {
    let settle = codec::decode_settle_response(receipt.expect("a receipt")).unwrap();
    let ext = settle.extensions.expect("receipt extensions");
    ext[obol_api::metering::RECEIPT_EXTENSION].clone()
}

/// The settled amount a receipt states.
pub fn amount(receipt: Option<&str>) -> String {
    let settle = codec::decode_settle_response(receipt.expect("a receipt")).unwrap();
    assert!(settle.success, "{settle:?}");
    settle.amount.unwrap_or_default()
}
