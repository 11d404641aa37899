//! Chain evidence that an authorization was settled to this seller: the verifier's way out of
//! "paid but not served" after it lost its reservation record (a restart with the memory store,
//! a record evicted or expired) or when a settle's outcome was unknown.
//!
//! Evidence is an `AuthorizationUsed(payer, nonce)` log of the route's token whose transaction
//! succeeded and also carries `Transfer(payer, payTo, amount)` of that token, in a block no older
//! than the re-serve window. A `cancelAuthorization` also consumes a nonce but moves nothing and
//! logs `AuthorizationCanceled`, so it is never taken for a payment.
//!
//! The JSON-RPC requests and the judgement of their answers are pure functions; [`RpcEvidence`]
//! does the calls (one RPC endpoint per chain, a verifier setting).

use std::collections::HashMap;
use std::time::Duration;

use alloy_primitives::{Address, B256, U256, keccak256};
use obol_x402::Requirement;
use obol_x402::facilitator::async_trait;
use obol_x402::rpc::{JsonRpc, RpcError};
use serde_json::{Value, json};

/// `AuthorizationUsed(address,bytes32)` topic.
pub fn authorization_used_topic() -> B256 {
    keccak256("AuthorizationUsed(address,bytes32)")
}

/// `Transfer(address,address,uint256)` topic.
pub fn transfer_topic() -> B256 {
    keccak256("Transfer(address,address,uint256)")
}

/// Why the chain could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// No RPC endpoint is configured for the route's chain.
    #[error("no chain RPC configured for {0}")]
    NoRpc(String),
    /// The endpoint did not answer usefully.
    #[error("chain RPC failed: {0}")]
    Rpc(String),
}

impl EvidenceError {
    /// A bounded label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NoRpc(_) => "no_chain_rpc",
            Self::Rpc(_) => "chain_rpc_failed",
        }
    }
}

/// What is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement<'a> {
    /// The route's requirement (token, payTo, amount, chain).
    pub requirement: &'a Requirement,
    /// The payer.
    pub payer: Address,
    /// The authorization's nonce.
    pub nonce: B256,
}

/// Looks for chain evidence of a settlement.
#[async_trait]
pub trait Evidence: Send + Sync + std::fmt::Debug {
    /// The settling transaction's hash, when the chain shows the payment within the window.
    async fn settled(
        &self,
        what: Settlement<'_>,
        now: u64,
    ) -> Result<Option<String>, EvidenceError>;
}

fn word(a: Address) -> B256 {
    B256::left_padding_from(a.as_slice())
}

/// The `eth_getLogs` filter for the authorization's `AuthorizationUsed` log from `from_block`.
pub fn logs_filter(what: &Settlement<'_>, from_block: u64) -> Value {
    json!({
        "address": what.requirement.asset.to_string(),
        "fromBlock": format!("0x{from_block:x}"),
        "toBlock": "latest",
        "topics": [
            authorization_used_topic().to_string(),
            word(what.payer).to_string(),
            what.nonce.to_string(),
        ],
    })
}

/// The transaction hashes of the logs an `eth_getLogs` answered.
pub fn log_transactions(result: &Value) -> Result<Vec<B256>, EvidenceError> {
    let logs = result
        .as_array()
        .ok_or_else(|| EvidenceError::Rpc("eth_getLogs result is not a list".into()))?;
    logs.iter()
        .map(|log| {
            log.get("transactionHash")
                .and_then(Value::as_str)
                .and_then(|h| h.parse().ok())
                .ok_or_else(|| EvidenceError::Rpc("a log without a transaction hash".into()))
        })
        .collect()
}

