//! More than one buyer replica: which replica may spend which authorization, and how a slot
//! of the pool moves from one replica to another without an authorization being sent twice.
//!
//! **Partition.** Every authorization falls in one of [`SLOTS`] slots by its nonce
//! ([`slot_of_nonce`]; the function is part of the on-cluster contract and never changes).
//! Slot `s` is *assigned* to the replica whose ordinal is `s % replicas` ([`assigned`]), so
//! the assignment depends only on the replica count.
//!
//! **Holding.** Being assigned a slot is not enough to spend from it. A replica spends from a
//! slot only while it *holds* it:
//! 1. its entry in the PurchaseRequest's `status.buyers[]` lists the slot, written with the
//!    resourceVersion of the status it decided on (a compare-and-swap: two replicas deciding
//!    on the same view cannot both list a slot, the second write fails with a conflict), and
//! 2. it asked the chain (batched nonce checks: [`crate::chain`]) about every authorization of the slot
//!    after that write, so whatever a previous holder spent is known spent here.
//!
//! **Letting go.** A replica that is no longer assigned a slot stops spending from it at once
//! and keeps listing it while authorizations it sent from the slot may still get an answer
//! (*drain*); then it stops listing it. Only when no live replica lists a slot does its
//! assigned replica claim it: the previous holder's journal has said it is done ("the journal
//! of the partition's previous owner says so").
//!
//! **Dead holders.** Each replica renews its entry (`updated`) periodically. A peer whose entry
//! has not changed for the lease, *as observed by the local clock* ([`Liveness`]; no two clocks
//! are compared), is not live, and its slots may be claimed; the claim's chain check is then
//! the only source of truth about what it spent. The replica itself stops spending when it
//! could not renew its entry for half the lease ([`may_spend`]), and after such a lapse it
//! asks the chain again before spending from any slot (another replica may have held it
//! meanwhile).
//!
//! **Two replicas listing one slot** (one took over while the other only looked dead, or two
//! views of the replica count): both yield, spend nothing from it, drain and stop listing it;
//! then the assigned replica claims it alone, by compare-and-swap.
//!
//! [`decide`] is the whole decision, a pure function with a table test; the watcher does the
//! reads, the conditional write and the chain checks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Number of partition slots. Divisible by 1, 2, 3, 4, 6 and 12, so those replica counts get
/// equal shares. Part of the on-cluster contract (`status.buyers[].slots`): never changed.
pub const SLOTS: u16 = 12;

/// A partition slot, `0..SLOTS`.
pub type Slot = u16;

/// The slot of an authorization with this nonce (or, lacking one, consume key): FNV-1a (64
/// bit) of the lowercased text, modulo [`SLOTS`]. Never changes: replicas of different
/// versions must agree.
pub fn slot_of_nonce(nonce: &str) -> Slot {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in nonce.trim().bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(SLOTS)) as Slot
}

/// Whether `slot` is assigned to the replica with `ordinal` when there are `replicas`. None is
/// assigned to a replica outside `0..replicas` (being scaled away) or when there are none.
pub fn assigned(slot: Slot, ordinal: u32, replicas: u32) -> bool {
    replicas > 0 && ordinal < replicas && u32::from(slot) % replicas == ordinal
}

/// The ordinal of a StatefulSet pod from its name (`x402-buyer-2` → 2).
pub fn ordinal_of(pod_name: &str) -> Option<u32> {
    let (_, n) = pod_name.rsplit_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    n.parse().ok()
}

/// Parses `status.buyers[].slots` (`"0,3,6,9"`; empty = none). Out-of-range or malformed
/// entries are an error: a peer's listing that cannot be read is not taken as "lists nothing".
pub fn parse_slots(text: &str) -> Result<BTreeSet<Slot>, String> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let slot: Slot = part
            .parse()
            .map_err(|_| format!("slot {part:?} is not a number"))?;
        if slot >= SLOTS {
            return Err(format!("slot {slot} is not below {SLOTS}"));
        }
        out.insert(slot);
    }
    Ok(out)
}

/// Writes `status.buyers[].slots`.
pub fn format_slots(slots: &BTreeSet<Slot>) -> String {
    slots
        .iter()
        .map(Slot::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Every slot.
pub fn all_slots() -> BTreeSet<Slot> {
    (0..SLOTS).collect()
}

/// Where this replica stands with one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Holding {
    /// Not listed in its entry.
    #[default]
    None,
    /// Listed (a conditional write succeeded), the chain not yet asked since.
    Claimed,
    /// Listed and the chain asked since: may spend.
    Checked,
}

/// This replica's own state for one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Own {
    /// Whether it is listed and checked.
    pub holding: Holding,
    /// Authorizations of the slot it sent without an answer yet.
    pub held: usize,
    /// It has been draining the slot longer than the drain limit: an answer to what it still
    /// holds is no longer expected (the request timed out); the next holder's chain check
    /// decides them.
    pub drain_overdue: bool,
}

/// Another replica's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Pod name.
    pub name: String,
    /// The slots its entry lists.
    pub slots: BTreeSet<Slot>,
    /// Whether its entry changed within the lease (by the local clock).
    pub live: bool,
}

/// Everything [`decide`] needs, read just before the conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input<'a> {
    /// This replica's ordinal.
    pub ordinal: u32,
    /// The replica count as this replica sees it.
    pub replicas: u32,
    /// This replica's state per slot (index = slot; missing = default).
    pub own: &'a [Own],
    /// The other replicas' entries (this replica's own entry, e.g. from before a restart, is
    /// not a peer).
    pub peers: &'a [Peer],
    /// This replica could not renew its entry within the lease: another replica may have held
    /// its slots meanwhile, so nothing counts as checked.
    pub lapsed: bool,
}

