//! The chain reader: `authorizationState(from, nonce)` on the token says whether an EIP-3009
//! authorization (scheme `exact`) was used (or cancelled), and Permit2's
//! `nonceBitmap(owner, nonce >> 8)` whether a Permit2 witness authorization (scheme `upto`)
//! was: bit `nonce & 0xff` of that word is set once Permit2 consumed the nonce (or the owner
//! invalidated it). Either answer holds whatever any seller or journal remembers. The buyer
//! asks it at start-up for the whole pool, whenever a seller refuses an authorization for a
//! reason it cannot classify, and periodically for held authorizations. One JSON-RPC batch of
//! `eth_call`s per [`BATCH`] authorizations. Each `--rpc-url` serves the chain it reports
//! (`eth_chainId`, asked once).

use obol_x402::permit2::PERMIT2_ADDRESS;
use obol_x402::rpc::{JsonRpc, RpcError};
use obol_x402::wire::Permit2Authorization;
use obol_x402::{Address, B256, U256};
use serde_json::{Value, json};

use crate::upstream::Auth;

alloy::sol! {
    /// FiatToken / EIP-3009: whether `(authorizer, nonce)` was used or cancelled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);
    /// Permit2: the word `wordPos` of `owner`'s unordered-nonce bitmap.
    function nonceBitmap(address owner, uint256 wordPos) external view returns (uint256);
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

/// What to ask the chain about one authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceQuery {
    /// EIP-3009: `authorizationState(from, nonce)` on the token.
    Eip3009 {
        /// The payer.
        from: Address,
        /// The authorization's nonce.
        nonce: B256,
    },
    /// Permit2: `nonceBitmap(owner, nonce >> 8)` on Permit2, bit `nonce & 0xff`.
    Permit2 {
        /// The payer (Permit2's owner).
        owner: Address,
        /// The unordered nonce.
        nonce: U256,
    },
}

/// What to ask about `auth`, when its payload names a payer and a nonce: an EIP-3009
/// `authorization`, or a Permit2 `permit2Authorization` (an `upto` item).
pub fn query(auth: &Auth) -> Option<NonceQuery> {
    if let Some(a) = auth.payload.get("authorization") {
        let from = obol_x402::wire::scalar::parse_address(a.get("from")?.as_str()?).ok()?;
        let nonce = obol_x402::wire::scalar::parse_b256(a.get("nonce")?.as_str()?).ok()?;
        return Some(NonceQuery::Eip3009 { from, nonce });
    }
    let p = auth.payload.get("permit2Authorization")?;
    let p: Permit2Authorization = serde_json::from_value(p.clone()).ok()?;
    Some(NonceQuery::Permit2 {
        owner: p.from,
        nonce: p.nonce,
    })
}

impl NonceQuery {
    /// The contract to call and the call data (`token` is the asset, for EIP-3009).
    pub fn call(&self, token: Address) -> (Address, String) {
        use alloy::sol_types::SolCall as _;
        let (to, data) = match *self {
            Self::Eip3009 { from, nonce } => (
                token,
                authorizationStateCall {
                    authorizer: from,
                    nonce,
                }
                .abi_encode(),
            ),
            Self::Permit2 { owner, nonce } => (
                PERMIT2_ADDRESS,
                nonceBitmapCall {
                    owner,
                    wordPos: nonce >> 8,
                }
                .abi_encode(),
            ),
        };
        (to, format!("0x{}", alloy::hex::encode(data)))
    }

    /// Whether the answer to [`NonceQuery::call`] says the nonce was used.
    pub fn used(&self, result: &Value) -> Result<bool, ChainError> {
        let word = abi_word(result)?;
        Ok(match *self {
            Self::Eip3009 { .. } => word == U256::from(1u8),
            Self::Permit2 { nonce, .. } => {
                // The low byte of the nonce is the bit's index in its word.
                let bit = usize::from(nonce.byte(0));
                word.bit(bit)
            }
        })
    }
}

