//! `RegistrationRequest` (`rr`): one ERC-8004 registration, carried out by the registrar.
//!
//! Deliberately no secret reference in the spec: whoever may write an offer must not be able to
//! point the registrar at an arbitrary Secret. The registrar's key is its own configuration.

// kube's printcolumn(...) attributes repeat `type_ = "string"` on purpose.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::service_offer::RegistrationService;

/// A request to register (and keep registered) one agent.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "obol.org",
    version = "v1alpha1",
    kind = "RegistrationRequest",
    namespaced,
    shortname = "rr",
    status = "RegistrationRequestStatus",
    doc = "An ERC-8004 agent registration, carried out by the erc8004-registrar.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "AgentID", type_ = "string", json_path = ".status.agentId"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRequestSpec {
    /// Agent name.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Agent description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The paid endpoint URL announced in the document.
    #[schemars(regex(pattern = crate::validation::HTTP_URL))]
    pub endpoint: String,
    /// Chain: a name (`base-sepolia`) or a CAIP-2 id (`eip155:84532`).
    #[schemars(regex(pattern = crate::validation::NETWORK))]
    pub chain: String,
    /// Identity registry contract; default the chain's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::validation::ADDRESS))]
    pub registry: Option<String>,
    /// Image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Extra service entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<RegistrationService>,
    /// Trust models supported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_trust: Vec<String>,
    /// OASF skills.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// OASF domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Provenance copied from the offer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provenance: BTreeMap<String, String>,
    /// Name of the offer this registration announces (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_offer_name: Option<String>,
}

/// Where a registration stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RegistrationPhase {
    /// Accepted, nothing sent yet.
    Pending,
    /// Transaction sent (`txHash` recorded before waiting).
    Submitted,
    /// `Registered` event seen; `agentId` known.
    Confirmed,
    /// Permanent failure (`errorMessage` says why).
    Failed,
    /// No signing key: the document is served, nothing is on chain. A valid terminal state.
    OffChainOnly,
    /// Deactivated on chain during deletion.
    Tombstoned,
}

impl RegistrationPhase {
    /// Whether the offer may count itself registered (`Confirmed` or `OffChainOnly`).
    pub fn counts_as_registered(self) -> bool {
        matches!(self, Self::Confirmed | Self::OffChainOnly)
    }
}

/// What the registrar reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRequestStatus {
    /// Where the registration stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RegistrationPhase>,
    /// ERC-8004 agent id (decimal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The registration transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    /// Why the registration failed, or the last transient error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Attempts made for the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// When the next attempt is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub next_attempt_time: Option<String>,
    /// Fence: the block from which `Registered` logs are searched after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_from_block: Option<u64>,
    /// Fence: the address that sends `register` (and owns the agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^0x[0-9a-fA-F]{40}$"))]
    pub signer: Option<String>,
    /// Fence: the signer's transaction nonce reserved for `register`. Every (re-)send uses it,
    /// so at most one registration of this request can ever be mined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    /// Where the agent is (being) registered, `eip155:<chainId>:<registry>`, fixed at the fence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_registry: Option<String>,
    /// The agent URI last written on chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_uri: Option<String>,
    /// Details.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
