//! One step of a request, between reading it and writing its status: the pure decision
//! ([`plan::decide`]), at most one chain step, and the next status ([`plan::apply`]). The
//! Kubernetes shell runs [`advance`] on a fresh read and writes what it returns before anything
//! else happens; the crash tests drive the very same function with a status they keep
//! themselves. [`retire`] is the chain part of a deletion.

use std::time::Duration;

use alloy::primitives::Address;
use jiff::Timestamp;
use obol_api::{RegistrationRequest, RegistrationRequestStatus as Status};
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::chain::{self, Chains, Settled};
use crate::document::Target;
use crate::error::ChainError;
use crate::metrics::RegistrarMetrics;
use crate::plan::recovery::{Fence, Verdict};
use crate::plan::{self, Outcome};
use crate::request::{self, Derived};

/// What a step needs besides the request.
pub struct Env<'a> {
    /// RPC endpoints and the key.
    pub chains: &'a Chains,
    /// Metrics.
    pub metrics: &'a RegistrarMetrics,
    /// Base URL of the served documents; `None` registers `data:` URIs.
    pub public_url: Option<&'a str>,
    /// Retry schedule.
    pub backoff: &'a Backoff,
    /// How often a pending transaction is looked at again.
    pub poll_interval: Duration,
}

/// When to look at the request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Only when it changes.
    AwaitChange,
    /// After this long.
    After(Duration),
}

/// The result of one [`advance`].
#[derive(Debug, Clone, PartialEq)]
pub struct Advanced {
    /// The status to write (`None`: unchanged, nothing to write).
    pub status: Option<Status>,
    /// When to look again.
    pub requeue: Requeue,
    /// The chain step's outcome, if one ran (for tests and logs).
    pub outcome: Option<Outcome>,
}

/// The time from `now` until `at` (zero when past).
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// The outcome of a failed chain step.
pub fn failed(e: ChainError) -> Outcome {
    let message = e.to_string();
    if e.is_permanent() {
        Outcome::Permanent { message }
    } else {
        Outcome::Transient { message }
    }
}

/// One step of a live request (`rr` read fresh from the API server).
pub async fn advance(env: &Env<'_>, rr: &RegistrationRequest, now: Timestamp) -> Advanced {
    let current = rr.status.clone().unwrap_or_default();
    let generation = rr.metadata.generation;
    let finish = |outcome: Outcome, requeue: Requeue| {
        let next = plan::apply(&current, generation, outcome.clone(), now, env.backoff);
        let requeue = match next
            .next_attempt_time
            .as_deref()
            .and_then(|t| t.parse().ok())
        {
            Some(at) => Requeue::After(until(now, at)),
            None => requeue,
        };
        Advanced {
            status: Some(next),
            requeue,
            outcome: Some(outcome),
        }
    };
    let derived = match request::derive(rr, env.public_url) {
        Ok(d) => d,
        Err(message) => return finish(Outcome::Permanent { message }, Requeue::AwaitChange),
    };
    let agent_registry = derived.target.agent_registry();
    let action = plan::decide(&plan::Inputs {
        generation,
        status: &current,
        has_key: env.chains.has_key(),
        register_uri: &derived.register_uri,
        live_uri: &derived.live_uri,
        agent_registry: &agent_registry,
        now,
    });
    let outcome = match action {
        plan::Action::Idle => {
            return Advanced {
                status: None,
                requeue: Requeue::AwaitChange,
                outcome: None,
            };
        }
        plan::Action::Wait { until: at } => {
            return Advanced {
                status: None,
                requeue: Requeue::After(until(now, at)),
                outcome: None,
            };
        }
        plan::Action::OffChainOnly => Outcome::OffChainOnly,
        plan::Action::Refuse { message } => Outcome::Permanent { message },
        action => chain_step(env, rr, &derived, action)
            .await
            .unwrap_or_else(failed),
    };
    let requeue = match &outcome {
        Outcome::InFlight => Requeue::After(env.poll_interval),
        Outcome::Transient { message } => {
            warn!(error = %message, "Chain step failed; will retry");
            Requeue::After(env.backoff.initial)
        }
        Outcome::Permanent { message } => {
            warn!(error = %message, "Registration failed");
            Requeue::AwaitChange
        }
        _ => Requeue::After(Duration::from_millis(100)),
    };
    finish(outcome, requeue)
}

async fn chain_step(
    env: &Env<'_>,
    rr: &RegistrationRequest,
    derived: &Derived,
    action: plan::Action,
) -> Result<Outcome, ChainError> {
    let target = derived.target;
    let chain = env.chains.client(target.chain_id)?;
    Ok(match action {
        plan::Action::Fence { uri } => {
            let (from_block, reservation) = chain.reserve(target.registry).await?;
            Outcome::Fenced {
                from_block,
                uri,
                reservation,
                agent_registry: target.agent_registry(),
            }
        }
        plan::Action::Submit { fence, tx_hash } => {
            match chain.submit(target.registry, &fence, tx_hash).await? {
                Settled::Sent(tx_hash) => {
                    env.metrics.sent("register");
                    info!(%tx_hash, nonce = ?fence.reservation.map(|r| r.nonce), "Sent register");
                    Outcome::Sent { tx_hash }
                }
                Settled::Judged(verdict) => judged(verdict, &fence, tx_hash),
            }
        }
        plan::Action::UpdateUri { agent_id, uri } => {
            env.metrics.sent("set_agent_uri");
            chain.set_agent_uri(target.registry, agent_id, &uri).await?;
            Outcome::UriUpdated { uri }
        }
        plan::Action::SyncMetadata { agent_id } => {
            let desired = chain::desired_metadata(&rr.spec.metadata, true);
            let written = chain
                .sync_metadata(target.registry, agent_id, &desired)
                .await?;
            for _ in 0..written {
                env.metrics.sent("metadata");
            }
            Outcome::MetadataSynced
        }
        plan::Action::Idle
        | plan::Action::Wait { .. }
        | plan::Action::OffChainOnly
        | plan::Action::Refuse { .. } => unreachable!("handled by advance"),
    })
}

