//! The authorization pool: which upstreams exist, what each can still spend, what was spent.
//!
//! Pure state (no I/O, no clock): the proxy holds it under a lock, takes an authorization
//! (marking its key consumed at once, so no concurrent request can take it), journals it
//! outside the lock, and gives it back only if journaling failed. The consumed set is global
//! by key, so an authorization moved to another upstream's file is still never re-spent.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use crate::config::Loaded;
use crate::upstream::{Auth, Upstream};

/// One upstream's pool.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The upstream.
    pub upstream: Arc<Upstream>,
    remaining: VecDeque<Auth>,
    spent: usize,
}

/// `/status` for one upstream (the Go buyer's shape).
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
    /// Authorizations of the current files that are consumed.
    pub spent: usize,
    /// The network as configured.
    pub network: String,
}

/// Why no authorization could be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeError {
    /// No such upstream (removed by a reload).
    Unknown,
    /// Nothing left that is valid now.
    Exhausted,
}

/// The pool of every upstream plus the set of consumed keys.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    entries: BTreeMap<String, Entry>,
    models: BTreeMap<String, String>,
    consumed: HashSet<String>,
}

impl Pool {
    /// An empty pool that knows `consumed` keys (from the journal).
    pub fn new(consumed: impl IntoIterator<Item = String>) -> Self {
        Self {
            consumed: consumed.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Replaces upstreams and authorizations with `loaded`, dropping consumed keys. Returns
    /// one line per skipped item, for the log.
    pub fn apply(&mut self, loaded: &Loaded) -> Vec<String> {
        let mut notes = Vec::new();
        let mut entries = BTreeMap::new();
        let mut models = BTreeMap::new();
        for (name, config) in &loaded.upstreams {
            let upstream = match Upstream::parse(name, config) {
                Ok(u) => Arc::new(u),
                Err(e) => {
                    notes.push(e.to_string());
                    continue;
                }
            };
            let mut seen = HashSet::new();
            let mut remaining = VecDeque::new();
            let mut spent = 0;
            for (i, raw) in loaded.auths.get(name).into_iter().flatten().enumerate() {
                let Some(auth) = Auth::from_presigned(raw) else {
                    notes.push(format!(
                        "upstream {name}: auth #{i} has no consume key or payload"
                    ));
                    continue;
                };
                if !seen.insert(auth.key.clone()) {
                    continue;
                }
                if self.consumed.contains(&auth.key) {
                    spent += 1;
                } else {
                    remaining.push_back(auth);
                }
            }
            models.insert(upstream.routed_model(), name.clone());
            entries.insert(
                name.clone(),
                Entry {
                    upstream,
                    remaining,
                    spent,
                },
            );
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

    /// Takes the first authorization of `name` usable at `now` and marks it consumed.
    pub fn take(&mut self, name: &str, now: u64) -> Result<Auth, TakeError> {
        let entry = self.entries.get_mut(name).ok_or(TakeError::Unknown)?;
        loop {
            let idx = entry
                .remaining
                .iter()
                .position(|a| a.usable_at(now))
                .ok_or(TakeError::Exhausted)?;
            let auth = entry.remaining.remove(idx).ok_or(TakeError::Exhausted)?;
            entry.spent += 1;
            // Another upstream's file may hold the same key and have spent it already.
            if self.consumed.insert(auth.key.clone()) {
                return Ok(auth);
            }
        }
    }

    /// Undoes [`Pool::take`] for an authorization that was never sent.
    pub fn give_back(&mut self, name: &str, auth: Auth) {
        self.consumed.remove(&auth.key);
        if let Some(entry) = self.entries.get_mut(name) {
            entry.spent = entry.spent.saturating_sub(1);
            entry.remaining.push_front(auth);
        }
    }

    /// Unspent authorizations of the upstreams on chain `chain_id`: (name, token, auths).
    pub fn unspent_on(&self, chain_id: u64) -> Vec<(String, obol_x402::Address, Vec<Auth>)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.upstream.chain_id == Some(chain_id))
            .map(|(n, e)| {
                (
                    n.clone(),
                    e.upstream.asset,
                    e.remaining.iter().cloned().collect(),
                )
            })
            .collect()
    }

    /// Moves the authorization `key` of `name` to spent (found used elsewhere, e.g. on chain);
    /// `false` when it is no longer in the pool.
    pub fn mark_spent(&mut self, name: &str, key: &str) -> bool {
        let Some(entry) = self.entries.get_mut(name) else {
            return false;
        };
        let Some(idx) = entry.remaining.iter().position(|a| a.key == key) else {
            return false;
        };
        entry.remaining.remove(idx);
        entry.spent += 1;
        self.consumed.insert(key.to_owned());
        true
    }

    /// (remaining, spent) of `name`.
    pub fn counts(&self, name: &str) -> Option<(usize, usize)> {
        self.entries.get(name).map(|e| (e.remaining.len(), e.spent))
    }

    /// Every upstream's status.
    pub fn status(&self) -> BTreeMap<String, Status> {
        self.entries
            .iter()
            .map(|(name, e)| {
                let u = &e.upstream;
                let status = Status {
                    url: u.url.clone(),
                    remote_model: u.remote_model.clone(),
                    public_model: u.public_model(),
                    remaining: e.remaining.len(),
                    spent: e.spent,
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
