//! The authorization pool: which upstreams exist, and where each of their authorizations
//! stands (free, held, spent, healed, expired).
//!
//! Pure state (no I/O, no clock): the proxy holds it under a lock. [`Pool::take`] marks an
//! authorization held at once, so no concurrent request can take it; the caller journals the
//! hold outside the lock and gives it back only if journaling failed. Answers move it on with
//! [`Pool::settle`]. The state of a key is global, so an authorization moved to another
//! upstream's file is still never re-spent.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use crate::config::Loaded;
use crate::journal::Mark;
use crate::partition::{SLOTS, Slot};
use crate::upstream::{Auth, Upstream};

/// How one upstream's pool stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Free and not expired.
    pub remaining: usize,
    /// Sent, fate unknown.
    pub held: usize,
    /// Spent (healed included).
    pub spent: usize,
    /// Of the spent, found used without having been held here.
    pub healed: usize,
    /// Dropped unsent: expiring within the safety margin.
    pub expired: usize,
    /// Ignored: malformed, duplicated, or signed for other terms.
    pub skipped: usize,
    /// Of the spent, those whose receipt stated the amount charged (`upto`: the seller
    /// settles what was used, at most what was authorized).
    pub receipts: usize,
    /// The sum of those amounts, in the asset's atomic units.
    pub charged: u128,
}

impl Counts {
    fn add_charge(&mut self, charged: Option<&u128>) {
        if let Some(&a) = charged {
            self.receipts += 1;
            self.charged = self.charged.saturating_add(a);
        }
    }
}

/// One upstream's pool.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The upstream.
    pub upstream: Arc<Upstream>,
    remaining: VecDeque<Auth>,
    held: HashMap<String, Auth>,
    counts: Counts,
    /// Every authorization placed (not skipped): key and partition slot.
    placed: Vec<(String, Slot)>,
}

/// `/status` for one upstream (the Go buyer's shape, plus the states it did not have).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Seller base URL.
    pub url: String,
    /// `remoteModel`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_model: Option<String>,
    /// `paid/<remoteModel>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_model: Option<String>,
    /// Authorizations not yet spent.
    pub remaining: usize,
    /// Authorizations of the current files that are spent.
    pub spent: usize,
    /// Sent, fate unknown.
    pub held: usize,
    /// Of the spent, healed.
    pub healed: usize,
    /// Dropped unsent because they expire within the safety margin.
    pub expired: usize,
    /// Of the spent, those whose receipt stated the amount charged.
    #[serde(skip_serializing_if = "is_zero")]
    pub receipts: usize,
    /// What those receipts charged, in atomic units (a decimal string, as x402 writes amounts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charged: Option<String>,
    /// The network as configured.
    pub network: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Why no authorization could be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeError {
    /// No such upstream (removed by a reload).
    Unknown,
    /// Nothing left that is valid now.
    Exhausted,
}

/// The pool of every upstream plus the state of every key that is not free.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    entries: BTreeMap<String, Entry>,
    models: BTreeMap<String, String>,
    marks: HashMap<String, Mark>,
    /// What each spent key's receipt said it charged, where it said so.
    charged: HashMap<String, u128>,
    /// Seconds before `validBefore` at which an authorization is no longer sent.
    margin: u64,
    /// Per upstream, the partition slots this replica may spend from; an upstream without an
    /// entry is not partitioned (a single buyer spends from every slot).
    gates: HashMap<String, BTreeSet<Slot>>,
    /// One of several replicas: an upstream without a gate is spent from by nobody here.
    partitioned: bool,
}

/// Seconds before `validBefore` at which an authorization is no longer sent, by default: room
/// for the seller to verify and settle it.
pub const DEFAULT_EXPIRY_MARGIN: u64 = 60;

impl Pool {
    /// An empty pool that knows the journal's marks.
    pub fn new(marks: impl IntoIterator<Item = (String, Mark)>) -> Self {
        Self {
            marks: marks.into_iter().collect(),
            margin: DEFAULT_EXPIRY_MARGIN,
            ..Self::default()
        }
    }

