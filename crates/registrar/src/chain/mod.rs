//! The chain edge: one alloy HTTP provider per chain, with the registrar's key as wallet.
//!
//! Reads and sends only; every decision lives in [`crate::plan`] (what a fence's chain state
//! means: [`crate::plan::recovery::judge`]). Sends on one chain are serialized (one key, one
//! nonce sequence); `register` is only ever sent with the nonce its fence reserved, every other
//! transaction takes the node's pending count, and every receipt's status is checked.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::network::TransactionBuilder as _;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::sol_types::SolEvent as _;

use crate::abi::{IIdentityRegistry, REGISTRY_NAME};
use crate::error::ChainError;
use crate::plan::recovery::{self, Fence, Observation, Reservation, StoredTx, Verdict};
use crate::receipt;

/// `getVersion()` of the ERC-8004 v2 IdentityRegistry.
pub const REGISTRY_VERSION: &str = "2.0.0";
/// `eth_getLogs` windows: many providers refuse wider ranges.
pub const LOG_WINDOW: u64 = 10_000;

/// What a submit (or a cancel) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Recovery decided without sending ([`Verdict::Send`] never appears here).
    Judged(Verdict),
    /// `register` (or, when cancelling, a zero-value transfer to itself) was sent with the
    /// reserved nonce.
    Sent(B256),
}

/// A provider for one chain with the signing wallet.
pub struct ChainClient {
    chain_id: u64,
    provider: DynProvider,
    signer: Address,
    send_lock: tokio::sync::Mutex<()>,
    verified: tokio::sync::OnceCell<()>,
    registries: parking_lot::Mutex<HashSet<Address>>,
    poll: Duration,
    receipt_timeout: Duration,
}

impl ChainClient {
    /// A client over `provider` (which must sign for `signer` and must not cache nonces).
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
            registries: parking_lot::Mutex::new(HashSet::new()),
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

    /// The fence of a new registration: checks the registry, then reads the block height (where
    /// the logs will be searched from) and reserves the signer's next nonce for `register`.
    pub async fn reserve(&self, registry: Address) -> Result<(u64, Reservation), ChainError> {
        self.verify_chain().await?;
        self.check_registry(registry).await?;
        let from_block = self
            .provider
            .get_block_number()
            .await
            .map_err(|e| classify("eth_blockNumber", &e))?;
        let nonce = self
            .provider
            .get_transaction_count(self.signer)
            .pending()
            .await
            .map_err(|e| classify("eth_getTransactionCount", &e))?;
        Ok((
            from_block,
            Reservation {
                signer: self.signer,
                nonce,
            },
        ))
    }

    /// Reads what [`recovery::judge`] needs, every answer as of one pinned block.
    pub async fn observe(
        &self,
        registry: Address,
        fence: &Fence,
        tx_hash: Option<B256>,
    ) -> Result<Observation, ChainError> {
        self.verify_chain().await?;
        let signer = fence.reservation.map_or(self.signer, |r| r.signer);
        let pinned = self
            .provider
            .get_block_number()
            .await
            .map_err(|e| classify("eth_blockNumber", &e))?;
        let mined_nonce = self
            .provider
            .get_transaction_count(signer)
            .block_id(BlockId::number(pinned))
            .await
            .map_err(|e| classify("eth_getTransactionCount", &e))?;
        let minted = self.find_minted(registry, fence, signer, pinned).await?;
        let stored = match tx_hash {
            None => StoredTx::None,
            Some(tx) => self.stored_state(tx, pinned).await?,
        };
        let pending_nonce = self
            .provider
            .get_transaction_count(signer)
            .pending()
            .await
            .map_err(|e| classify("eth_getTransactionCount", &e))?;
        Ok(Observation {
            mined_nonce,
            minted,
            stored,
            pending_nonce,
            own_key: signer == self.signer,
        })
    }

