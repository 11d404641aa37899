//! Our x402 core against the official reference facilitator on a real chain: payments signed by
//! obol-x402 verify and settle, funds move, and a replayed authorization is refused. This is
//! the interoperability proof for the signing code the buyer and the verifier share.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use obol_devstack::chain::{Anvil, DEV_ACCOUNTS, dev_address};
use obol_devstack::facilitator::ReferenceFacilitator;
use obol_testenv::repo_root;
use obol_testenv::tools::{anvil, x402_peers};
use obol_x402::chain::Network;
use obol_x402::eip3009::sign_payload;
use obol_x402::facilitator::{
    Facilitator, FacilitatorError, HttpFacilitator, HttpFacilitatorConfig, Meaning, meaning,
    meaning_with_proven_signature,
};
use obol_x402::verify::SignatureCheck;
use obol_x402::wire::{Authorization, PaymentPayload, ResourceInfo};
use obol_x402::{PrivateKey, Requirement};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn payload(req: &Requirement, payer_key: &PrivateKey, nonce: u8, v1: bool) -> PaymentPayload {
    let authorization = Authorization {
        from: payer_key.address(),
        to: req.pay_to,
        value: req.amount,
        valid_after: 0,
        valid_before: now() + 300,
        nonce: B256::repeat_byte(nonce),
    };
    let signed = sign_payload(payer_key, &req.domain(), authorization).unwrap();
    let resource = resource_info();
    let json = if v1 {
        serde_json::json!({"x402Version": 1, "scheme": "exact", "network": "base-sepolia", "payload": signed})
    } else {
        serde_json::json!({"x402Version": 2, "resource": resource, "accepted": req.to_v2(), "payload": signed})
    };
    serde_json::from_value(json).unwrap()
}