/// An `eth_call` result that is one ABI word.
fn abi_word(result: &Value) -> Result<U256, ChainError> {
    let hex = result
        .as_str()
        .ok_or_else(|| ChainError::Answer(format!("not an ABI word: {result}")))?;
    let word = hex.trim_start_matches("0x");
    if word.len() != 64 || !word.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ChainError::Answer("result is not one ABI word".into()));
    }
    U256::from_str_radix(word, 16).map_err(|_| ChainError::Answer("result is not hex".into()))
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

    /// Whether each of `items` was used, in order (`token`: the asset, for EIP-3009).
    pub async fn used(
        &self,
        token: Address,
        items: &[NonceQuery],
    ) -> Result<Vec<bool>, ChainError> {
        let rpc = self.rpc()?;
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(BATCH) {
            let calls = chunk.iter().map(|q| {
                let (to, data) = q.call(token);
                json!([{"to": to.to_checksum(None), "data": data}, "latest"])
            });
            for (q, result) in chunk.iter().zip(rpc.batch("eth_call", calls).await?) {
                out.push(q.used(&result?)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: Address = Address::repeat_byte(0x11);
    const PAYER: Address = Address::repeat_byte(0x22);

    fn word(w: &str) -> Value {
        json!(format!("0x{w:0>64}"))
    }

    #[test]
    fn an_exact_item_asks_the_token_for_its_authorization_state() {
        let q = NonceQuery::Eip3009 {
            from: Address::ZERO,
            nonce: B256::ZERO,
        };
        let (to, data) = q.call(TOKEN);
        assert_eq!(to, TOKEN);
        assert!(data.starts_with("0xe94a0102"), "{data}");
        assert_eq!(data.len(), 2 + 8 + 128);
        assert!(q.used(&word("1")).unwrap());
        assert!(!q.used(&word("0")).unwrap());
        for bad in [
            json!(null),
            json!("0x01"),
            json!({"message": "reverted"}),
            word("zz"),
        ] {
            assert!(q.used(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn items_of_either_scheme_say_what_to_ask() {
        use crate::upstream::tests::upto_item;
        let upto = Auth::from_presigned(&upto_item(
            "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            2400,
            0x0001_0205,
        ))
        .unwrap();
        let Some(NonceQuery::Permit2 { owner, nonce }) = query(&upto) else {
            panic!("an upto item is asked of Permit2");
        };
        assert_eq!(nonce, U256::from(0x0001_0205_u32));
        assert_eq!(
            owner,
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse::<Address>()
                .unwrap(),
            "dev key #1 signs the test items"
        );
        let mut exact = upto.clone();
        exact.payload = json!({"authorization": {"from": PAYER.to_checksum(None), "nonce": format!("0x{:064x}", 7)}});
        assert_eq!(
            query(&exact),
            Some(NonceQuery::Eip3009 {
                from: PAYER,
                nonce: B256::with_last_byte(7)
            })
        );
        // A payload naming neither cannot be asked about.
        exact.payload = json!({"authorization": {"from": "nope", "nonce": "0x07"}});
        assert_eq!(query(&exact), None);
        exact.payload = json!({"permit2Authorization": {"from": PAYER.to_checksum(None)}});
        assert_eq!(query(&exact), None);
        exact.payload = json!({});
        assert_eq!(query(&exact), None);
    }

    #[test]
    fn an_upto_item_asks_permit2_for_its_bit() {
        // nonce = word 0x0102 << 8 | bit 0x05.
        let nonce = U256::from(0x0001_0205_u32);
        let q = NonceQuery::Permit2 {
            owner: PAYER,
            nonce,
        };
        let (to, data) = q.call(TOKEN);
        assert_eq!(to, PERMIT2_ADDRESS, "Permit2, not the token");
        // nonceBitmap(address,uint256), the owner, then word position 0x0102.
        assert!(data.starts_with("0x4fe02b44"), "{data}");
        assert_eq!(&data[2 + 8 + 24..2 + 8 + 64], &"22".repeat(20));
        assert!(data.ends_with(&format!("{:0>64}", "102")), "{data}");
        // (the word answered, whether the nonce is used)
        let cases = [
            ("20", true),        // bit 5 alone
            ("ffffffdf", false), // every bit but 5
            ("0", false),
            ("1", false),
        ];
        for (w, used) in cases {
            assert_eq!(q.used(&word(w)).unwrap(), used, "{w}");
        }
        // The top bit of a word.
        let top = NonceQuery::Permit2 {
            owner: PAYER,
            nonce: U256::from(0xffu8),
        };
        assert!(top.used(&word(&format!("8{}", "0".repeat(63)))).unwrap());
        assert!(!top.used(&word("1")).unwrap());
        assert!(q.used(&json!("0x20")).is_err());
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
