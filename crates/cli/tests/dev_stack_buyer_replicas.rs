//! The local stack with three buyer replicas (`obol dev up --buyer-replicas 3`), real parts
//! throughout: the replicas run as the buyer StatefulSet's pods would (`--replica`, the
//! StatefulSet object of `deploy/buyer-statefulset` with `spec.replicas: 3` and its Role in
//! namespace `demo`), and `up` returns once each holds its share of the demo purchase. Each
//! replica pays from its own share (the seller is paid on chain once per request), `obol buy
//! status` lists the three shares, `obol dev status` the three addresses, and every "Try" line
//! the stack prints works in a new shell (the check of `dev_stack.rs`). The stack is stopped at
//! the end, on failure too (a guard).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use obol_devstack::chain::Rpc;
use obol_devstack::stack::{DEMO_PRICE_ATOMIC, recorded};
use obol_x402::U256;

#[allow(dead_code, reason = "this binary uses some of the checks")]
mod dev_stack_features;

use dev_stack_features::{Stack, obol, text};

const REPLICAS: usize = 3;

#[tokio::test]
async fn three_buyer_replicas_each_pay_from_their_share() {
    let stack = Stack::up("dev-buyers", &["--buyer-replicas", &REPLICAS.to_string()]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let state = recorded(&stack.run).unwrap();
    assert_eq!(state.buyers.len(), REPLICAS, "{:?}", state.buyers);
    assert_eq!(
        state.buyer_url, state.buyers[0],
        "OBOL_BUYER_URL is replica 0"
    );

    let rpc = Rpc::new(stack.var("OBOL_RPC_URL"));
    let usdc = stack.var("OBOL_USDC_ADDRESS").parse().unwrap();
    let seller = stack.var("OBOL_SELLER_ADDRESS").parse().unwrap();
    let before = rpc.balance_of(usdc, seller).await.unwrap();
    for url in &state.buyers {
        let r = http
            .get(format!("{url}/upstream/demo/hello"))
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(status, 200, "{url}: {}", r.text().await.unwrap_or_default());
    }
    assert_eq!(
        rpc.balance_of(usdc, seller).await.unwrap() - before,
        U256::from(DEMO_PRICE_ATOMIC * REPLICAS as u64),
        "each replica's request paid once"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(["buy", "status", "demo", "-n", "demo"])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for share in [
        "replica x402-buyer-0 slots [0,3,6,9]",
        "replica x402-buyer-1 slots [1,4,7,10]",
        "replica x402-buyer-2 slots [2,5,8,11]",
    ] {
        assert!(said.contains(share), "no {share:?} in\n{said}");
    }
    let out = obol(&stack.run, &["dev", "status"]);
    let said = text(&out);
    for url in &state.buyers {
        assert!(said.contains(url.as_str()), "no {url} in\n{said}");
    }

    dev_stack_features::try_lines_work_in_a_new_shell(&stack, &http).await;
}