    /// The agent minted for `fence` by block `pinned`: the newest `Registered` log of the
    /// registry by `signer` with the fenced URI, for a reserved fence only from the transaction
    /// with the reserved nonce.
    async fn find_minted(
        &self,
        registry: Address,
        fence: &Fence,
        signer: Address,
        pinned: u64,
    ) -> Result<Option<(u64, B256)>, ChainError> {
        let mut candidates = vec![];
        let mut start = fence.from_block;
        while start <= pinned {
            let end = start.saturating_add(LOG_WINDOW - 1).min(pinned);
            let filter = Filter::new()
                .address(registry)
                .event_signature(IIdentityRegistry::Registered::SIGNATURE_HASH)
                .topic2(signer.into_word())
                .from_block(start)
                .to_block(end);
            let logs = self
                .provider
                .get_logs(&filter)
                .await
                .map_err(|e| classify("eth_getLogs", &e))?;
            for log in &logs {
                if let Some(ev) =
                    receipt::matching_registration(&log.inner, registry, signer, &fence.uri)
                    && let (Some(id), Some(tx)) =
                        (receipt::agent_id_u64(ev.agent_id), log.transaction_hash)
                {
                    candidates.push((id, tx));
                }
            }
            start = end + 1;
        }
        let Some(reservation) = fence.reservation else {
            return Ok(candidates.last().copied());
        };
        for (id, tx) in candidates.into_iter().rev() {
            let sent = self
                .provider
                .get_transaction_by_hash(tx)
                .await
                .map_err(|e| classify("eth_getTransactionByHash", &e))?;
            if let Some(sent) = sent
                && sent.inner.signer() == reservation.signer
                && alloy::consensus::Transaction::nonce(&sent) == reservation.nonce
            {
                return Ok(Some((id, tx)));
            }
        }
        Ok(None)
    }

    async fn stored_state(&self, tx: B256, pinned: u64) -> Result<StoredTx, ChainError> {
        let receipt = self
            .provider
            .get_transaction_receipt(tx)
            .await
            .map_err(|e| classify("eth_getTransactionReceipt", &e))?;
        if let Some(r) = receipt {
            return Ok(match r.block_number {
                Some(b) if b <= pinned && r.status() => StoredTx::Succeeded,
                Some(b) if b <= pinned => StoredTx::Reverted,
                _ => StoredTx::Pending,
            });
        }
        let pending = self
            .provider
            .get_transaction_by_hash(tx)
            .await
            .map_err(|e| classify("eth_getTransactionByHash", &e))?;
        Ok(if pending.is_some() {
            StoredTx::Pending
        } else {
            StoredTx::Unknown
        })
    }

    /// The registry check (`erc8004.md` §2), once per registry: code at the address,
    /// `getVersion()` = `2.0.0`, and `name()` = `AgentIdentity`, which only the proxy answers
    /// (`getVersion` is pure, so the implementation behind the proxy answers it too).
    async fn check_registry(&self, registry: Address) -> Result<(), ChainError> {
        if self.registries.lock().contains(&registry) {
            return Ok(());
        }
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
        let contract = IIdentityRegistry::new(registry, &self.provider);
        let unsupported = |version: String| ChainError::UnsupportedRegistry {
            address: registry.to_string(),
            version,
        };
        match contract.getVersion().call().await {
            Ok(v) if v == REGISTRY_VERSION => {}
            Ok(v) => return Err(unsupported(format!("{v:?}"))),
            Err(e) => return Err(unsupported_or(e, "getVersion", unsupported)),
        }
        let name = match contract.name().call().await {
            Ok(name) => name,
            Err(e) => return Err(unsupported_or(e, "name", unsupported)),
        };
        if name != REGISTRY_NAME {
            let official = crate::deployments::official_registry(self.chain_id)
                .map(|a| format!(" (the official registry on chain {} is {a})", self.chain_id))
                .unwrap_or_default();
            return Err(ChainError::NotTheProxy {
                address: registry.to_string(),
                name,
                official,
            });
        }
        self.registries.lock().insert(registry);
        Ok(())
    }

