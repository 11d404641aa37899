//! RPC endpoints per chain, the key, and the agreed metadata set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, Bytes};
use alloy::providers::{Provider as _, ProviderBuilder};

use super::ChainClient;
use crate::error::ChainError;
use crate::key::SigningKey;

/// The agreed on-chain metadata of a live agent (`obol-reference.md` §7): `x402.supported` =
/// `0x01` and `metadata.<key>` = value for each trimmed, non-empty pair.
pub fn desired_metadata(
    metadata: &BTreeMap<String, String>,
    active: bool,
) -> BTreeMap<String, Bytes> {
    let mut out = BTreeMap::new();
    out.insert(
        "x402.supported".to_owned(),
        Bytes::from(vec![u8::from(active)]),
    );
    if active {
        for (k, v) in metadata {
            let (k, v) = (k.trim(), v.trim());
            if !k.is_empty() && !v.is_empty() {
                out.insert(format!("metadata.{k}"), Bytes::from(v.as_bytes().to_vec()));
            }
        }
    }
    out
}

/// RPC endpoints and the key; hands out one [`ChainClient`] per chain.
pub struct Chains {
    key: Option<SigningKey>,
    default_rpc: Option<reqwest_url::Url>,
    overrides: BTreeMap<u64, reqwest_url::Url>,
    clients: parking_lot::Mutex<HashMap<u64, Arc<ChainClient>>>,
    poll: Duration,
    receipt_timeout: Duration,
}

/// The URL type alloy's HTTP transport takes.
pub mod reqwest_url {
    pub use alloy::transports::http::reqwest::Url;
}

impl Chains {
    /// Endpoints: `overrides` per chain id, else `default_rpc`.
    pub fn new(
        key: Option<SigningKey>,
        default_rpc: Option<reqwest_url::Url>,
        overrides: BTreeMap<u64, reqwest_url::Url>,
        poll: Duration,
        receipt_timeout: Duration,
    ) -> Self {
        Self {
            key,
            default_rpc,
            overrides,
            clients: parking_lot::Mutex::new(HashMap::new()),
            poll,
            receipt_timeout,
        }
    }

    /// Whether a signing key is configured.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The signer's address, when a key is configured.
    pub fn signer(&self) -> Option<Address> {
        self.key.as_ref().map(SigningKey::address)
    }

    /// The client for `chain_id` (built on first use).
    pub fn client(&self, chain_id: u64) -> Result<Arc<ChainClient>, ChainError> {
        let key = self.key.as_ref().ok_or(ChainError::NoRpc { chain_id })?;
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(&chain_id) {
            return Ok(c.clone());
        }
        let url = self
            .overrides
            .get(&chain_id)
            .or(self.default_rpc.as_ref())
            .ok_or(ChainError::NoRpc { chain_id })?
            .clone();
        // Nonces come from the node on every send (sends are serialized per chain), never from
        // a local cache: a cached nonce advances on a send that fails its gas estimate and
        // then stalls every later transaction. `register` carries its fence's nonce.
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .with_chain_id(chain_id)
            .wallet(EthereumWallet::from(key.signer()))
            .connect_http(url)
            .erased();
        let client = Arc::new(ChainClient::new(
            chain_id,
            provider,
            key.address(),
            self.poll,
            self.receipt_timeout,
        ));
        clients.insert(chain_id, client.clone());
        Ok(client)
    }
}
