//! Finding the agent in logs (`erc8004.md` §6): the `Registered` event of the registry, in a
//! receipt or in an `eth_getLogs` answer. Pure.

use alloy::primitives::{Address, Log, U256};
use alloy::sol_types::SolEvent as _;

use crate::abi::IIdentityRegistry::Registered;

/// A decoded `Registered(uint256 indexed agentId, string agentURI, address indexed owner)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredEvent {
    /// The new agent (ERC-721 token id). 0 is valid.
    pub agent_id: U256,
    /// The URI it was registered with.
    pub agent_uri: String,
    /// Who registered it.
    pub owner: Address,
}

/// Decodes `log` when it is a `Registered` event emitted by `registry`.
pub fn decode_registered(log: &Log, registry: Address) -> Option<RegisteredEvent> {
    if log.address != registry || log.topics().first() != Some(&Registered::SIGNATURE_HASH) {
        return None;
    }
    let ev = Registered::decode_log_data(&log.data).ok()?;
    Some(RegisteredEvent {
        agent_id: ev.agentId,
        agent_uri: ev.agentURI,
        owner: ev.owner,
    })
}

/// The agent minted by a successful registration transaction: the first `Registered` log of
/// the registry in its receipt.
pub fn registered_in_receipt<'a>(
    logs: impl IntoIterator<Item = &'a Log>,
    registry: Address,
) -> Option<RegisteredEvent> {
    logs.into_iter()
        .find_map(|l| decode_registered(l, registry))
}

/// Recovery after a crash: `log` decoded when it is a `Registered` event of `registry` by
/// `owner` whose URI is `uri` (surrounding whitespace ignored).
pub fn matching_registration(
    log: &Log,
    registry: Address,
    owner: Address,
    uri: &str,
) -> Option<RegisteredEvent> {
    decode_registered(log, registry)
        .filter(|ev| ev.owner == owner && ev.agent_uri.trim() == uri.trim())
}

/// The agentId as the status and the document carry it. Ids are sequential from 0, so a
/// value past `u64` means the log did not come from a registry this registrar understands.
pub fn agent_id_u64(id: U256) -> Option<u64> {
    u64::try_from(id).ok()
}

#[cfg(test)]
#[path = "receipt_tests.rs"]
mod tests;
