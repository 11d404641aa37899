//! The start-up chain check: `authorizationState` against a loopback JSON-RPC stub, and
//! Permit2's nonce bitmap on a real anvil; an upto item is sent only to a seller settling
//! through the facilitator its witness names.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use common::*;
use serde_json::{Value, json};

/// Answers `eth_chainId` with Base Sepolia and `eth_call` batches with whether the nonce (the
/// last ABI word of the call data) is in `used`.
async fn spawn_rpc(used: HashSet<String>) -> String {
    async fn rpc(
        State(used): State<Arc<HashSet<String>>>,
        body: axum::Json<Value>,
    ) -> axum::Json<Value> {
        let answer = |req: &Value| -> Value {
            match req["method"].as_str().unwrap() {
                "eth_chainId" => json!({"jsonrpc":"2.0","id":req["id"],"result":"0x14a34"}),
                "eth_call" => {
                    assert_eq!(req["params"][0]["to"], USDC_BASE_SEPOLIA);
                    let data = req["params"][0]["data"].as_str().unwrap();
                    assert!(data.starts_with("0xe94a0102"));
                    let nonce = format!("0x{}", &data[data.len() - 64..]);
                    let bit = u8::from(used.contains(&nonce));
                    json!({"jsonrpc":"2.0","id":req["id"],"result":format!("0x{bit:064x}")})
                }
                m => panic!("unexpected {m}"),
            }
        };
        match &body.0 {
            // Answer batches in reverse order: ids, not positions, identify answers.
            Value::Array(reqs) => axum::Json(Value::Array(reqs.iter().rev().map(answer).collect())),
            single => axum::Json(answer(single)),
        }
    }
    let app = Router::new().fallback(rpc).with_state(Arc::new(used));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn used_authorizations_are_recorded_before_any_request() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("chain");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "s", &cfg, &fake_auths(0, 250));
    let other = upstream_json(&seller.url(""), None, "base", USDC_BASE);
    write_upstream(&dir, "other-chain", &other, &fake_auths(1000, 3));
    let used: HashSet<String> = [0, 1, 2, 150, 249].into_iter().map(nonce).collect();
    let rpc = spawn_rpc(used.clone()).await;
    let t = mk_buyer_with(&dir, 0, std::slice::from_ref(&rpc)).await;
    assert_eq!(t.buyer.check_chain().await, 5);
    let s = status(&t.app).await;
    assert_eq!(
        (s["s"]["remaining"].clone(), s["s"]["spent"].clone()),
        (json!(245), json!(5))
    );
    assert_eq!(s["other-chain"]["spent"], 0, "other chains are not checked");
    // The first paid request goes straight to an unused authorization (max_heal = 0).
    let (code, _, _) = call(&t.app, Method::POST, "/upstream/s/x", None).await;
    assert_eq!(code, 200);
    assert_eq!(
        seller
            .state
            .duplicates
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // And the marks are durable.
    t.buyer.flush().await;
    drop(t);
    let t = mk_buyer(&dir, 0).await;
    let s = status(&t.app).await;
    assert_eq!(
        (s["s"]["spent"].clone(), s["s"]["healed"].clone()),
        (json!(6), json!(5))
    );
}

alloy::sol! {
    function invalidateUnorderedNonces(uint256 wordPos, uint256 mask) external;
}