/// The live outcome of a recovery verdict.
fn judged(verdict: Verdict, fence: &Fence, stored: Option<alloy::primitives::B256>) -> Outcome {
    match verdict {
        Verdict::Found { agent_id, tx_hash } => {
            info!(agent_id, %tx_hash, "Registration confirmed");
            Outcome::Recovered {
                agent_id,
                tx_hash: Some(tx_hash),
            }
        }
        Verdict::InFlight => Outcome::InFlight,
        Verdict::Released => {
            info!(
                nonce = ?fence.reservation.map(|r| r.nonce),
                "The fenced nonce went to another transaction; fencing again"
            );
            Outcome::Unfenced
        }
        Verdict::Reverted => Outcome::Permanent {
            message: format!(
                "register: reverted: transaction {} reverted",
                stored.map_or_else(|| "?".to_owned(), |t| t.to_string())
            ),
        },
        Verdict::WaitForSigner { signer, nonce } => Outcome::Transient {
            message: waiting_for_signer(signer, nonce),
        },
        Verdict::Gap { next, nonce } => Outcome::Transient {
            message: format!(
                "the fenced nonce {nonce} is ahead of the signer's next nonce {next}; waiting \
                 until nonces {next}..{nonce} are used"
            ),
        },
        Verdict::Inconsistent { why } => Outcome::Transient {
            message: format!("the RPC endpoint's answers disagree ({why}); looking again"),
        },
        // `submit` acts on Send itself.
        Verdict::Send { nonce } => Outcome::Transient {
            message: format!("nonce {nonce} still unused"),
        },
    }
}

fn waiting_for_signer(signer: Address, nonce: u64) -> String {
    format!(
        "the registration was fenced by key {signer} with its nonce {nonce}, which is not used \
         yet, and the registrar's key is now another: a registration signed by {signer} could \
         still be mined, so nothing is sent until {signer} uses nonce {nonce} (any transaction \
         of that key does)"
    )
}

/// What [`retire`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Retired {
    /// Write this outcome, then look again (`Tombstoned`, `Recovered`, `Transient`, …).
    Outcome(Outcome),
    /// Release the finalizer now; the warning says what stays on chain.
    Release {
        /// The Warning Event's note.
        warning: Option<String>,
    },
}

/// The chain part of a deletion for `action` (not `Release` or `Wait`, which need no chain).
/// `target` is where the agent was fenced (the recorded `agentRegistry`, else the spec's).
pub async fn retire(
    env: &Env<'_>,
    rr: &RegistrationRequest,
    derived: &Derived,
    target: Target,
    action: plan::CleanupAction,
) -> Retired {
    let chain = match action {
        plan::CleanupAction::Release { warning } => return Retired::Release { warning },
        plan::CleanupAction::Wait { .. } => {
            return Retired::Outcome(Outcome::Transient {
                message: "waiting".into(),
            });
        }
        _ => match env.chains.client(target.chain_id) {
            Ok(c) => c,
            Err(e) => return Retired::Outcome(failed(e)),
        },
    };
    match action {
        plan::CleanupAction::Tombstone { agent_id } => {
            let uri = request::tombstone_uri(derived);
            let retired = chain::desired_metadata(&rr.spec.metadata, false);
            env.metrics.sent("tombstone");
            match chain
                .retire(target.registry, agent_id, &uri, &retired)
                .await
            {
                Ok(_) => Retired::Outcome(Outcome::Tombstoned { uri }),
                Err(e) if e.is_permanent() => Retired::Release {
                    warning: Some(plan::clip(&format!(
                        "Could not tombstone agent {agent_id}; it stays active on chain: {e}"
                    ))),
                },
                Err(e) => Retired::Outcome(failed(e)),
            }
        }
        plan::CleanupAction::Recover { fence, tx_hash } => {
            match chain.cancel(target.registry, &fence, tx_hash).await {
                Ok(Settled::Judged(Verdict::Found { agent_id, tx_hash })) => {
                    Retired::Outcome(Outcome::Recovered {
                        agent_id,
                        tx_hash: Some(tx_hash),
                    })
                }
                Ok(Settled::Judged(Verdict::Released | Verdict::Reverted)) => {
                    Retired::Release { warning: None }
                }
                Ok(Settled::Sent(tx)) => Retired::Outcome(Outcome::Transient {
                    message: format!(
                        "cancelling the unsent registration: its nonce is burnt by {tx}"
                    ),
                }),
                Ok(Settled::Judged(Verdict::InFlight)) => Retired::Outcome(Outcome::Transient {
                    message: "registration transaction still pending".into(),
                }),
                Ok(Settled::Judged(other)) => Retired::Outcome(judged(other, &fence, tx_hash)),
                Err(e) => Retired::Outcome(failed(e)),
            }
        }
        plan::CleanupAction::Release { warning } => Retired::Release { warning },
        plan::CleanupAction::Wait { .. } => Retired::Outcome(Outcome::Transient {
            message: "waiting".into(),
        }),
    }
}
