//! The `upto` scheme end to end on a real chain, with our test Permit2 and upto proxy at their
//! canonical addresses: the official `@x402/evm` client signs, the official facilitator (its
//! `upto` scheme registered) verifies and settles a chosen amount up to the signed maximum, and
//! exactly that amount moves. The same signatures recover locally with obol-x402's Permit2
//! hashing. If the official parts refuse our contracts, the contracts are wrong.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use alloy::primitives::{Address, U256};
use alloy::sol_types::{SolCall, SolError};
use obol_devstack::chain::{DEV_ACCOUNTS, Rpc, dev_address};
use obol_devstack::facilitator::{PaidChain, PaidChainTools, run_node_script};
use obol_testenv::repo_root;
use obol_testenv::tools::x402_peers;
use obol_x402::permit2::{self, PERMIT2_ADDRESS, UPTO_PROXY_ADDRESS};
use obol_x402::wire::{SCHEME_UPTO, UptoPaymentPayload};
use serde_json::{Value, json};

alloy::sol! {
    struct TokenPermissions { address token; uint256 amount; }
    struct PermitTransferFrom { TokenPermissions permitted; uint256 nonce; uint256 deadline; }
    struct Witness { address to; address facilitator; uint256 validAfter; }
    function settle(PermitTransferFrom permit, uint256 amount, address owner, Witness witness, bytes signature);
    function nonceBitmap(address owner, uint256 word) returns (uint256);
    function invalidateUnorderedNonces(uint256 wordPos, uint256 mask);
    error UnauthorizedFacilitator();
    error AmountExceedsPermitted();
    error InvalidNonce();
    error InvalidSigner();
    error SignatureExpired(uint256 signatureDeadline);
}

const MAX: u64 = 50_000;

struct Setup {
    chain: PaidChain,
    rpc: Rpc,
    facilitator_address: Address,
    usdc: Address,
    payer: Address,
    pay_to: Address,
    http: reqwest::Client,
    dir: std::path::PathBuf,
}

