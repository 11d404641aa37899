//! Metered billing (`upto`) with real parts: anvil with the test USDC and our test Permit2 and
//! upto proxy at their canonical addresses, the official TypeScript facilitator (its `upto`
//! scheme registered) settling on it, the official client signing, the verifier's gateway in
//! front of the fake OpenAI-compatible upstream. Each answer moves exactly
//! `⌈(prompt × 0.15 + completion × 0.6) USDC ÷ 10⁶⌉` (atomic units) on chain, read as balance
//! deltas; an answer without usage moves the declared fallback; `exact` moves the fallback; an
//! upstream error moves nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod gateway_support;
mod support;

use alloy_primitives::U256;
use axum::http::StatusCode;
use gateway_support::metered::*;
use obol_devstack::chain::dev_address;
use serde_json::json;

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
    let used = report(r.header("payment-response"));
    assert_eq!(
        (
            &used["basis"],
            &used["inputTokens"],
            &used["outputTokens"],
            &used["capped"]
        ),
        (&json!("usage"), &json!(5), &json!(100), &json!(false)),
        "{used}"
    );
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
    let capped = report(r.header("payment-response"));
    assert_eq!(capped["capped"], true, "{capped}");
    assert_eq!(capped["outputTokens"], 5000, "{capped}");
    assert_eq!(paid, U256::from(MAXIMUM));

    // No usage in the answer: the declared fallback, not the maximum.
    let (r, paid, got) = live
        .paid(&required, &chat("a b", 10, false, Some("fake-no-usage")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(amount(r.header("payment-response")), FALLBACK.to_string());
    assert_eq!(report(r.header("payment-response"))["basis"], "fallback");
    assert_eq!((paid, got), (U256::from(FALLBACK), U256::from(FALLBACK)));

    // A payment signed by obol-x402's Permit2 signing (what the benchmark uses) settles alike:
    // 2 + 10 tokens = ⌈6.3⌉.
    let (payer, seller) = live.balances().await;
    let pay = live.sign_here(1);
    let r = live
        .post(
            &chat("a b", 10, false, None),
            &[("payment-signature", &pay)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(amount(r.header("payment-response")), "7");
    let (payer_after, seller_after) = live.balances().await;
    assert_eq!(
        (payer - payer_after, seller_after - seller),
        (U256::from(7u64), U256::from(7u64))
    );

    // Refused without anything moving: the same payment again (its nonce is spent), and a
    // payment whose recipient was rewritten after signing (a local check refuses it).
    let before = live.balances().await;
    let r = live
        .post(
            &chat("a b", 10, false, None),
            &[("payment-signature", &pay)],
        )
        .await;
    assert_ne!(r.status, StatusCode::OK, "a replay: {}", r.text());
    let mut forged: serde_json::Value =
        serde_json::from_slice(&obol_x402::codec::decode_base64(&live.sign_here(3)).unwrap())
            .unwrap();
    forged["payload"]["permit2Authorization"]["witness"]["to"] =
        serde_json::json!(dev_address(3).to_checksum(None));
    let forged = obol_x402::codec::encode_header(&forged).unwrap();
    let r = live
        .post(
            &chat("a b", 10, false, None),
            &[("payment-signature", &forged)],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text());
    assert_eq!(live.balances().await, before);

    // exact on the metered route, for clients without upto: the fallback price, whatever the
    // answer used.
    let (payer, seller) = live.balances().await;
    let pay = live.sign_exact(2);
    let r = live
        .post(
            &chat("a b c d", 3000, false, None),
            &[("payment-signature", &pay)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (payer_after, seller_after) = live.balances().await;
    assert_eq!(
        (payer - payer_after, seller_after - seller),
        (U256::from(FALLBACK), U256::from(FALLBACK))
    );

    // The upstream fails: passed through, nothing moves.
    let (r, paid, got) = live
        .paid(&required, &chat("a b", 10, false, Some("fake-error-500")))
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert_eq!(r.header("x-payment-settled"), Some("false"));
    assert_eq!((paid, got), (U256::ZERO, U256::ZERO));

    let _ = std::fs::remove_dir_all(&live.dir);
}

/// An unmodified `@x402/fetch` with `@x402/evm`'s `upto` client (`tools/x402-peers/pay.cjs`,
/// schemes `upto,exact`) pays a metered chat completion through the gateway: it picks `upto`
/// (the 402's first requirement), the transfer on chain is exactly
/// `⌈(3 × 150000 + 40 × 600000) ÷ 10⁶⌉ = ⌈24.45⌉ = 25` atomic units, and the receipt the
/// client decodes says 25 with the token counts. The client registered with `exact` only pays
/// the fallback on the same route. A streamed answer is charged its usage too.
#[tokio::test]
async fn official_fetch_client_pays_upto_per_token() {
    let live = Live::start().await;
    let url = format!("http://{}{PATH}", live.gw);
    let pay = |schemes: &'static str, body: serde_json::Value| {
        let url = url.clone();
        async move {
            let out = tokio::process::Command::new("node")
                .arg(obol_testenv::repo_root().join("tools/x402-peers/pay.cjs"))
                .arg(&url)
                .arg(body.to_string())
                .env(
                    "NODE_PATH",
                    obol_testenv::tools::x402_peers().join("node_modules"),
                )
                .env("BUYER_KEY", obol_devstack::chain::DEV_ACCOUNTS[1].1)
                .env("SCHEMES", schemes)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "pay.cjs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        }
    };

    let (payer, seller) = live.balances().await;
    let line = pay("upto,exact", chat("one two three", 40, false, None)).await;
    assert_eq!(line["status"], 200, "{line}");
    let sent: serde_json::Value = serde_json::from_slice(
        &obol_x402::codec::decode_base64(line["sent"]["value"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(sent["accepted"]["scheme"], "upto", "{sent}");
    assert_eq!(sent["accepted"]["amount"], MAXIMUM.to_string(), "{sent}");
    let (payer_after, seller_after) = live.balances().await;
    assert_eq!(
        (payer - payer_after, seller_after - seller),
        (U256::from(25u64), U256::from(25u64))
    );
    let receipt = &line["receipt"]["PAYMENT-RESPONSE"];
    assert_eq!(receipt["success"], true, "{line}");
    assert_eq!(receipt["amount"], "25", "{receipt}");
    let used = &receipt["extensions"][obol_api::metering::RECEIPT_EXTENSION];
    assert_eq!(
        (&used["basis"], &used["inputTokens"], &used["outputTokens"]),
        (&json!("usage"), &json!(3), &json!(40)),
        "{receipt}"
    );
    // The transaction the receipt names is the one transfer of 25 from the payer to the seller.
    let tx = live
        .rpc
        .call(
            "eth_getTransactionReceipt",
            json!([receipt["transaction"].as_str().unwrap()]),
        )
        .await
        .unwrap();
    let transfer = alloy_primitives::keccak256("Transfer(address,address,uint256)");
    let word =
        |a: alloy_primitives::Address| alloy_primitives::B256::left_padding_from(a.as_slice());
    let transfers: Vec<(String, String, U256)> = tx["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["address"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(&live.usdc.to_string())
                && l["topics"][0] == json!(transfer.to_string())
        })
        .map(|l| {
            (
                l["topics"][1].as_str().unwrap().to_owned(),
                l["topics"][2].as_str().unwrap().to_owned(),
                l["data"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        transfers,
        [(
            word(live.payer).to_string(),
            word(live.seller).to_string(),
            U256::from(25u64)
        )],
        "{tx}"
    );

    // Streamed (SSE), the client not asking for usage: the gateway asks for it and settles
    // the stream's usage, 3 + 50 tokens = ⌈30.45⌉ = 31. The receipt is a trailer, which the
    // fetch API does not expose: the client sees none, the chain moved exactly 31.
    let (payer, seller) = live.balances().await;
    let line = pay("upto,exact", chat("a b c", 50, true, None)).await;
    assert_eq!(line["status"], 200, "{line}");
    assert!(
        line["body"].as_str().unwrap().ends_with("data: [DONE]\n\n"),
        "{line}"
    );
    assert_eq!(line["receipt"], json!({}), "{line}");
    let (payer_after, seller_after) = live.balances().await;
    assert_eq!(
        (payer - payer_after, seller_after - seller),
        (U256::from(31u64), U256::from(31u64))
    );

    // A client with exact only: the same route, the fallback price.
    let (payer, seller) = live.balances().await;
    let line = pay("exact", chat("one two three", 40, false, None)).await;
    assert_eq!(line["status"], 200, "{line}");
    let (payer_after, seller_after) = live.balances().await;
    assert_eq!(
        (payer - payer_after, seller_after - seller),
        (U256::from(FALLBACK), U256::from(FALLBACK))
    );

    let _ = std::fs::remove_dir_all(&live.dir);
}