/// Whether a transaction receipt shows the payment: status 1 and a `Transfer(payer, payTo,
/// amount)` log of the token. Returns the receipt's block number when it does.
pub fn receipt_shows_payment(receipt: &Value, what: &Settlement<'_>) -> Option<u64> {
    if receipt.get("status").and_then(Value::as_str) != Some("0x1") {
        return None;
    }
    let req = what.requirement;
    let want_topics = [transfer_topic(), word(what.payer), word(req.pay_to)];
    let paid = receipt.get("logs")?.as_array()?.iter().any(|log| {
        let from_token = log
            .get("address")
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<Address>().ok())
            == Some(req.asset);
        let topics: Option<Vec<B256>> = log.get("topics").and_then(Value::as_array).map(|t| {
            t.iter()
                .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
                .collect()
        });
        let amount = log
            .get("data")
            .and_then(Value::as_str)
            .and_then(|d| U256::from_str_radix(d.trim_start_matches("0x"), 16).ok());
        from_token && topics.as_deref() == Some(&want_topics[..]) && amount == Some(req.amount)
    });
    paid.then(|| hex_u64(receipt.get("blockNumber")?))?
}

/// A hex quantity (`"0x1a"`).
pub fn hex_u64(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.strip_prefix("0x")?, 16).ok()
}

/// Whether a block at `timestamp` is recent enough at `now` to re-serve from.
pub fn within_window(timestamp: u64, now: u64, window_secs: u64) -> bool {
    now.saturating_sub(timestamp) <= window_secs
}

/// Chain evidence over JSON-RPC, one endpoint per chain id. `Debug` shows the endpoints' hosts
/// only (RPC URLs may carry API keys).
#[derive(Debug, Clone)]
pub struct RpcEvidence {
    rpc: HashMap<u64, JsonRpc>,
    lookback_blocks: u64,
    window_secs: u64,
}

impl RpcEvidence {
    /// Asks `rpc[chain id]`, looking back at most `lookback_blocks` blocks and accepting
    /// settlements at most `window_secs` old; each call gets `timeout`.
    pub fn new(
        rpc: HashMap<u64, reqwest::Url>,
        lookback_blocks: u64,
        window_secs: u64,
        timeout: Duration,
    ) -> Result<Self, EvidenceError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EvidenceError::Rpc(e.to_string()))?;
        let rpc = rpc
            .into_iter()
            .map(|(chain, url)| Ok((chain, JsonRpc::new(client.clone(), url.as_str())?)))
            .collect::<Result<_, RpcError>>()
            .map_err(|e| EvidenceError::Rpc(e.to_string()))?;
        Ok(Self {
            rpc,
            lookback_blocks,
            window_secs,
        })
    }

    async fn call(
        &self,
        rpc: &JsonRpc,
        method: &str,
        params: Value,
    ) -> Result<Value, EvidenceError> {
        rpc.call(method, params)
            .await
            .map_err(|e| EvidenceError::Rpc(e.to_string()))
    }
}

