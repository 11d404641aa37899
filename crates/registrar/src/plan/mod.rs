//! The state machine: what to do next for one RegistrationRequest, and what its status becomes
//! after it happened. Pure: no client, no provider, no clock (`now` is an argument).
//!
//! Exactly once: a registration is *fenced* before anything is sent: the status stores the
//! block to search from, the URI, the signer, the signer's nonce reserved for `register`, and
//! the registry (`searchFromBlock`, `registrationUri`, `signer`, `nonce`, `agentRegistry`).
//! Every send of `register` uses the reserved nonce, and every attempt first judges the chain
//! at one pinned block ([`recovery`]), so no crash, restart or handover can mint twice. The
//! shell must act on a fresh read of the status and persist each new status before the next
//! step.

use alloy::primitives::{Address, B256};
use jiff::Timestamp;
use obol_api::condition::{self, Condition, ConditionStatus};
use obol_api::{RegistrationPhase as Phase, RegistrationRequestStatus as Status};

use crate::backoff::Backoff;

/// Condition: the agreed metadata is on chain for `observedGeneration`.
pub const METADATA_SYNCED: &str = "MetadataSynced";
/// Condition: deletion started; marks that `attempts` counts tombstone attempts.
pub const TOMBSTONING: &str = "Tombstoning";
/// Status messages are cut to this many characters.
pub const MAX_MESSAGE: usize = 300;

/// What the registrar knows about one request.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The current status (read fresh from the API server).
    pub status: &'a Status,
    /// Whether a signing key is configured.
    pub has_key: bool,
    /// The URI to register with while no agentId is known.
    pub register_uri: &'a str,
    /// The URI the agent should have once its id is known (equal to `register_uri` when the
    /// document is served; a new `data:` URI otherwise).
    pub live_uri: &'a str,
    /// Where the spec wants the agent, `eip155:<chainId>:<registry>`.
    pub agent_registry: &'a str,
    /// Now.
    pub now: Timestamp,
}

/// The next step for a live (not deleting) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do before `until` (backoff).
    Wait {
        /// When to look again.
        until: Timestamp,
    },
    /// No key: record `OffChainOnly` (the document is still served).
    OffChainOnly,
    /// Check the registry, reserve the signer's next nonce, and persist the fence.
    Fence {
        /// The URI about to be registered.
        uri: String,
    },
    /// Judge the fence on chain; (re-)send `register` with its nonce when nothing else can.
    Submit {
        /// The persisted fence.
        fence: recovery::Fence,
        /// The stored transaction, if any.
        tx_hash: Option<B256>,
    },
    /// The request cannot go on as it is (permanent for this generation).
    Refuse {
        /// Why.
        message: String,
    },
    /// `setAgentURI(agent_id, uri)`.
    UpdateUri {
        /// The agent.
        agent_id: u64,
        /// The new URI.
        uri: String,
    },
    /// Read the agreed metadata and write what differs.
    SyncMetadata {
        /// The agent.
        agent_id: u64,
    },
    /// Up to date (or failed for this generation): nothing to do.
    Idle,
}

/// What happened when an action ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The fence is persisted.
    Fenced {
        /// First block to search after a crash.
        from_block: u64,
        /// The URI about to be registered.
        uri: String,
        /// The signer and its nonce reserved for `register`.
        reservation: recovery::Reservation,
        /// `eip155:<chainId>:<registry>`.
        agent_registry: String,
    },
    /// `register` was accepted by the node.
    Sent {
        /// Its hash.
        tx_hash: B256,
    },
    /// The agent exists (receipt or logs).
    Recovered {
        /// Its id.
        agent_id: u64,
        /// The registration transaction, when known.
        tx_hash: Option<B256>,
    },
    /// A transaction of the signer is pending; look again soon.
    InFlight,
    /// Nothing of the fence can be mined any more (its nonce went to another transaction):
    /// fence again.
    Unfenced,
    /// `setAgentURI` mined.
    UriUpdated {
        /// The URI now on chain.
        uri: String,
    },
    /// The agreed metadata is on chain.
    MetadataSynced,
    /// No key.
    OffChainOnly,
    /// The tombstone is on chain.
    Tombstoned {
        /// The tombstone URI.
        uri: String,
    },
    /// Retry later.
    Transient {
        /// Why.
        message: String,
    },
    /// Give up for this generation.
    Permanent {
        /// Why.
        message: String,
    },
}

pub(crate) fn parse_agent_id(status: &Status) -> Option<u64> {
    status.agent_id.as_deref().and_then(|s| s.parse().ok())
}

fn parse_time(s: Option<&str>) -> Option<Timestamp> {
    s.and_then(|s| s.parse().ok())
}

pub(crate) fn parse_tx(status: &Status) -> Option<B256> {
    status.tx_hash.as_deref().and_then(|s| s.parse().ok())
}

/// The persisted fence, if any (meaningful while no agentId is known).
pub fn parse_fence(status: &Status) -> Option<recovery::Fence> {
    let reservation = match (
        status
            .signer
            .as_deref()
            .and_then(|s| s.parse::<Address>().ok()),
        status.nonce,
    ) {
        (Some(signer), Some(nonce)) => Some(recovery::Reservation { signer, nonce }),
        _ => None,
    };
    Some(recovery::Fence {
        uri: status.registration_uri.clone()?,
        from_block: status.search_from_block?,
        reservation,
    })
}

fn failed_for(status: &Status, generation: Option<i64>) -> bool {
    status.phase == Some(Phase::Failed) && status.observed_generation == generation
}

fn metadata_synced(status: &Status, generation: Option<i64>) -> bool {
    condition::find(&status.conditions, METADATA_SYNCED)
        .is_some_and(|c| c.is_true() && c.observed_generation == generation)
}

