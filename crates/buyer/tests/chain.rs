//! The start-up `authorizationState` check against a loopback JSON-RPC stub.

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
