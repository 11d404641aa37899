//! Deletion decisions: retire what may be on chain, with bounded retries, then release.

use alloy::primitives::B256;
use jiff::Timestamp;
use obol_api::condition::{self, Condition, ConditionStatus};
use obol_api::{RegistrationPhase as Phase, RegistrationRequestStatus as Status};

use super::recovery::Fence;
use super::{TOMBSTONING, backoff_until, clip, parse_agent_id, parse_fence, parse_tx};

/// The next step while the request is being deleted (the finalizer holds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupAction {
    /// Nothing to do before `until` (backoff).
    Wait {
        /// When to look again.
        until: Timestamp,
    },
    /// Retire the agent: `setAgentURI(agent_id, tombstone URI)`, `unsetAgentWallet`, and the
    /// metadata of a retired agent.
    Tombstone {
        /// The agent.
        agent_id: u64,
    },
    /// A registration may be in flight: judge the fence first (then tombstone what was found;
    /// a reserved nonce nobody used yet is burnt, so that nothing can be minted after release).
    Recover {
        /// The persisted fence.
        fence: Fence,
        /// The stored transaction, if any.
        tx_hash: Option<B256>,
    },
    /// Remove the finalizer; with a warning when something stays active on chain.
    Release {
        /// The Warning Event's note.
        warning: Option<String>,
    },
}

/// Decides the next step while deleting. `max_attempts` bounds the tombstone retries.
pub fn decide_cleanup(
    status: &Status,
    has_key: bool,
    max_attempts: u32,
    now: Timestamp,
) -> CleanupAction {
    let agent_id = parse_agent_id(status);
    if status.phase == Some(Phase::Tombstoned) {
        return CleanupAction::Release { warning: None };
    }
    let on_chain_maybe = agent_id.is_some() || status.search_from_block.is_some();
    if !has_key {
        let warning = agent_id
            .map(|id| format!("No signing key: agent {id} stays registered and active on chain"));
        return CleanupAction::Release { warning };
    }
    if on_chain_maybe && status.attempts.unwrap_or(0) >= max_attempts {
        let what = agent_id.map_or_else(
            || "a possibly pending registration".to_owned(),
            |id| format!("agent {id}"),
        );
        let last = status.error_message.as_deref().unwrap_or("unknown error");
        return CleanupAction::Release {
            warning: Some(clip(&format!(
                "Gave up tombstoning {what} after {max_attempts} attempts; it stays active on chain: {last}"
            ))),
        };
    }
    if let Some(until) = backoff_until(status, now) {
        return CleanupAction::Wait { until };
    }
    match (agent_id, parse_fence(status)) {
        (Some(agent_id), _) => CleanupAction::Tombstone { agent_id },
        (None, Some(fence)) => CleanupAction::Recover {
            fence,
            tx_hash: parse_tx(status),
        },
        (None, None) => CleanupAction::Release { warning: None },
    }
}

/// The status at the start of deletion: `attempts` now counts tombstone attempts. `None` when
/// deletion already started.
pub fn begin_cleanup(status: &Status, now: Timestamp) -> Option<Status> {
    if condition::find(&status.conditions, TOMBSTONING).is_some() {
        return None;
    }
    let mut next = status.clone();
    next.attempts = None;
    next.next_attempt_time = None;
    condition::set_condition(
        &mut next.conditions,
        Condition::new(
            TOMBSTONING,
            ConditionStatus::True,
            "Deleting",
            "Retiring the agent before release",
        ),
        &now.to_string(),
    );
    Some(next)
}
