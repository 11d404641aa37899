//! Exactly once: what a fenced registration's chain state means, decided from one consistent
//! observation. Pure.
//!
//! The fence reserves the signer's nonce `N` for `register` before anything is sent, and every
//! send of the request's `register` uses exactly `N`. Only one transaction of the signer can
//! ever be mined with nonce `N`, so a re-send replaces the first, or fails, and never mints a
//! second agent. Recovery reads everything at one pinned block `B` (the signer's mined
//! transaction count at `B`, the `Registered` logs up to `B`), so a transaction mined while the
//! queries run can change none of the answers it combines:
//!
//! | At `B` | Then |
//! |---|---|
//! | a `Registered` log of the fenced URI, from the transaction with nonce `N` | the agent exists: `Found` |
//! | nonce `N` mined, no such log, our stored transaction reverted | `Reverted` (permanent) |
//! | nonce `N` mined, no such log, nothing of ours mined successfully | `Released`: another transaction used `N`, our `register` can never be mined; fence again |
//! | `N` not mined, another key's fence | `WaitForSigner`: only that key can use or burn `N` |
//! | `N` not mined, the node's pending count is past `N` | `InFlight`: a transaction with `N` is in the pool |
//! | `N` not mined, pending count = `N` | `Send` `register` with nonce `N` (safe whatever is mined meanwhile) |
//! | `N` not mined, pending count < `N` | `Gap`: earlier nonces must be used first |
//!
//! A fence written before nonces were reserved (no `nonce`) is recovered the old way, but on
//! pinned reads: found in the logs up to `B`, else in flight while the signer has any
//! transaction pending or mined after `B`, else released.

use alloy::primitives::{Address, B256};

/// What a fenced registration reserved on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The key that sends `register` (and owns the agent).
    pub signer: Address,
    /// Its nonce for `register`.
    pub nonce: u64,
}

/// A persisted fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The URI `register` is sent with (what the logs are matched against).
    pub uri: String,
    /// First block to search for the `Registered` log.
    pub from_block: u64,
    /// The reserved nonce; `None` for a fence of an earlier registrar version.
    pub reservation: Option<Reservation>,
}

/// The state of the stored registration transaction, as of the pinned block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredTx {
    /// No hash stored.
    None,
    /// The node does not know it (never arrived, or dropped).
    Unknown,
    /// In the pool, or mined after the pinned block.
    Pending,
    /// Mined by the pinned block, successfully.
    Succeeded,
    /// Mined by the pinned block, reverted.
    Reverted,
}

/// One consistent look at the chain for a fence, pinned at block `B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Transactions of the fence's signer mined by `B` (its nonce at `B`).
    pub mined_nonce: u64,
    /// The agent minted for the fence by `B`: agent id and transaction (for a reserved fence,
    /// only from the transaction with the reserved nonce).
    pub minted: Option<(u64, B256)>,
    /// The stored transaction.
    pub stored: StoredTx,
    /// The node's pending transaction count of the signer, read after everything else.
    pub pending_nonce: u64,
    /// Whether the registrar's current key is the fence's signer.
    pub own_key: bool,
}

/// What recovery concludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The agent exists.
    Found {
        /// Its id.
        agent_id: u64,
        /// The transaction that minted it.
        tx_hash: B256,
    },
    /// Send (or re-send) `register` with the reserved nonce.
    Send {
        /// The reserved nonce.
        nonce: u64,
    },
    /// A transaction with the reserved nonce (or, for an old fence, of the signer) is pending.
    InFlight,
    /// Nothing of this fence can be mined any more: fence again.
    Released,
    /// Our `register` was mined and reverted.
    Reverted,
    /// The fence belongs to another key, whose nonce is not used yet.
    WaitForSigner {
        /// The fence's key.
        signer: Address,
        /// Its reserved nonce.
        nonce: u64,
    },
    /// The reserved nonce is ahead of the signer's next one: earlier nonces must be used first.
    Gap {
        /// The signer's next nonce per the node.
        next: u64,
        /// The reserved nonce.
        nonce: u64,
    },
    /// The node's answers contradict each other (a lagging replica behind a load balancer):
    /// look again later, decide nothing.
    Inconsistent {
        /// What did not fit.
        why: &'static str,
    },
}

/// Decides what a fence's observation means (see the module table).
pub fn judge(fence: &Fence, o: &Observation) -> Verdict {
    if let Some((agent_id, tx_hash)) = o.minted {
        return Verdict::Found { agent_id, tx_hash };
    }
    let Some(r) = fence.reservation else {
        return judge_unreserved(o);
    };
    if o.mined_nonce > r.nonce {
        // Nonce N was used by block B, and not by a register of ours that minted.
        return match o.stored {
            StoredTx::Reverted => Verdict::Reverted,
            StoredTx::Succeeded => Verdict::Inconsistent {
                why: "the registration succeeded but its Registered log is missing",
            },
            StoredTx::Pending => Verdict::Inconsistent {
                why: "the registration is pending although its nonce is used",
            },
            StoredTx::None | StoredTx::Unknown => Verdict::Released,
        };
    }
    if !o.own_key {
        return Verdict::WaitForSigner {
            signer: r.signer,
            nonce: r.nonce,
        };
    }
    match o.pending_nonce {
        p if p > r.nonce => Verdict::InFlight,
        p if p == r.nonce => Verdict::Send { nonce: r.nonce },
        next => Verdict::Gap {
            next,
            nonce: r.nonce,
        },
    }
}

fn judge_unreserved(o: &Observation) -> Verdict {
    match o.stored {
        StoredTx::Reverted => return Verdict::Reverted,
        StoredTx::Pending => return Verdict::InFlight,
        StoredTx::Succeeded => {
            return Verdict::Inconsistent {
                why: "the registration succeeded but its Registered log is missing",
            };
        }
        StoredTx::None | StoredTx::Unknown => {}
    }
    // Anything of the signer pending now, or mined after B, could be the registration.
    if o.pending_nonce > o.mined_nonce {
        Verdict::InFlight
    } else {
        Verdict::Released
    }
}

/// Whether a node's answer to a `register` re-send means that a transaction with its nonce is
/// already pending or mined (ours or another): look again later rather than fail.
pub fn nonce_taken(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "nonce too low",
        "already known",
        "known transaction",
        "replacement transaction underpriced",
        "replacement fee too low",
        "nonce has already been used",
        "transaction already imported",
    ]
    .iter()
    .any(|s| m.contains(s))
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