pub(crate) fn backoff_until(status: &Status, now: Timestamp) -> Option<Timestamp> {
    parse_time(status.next_attempt_time.as_deref()).filter(|t| *t > now)
}

/// Decides the next step for a live request.
pub fn decide(i: &Inputs<'_>) -> Action {
    let s = i.status;
    if !i.has_key {
        return if s.phase == Some(Phase::OffChainOnly) && s.observed_generation == i.generation {
            Action::Idle
        } else {
            Action::OffChainOnly
        };
    }
    if failed_for(s, i.generation) {
        return Action::Idle;
    }
    if let Some(until) = backoff_until(s, i.now) {
        return Action::Wait { until };
    }
    if let Some(fenced) = s.agent_registry.as_deref()
        && fenced != i.agent_registry
    {
        return Action::Refuse {
            message: format!(
                "the agent is registered in {fenced}; spec.chain/spec.registry now name {}: \
                 an agent cannot move (restore the spec, or create a new RegistrationRequest)",
                i.agent_registry
            ),
        };
    }
    if let Some(agent_id) = parse_agent_id(s) {
        if s.registration_uri.as_deref() != Some(i.live_uri) {
            return Action::UpdateUri {
                agent_id,
                uri: i.live_uri.to_owned(),
            };
        }
        if !metadata_synced(s, i.generation) {
            return Action::SyncMetadata { agent_id };
        }
        return Action::Idle;
    }
    // A fence is never dropped for a newer URI: its register may still be mined. The fenced
    // URI is registered, and the agent's URI updated afterwards.
    match parse_fence(s) {
        Some(fence) => Action::Submit {
            fence,
            tx_hash: parse_tx(s),
        },
        None => Action::Fence {
            uri: i.register_uri.to_owned(),
        },
    }
}

/// Cuts a message to [`MAX_MESSAGE`] characters.
pub fn clip(message: &str) -> String {
    if message.chars().count() <= MAX_MESSAGE {
        return message.to_owned();
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE - 1).collect();
    cut.push('…');
    cut
}

/// The status after `outcome`. Successes clear the retry bookkeeping; transient failures
/// count an attempt and schedule the next one with `backoff`.
pub fn apply(
    status: &Status,
    generation: Option<i64>,
    outcome: Outcome,
    now: Timestamp,
    backoff: &Backoff,
) -> Status {
    let mut s = status.clone();
    s.observed_generation = generation;
    let succeeded = |s: &mut Status| {
        s.attempts = None;
        s.next_attempt_time = None;
        s.error_message = None;
    };
    match outcome {
        Outcome::Fenced {
            from_block,
            uri,
            reservation,
            agent_registry,
        } => {
            succeeded(&mut s);
            s.phase = Some(Phase::Pending);
            s.search_from_block = Some(from_block);
            s.registration_uri = Some(uri);
            s.signer = Some(reservation.signer.to_checksum(None));
            s.nonce = Some(reservation.nonce);
            s.agent_registry = Some(agent_registry);
            s.tx_hash = None;
        }
        Outcome::Sent { tx_hash } => {
            succeeded(&mut s);
            s.phase = Some(Phase::Submitted);
            s.tx_hash = Some(tx_hash.to_string());
        }
        Outcome::Recovered { agent_id, tx_hash } => {
            succeeded(&mut s);
            s.phase = Some(Phase::Confirmed);
            s.agent_id = Some(agent_id.to_string());
            if let Some(tx) = tx_hash {
                s.tx_hash = Some(tx.to_string());
            }
        }
        Outcome::InFlight => {
            s.phase = Some(Phase::Submitted);
        }
        Outcome::Unfenced => {
            succeeded(&mut s);
            s.phase = Some(Phase::Pending);
            s.search_from_block = None;
            s.registration_uri = None;
            s.signer = None;
            s.nonce = None;
            s.agent_registry = None;
            s.tx_hash = None;
        }
        Outcome::UriUpdated { uri } => {
            succeeded(&mut s);
            s.phase = Some(Phase::Confirmed);
            s.registration_uri = Some(uri);
        }
        Outcome::MetadataSynced => {
            succeeded(&mut s);
            s.phase = Some(Phase::Confirmed);
            let mut c = Condition::new(
                METADATA_SYNCED,
                ConditionStatus::True,
                "Synced",
                "Agreed metadata is on chain",
            );
            c.observed_generation = generation;
            condition::set_condition(&mut s.conditions, c, &now.to_string());
        }
        Outcome::OffChainOnly => {
            succeeded(&mut s);
            s.phase = Some(Phase::OffChainOnly);
        }
        Outcome::Tombstoned { uri } => {
            succeeded(&mut s);
            s.phase = Some(Phase::Tombstoned);
            s.registration_uri = Some(uri);
        }
        Outcome::Transient { message } => {
            let attempts = s.attempts.unwrap_or(0).saturating_add(1);
            let delay = backoff.delay(attempts);
            let next = now
                .checked_add(
                    jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::MAX),
                )
                .unwrap_or(now);
            s.attempts = Some(attempts);
            s.next_attempt_time = Some(next.to_string());
            s.error_message = Some(clip(&message));
            s.phase.get_or_insert(Phase::Pending);
        }
        Outcome::Permanent { message } => {
            s.phase = Some(Phase::Failed);
            s.error_message = Some(clip(&message));
            s.next_attempt_time = None;
        }
    }
    s
}

mod cleanup;
pub mod recovery;

pub use cleanup::{CleanupAction, begin_cleanup, decide_cleanup};

#[cfg(test)]
mod tests;
