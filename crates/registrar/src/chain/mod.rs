//! The chain edge: one alloy HTTP provider per chain, with the registrar's key as wallet.
//!
//! Reads and sends only; every decision lives in [`crate::plan`]. Sends on one chain are
//! serialized (one registrar key, one nonce sequence), and a registration is sent only after
//! recovery found nothing: no receipt for the stored hash, no matching `Registered` log of the
//! signer since the fence, and no pending transaction of the signer.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent as _;

use crate::contracts::IdentityRegistry::{self, Registered};
use crate::error::ChainError;
use crate::receipt;

/// `getVersion()` of the ERC-8004 v2 IdentityRegistry.
pub const REGISTRY_VERSION: &str = "2.0.0";
/// `eth_getLogs` windows: many providers refuse wider ranges.
pub const LOG_WINDOW: u64 = 10_000;

/// What recovery found for a fenced registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The agent exists.
    Found {
        /// Its id.
        agent_id: u64,
        /// The registration transaction, when known.
        tx_hash: Option<B256>,
    },
    /// A transaction of the signer is pending: wait.
    InFlight,
    /// Nothing on chain, nothing pending.
    Absent,
}

/// What a submit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Recovery settled it without sending.
    Recovered(Recovery),
    /// `register` was sent.
    Sent(B256),
}

/// A provider for one chain with the signing wallet.
pub struct ChainClient {
    chain_id: u64,
    provider: DynProvider,
    signer: Address,
    send_lock: tokio::sync::Mutex<()>,
    verified: tokio::sync::OnceCell<()>,
    poll: Duration,
    receipt_timeout: Duration,
}

impl ChainClient {
    /// A client over `provider` (which must sign for `signer`).
    pub fn new(
        chain_id: u64,
        provider: DynProvider,
        signer: Address,
        poll: Duration,
        receipt_timeout: Duration,
    ) -> Self {
        Self {
            chain_id,
            provider,
            signer,
            send_lock: tokio::sync::Mutex::new(()),
            verified: tokio::sync::OnceCell::new(),
            poll,
            receipt_timeout,
        }
    }

    /// The signer's address.
    pub fn signer(&self) -> Address {
        self.signer
    }

    /// Checks once that the endpoint serves the expected chain.
    async fn verify_chain(&self) -> Result<(), ChainError> {
        self.verified
            .get_or_try_init(|| async {
                let actual = self
                    .provider
                    .get_chain_id()
                    .await
                    .map_err(|e| classify("eth_chainId", &e))?;
                if actual == self.chain_id {
                    Ok(())
                } else {
                    Err(ChainError::WrongChain {
                        wanted: self.chain_id,
                        actual,
                    })
                }
            })
            .await
            .map(|_| ())
    }