    /// Adds what the journal recorded as charged per spent key.
    pub fn with_charges(mut self, charged: impl IntoIterator<Item = (String, u128)>) -> Self {
        self.charged.extend(charged);
        self
    }

    /// Sets the expiry safety margin (seconds).
    pub fn with_margin(mut self, margin: u64) -> Self {
        self.margin = margin;
        self
    }

    /// Replaces upstreams and authorizations with `loaded`, placing every authorization by its
    /// key's mark and dropping the ones expiring before `now` + margin. Returns one line per
    /// skipped item, for the log.
    pub fn apply(&mut self, loaded: &Loaded, now: u64) -> Vec<String> {
        let mut notes = Vec::new();
        let mut entries = BTreeMap::new();
        let mut models = BTreeMap::new();
        let mut seen = HashSet::new();
        for (name, config) in &loaded.upstreams {
            let upstream = match Upstream::parse(name, config) {
                Ok(u) => Arc::new(u),
                Err(e) => {
                    notes.push(e.to_string());
                    continue;
                }
            };
            let mut entry = Entry {
                upstream: upstream.clone(),
                remaining: VecDeque::new(),
                held: HashMap::new(),
                counts: Counts::default(),
                placed: Vec::new(),
            };
            let mut problems = BTreeMap::<String, usize>::new();
            for raw in loaded.auths.get(name).into_iter().flatten() {
                let auth = match Auth::from_presigned(raw) {
                    Some(a) => a,
                    None => {
                        *problems
                            .entry("no consume key or payload".into())
                            .or_default() += 1;
                        continue;
                    }
                };
                if let Err(why) = upstream.signed_for(&auth) {
                    *problems.entry(why).or_default() += 1;
                    continue;
                }
                if !seen.insert(auth.key.clone()) {
                    entry.counts.skipped += 1;
                    continue;
                }
                entry.placed.push((auth.key.clone(), auth.slot()));
                match self.marks.get(&auth.key) {
                    Some(Mark::Held) => {
                        entry.held.insert(auth.key.clone(), auth);
                    }
                    Some(Mark::Spent) => {
                        entry.counts.spent += 1;
                        entry.counts.add_charge(self.charged.get(&auth.key));
                    }
                    Some(Mark::Healed) => {
                        entry.counts.spent += 1;
                        entry.counts.healed += 1;
                    }
                    Some(Mark::Released) | None => {
                        if auth.expires_within(now, self.margin) {
                            entry.counts.expired += 1;
                        } else {
                            entry.remaining.push_back(auth);
                        }
                    }
                }
            }
            for (why, n) in problems {
                entry.counts.skipped += n;
                notes.push(format!(
                    "upstream {name}: {n} authorizations skipped: {why}"
                ));
            }
            entry.counts.remaining = entry.remaining.len();
            entry.counts.held = entry.held.len();
            models.insert(upstream.routed_model(), name.clone());
            entries.insert(name.clone(), entry);
        }
        self.entries = entries;
        self.models = models;
        notes
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        self.entries.get(name).map(|e| e.upstream.clone())
    }

    /// The upstream serving a normalised model name.
    pub fn route_model(&self, model: &str) -> Option<Arc<Upstream>> {
        self.models.get(model).and_then(|n| self.upstream(n))
    }

    /// Model → upstream mappings.
    pub fn models(&self) -> &BTreeMap<String, String> {
        &self.models
    }

