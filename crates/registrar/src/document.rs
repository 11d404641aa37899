//! The ERC-8004 registration document (`erc8004.md` §8), its tombstone (§10), the agent URI
//! that points at it, and the aggregated `/.well-known/agent-registration.json` (§9). Pure.

use std::collections::BTreeMap;

use alloy::primitives::Address;
use base64::Engine as _;
use obol_api::RegistrationRequestSpec;
use serde::{Deserialize, Serialize};

/// `type` of every registration document.
pub const REGISTRATION_TYPE: &str = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1";
/// Prefix of fully on-chain agent URIs (the spec's SHOULD for on-chain storage).
pub const DATA_URI_PREFIX: &str = "data:application/json;base64,";
/// OASF version announced with skills and domains.
pub const OASF_VERSION: &str = "0.8";

/// Where an agent is registered: chain and IdentityRegistry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The IdentityRegistry (proxy) address.
    pub registry: Address,
}

impl Target {
    /// Resolves `spec.chain` (a name the x402 network table knows, or any CAIP-2 `eip155:<id>`)
    /// and `spec.registry` (default: the official registry of that chain,
    /// [`crate::deployments`]).
    pub fn from_spec(spec: &RegistrationRequestSpec) -> Result<Self, String> {
        let chain_id = chain_id(&spec.chain)?;
        let registry = match &spec.registry {
            Some(r) => r
                .parse::<Address>()
                .map_err(|e| format!("registry {r:?}: {e}"))?,
            None => crate::deployments::official_registry(chain_id).ok_or_else(|| {
                format!("no known IdentityRegistry on chain {chain_id}; set spec.registry")
            })?,
        };
        Ok(Self { chain_id, registry })
    }

    /// Parses an `agentRegistry` string, `eip155:<chainId>:<registry>`.
    pub fn from_agent_registry(s: &str) -> Result<Self, String> {
        let bad = || format!("agentRegistry {s:?}: expected eip155:<chainId>:<address>");
        let rest = s.strip_prefix("eip155:").ok_or_else(bad)?;
        let (chain, address) = rest.split_once(':').ok_or_else(bad)?;
        Ok(Self {
            chain_id: chain.parse().map_err(|_| bad())?,
            registry: address.parse().map_err(|_| bad())?,
        })
    }

    /// `eip155:<chainId>:<registry>`, the `agentRegistry` of a registrations entry.
    pub fn agent_registry(&self) -> String {
        format!(
            "eip155:{}:{}",
            self.chain_id,
            self.registry.to_checksum(None)
        )
    }
}

/// The EIP-155 chain id of `chain`: a network name (or alias) of the x402 table, or CAIP-2
/// `eip155:<id>` for any chain (registration needs no token table).
pub fn chain_id(chain: &str) -> Result<u64, String> {
    if let Some(id) = chain.strip_prefix("eip155:") {
        return id
            .parse::<u64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| format!("chain {chain:?}: expected eip155:<decimal chain id>"));
    }
    obol_x402::Network::resolve(chain)
        .map(|n| n.chain_id)
        .map_err(|e| e.to_string())
}

/// The registration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationDocument {
    /// Always [`REGISTRATION_TYPE`].
    #[serde(rename = "type")]
    pub type_: String,
    /// Agent name.
    pub name: String,
    /// What the agent does.
    pub description: String,
    /// Image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Endpoints.
    pub services: Vec<Service>,
    /// Accepts x402 payments.
    pub x402_support: bool,
    /// Live (`false`: retired, the tombstone).
    pub active: bool,
    /// Where it is registered; present once the agentId is known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registrations: Vec<Registration>,
    /// Trust models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_trust: Vec<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Provenance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provenance: BTreeMap<String, String>,
}

/// One `services[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// `web`, `A2A`, `MCP`, `OASF`, …
    pub name: String,
    /// URL (every entry has one; an older document may lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Protocol version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// OASF skills.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// OASF domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
}

/// One `registrations[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The ERC-721 token id (a JSON number; ids are sequential from 0).
    pub agent_id: u64,
    /// `eip155:<chainId>:<registry>`.
    pub agent_registry: String,
}