#[async_trait]
impl Evidence for RpcEvidence {
    async fn settled(
        &self,
        what: Settlement<'_>,
        now: u64,
    ) -> Result<Option<String>, EvidenceError> {
        let network = what.requirement.network;
        let rpc = self
            .rpc
            .get(&network.chain_id)
            .ok_or_else(|| EvidenceError::NoRpc(network.caip2().to_string()))?;
        let latest = hex_u64(&self.call(rpc, "eth_blockNumber", json!([])).await?)
            .ok_or_else(|| EvidenceError::Rpc("eth_blockNumber is not a number".into()))?;
        let from = latest.saturating_sub(self.lookback_blocks);
        let logs = self
            .call(rpc, "eth_getLogs", json!([logs_filter(&what, from)]))
            .await?;
        for tx in log_transactions(&logs)? {
            let receipt = self
                .call(rpc, "eth_getTransactionReceipt", json!([tx.to_string()]))
                .await?;
            let Some(block) = receipt_shows_payment(&receipt, &what) else {
                continue;
            };
            let header = self
                .call(
                    rpc,
                    "eth_getBlockByNumber",
                    json!([format!("0x{block:x}"), false]),
                )
                .await?;
            let timestamp = header
                .get("timestamp")
                .and_then(hex_u64)
                .ok_or_else(|| EvidenceError::Rpc("a block without a timestamp".into()))?;
            if within_window(timestamp, now, self.window_secs) {
                return Ok(Some(tx.to_string()));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use obol_x402::Network;

    use super::*;

    fn req() -> Requirement {
        let net = Network::resolve("base-sepolia").unwrap();
        Requirement::usdc(net, Address::repeat_byte(0x22), U256::from(1000u64), 60).unwrap()
    }

    fn receipt(req: &Requirement, status: &str, token: Address, to: Address, amount: u64) -> Value {
        json!({
            "status": status,
            "blockNumber": "0x10",
            "logs": [
                {"address": token.to_string(), "topics": [
                    authorization_used_topic().to_string(),
                    word(Address::repeat_byte(0x11)).to_string(),
                    B256::repeat_byte(7).to_string()], "data": "0x"},
                {"address": token.to_string(), "topics": [
                    transfer_topic().to_string(),
                    word(Address::repeat_byte(0x11)).to_string(),
                    word(to).to_string()],
                 "data": format!("0x{:064x}", amount)},
            ],
            "to": req.asset.to_string(),
        })
    }

    #[test]
    fn topics_are_the_token_events() {
        assert_eq!(
            authorization_used_topic().to_string(),
            "0x98de503528ee59b575ef0c0a2576a82497bfc029a5685b209e9ec333479b10a5"
        );
        assert_eq!(
            transfer_topic().to_string(),
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
        );
    }

    #[test]
    fn receipts_table() {
        let r = req();
        let what = Settlement {
            requirement: &r,
            payer: Address::repeat_byte(0x11),
            nonce: B256::repeat_byte(7),
        };
        let cases = [
            (
                "paid",
                receipt(&r, "0x1", r.asset, r.pay_to, 1000),
                Some(16),
            ),
            (
                "reverted",
                receipt(&r, "0x0", r.asset, r.pay_to, 1000),
                None,
            ),
            (
                "other token",
                receipt(&r, "0x1", Address::repeat_byte(9), r.pay_to, 1000),
                None,
            ),
            (
                "other payee",
                receipt(&r, "0x1", r.asset, Address::repeat_byte(9), 1000),
                None,
            ),
            (
                "other amount",
                receipt(&r, "0x1", r.asset, r.pay_to, 999),
                None,
            ),
            ("no receipt", Value::Null, None),
        ];
        for (name, receipt, want) in cases {
            assert_eq!(receipt_shows_payment(&receipt, &what), want, "{name}");
        }
    }

    #[test]
    fn the_filter_names_token_payer_and_nonce() {
        let r = req();
        let what = Settlement {
            requirement: &r,
            payer: Address::repeat_byte(0x11),
            nonce: B256::repeat_byte(7),
        };
        let f = logs_filter(&what, 255);
        assert_eq!(f["fromBlock"], "0xff");
        assert_eq!(
            f["topics"][1],
            format!("0x{}{}", "0".repeat(24), "11".repeat(20))
        );
        assert_eq!(f["topics"][2], B256::repeat_byte(7).to_string());
        assert_eq!(
            f["address"].as_str().unwrap().to_lowercase(),
            r.asset.to_string().to_lowercase()
        );
        assert_eq!(
            log_transactions(&json!([{"transactionHash": B256::repeat_byte(1).to_string()}])),
            Ok(vec![B256::repeat_byte(1)])
        );
        assert!(log_transactions(&json!({})).is_err());
        assert!(log_transactions(&json!([{}])).is_err());
    }

    #[test]
    fn window() {
        assert!(within_window(100, 700, 600));
        assert!(!within_window(100, 701, 600));
        assert!(
            within_window(800, 700, 600),
            "a clock behind the chain's is not old"
        );
    }
}