/// The Permit2 check on a real chain: anvil with the repository's test Permit2 at the
/// canonical address. A payer invalidates two nonces (in two words); the chain reader says
/// exactly those are used, and a neighbour bit of the same word is not; a buyer that lost its
/// state heals an upto pool signed with them before its first request.
#[tokio::test]
async fn upto_nonces_are_read_from_permit2_on_a_real_chain() {
    use alloy::sol_types::SolCall as _;
    use obol_buyer::chain::{NonceQuery, Rpc};
    use obol_x402::U256;

    let dir = temp_dir("permit2-chain");
    let anvil =
        obol_devstack::chain::Anvil::start(&obol_testenv::tools::anvil(), &dir.join("anvil.log"))
            .await
            .unwrap();
    anvil
        .rpc()
        .install_upto_permit2(&obol_testenv::repo_root().join("contracts"))
        .await
        .unwrap();
    let owner = obol_devstack::chain::dev_address(1);
    assert_eq!(upto_key().address(), owner);
    let low = U256::from((5u32 << 8) | 3);
    let neighbour = U256::from((5u32 << 8) | 4);
    let high = U256::MAX - U256::from(1u8);
    for nonce in [low, high] {
        let data = invalidateUnorderedNoncesCall {
            wordPos: nonce >> 8,
            mask: U256::from(1u8) << usize::from(nonce.byte(0)),
        }
        .abi_encode();
        anvil
            .rpc()
            .transact(owner, Some(obol_x402::permit2::PERMIT2_ADDRESS), &data)
            .await
            .unwrap();
    }
    let q = |owner, nonce| NonceQuery::Permit2 { owner, nonce };
    let other = obol_devstack::chain::dev_address(2);
    let reader = Rpc::new(reqwest::Client::new(), anvil.rpc().url());
    let used = reader
        .used(
            obol_x402::Address::ZERO,
            &[
                q(owner, low),
                q(owner, neighbour),
                q(owner, high),
                q(other, low),
                q(owner, U256::from(3u8)),
            ],
        )
        .await
        .unwrap();
    assert_eq!(used, [true, false, true, false, false]);

    // A buyer whose journal knows nothing of an upto pool signed with these nonces asks the
    // chain at start-up and never sends the two used ones.
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let mut cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    cfg["scheme"] = json!("upto");
    cfg["price"] = json!("2400");
    let facilitator = obol_devstack::chain::dev_address(0);
    let items: Vec<Value> = [low, neighbour, high, U256::from(3u8)]
        .into_iter()
        .map(|n| upto_item(n, facilitator))
        .collect();
    write_upstream(&dir, "llm", &cfg, &items);
    let t = mk_buyer_with(&dir, 0, &[anvil.rpc().url().to_owned()]).await;
    assert_eq!(t.buyer.check_chain().await, 2);
    let s = status(&t.app).await;
    assert_eq!(
        (s["llm"]["remaining"].clone(), s["llm"]["spent"].clone()),
        (json!(2), json!(2)),
        "{s}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Anvil dev key #1 (public, test-only): the payer of the upto items.
fn upto_key() -> obol_x402::PrivateKey {
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
        .parse()
        .unwrap()
}

/// A Permit2 witness authorization (upto) for 2400 of Base Sepolia USDC to [`PAY_TO`],
/// settleable only by `facilitator`, in the pool's item format.
fn upto_item(nonce: obol_x402::U256, facilitator: obol_x402::Address) -> Value {
    let key = upto_key();
    let authorization = obol_x402::wire::Permit2Authorization {
        from: key.address(),
        permitted: obol_x402::wire::Permitted {
            token: USDC_BASE_SEPOLIA.parse().unwrap(),
            amount: obol_x402::U256::from(2400u64),
        },
        spender: obol_x402::permit2::UPTO_PROXY_ADDRESS,
        nonce,
        deadline: 4_294_967_295,
        witness: obol_x402::wire::UptoWitness {
            to: PAY_TO.parse().unwrap(),
            facilitator,
            valid_after: 0,
        },
    };
    let payload = obol_x402::permit2::sign_payload(&key, 84_532, authorization).unwrap();
    json!({"id": nonce.to_string(), "payment": {"x402Version": 2, "payload": payload}})
}

/// A seller whose upto requirement matches the purchase's terms but names another facilitator
/// than the one the items were signed for: the buyer refuses locally, sends no authorization,
/// and the one it took is free again.
#[tokio::test]
async fn an_upto_item_is_never_sent_to_a_seller_settling_through_another_facilitator() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let payments = Arc::new(AtomicUsize::new(0));
    let other = obol_devstack::chain::dev_address(2);
    let requirement = json!({"x402Version": 2, "resource": {"url": "http://seller/x"},
        "accepts": [{"scheme": "upto", "network": "eip155:84532", "amount": "2400",
            "asset": USDC_BASE_SEPOLIA, "payTo": PAY_TO, "maxTimeoutSeconds": 60,
            "extra": {"assetTransferMethod": "permit2", "facilitatorAddress": other.to_checksum(None)}}]});
    let header = obol_x402::codec::encode_header(&requirement).unwrap();
    let seen = payments.clone();
    let app = Router::new().fallback(move |req: axum::extract::Request| {
        let seen = seen.clone();
        let header = header.clone();
        async move {
            if req.headers().contains_key("payment-signature") {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            (
                axum::http::StatusCode::PAYMENT_REQUIRED,
                [("PAYMENT-REQUIRED", header)],
                "{}",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = temp_dir("upto-facilitator");
    let mut cfg = upstream_json(
        &format!("http://{addr}"),
        None,
        "base-sepolia",
        USDC_BASE_SEPOLIA,
    );
    cfg["scheme"] = json!("upto");
    cfg["price"] = json!("2400");
    let signed_for = obol_devstack::chain::dev_address(0);
    let items: Vec<Value> = (1..=2u8)
        .map(|n| upto_item(obol_x402::U256::from(n), signed_for))
        .collect();
    write_upstream(&dir, "llm", &cfg, &items);
    let t = mk_buyer(&dir, 0).await;
    let (code, _, body) = call(
        &t.app,
        Method::POST,
        "/upstream/llm/v1/chat/completions",
        None,
    )
    .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, axum::http::StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["reason"], "seller_terms_changed", "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "settles through facilitator {}",
            other.to_checksum(None)
        )) && error.contains(&format!("signed for {}", signed_for.to_checksum(None))),
        "{error}"
    );
    assert_eq!(
        payments.load(Ordering::SeqCst),
        0,
        "no authorization was sent"
    );
    let s = status(&t.app).await;
    assert_eq!(
        (
            s["llm"]["remaining"].clone(),
            s["llm"]["held"].clone(),
            s["llm"]["spent"].clone()
        ),
        (json!(2), json!(0), json!(0)),
        "{s}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