    /// Takes the first authorization of `name` usable at `now` and marks it held. Those
    /// expiring within the margin are dropped on the way and counted.
    pub fn take(&mut self, name: &str, now: u64) -> Result<Auth, TakeError> {
        let margin = self.margin;
        let entry = self.entries.get_mut(name).ok_or(TakeError::Unknown)?;
        let gate = self.gates.get(name);
        let partitioned = self.partitioned;
        let mut skipped_early = Vec::new();
        let mut not_mine = Vec::new();
        let found = loop {
            let Some(auth) = entry.remaining.pop_front() else {
                break None;
            };
            let allowed = match gate {
                Some(g) => g.contains(&auth.slot()),
                None => !partitioned,
            };
            if !allowed {
                // Another replica's slot: left in place, untouched.
                not_mine.push(auth);
                continue;
            }
            if auth.expires_within(now, margin) {
                entry.counts.expired += 1;
                continue;
            }
            if !auth.valid_at(now) {
                // Not valid yet: keep it for later.
                skipped_early.push(auth);
                continue;
            }
            // Another upstream's file may hold the same key and have spent it already.
            if self.marks.contains_key(&auth.key) {
                entry.counts.skipped += 1;
                continue;
            }
            break Some(auth);
        };
        for a in skipped_early.into_iter().chain(not_mine).rev() {
            entry.remaining.push_front(a);
        }
        let auth = found.ok_or(TakeError::Exhausted);
        if let Ok(a) = &auth {
            self.marks.insert(a.key.clone(), Mark::Held);
            entry.held.insert(a.key.clone(), a.clone());
        }
        entry.counts.remaining = entry.remaining.len();
        entry.counts.held = entry.held.len();
        auth
    }

    /// Makes this pool one replica's: nothing is taken from an upstream until
    /// [`Pool::set_gate`] opens slots of it.
    pub fn set_partitioned(&mut self) {
        self.partitioned = true;
    }

    /// Lets this replica spend only from `slots` of `name` (`None`: from every slot when not
    /// partitioned, from none when partitioned).
    pub fn set_gate(&mut self, name: &str, slots: Option<BTreeSet<Slot>>) {
        match slots {
            Some(s) => {
                self.gates.insert(name.to_owned(), s);
            }
            None => {
                self.gates.remove(name);
            }
        }
    }

    /// The counts of `name` per partition slot (index = slot).
    pub fn slot_counts(&self, name: &str) -> Option<Vec<Counts>> {
        let e = self.entries.get(name)?;
        let mut out = vec![Counts::default(); usize::from(SLOTS)];
        let free: HashSet<&str> = e.remaining.iter().map(|a| a.key.as_str()).collect();
        for (key, slot) in &e.placed {
            let c = &mut out[usize::from(*slot)];
            match self.marks.get(key) {
                Some(Mark::Held) if e.held.contains_key(key) => c.held += 1,
                Some(Mark::Spent) => {
                    c.spent += 1;
                    c.add_charge(self.charged.get(key));
                }
                Some(Mark::Healed) => {
                    c.spent += 1;
                    c.healed += 1;
                }
                _ if free.contains(key.as_str()) => c.remaining += 1,
                // Expired, or held/spent under another upstream's file.
                _ => c.expired += 1,
            }
        }
        Some(out)
    }

    /// Undoes [`Pool::take`] for an authorization that was never sent (its hold was not
    /// journaled).
    pub fn give_back(&mut self, name: &str, auth: Auth) {
        self.marks.remove(&auth.key);
        if let Some(entry) = self.entries.get_mut(name) {
            entry.held.remove(&auth.key);
            entry.remaining.push_front(auth);
            entry.counts.remaining = entry.remaining.len();
            entry.counts.held = entry.held.len();
        }
    }

    /// Moves the authorization `key` of `name` on to `mark`, by the journal's rule (spent is
    /// final, a release frees only a held key). Returns the mark to journal when the state
    /// changed: a held key found used becomes [`Mark::Spent`], a free one [`Mark::Healed`],
    /// unless `mark` itself says healed.
    pub fn settle(&mut self, name: &str, key: &str, mark: Mark) -> Option<Mark> {
        self.settle_charged(name, key, mark, None)
    }

