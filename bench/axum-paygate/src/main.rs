//! `axum-paygate-bench LISTEN`: GET /paid/… behind x402-axum at 0.001 USDC on Base Sepolia,
//! with an in-process stub facilitator answering `/supported` (the unpaid path never settles).

use alloy_primitives::address;
use axum::Router;
use axum::routing::get;
use x402_axum::X402Middleware;
use x402_chain_eip155::{KnownNetworkEip155, V1Eip155Exact};
use x402_types::networks::USDC;

#[tokio::main]
async fn main() {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18090".into());
    let stub = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("stub port");
    let stub_url = format!("http://{}/", stub.local_addr().expect("stub addr"));
    let supported = serde_json::json!({"kinds": [
        {"x402Version": 1, "scheme": "exact", "network": "base-sepolia"},
        {"x402Version": 2, "scheme": "exact", "network": "eip155:84532"}
    ], "extensions": [], "signers": {}});
    let stub_app = Router::new().route("/supported", get(move || async move { axum::Json(supported) }));
    tokio::spawn(async move { axum::serve(stub, stub_app).await.expect("stub serves") });

    let x402 = X402Middleware::new(&stub_url);
    let price = V1Eip155Exact::price_tag(
        address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        USDC::base_sepolia().parse("0.001").expect("price"),
    );
    let app = Router::new().route("/paid/{*rest}", get(|| async { "paid content" }).layer(x402.with_price_tag(price)));
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("listen");
    println!("listening on http://{listen}");
    axum::serve(listener, app).await.expect("serves");
}