async fn setup() -> Setup {
    let dir = obol_testenv::scratch_dir("upto");
    let tools = PaidChainTools {
        anvil: obol_testenv::tools::anvil(),
        x402_peers: x402_peers(),
        repo: repo_root(),
    };
    let chain = PaidChain::start(&tools, &dir, U256::from(10_000_000u64), true)
        .await
        .unwrap();
    let (rpc, usdc, payer) = (chain.rpc().clone(), chain.usdc, chain.payer);
    // The one-time approval every Permit2 payer gives.
    assert_eq!(
        rpc.allowance(usdc, payer, PERMIT2_ADDRESS).await.unwrap(),
        U256::MAX
    );
    let http = reqwest::Client::new();
    let supported: Value = http
        .get(format!("{}/supported", chain.facilitator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kind = supported["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scheme"] == SCHEME_UPTO && k["network"] == "eip155:84532")
        .unwrap_or_else(|| panic!("no upto kind in {supported}"))
        .clone();
    let facilitator_address: Address = kind["extra"]["facilitatorAddress"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(facilitator_address, dev_address(0));
    Setup {
        chain,
        rpc,
        facilitator_address,
        usdc,
        payer,
        pay_to: dev_address(2),
        http,
        dir,
    }
}

impl Setup {
    /// The `upto` requirement as the official server would advertise it.
    fn requirement(&self, facilitator: Address) -> Value {
        json!({
            "scheme": "upto",
            "network": "eip155:84532",
            "amount": MAX.to_string(),
            "asset": self.usdc.to_checksum(None),
            "payTo": self.pay_to.to_checksum(None),
            "maxTimeoutSeconds": 300,
            "extra": {
                "name": "USDC",
                "version": "2",
                "assetTransferMethod": "permit2",
                "facilitatorAddress": facilitator.to_checksum(None),
            },
        })
    }

    /// The official client's payment for `requirement`.
    async fn sign(&self, requirement: &Value) -> Value {
        let required = json!({
            "x402Version": 2,
            "resource": {"url": "http://127.0.0.1/services/llm/v1/chat/completions"},
            "accepts": [requirement],
        });
        let out = run_node_script(
            &x402_peers(),
            &repo_root().join("tools/x402-peers/sign.cjs"),
            &[("BUYER_KEY", DEV_ACCOUNTS[1].1), ("SCHEMES", "upto")],
            required.to_string().as_bytes(),
        )
        .await
        .unwrap();
        serde_json::from_str(out.trim()).unwrap()
    }

    async fn post(&self, path: &str, payload: &Value, requirements: &Value) -> Value {
        let body = json!({
            "x402Version": 2,
            "paymentPayload": payload,
            "paymentRequirements": requirements,
        });
        let answer = self
            .http
            .post(format!("{}{path}", self.chain.facilitator.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        answer.json().await.unwrap()
    }

    async fn balances(&self) -> (U256, U256) {
        (
            self.rpc.balance_of(self.usdc, self.payer).await.unwrap(),
            self.rpc.balance_of(self.usdc, self.pay_to).await.unwrap(),
        )
    }

    /// `eth_call` of the proxy's `settle` from `from`: the revert data, if it reverts.
    async fn simulate_settle(
        &self,
        from: Address,
        payment: &UptoPaymentPayload,
        amount: U256,
    ) -> Option<String> {
        let a = &payment.payload.permit2_authorization;
        let data = settleCall {
            permit: PermitTransferFrom {
                permitted: TokenPermissions {
                    token: a.permitted.token,
                    amount: a.permitted.amount,
                },
                nonce: a.nonce,
                deadline: U256::from(a.deadline),
            },
            amount,
            owner: a.from,
            witness: Witness {
                to: a.witness.to,
                facilitator: a.witness.facilitator,
                validAfter: U256::from(a.witness.valid_after),
            },
            signature: payment.payload.signature.clone(),
        }
        .abi_encode();
        let call = json!([{"from": from, "to": UPTO_PROXY_ADDRESS, "data": hex(&data)}, "latest"]);
        match self.rpc.call("eth_call", call).await {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    }
}

#[tokio::test]
async fn official_client_and_facilitator_settle_upto_on_our_permit2_contracts() {
    let s = setup().await;
    let requirement = s.requirement(s.facilitator_address);
    let signed = s.sign(&requirement).await;

    // The official client's payload reads as our wire type, and its signature recovers to the
    // payer with our own Permit2 hashing.
    let payment: UptoPaymentPayload = serde_json::from_value(signed.clone()).unwrap();
    let auth = &payment.payload.permit2_authorization;
    assert_eq!(auth.spender, UPTO_PROXY_ADDRESS);
    assert_eq!(auth.permitted.amount, U256::from(MAX));
    assert_eq!(auth.witness.facilitator, s.facilitator_address);
    assert_eq!(
        permit2::recover_signer(84_532, auth, &payment.payload.signature).unwrap(),
        s.payer
    );

    // Our contracts, called directly: only the named facilitator may settle, never above the
    // signed maximum.
    let unauthorized = s
        .simulate_settle(dev_address(3), &payment, U256::from(1u64))
        .await
        .expect("a stranger's settle reverts");
    assert!(
        unauthorized.contains(&hex(&UnauthorizedFacilitator::SELECTOR)),
        "{unauthorized}"
    );
    let above = s
        .simulate_settle(s.facilitator_address, &payment, U256::from(MAX + 1))
        .await
        .expect("settling above the maximum reverts");
    assert!(
        above.contains(&hex(&AmountExceedsPermitted::SELECTOR)),
        "{above}"
    );
    let mut forged = payment.clone();
    forged.payload.permit2_authorization.witness.to = dev_address(3);
    let redirected = s
        .simulate_settle(s.facilitator_address, &forged, U256::from(1u64))
        .await
        .expect("a redirected witness reverts");
    assert!(
        redirected.contains(&hex(&InvalidSigner::SELECTOR)),
        "{redirected}"
    );

    // The facilitator verifies against the advertised maximum.
    let verified = s.post("/verify", &signed, &requirement).await;
    assert_eq!(verified["isValid"], true, "{verified}");
    assert_eq!(verified["payer"], s.payer.to_checksum(None));

    // ... and settles the metered amount: exactly that moves.
    let charge = 12_345u64;
    let mut settle_requirement = requirement.clone();
    settle_requirement["amount"] = json!(charge.to_string());
    let (payer_before, seller_before) = s.balances().await;
    let settled = s.post("/settle", &signed, &settle_requirement).await;
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["amount"], charge.to_string(), "{settled}");
    assert!(settled["transaction"].as_str().unwrap().starts_with("0x"));
    let (payer_after, seller_after) = s.balances().await;
    assert_eq!(payer_before - payer_after, U256::from(charge));
    assert_eq!(seller_after - seller_before, U256::from(charge));

    // The nonce's bit is set in the owner's bitmap; the same authorization cannot settle again.
    let word = auth.nonce >> 8;
    let bit = U256::from(1u64) << (auth.nonce & U256::from(0xffu64)).to::<usize>();
    let bitmap = s
        .rpc
        .call(
            "eth_call",
            json!([{"to": PERMIT2_ADDRESS, "data": hex(&nonceBitmapCall { owner: s.payer, word }.abi_encode())}, "latest"]),
        )
        .await
        .unwrap();
    let bitmap =
        U256::from_str_radix(bitmap.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(bitmap & bit, bit);
    let replay = s
        .simulate_settle(s.facilitator_address, &payment, U256::from(1u64))
        .await
        .expect("a used nonce reverts");
    assert!(replay.contains(&hex(&InvalidNonce::SELECTOR)), "{replay}");
    let again = s.post("/settle", &signed, &settle_requirement).await;
    assert_eq!(again["success"], false, "{again}");
    assert_eq!(s.balances().await, (payer_after, seller_after));

    // A fresh authorization: settling above its maximum is refused and moves nothing.
    let second = s.sign(&requirement).await;
    let mut too_much = requirement.clone();
    too_much["amount"] = json!((MAX + 1).to_string());
    let refused = s.post("/settle", &second, &too_much).await;
    assert_eq!(refused["success"], false, "{refused}");
    assert_eq!(s.balances().await, (payer_after, seller_after));
    // ... and the full maximum settles.
    let full = s.post("/settle", &second, &requirement).await;
    assert_eq!(full["success"], true, "{full}");
    assert_eq!(
        s.balances().await,
        (
            payer_after - U256::from(MAX),
            seller_after + U256::from(MAX)
        )
    );

    // The payer withdraws an outstanding authorization by invalidating its nonce: it can no
    // longer settle.
    let third = s.sign(&requirement).await;
    let withdrawn: UptoPaymentPayload = serde_json::from_value(third.clone()).unwrap();
    let nonce = withdrawn.payload.permit2_authorization.nonce;
    let mask = U256::from(1u64) << (nonce & U256::from(0xffu64)).to::<usize>();
    let invalidate = invalidateUnorderedNoncesCall {
        wordPos: nonce >> 8,
        mask,
    }
    .abi_encode();
    s.rpc
        .transact(s.payer, Some(PERMIT2_ADDRESS), &invalidate)
        .await
        .unwrap();
    let cancelled = s
        .simulate_settle(s.facilitator_address, &withdrawn, U256::from(1u64))
        .await
        .expect("an invalidated nonce reverts");
    assert!(
        cancelled.contains(&hex(&InvalidNonce::SELECTOR)),
        "{cancelled}"
    );
    let late = s.post("/settle", &third, &requirement).await;
    assert_eq!(late["success"], false, "{late}");

    // Past its deadline an authorization is refused by Permit2.
    let fourth = s.sign(&requirement).await;
    let expiring: UptoPaymentPayload = serde_json::from_value(fourth).unwrap();
    let deadline = expiring.payload.permit2_authorization.deadline;
    s.rpc
        .call("evm_setNextBlockTimestamp", json!([deadline + 1]))
        .await
        .unwrap();
    s.rpc.call("evm_mine", json!([])).await.unwrap();
    let expired = s
        .simulate_settle(s.facilitator_address, &expiring, U256::from(1u64))
        .await
        .expect("an expired permit reverts");
    assert!(
        expired.contains(&hex(&SignatureExpired::SELECTOR)),
        "{expired}"
    );

    // A payment naming another facilitator is refused by this one.
    let elsewhere = s.sign(&s.requirement(dev_address(3))).await;
    let verdict = s
        .post("/verify", &elsewhere, &s.requirement(dev_address(3)))
        .await;
    assert_eq!(verdict["isValid"], false, "{verdict}");
    let _ = std::fs::remove_dir_all(&s.dir);
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}