    /// Judges the fence and, when nothing else can happen, sends `register(fence.uri)` with the
    /// reserved nonce. The answer says which.
    pub async fn submit(
        &self,
        registry: Address,
        fence: &Fence,
        tx_hash: Option<B256>,
    ) -> Result<Settled, ChainError> {
        let _one_sender = self.send_lock.lock().await;
        let observed = self.observe(registry, fence, tx_hash).await?;
        let nonce = match recovery::judge(fence, &observed) {
            Verdict::Send { nonce } => nonce,
            other => return Ok(Settled::Judged(other)),
        };
        self.check_registry(registry).await?;
        let contract = IIdentityRegistry::new(registry, &self.provider);
        let call = contract.register(fence.uri.clone()).nonce(nonce);
        match call.send().await {
            Ok(pending) => Ok(Settled::Sent(*pending.tx_hash())),
            Err(e) => {
                let e = classify_contract("register", e);
                if recovery::nonce_taken(&e.to_string()) {
                    Ok(Settled::Judged(Verdict::InFlight))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// For a request deleted before its registration is known: judges the fence and, where
    /// `register` would be sent, burns the reserved nonce instead (a zero-value transfer to the
    /// signer itself), so that no registration of it can be mined after the release.
    pub async fn cancel(
        &self,
        registry: Address,
        fence: &Fence,
        tx_hash: Option<B256>,
    ) -> Result<Settled, ChainError> {
        let _one_sender = self.send_lock.lock().await;
        let observed = self.observe(registry, fence, tx_hash).await?;
        let nonce = match recovery::judge(fence, &observed) {
            Verdict::Send { nonce } => nonce,
            other => return Ok(Settled::Judged(other)),
        };
        let burn = TransactionRequest::default()
            .with_to(self.signer)
            .with_value(U256::ZERO)
            .with_nonce(nonce);
        match self.provider.send_transaction(burn).await {
            Ok(pending) => Ok(Settled::Sent(*pending.tx_hash())),
            Err(e) => {
                let e = classify("cancel", &e);
                if recovery::nonce_taken(&e.to_string()) {
                    Ok(Settled::Judged(Verdict::InFlight))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Waits until the node answers `ownerOf(agent_id)` (a load-balanced RPC may not know a
    /// fresh agent yet) and checks that the registrar's key owns it.
    async fn ensure_owner(&self, registry: Address, agent_id: u64) -> Result<(), ChainError> {
        let contract = IIdentityRegistry::new(registry, &self.provider);
        let deadline = tokio::time::Instant::now() + self.receipt_timeout;
        let owner = loop {
            match contract.ownerOf(U256::from(agent_id)).call().await {
                Ok(owner) => break owner,
                Err(e) => {
                    let e = classify_contract("ownerOf", e);
                    if !matches!(e, ChainError::Reverted { .. }) {
                        return Err(e);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ChainError::AgentNotVisible { agent_id });
                    }
                    tokio::time::sleep(self.poll).await;
                }
            }
        };
        if owner == self.signer {
            Ok(())
        } else {
            Err(ChainError::NotOwner {
                agent_id,
                owner: owner.to_string(),
                signer: self.signer.to_string(),
            })
        }
    }

    /// Sends `setAgentURI(agent_id, uri)` and waits for a successful receipt.
    pub async fn set_agent_uri(
        &self,
        registry: Address,
        agent_id: u64,
        uri: &str,
    ) -> Result<B256, ChainError> {
        self.verify_chain().await?;
        let _one_sender = self.send_lock.lock().await;
        self.ensure_owner(registry, agent_id).await?;
        self.send_set_agent_uri(registry, agent_id, uri).await
    }

    async fn send_set_agent_uri(
        &self,
        registry: Address,
        agent_id: u64,
        uri: &str,
    ) -> Result<B256, ChainError> {
        let contract = IIdentityRegistry::new(registry, &self.provider);
        let pending = contract
            .setAgentURI(U256::from(agent_id), uri.to_owned())
            .send()
            .await
            .map_err(|e| classify_contract("setAgentURI", e))?;
        let tx = *pending.tx_hash();
        self.wait_success("setAgentURI", tx).await?;
        Ok(tx)
    }

    /// Brings a live agent's metadata to `desired` (read before write), and clears the
    /// `agentWallet` while it is the registrar's own key (the official `register` sets it to
    /// the sender; a hot key is no payment address). Returns the transactions sent.
    pub async fn sync_metadata(
        &self,
        registry: Address,
        agent_id: u64,
        desired: &BTreeMap<String, Bytes>,
    ) -> Result<usize, ChainError> {
        self.verify_chain().await?;
        let _one_sender = self.send_lock.lock().await;
        self.ensure_owner(registry, agent_id).await?;
        let mut sent = self.write_metadata(registry, agent_id, desired).await?;
        if self.wallet(registry, agent_id).await? == self.signer {
            self.unset_wallet(registry, agent_id).await?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Retires an agent: `setAgentURI(tombstone)` unless it is there already, `unsetAgentWallet`
    /// when any wallet is set, then `retired` metadata. Every step reads before it writes, so a
    /// retry resumes where the last attempt stopped. Returns the transactions sent.
    pub async fn retire(
        &self,
        registry: Address,
        agent_id: u64,
        tombstone_uri: &str,
        retired: &BTreeMap<String, Bytes>,
    ) -> Result<usize, ChainError> {
        self.verify_chain().await?;
        let _one_sender = self.send_lock.lock().await;
        self.ensure_owner(registry, agent_id).await?;
        let contract = IIdentityRegistry::new(registry, &self.provider);
        let mut sent = 0;
        let current = contract
            .tokenURI(U256::from(agent_id))
            .call()
            .await
            .map_err(|e| classify_contract("tokenURI", e))?;
        if current != tombstone_uri {
            self.send_set_agent_uri(registry, agent_id, tombstone_uri)
                .await?;
            sent += 1;
        }
        if self.wallet(registry, agent_id).await? != Address::ZERO {
            self.unset_wallet(registry, agent_id).await?;
            sent += 1;
        }
        sent += self.write_metadata(registry, agent_id, retired).await?;
        Ok(sent)
    }

    async fn wallet(&self, registry: Address, agent_id: u64) -> Result<Address, ChainError> {
        IIdentityRegistry::new(registry, &self.provider)
            .getAgentWallet(U256::from(agent_id))
            .call()
            .await
            .map_err(|e| classify_contract("getAgentWallet", e))
    }

    async fn unset_wallet(&self, registry: Address, agent_id: u64) -> Result<(), ChainError> {
        let pending = IIdentityRegistry::new(registry, &self.provider)
            .unsetAgentWallet(U256::from(agent_id))
            .send()
            .await
            .map_err(|e| classify_contract("unsetAgentWallet", e))?;
        self.wait_success("unsetAgentWallet", *pending.tx_hash())
            .await
    }

    async fn write_metadata(
        &self,
        registry: Address,
        agent_id: u64,
        desired: &BTreeMap<String, Bytes>,
    ) -> Result<usize, ChainError> {
        let contract = IIdentityRegistry::new(registry, &self.provider);
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

    /// Waits for the receipt of `tx` and requires `status == 1`.
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

/// A failed registry check call: a revert or an undecodable answer means "not this ABI"; a
/// transport or node problem stays what it is (and is retried).
fn unsupported_or(
    e: alloy::contract::Error,
    context: &'static str,
    unsupported: impl Fn(String) -> ChainError,
) -> ChainError {
    match e {
        alloy::contract::Error::TransportError(t) => match classify(context, &t) {
            ChainError::Reverted { reason, .. } => {
                unsupported(format!("{context} reverted: {reason}"))
            }
            other => other,
        },
        other => unsupported(format!("{context}: {other}")),
    }
}

mod chains;
mod classify;

pub use chains::{Chains, desired_metadata, reqwest_url};
pub use classify::classify;
use classify::classify_contract;

#[cfg(test)]
mod tests;