#[tokio::test]
async fn reference_facilitator_settles_our_signatures_once() {
    let dir = tempdir();
    let anvil = Anvil::start(&anvil(), &dir.join("anvil.log"))
        .await
        .unwrap();
    let rpc = anvil.rpc();
    // The test USDC at Base Sepolia's canonical USDC address: the chain table applies unchanged.
    let network = Network::resolve("base-sepolia").unwrap();
    let usdc = network.usdc.as_ref().unwrap().address;
    let contracts = repo_root().join("contracts");
    rpc.install_test_usdc_at(&contracts, usdc, "USDC", "2")
        .await
        .unwrap();
    // A second, ordinary deployment still works (for tests that want their own token).
    let other = rpc.deploy_test_usdc(&contracts, "USDC", "2").await.unwrap();
    assert_ne!(other, usdc);
    let payer_key: PrivateKey = DEV_ACCOUNTS[1].1.parse().unwrap();
    let pay_to = dev_address(2);
    rpc.mint(usdc, payer_key.address(), U256::from(10_000_000u64))
        .await
        .unwrap();
    let peers = x402_peers();
    let script = repo_root().join("tools/x402-peers/facilitator.cjs");
    let facilitator = ReferenceFacilitator::start(
        &peers,
        &script,
        rpc.url(),
        DEV_ACCOUNTS[0].1,
        &dir.join("facilitator.log"),
    )
    .await
    .unwrap();
    let client = HttpFacilitator::new(HttpFacilitatorConfig::new(
        facilitator.url().parse().unwrap(),
    ))
    .unwrap();
    let supported = client.supported().await.unwrap();
    assert!(!supported.kinds.is_empty());

    let req = Requirement::usdc(network, pay_to, U256::from(1000u64), 300).unwrap();
    let resource = resource_info();

    for (nonce, v1) in [(1u8, false), (2u8, true)] {
        let before = rpc.balance_of(usdc, pay_to).await.unwrap();
        let request = req
            .facilitator_request(payload(&req, &payer_key, nonce, v1), &resource)
            .unwrap();
        client
            .verify(&request)
            .await
            .unwrap_or_else(|e| panic!("v1={v1}: verify: {e}"));
        let settled = client
            .settle(&request)
            .await
            .unwrap_or_else(|e| panic!("v1={v1}: settle: {e}"));
        assert!(
            settled.transaction().is_some_and(|tx| tx.starts_with("0x")),
            "{settled:?}"
        );
        let after = rpc.balance_of(usdc, pay_to).await.unwrap();
        assert_eq!(
            after - before,
            U256::from(1000u64),
            "v1={v1}: the seller got exactly the price"
        );

        // The same authorization again: the nonce is used on chain, settlement is refused,
        // and the official facilitator's own wording reads as "already used" at both calls.
        let replay = client.settle(&request).await.unwrap_err();
        assert!(
            matches!(replay, FacilitatorError::Rejected { .. }),
            "v1={v1}: {replay}"
        );
        assert_eq!(meaning(&replay), Meaning::AlreadyUsed, "v1={v1}: {replay}");
        let reverify = client.verify(&request).await.unwrap_err();
        // Its v1 scheme says only "simulation failed", without the revert's words (its
        // diagnosis needs Multicall3, which a bare anvil lacks): refused, never "unavailable".
        let want = if v1 {
            Meaning::Refused
        } else {
            Meaning::AlreadyUsed
        };
        assert_eq!(meaning(&reverify), want, "v1={v1}: {reverify}");
        assert_eq!(rpc.balance_of(usdc, pay_to).await.unwrap(), after);
    }

    // A signature whose v is 0/1 (y-parity form): the local check proves it after rewriting v
    // to 27/28, and only the rewritten one settles (the token's (v, r, s) entry point takes
    // nothing else); the raw one is refused before anything is sent.
    let mut parity = payload(&req, &payer_key, 4, false);
    let last = parity.exact().signature.len() - 1;
    let mut raw = parity.exact().signature.to_vec();
    raw[last] -= 27;
    parity.exact_mut().signature = raw.into();
    let checked = obol_x402::verify_payment(&req, &parity, now()).unwrap();
    assert!(matches!(
        checked.signature,
        SignatureCheck::ProvenNormalized(_)
    ));
    let raw_request = req.facilitator_request(parity.clone(), &resource).unwrap();
    let before = rpc.balance_of(usdc, pay_to).await.unwrap();
    if let Err(refused) = client.settle(&raw_request).await {
        assert_ne!(meaning(&refused), Meaning::SettleUnknown, "{refused}");
    } else {
        panic!("the token took a v of 0/1: the normalisation proves nothing here");
    }
    assert_eq!(rpc.balance_of(usdc, pay_to).await.unwrap(), before);
    checked.normalize(&mut parity);
    let request = req.facilitator_request(parity, &resource).unwrap();
    client.verify(&request).await.unwrap();
    client.settle(&request).await.unwrap();
    assert_eq!(
        rpc.balance_of(usdc, pay_to).await.unwrap() - before,
        U256::from(1000u64)
    );

    // A signature for another token (wrong domain) is refused and moves nothing.
    let mut wrong = req.clone();
    wrong.asset = Address::repeat_byte(0x11);
    assert_ne!(wrong.asset, usdc);
    let signed_for_wrong = payload(&wrong, &payer_key, 3, false);
    let request = req
        .facilitator_request(signed_for_wrong, &resource)
        .unwrap();
    let before = rpc.balance_of(usdc, pay_to).await.unwrap();
    assert!(client.verify(&request).await.is_err());
    assert_eq!(rpc.balance_of(usdc, pay_to).await.unwrap(), before);

    // The facilitator's chain goes away: it cannot check, whatever code it answers with. A
    // signature proven here makes that "unavailable" (503, nothing burned), never the payer's.
    let request = req
        .facilitator_request(payload(&req, &payer_key, 5, false), &resource)
        .unwrap();
    drop(anvil);
    let down = client.verify(&request).await.unwrap_err();
    assert_eq!(
        meaning_with_proven_signature(&down),
        Meaning::Unavailable,
        "{down} ({:?})",
        down.facilitator_words()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn resource_info() -> ResourceInfo {
    serde_json::from_value(serde_json::json!({"url": "http://127.0.0.1/services/demo"})).unwrap()
}

fn tempdir() -> std::path::PathBuf {
    obol_testenv::scratch_dir("interop")
}