fn non_empty(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

/// The live document for a request; `agent_id` once known.
pub fn build(
    spec: &RegistrationRequestSpec,
    target: &Target,
    agent_id: Option<u64>,
) -> RegistrationDocument {
    let mut services = vec![Service {
        name: "web".into(),
        endpoint: Some(spec.endpoint.clone()),
        version: None,
        skills: vec![],
        domains: vec![],
    }];
    if !spec.skills.is_empty() || !spec.domains.is_empty() {
        // The OASF entry describes the agent's own endpoint (the spec's structure has an
        // endpoint on every service, and some parsers require it).
        services.push(Service {
            name: "OASF".into(),
            endpoint: Some(spec.endpoint.clone()),
            version: Some(OASF_VERSION.into()),
            skills: spec.skills.clone(),
            domains: spec.domains.clone(),
        });
    }
    services.extend(spec.services.iter().map(|s| Service {
        name: s.name.clone(),
        endpoint: Some(s.endpoint.clone()),
        version: s.version.clone(),
        skills: vec![],
        domains: vec![],
    }));
    let description = spec
        .description
        .clone()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| format!("x402 payment-gated service: {}", spec.name));
    RegistrationDocument {
        type_: REGISTRATION_TYPE.into(),
        name: spec.name.clone(),
        description,
        image: spec.image.clone().filter(|i| !i.trim().is_empty()),
        services,
        x402_support: true,
        active: true,
        registrations: agent_id
            .map(|agent_id| Registration {
                agent_id,
                agent_registry: target.agent_registry(),
            })
            .into_iter()
            .collect(),
        supported_trust: spec.supported_trust.clone(),
        metadata: non_empty(&spec.metadata),
        provenance: non_empty(&spec.provenance),
    }
}

/// The retirement document (`erc8004.md` §10): same type, name and registrations; no services;
/// `x402Support` and `active` false.
pub fn tombstone(live: &RegistrationDocument) -> RegistrationDocument {
    RegistrationDocument {
        type_: REGISTRATION_TYPE.into(),
        name: live.name.clone(),
        description: format!("{} (deactivated)", live.description),
        image: live.image.clone(),
        services: vec![],
        x402_support: false,
        active: false,
        registrations: live.registrations.clone(),
        supported_trust: vec![],
        metadata: BTreeMap::new(),
        provenance: BTreeMap::new(),
    }
}

/// Compact JSON (what goes on chain inside a `data:` URI).
pub fn to_json(doc: &RegistrationDocument) -> String {
    // Serializing plain strings, bools and maps cannot fail.
    serde_json::to_string(doc).unwrap_or_default()
}

/// `data:application/json;base64,<document>`.
pub fn data_uri(doc: &RegistrationDocument) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(to_json(doc));
    format!("{DATA_URI_PREFIX}{b64}")
}

/// Decodes a [`data_uri`] back into its document.
pub fn parse_data_uri(uri: &str) -> Option<RegistrationDocument> {
    let b64 = uri.strip_prefix(DATA_URI_PREFIX)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Where the registrar serves one request's document under `public_url`.
pub fn served_uri(public_url: &str, namespace: &str, name: &str) -> String {
    format!(
        "{}/registrations/{namespace}/{name}.json",
        public_url.trim_end_matches('/')
    )
}

/// The agent URI for a request: the served URL when the registrar has a public URL (the
/// document then gains `registrations` without a new transaction), else a `data:` URI of
/// `doc` (the URI changes when the document does, which costs a `setAgentURI`).
pub fn agent_uri(doc: &RegistrationDocument, served: Option<String>) -> String {
    served.unwrap_or_else(|| data_uri(doc))
}

/// The aggregated `/.well-known/agent-registration.json`: the oldest agent's identity, the
/// services of every agent in order (duplicates dropped), every known registration. `docs` is
/// already sorted oldest first. `None` when there is nothing to announce.
pub fn aggregate(docs: &[RegistrationDocument]) -> Option<RegistrationDocument> {
    let (first, rest) = docs.split_first()?;
    let mut out = first.clone();
    for doc in rest {
        for s in &doc.services {
            if !out.services.contains(s) {
                out.services.push(s.clone());
            }
        }
        for r in &doc.registrations {
            if !out.registrations.contains(r) {
                out.registrations.push(r.clone());
            }
        }
        out.x402_support |= doc.x402_support;
    }
    Some(out)
}

#[cfg(test)]
#[path = "document_tests.rs"]
pub(crate) mod tests;
