//! The chain edge of an `upto` purchase: what [`super::upto::approval`] decides on (the code
//! at Permit2 and the upto proxy, the payer's allowance to Permit2), and the one-time
//! `approve` it may ask for, signed with the payer's key and sent through `--rpc-url`.
//! The RPC URL may carry a key: it is never printed or put in an error.

use alloy::network::{EthereumWallet, TransactionBuilder as _};
use alloy::providers::{Provider as _, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::{SolCall as _, SolValue as _};
use obol_x402::permit2::{PERMIT2_ADDRESS, UPTO_PROXY_ADDRESS};
use obol_x402::rpc::JsonRpc;
use obol_x402::{Address, B256, PrivateKey, U256};
use serde_json::{Value, json};

use super::upto::ChainFacts;

alloy::sol! {
    function allowance(address owner, address spender) external view returns (uint256);
    function approve(address spender, uint256 amount) external returns (bool);
}

/// How long to wait for the approval's receipt.
pub const RECEIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

fn rpc(url: &str) -> anyhow::Result<JsonRpc> {
    JsonRpc::new(reqwest::Client::new(), url)
        .map(|r| r.with_timeout(std::time::Duration::from_secs(15)))
        .map_err(|e| anyhow::anyhow!("--rpc-url: {e}"))
}

/// Reads the facts, after checking that the RPC serves `chain_id` (an approval on another
/// chain would be useless, and its facts wrong).
pub async fn facts(
    url: &str,
    chain_id: u64,
    payer: Address,
    token: Address,
) -> anyhow::Result<ChainFacts> {
    let rpc = rpc(url)?;
    let served =
        obol_x402::rpc::quantity("eth_chainId", &rpc.call("eth_chainId", json!([])).await?)?;
    if served != u128::from(chain_id) {
        anyhow::bail!(
            "--rpc-url serves chain {served}, the seller's upto offer is on chain {chain_id}"
        );
    }
    let has_code = |v: &Value| v.as_str().is_some_and(|c| c.len() > 2 && c != "0x0");
    let permit2 = rpc
        .call("eth_getCode", json!([PERMIT2_ADDRESS, "latest"]))
        .await?;
    let proxy = rpc
        .call("eth_getCode", json!([UPTO_PROXY_ADDRESS, "latest"]))
        .await?;
    let data = allowanceCall {
        owner: payer,
        spender: PERMIT2_ADDRESS,
    }
    .abi_encode();
    let word = rpc
        .call(
            "eth_call",
            json!([{"to": token, "data": format!("0x{}", alloy::hex::encode(data))}, "latest"]),
        )
        .await?;
    let bytes = alloy::hex::decode(word.as_str().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("allowance: not an ABI word: {e}"))?;
    let allowance =
        U256::abi_decode(&bytes).map_err(|e| anyhow::anyhow!("allowance: not an ABI word: {e}"))?;
    Ok(ChainFacts {
        allowance,
        permit2_deployed: has_code(&permit2),
        proxy_deployed: has_code(&proxy),
    })
}

/// Sends `approve(PERMIT2, amount)` on `token` from the key's address and waits for its
/// receipt; the transaction's hash, or an error when it reverted or did not confirm in time.
pub async fn approve(
    url: &str,
    chain_id: u64,
    key: &PrivateKey,
    token: Address,
    amount: U256,
) -> anyhow::Result<B256> {
    let parsed: reqwest::Url = url
        .parse()
        .map_err(|_| anyhow::anyhow!("--rpc-url is not a URL"))?;
    // Transport errors may quote the URL (as given, or normalized), which may carry a key.
    let normalized = parsed.as_str().to_owned();
    let redact = |e: &dyn std::fmt::Display| {
        e.to_string()
            .replace(&normalized, "<--rpc-url>")
            .replace(url, "<--rpc-url>")
    };
    let provider = ProviderBuilder::new()
        .with_chain_id(chain_id)
        .wallet(EthereumWallet::from(key.signer()))
        .connect_http(parsed);
    let data = approveCall {
        spender: PERMIT2_ADDRESS,
        amount,
    }
    .abi_encode();
    let tx = TransactionRequest::default()
        .with_to(token)
        .with_input(data);
    let pending = provider
        .send_transaction(tx)
        .await
        .map_err(|e| anyhow::anyhow!("sending the approval failed: {}", redact(&e)))?;
    let hash = *pending.tx_hash();
    let receipt = pending
        .with_timeout(Some(RECEIPT_TIMEOUT))
        .get_receipt()
        .await
        .map_err(|e| anyhow::anyhow!("the approval {hash} did not confirm: {}", redact(&e)))?;
    if !receipt.status() {
        anyhow::bail!("the approval {hash} reverted");
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_never_show_the_rpc_url() {
        // Nothing listens on port 1 of this machine: both calls fail in transport.
        let url = "http://127.0.0.1:1/v2/s3cret-api-key";
        let key: PrivateKey = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
            .parse()
            .unwrap();
        let token = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
            .parse()
            .unwrap();
        let sent = approve(url, 84_532, &key, token, U256::MAX)
            .await
            .unwrap_err();
        let read = facts(url, 84_532, key.address(), token).await.unwrap_err();
        for e in [sent, read] {
            let text = format!("{e:#}");
            assert!(!text.contains("s3cret"), "{text}");
        }
    }
}