/// What to do with one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Held and checked: spend from it.
    Spend,
    /// Assigned and no live replica lists it: list it in the write, then ask the chain.
    Claim,
    /// Listed, the chain not asked since: keep listing it, ask the chain, spend nothing yet.
    Check,
    /// Assigned, but a live replica lists it: wait until it lets go.
    Wait {
        /// The replica that lists it.
        holder: String,
    },
    /// Not (or no longer solely) this replica's: spend nothing; keep listing it while what it
    /// sent may still be answered.
    Drain,
    /// Listed by this replica and by a live other: spend nothing, keep listing it while what it
    /// sent may still be answered, and ask the chain again before any later spend.
    Yield {
        /// The other replica.
        other: String,
    },
    /// Not this replica's, nothing outstanding: stop listing it.
    Release,
    /// Not this replica's and not listed.
    Idle,
}

impl Verdict {
    /// Whether the slot is listed in the entry written with this verdict.
    pub fn listed(&self) -> bool {
        matches!(
            self,
            Self::Spend | Self::Claim | Self::Check | Self::Drain | Self::Yield { .. }
        )
    }

    /// Whether authorizations of the slot may be taken (once the write succeeded).
    pub fn spends(&self) -> bool {
        matches!(self, Self::Spend)
    }

    /// The holding once the write that carries this verdict succeeded (before any chain
    /// check): a yielded slot needs a new check before it is spent from again.
    pub fn next_holding(&self, before: Holding) -> Holding {
        match self {
            Self::Spend => Holding::Checked,
            Self::Claim | Self::Check | Self::Yield { .. } => Holding::Claimed,
            Self::Drain => before,
            Self::Wait { .. } | Self::Release | Self::Idle => Holding::None,
        }
    }
}

/// One verdict per slot (index = slot).
pub fn decide(input: &Input<'_>) -> Vec<Verdict> {
    (0..SLOTS)
        .map(|slot| {
            let own = input
                .own
                .get(usize::from(slot))
                .copied()
                .unwrap_or_default();
            let holding = match own.holding {
                Holding::Checked if input.lapsed => Holding::Claimed,
                h => h,
            };
            let listed = holding != Holding::None;
            let mine = assigned(slot, input.ordinal, input.replicas);
            let live_other = input
                .peers
                .iter()
                .find(|p| p.live && p.slots.contains(&slot));
            let outstanding = own.held > 0 && !own.drain_overdue;
            match (mine, live_other, listed) {
                (_, Some(p), true) if outstanding => Verdict::Yield {
                    other: p.name.clone(),
                },
                (_, Some(_), true) => Verdict::Release,
                (true, Some(p), false) => Verdict::Wait {
                    holder: p.name.clone(),
                },
                (false, Some(_), false) | (false, None, false) => Verdict::Idle,
                (true, None, _) => match holding {
                    Holding::None => Verdict::Claim,
                    Holding::Claimed => Verdict::Check,
                    Holding::Checked => Verdict::Spend,
                },
                (false, None, true) if outstanding => Verdict::Drain,
                (false, None, true) => Verdict::Release,
            }
        })
        .collect()
}

/// The slots an entry written with `verdicts` lists.
pub fn listed(verdicts: &[Verdict]) -> BTreeSet<Slot> {
    slots_where(verdicts, Verdict::listed)
}

/// The slots that may be spent from once the write succeeded.
pub fn spendable(verdicts: &[Verdict]) -> BTreeSet<Slot> {
    slots_where(verdicts, Verdict::spends)
}

fn slots_where(verdicts: &[Verdict], f: impl Fn(&Verdict) -> bool) -> BTreeSet<Slot> {
    verdicts
        .iter()
        .zip(0..SLOTS)
        .filter(|(v, _)| f(v))
        .map(|(_, s)| s)
        .collect()
}

/// Whether this replica may still spend: its last successful write of its entry is younger
/// than half the lease, so no peer can have taken it for dead yet.
pub fn may_spend(since_last_write: Duration, lease: Duration) -> bool {
    since_last_write < lease / 2
}

/// When each peer's entry last changed, by the local clock (milliseconds of a monotonic
/// clock the caller reads). A peer is live while its entry changed within the lease; one seen
/// for the first time counts as just changed.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    seen: BTreeMap<String, (String, u64)>,
}

impl Liveness {
    /// Records `name`'s entry as read at `now_ms` (`updated` is its timestamp, compared only
    /// for change).
    pub fn observe(&mut self, name: &str, updated: &str, now_ms: u64) {
        match self.seen.get_mut(name) {
            Some((u, _)) if u.as_str() == updated => {}
            Some(slot) => *slot = (updated.to_owned(), now_ms),
            None => {
                self.seen
                    .insert(name.to_owned(), (updated.to_owned(), now_ms));
            }
        }
    }

    /// Whether `name` changed its entry within `lease` of `now_ms`. Unknown peers are live:
    /// they must be watched for a whole lease before they count as dead.
    pub fn live(&self, name: &str, now_ms: u64, lease: Duration) -> bool {
        self.seen
            .get(name)
            .is_none_or(|(_, at)| u128::from(now_ms.saturating_sub(*at)) < lease.as_millis())
    }

    /// Forgets the peers under `prefix` (one request's) that are not in `names`.
    pub fn retain_prefixed(&mut self, prefix: &str, names: &BTreeSet<String>) {
        self.seen
            .retain(|n, _| !n.starts_with(prefix) || names.contains(n));
    }
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