    /// The current block height (the fence).
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.verify_chain().await?;
        self.provider
            .get_block_number()
            .await
            .map_err(|e| classify("eth_blockNumber", &e))
    }

    /// Looks for a registration of `uri` by the signer: the stored transaction's receipt, then
    /// `Registered` logs from `from_block`, then pending transactions of the signer.
    pub async fn recover(
        &self,
        registry: Address,
        uri: &str,
        from_block: u64,
        tx_hash: Option<B256>,
    ) -> Result<Recovery, ChainError> {
        self.verify_chain().await?;
        if let Some(tx) = tx_hash {
            let receipt = self
                .provider
                .get_transaction_receipt(tx)
                .await
                .map_err(|e| classify("eth_getTransactionReceipt", &e))?;
            if let Some(receipt) = receipt {
                if !receipt.status() {
                    return Err(ChainError::Reverted {
                        context: "register",
                        reason: format!("transaction {tx} reverted"),
                    });
                }
                let logs = receipt.inner.logs().iter().map(|l| &l.inner);
                let ev = receipt::registered_in_receipt(logs, registry).ok_or_else(|| {
                    ChainError::NoRegisteredEvent {
                        tx_hash: tx.to_string(),
                    }
                })?;
                let agent_id = receipt::agent_id_u64(ev.agent_id).ok_or_else(|| {
                    ChainError::NoRegisteredEvent {
                        tx_hash: tx.to_string(),
                    }
                })?;
                return Ok(Recovery::Found {
                    agent_id,
                    tx_hash: Some(tx),
                });
            }
            let pending = self
                .provider
                .get_transaction_by_hash(tx)
                .await
                .map_err(|e| classify("eth_getTransactionByHash", &e))?;
            if pending.is_some() {
                return Ok(Recovery::InFlight);
            }
            // Unknown to the node: dropped, or never broadcast. Fall through to the logs.
        }
        if let Some((agent_id, tx_hash)) = self.find_registered(registry, uri, from_block).await? {
            return Ok(Recovery::Found { agent_id, tx_hash });
        }
        if self.has_pending_transactions().await? {
            return Ok(Recovery::InFlight);
        }
        Ok(Recovery::Absent)
    }

    async fn find_registered(
        &self,
        registry: Address,
        uri: &str,
        from_block: u64,
    ) -> Result<Option<(u64, Option<B256>)>, ChainError> {
        let latest = self
            .provider
            .get_block_number()
            .await
            .map_err(|e| classify("eth_blockNumber", &e))?;
        let mut found = None;
        let mut start = from_block;
        while start <= latest {
            let end = start.saturating_add(LOG_WINDOW - 1).min(latest);
            let filter = Filter::new()
                .address(registry)
                .event_signature(Registered::SIGNATURE_HASH)
                .topic2(self.signer.into_word())
                .from_block(start)
                .to_block(end);
            let logs = self
                .provider
                .get_logs(&filter)
                .await
                .map_err(|e| classify("eth_getLogs", &e))?;
            for log in &logs {
                if let Some(ev) =
                    receipt::newest_registration([&log.inner], registry, self.signer, uri)
                    && let Some(id) = receipt::agent_id_u64(ev.agent_id)
                {
                    found = Some((id, log.transaction_hash));
                }
            }
            start = end + 1;
        }
        Ok(found)
    }

    async fn has_pending_transactions(&self) -> Result<bool, ChainError> {
        let pending = self
            .provider
            .get_transaction_count(self.signer)
            .pending()
            .await
            .map_err(|e| classify("eth_getTransactionCount", &e))?;
        let latest = self
            .provider
            .get_transaction_count(self.signer)
            .latest()
            .await
            .map_err(|e| classify("eth_getTransactionCount", &e))?;
        Ok(pending > latest)
    }

    /// The startup check of `erc8004.md` §2: code at the address, and `getVersion()` =
    /// `2.0.0`. Checked before the first registration per registry.
    async fn check_registry(&self, registry: Address) -> Result<(), ChainError> {
        let code = self
            .provider
            .get_code_at(registry)
            .await
            .map_err(|e| classify("eth_getCode", &e))?;
        if code.is_empty() {
            return Err(ChainError::NoContract {
                address: registry.to_string(),
            });
        }
        let unsupported = |version: String| ChainError::UnsupportedRegistry {
            address: registry.to_string(),
            version,
        };
        let version = IdentityRegistry::new(registry, &self.provider)
            .getVersion()
            .call()
            .await;
        match version {
            Ok(v) if v == REGISTRY_VERSION => Ok(()),
            Ok(v) => Err(unsupported(format!("{v:?}"))),
            Err(alloy::contract::Error::TransportError(t)) => match classify("getVersion", &t) {
                ChainError::Reverted { reason, .. } => {
                    Err(unsupported(format!("reverted: {reason}")))
                }
                other => Err(other),
            },
            // No return data or an undecodable one: not this ABI.
            Err(other) => Err(unsupported(other.to_string())),
        }
    }

    /// Recovers, and when nothing is found or pending and `send`, sends `register(uri)`.
    pub async fn submit(
        &self,
        registry: Address,
        uri: &str,
        from_block: u64,
        tx_hash: Option<B256>,
        send: bool,
    ) -> Result<Submitted, ChainError> {
        let _one_sender = self.send_lock.lock().await;
        let found = self.recover(registry, uri, from_block, tx_hash).await?;
        if found != Recovery::Absent || !send {
            return Ok(Submitted::Recovered(found));
        }
        self.check_registry(registry).await?;
        let contract = IdentityRegistry::new(registry, &self.provider);
        let pending = contract
            .register_2(uri.to_owned())
            .send()
            .await
            .map_err(|e| classify_contract("register", e))?;
        Ok(Submitted::Sent(*pending.tx_hash()))
    }

    /// Sends `setAgentURI(agent_id, uri)` and waits for a successful receipt. Idempotent.
    pub async fn set_agent_uri(
        &self,
        registry: Address,
        agent_id: u64,
        uri: &str,
    ) -> Result<B256, ChainError> {
        self.verify_chain().await?;
        let _one_sender = self.send_lock.lock().await;
        let contract = IdentityRegistry::new(registry, &self.provider);
        let pending = contract
            .setAgentURI(U256::from(agent_id), uri.to_owned())
            .send()
            .await
            .map_err(|e| classify_contract("setAgentURI", e))?;
        let tx = *pending.tx_hash();
        self.wait_success("setAgentURI", tx).await?;
        Ok(tx)
    }

    /// Reads each metadata key and writes the ones that differ (read before write).
    pub async fn sync_metadata(
        &self,
        registry: Address,
        agent_id: u64,
        desired: &BTreeMap<String, Bytes>,
    ) -> Result<usize, ChainError> {
        self.verify_chain().await?;
        let contract = IdentityRegistry::new(registry, &self.provider);
        let id = U256::from(agent_id);
        let mut written = 0;
        for (key, value) in desired {
            let current = contract
                .getMetadata(id, key.clone())
                .call()
                .await
                .map_err(|e| classify_contract("getMetadata", e))?;
            if &current == value {
                continue;
            }
            let _one_sender = self.send_lock.lock().await;
            let pending = contract
                .setMetadata(id, key.clone(), value.clone())
                .send()
                .await
                .map_err(|e| classify_contract("setMetadata", e))?;
            self.wait_success("setMetadata", *pending.tx_hash()).await?;
            written += 1;
        }
        Ok(written)
    }

    async fn wait_success(&self, context: &'static str, tx: B256) -> Result<(), ChainError> {
        let deadline = tokio::time::Instant::now() + self.receipt_timeout;
        loop {
            let receipt = self
                .provider
                .get_transaction_receipt(tx)
                .await
                .map_err(|e| classify(context, &e))?;
            match receipt {
                Some(r) if r.status() => return Ok(()),
                Some(_) => {
                    return Err(ChainError::Reverted {
                        context,
                        reason: format!("transaction {tx} reverted"),
                    });
                }
                None if tokio::time::Instant::now() >= deadline => {
                    return Err(ChainError::ReceiptTimeout {
                        context,
                        tx_hash: tx.to_string(),
                    });
                }
                None => tokio::time::sleep(self.poll).await,
            }
        }
    }
}

mod chains;
mod classify;

pub use chains::{Chains, desired_metadata, reqwest_url};
pub use classify::classify;
use classify::classify_contract;

#[cfg(test)]
mod tests;
