//! The chain reader: `authorizationState(from, nonce)` on the token says whether an
//! authorization was used (or cancelled), whatever any seller or journal remembers. The buyer
//! asks it at start-up for the whole pool, whenever a seller refuses an authorization for a
//! reason it cannot classify, and periodically for held authorizations. One JSON-RPC batch of
//! `eth_call`s per [`BATCH`] authorizations. Each `--rpc-url` serves the chain it reports
//! (`eth_chainId`, asked once).

use obol_x402::rpc::{JsonRpc, RpcError};
use obol_x402::{Address, B256};
use serde_json::{Value, json};

use crate::upstream::Auth;

alloy::sol! {
    /// FiatToken / EIP-3009: whether `(authorizer, nonce)` was used or cancelled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);
}

/// `eth_call`s per JSON-RPC batch.
pub const BATCH: usize = 100;

/// Longest wait for one RPC answer.
pub const RPC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A JSON-RPC call gave no usable answer (never shows the URL, which may carry a key).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The RPC answered with an error or an unexpected shape.
    #[error("RPC answer unusable: {0}")]
    Answer(String),
}

impl ChainError {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Rpc(e) => e.metric_label(),
            Self::Answer(_) => "rpc_bad_answer",
        }
    }
}

/// The payer and nonce of an EIP-3009 authorization, when its payload names them.
pub fn authorizer(auth: &Auth) -> Option<(Address, B256)> {
    let a = auth.payload.get("authorization")?;
    let from = obol_x402::wire::scalar::parse_address(a.get("from")?.as_str()?).ok()?;
    let nonce = obol_x402::wire::scalar::parse_b256(a.get("nonce")?.as_str()?).ok()?;
    Some((from, nonce))
}

/// The `eth_call` data for `authorizationState(from, nonce)`.
pub fn call_data(from: Address, nonce: B256) -> String {
    use alloy::sol_types::SolCall as _;
    let data = authorizationStateCall {
        authorizer: from,
        nonce,
    }
    .abi_encode();
    format!("0x{}", alloy::hex::encode(data))
}

/// An `eth_call` result that is one ABI word, as a bool.
fn decode_bool(result: &Value) -> Result<bool, ChainError> {
    let hex = result
        .as_str()
        .ok_or_else(|| ChainError::Answer(format!("not an ABI word: {result}")))?;
    let word = hex.trim_start_matches("0x");
    if word.len() != 64 || !word.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ChainError::Answer("result is not one ABI word".into()));
    }
    Ok(word.trim_start_matches('0') == "1")
}

/// A JSON-RPC endpoint (obol-x402's client, each call limited to [`RPC_TIMEOUT`]).
#[derive(Debug, Clone)]
pub struct Rpc(Result<JsonRpc, RpcError>);

impl Rpc {
    /// An endpoint at `url`; a URL that is not http(s) fails each call with a clear error.
    pub fn new(client: reqwest::Client, url: impl Into<String>) -> Self {
        Self(JsonRpc::new(client, &url.into()).map(|r| r.with_timeout(RPC_TIMEOUT)))
    }

    fn rpc(&self) -> Result<&JsonRpc, ChainError> {
        self.0.as_ref().map_err(|e| ChainError::Rpc(e.clone()))
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        let method = "eth_chainId";
        let v = self.rpc()?.call(method, json!([])).await?;
        let id = obol_x402::rpc::quantity(method, &v)?;
        u64::try_from(id).map_err(|_| ChainError::Answer(format!("{method}: {v}")))
    }

    /// `authorizationState` on `token` for each `(from, nonce)`, in order.
    pub async fn used(
        &self,
        token: Address,
        items: &[(Address, B256)],
    ) -> Result<Vec<bool>, ChainError> {
        let rpc = self.rpc()?;
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(BATCH) {
            let calls = chunk.iter().map(|&(from, nonce)| {
                json!([{"to": token.to_checksum(None), "data": call_data(from, nonce)}, "latest"])
            });
            for result in rpc.batch("eth_call", calls).await? {
                out.push(decode_bool(&result?)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_data_uses_the_authorization_state_selector() {
        let data = call_data(Address::ZERO, B256::ZERO);
        assert!(data.starts_with("0xe94a0102"), "{data}");
        assert_eq!(data.len(), 2 + 8 + 128);
    }

    #[test]
    fn results_decode_as_bool_words() {
        let word = |w: &str| json!(format!("0x{w:0>64}"));
        assert!(decode_bool(&word("1")).unwrap());
        assert!(!decode_bool(&word("0")).unwrap());
        for bad in [json!(null), json!("0x01"), json!({"message": "reverted"})] {
            assert!(decode_bool(&bad).is_err(), "{bad}");
        }
    }
}

/// One reader per chain, from the `--rpc-url`s (their chain ids are asked once, lazily).
#[derive(Debug, Default)]
pub struct ChainReaders {
    readers: tokio::sync::Mutex<Vec<(Option<u64>, Rpc)>>,
}

impl ChainReaders {
    /// Readers for `urls`.
    pub fn new(client: &reqwest::Client, urls: &[String]) -> Self {
        Self {
            readers: tokio::sync::Mutex::new(
                urls.iter()
                    .map(|u| (None, Rpc::new(client.clone(), u.clone())))
                    .collect(),
            ),
        }
    }

    /// Whether any URL was configured.
    pub async fn is_empty(&self) -> bool {
        self.readers.lock().await.is_empty()
    }

    /// The reader of `chain_id`; readers whose chain is not known yet are asked now.
    pub async fn for_chain(&self, chain_id: u64) -> Result<Option<Rpc>, ChainError> {
        let mut readers = self.readers.lock().await;
        let mut last_error = None;
        for (known, rpc) in readers.iter_mut() {
            if known.is_none() {
                match rpc.chain_id().await {
                    Ok(id) => *known = Some(id),
                    Err(e) => last_error = Some(e),
                }
            }
            if *known == Some(chain_id) {
                return Ok(Some(rpc.clone()));
            }
        }
        match last_error {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}
