//! What a RegistrationRequest implies, before any I/O: its target, documents and URIs. Pure.

use obol_api::{RegistrationPhase, RegistrationRequest};

use crate::document::{self, RegistrationDocument, Target};

/// The documents and URIs of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// Chain and registry.
    pub target: Target,
    /// The agentId from the status, if known.
    pub agent_id: Option<u64>,
    /// The live document (with `registrations` once the agentId is known).
    pub live: RegistrationDocument,
    /// The URI to register with (no agentId yet).
    pub register_uri: String,
    /// The URI the agent should carry now.
    pub live_uri: String,
}

/// Derives documents and URIs; `public_url` makes the registrar's served URL the agent URI.
pub fn derive(rr: &RegistrationRequest, public_url: Option<&str>) -> Result<Derived, String> {
    let target = Target::from_spec(&rr.spec)?;
    let agent_id = rr
        .status
        .as_ref()
        .and_then(|s| s.agent_id.as_deref())
        .and_then(|id| id.parse::<u64>().ok());
    let served = match (
        public_url,
        rr.metadata.namespace.as_deref(),
        rr.metadata.name.as_deref(),
    ) {
        (Some(url), Some(ns), Some(name)) => Some(document::served_uri(url, ns, name)),
        _ => None,
    };
    let unregistered = document::build(&rr.spec, &target, None);
    let live = document::build(&rr.spec, &target, agent_id);
    Ok(Derived {
        target,
        agent_id,
        register_uri: document::agent_uri(&unregistered, served.clone()),
        live_uri: document::agent_uri(&live, served),
        live,
    })
}

/// Whether the request is retired (being deleted, or tombstoned).
pub fn is_retired(rr: &RegistrationRequest) -> bool {
    rr.metadata.deletion_timestamp.is_some()
        || rr.status.as_ref().and_then(|s| s.phase) == Some(RegistrationPhase::Tombstoned)
}

/// The document the registrar serves for a request: live, or the tombstone once retired.
pub fn served_document(rr: &RegistrationRequest) -> Result<RegistrationDocument, String> {
    let d = derive(rr, None)?;
    Ok(if is_retired(rr) {
        document::tombstone(&d.live)
    } else {
        d.live
    })
}

/// The `data:` URI of the tombstone (needs no hosting once the request is gone).
pub fn tombstone_uri(d: &Derived) -> String {
    document::data_uri(&document::tombstone(&d.live))
}