    /// [`Pool::settle`], for an answer whose receipt stated the amount `charged`: kept when
    /// the key becomes [`Mark::Spent`] (a held key the seller confirmed).
    pub fn settle_charged(
        &mut self,
        name: &str,
        key: &str,
        mark: Mark,
        charged: Option<u128>,
    ) -> Option<Mark> {
        let current = self.marks.get(key).copied();
        let entry = self.entries.get_mut(name);
        let effective = match (current, mark) {
            (Some(m), _) if m.is_spent() => return None,
            (Some(Mark::Held), Mark::Released) => {
                self.marks.remove(key);
                if let Some(e) = entry {
                    if let Some(a) = e.held.remove(key) {
                        e.remaining.push_front(a);
                    }
                    e.counts.remaining = e.remaining.len();
                    e.counts.held = e.held.len();
                }
                return Some(Mark::Released);
            }
            (_, Mark::Released) | (_, Mark::Held) => return None,
            (Some(Mark::Held), m) => m,
            (_, _) => Mark::Healed,
        };
        self.marks.insert(key.to_owned(), effective);
        if let Some(e) = entry {
            let was_held = e.held.remove(key).is_some();
            let was_free = !was_held && {
                let before = e.remaining.len();
                e.remaining.retain(|a| a.key != key);
                e.remaining.len() < before
            };
            if was_held || was_free {
                e.counts.spent += 1;
                if effective == Mark::Healed {
                    e.counts.healed += 1;
                }
            }
            if let (Mark::Spent, Some(amount)) = (effective, charged) {
                self.charged.insert(key.to_owned(), amount);
                if was_held || was_free {
                    e.counts.add_charge(Some(&amount));
                }
            }
            e.counts.remaining = e.remaining.len();
            e.counts.held = e.held.len();
        }
        Some(effective)
    }

    /// Records that the spent key `key` of `name` was charged `amount`, stated after the spend
    /// (a streamed answer's receipt trailer). Only a spent key without a known amount takes
    /// it; returns whether it did.
    pub fn add_charge(&mut self, name: &str, key: &str, amount: u128) -> bool {
        if self.marks.get(key) != Some(&Mark::Spent) || self.charged.contains_key(key) {
            return false;
        }
        self.charged.insert(key.to_owned(), amount);
        if let Some(e) = self.entries.get_mut(name) {
            e.counts.add_charge(Some(&amount));
        }
        true
    }

    /// Drops authorizations expiring before `now` + margin from every pool (so the counts say
    /// so even when nothing is spent).
    pub fn sweep(&mut self, now: u64) {
        let margin = self.margin;
        for e in self.entries.values_mut() {
            let before = e.remaining.len();
            e.remaining.retain(|a| !a.expires_within(now, margin));
            e.counts.expired += before - e.remaining.len();
            e.counts.remaining = e.remaining.len();
        }
    }

    /// The free and held authorizations of `name`, for a chain check.
    pub fn unresolved(&self, name: &str) -> Vec<Auth> {
        self.entries.get(name).map_or_else(Vec::new, |e| {
            e.held.values().chain(e.remaining.iter()).cloned().collect()
        })
    }

    /// The held authorizations of every upstream: (name, auths).
    pub fn held(&self) -> Vec<(String, Vec<Auth>)> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.held.is_empty())
            .map(|(n, e)| (n.clone(), e.held.values().cloned().collect()))
            .collect()
    }

    /// Names of every upstream.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// The counts of `name`.
    pub fn counts(&self, name: &str) -> Option<Counts> {
        self.entries.get(name).map(|e| e.counts)
    }

    /// Every upstream's status.
    pub fn status(&self) -> BTreeMap<String, Status> {
        self.entries
            .iter()
            .map(|(name, e)| {
                let u = &e.upstream;
                let c = e.counts;
                let status = Status {
                    url: u.url.clone(),
                    remote_model: u.remote_model.clone(),
                    public_model: u.public_model(),
                    remaining: c.remaining,
                    spent: c.spent,
                    held: c.held,
                    healed: c.healed,
                    expired: c.expired,
                    receipts: c.receipts,
                    charged: (c.receipts > 0).then(|| c.charged.to_string()),
                    network: u.network_label.clone(),
                };
                (name.clone(), status)
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
pub(crate) mod tests;
