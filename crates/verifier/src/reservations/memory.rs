//! The reservation store of one replica: a map in memory, bounded.
//!
//! A record lives until its expiry (the authorization's `validBefore`, capped). When the map is
//! full, expired records go first, then the evictable ones ([`Record::evictable`]: nobody holds
//! them) closest to expiry. Records a request holds are never evicted: a map full of them
//! refuses new reservations ([`StoreError::Full`], a 503), it never lets a payment through.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use obol_x402::facilitator::async_trait;
use parking_lot::Mutex;

use super::{Key, Record, Store, StoreError};
use crate::clock::Clock;

#[derive(Debug, Default)]
struct Inner {
    /// key → (record, expiry in unix seconds).
    entries: HashMap<Key, (String, u64)>,
    /// Every entry by expiry (purge and eviction order).
    by_expiry: BTreeSet<(u64, Key)>,
}

/// See the module docs.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    capacity: usize,
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    /// A store of at most `capacity` records, expiring by `clock`.
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            clock,
        }
    }

    /// Number of records (expired ones included until they are purged).
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record stored under `key`, if live (tests and diagnostics).
    pub fn get(&self, key: &Key) -> Option<String> {
        let now = self.clock.now_unix();
        let inner = self.inner.lock();
        inner
            .entries
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v.clone())
    }
}

impl Inner {
    /// The live record under `key`; an expired one is removed.
    fn live(&mut self, key: &Key, now: u64) -> Option<&mut (String, u64)> {
        let expired = self.entries.get(key).is_some_and(|(_, exp)| *exp <= now);
        if expired {
            self.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn remove(&mut self, key: &Key) {
        if let Some((_, exp)) = self.entries.remove(key) {
            self.by_expiry.remove(&(exp, *key));
        }
    }

    fn purge_expired(&mut self, now: u64) {
        let keep = self
            .by_expiry
            .split_off(&(now.saturating_add(1), Key::default()));
        for (_, key) in std::mem::replace(&mut self.by_expiry, keep) {
            self.entries.remove(&key);
        }
    }

    fn evict_one(&mut self) -> bool {
        let victim = self
            .by_expiry
            .iter()
            .find(|(_, key)| {
                self.entries
                    .get(key)
                    .is_some_and(|(v, _)| Record::evictable(v))
            })
            .copied();
        match victim {
            Some((_, key)) => {
                self.remove(&key);
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert(
        &self,
        key: &Key,
        value: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let now = self.clock.now_unix();
        let mut inner = self.inner.lock();
        if let Some((stored, _)) = inner.live(key, now) {
            return Ok(Some(stored.clone()));
        }
        if inner.entries.len() >= self.capacity {
            inner.purge_expired(now);
        }
        if inner.entries.len() >= self.capacity && !inner.evict_one() {
            return Err(StoreError::Full);
        }
        let exp = now.saturating_add(ttl.as_secs().max(1));
        inner.entries.insert(*key, (value.to_owned(), exp));
        inner.by_expiry.insert((exp, *key));
        Ok(None)
    }

    async fn swap(&self, key: &Key, expected: &str, new: &str) -> Result<bool, StoreError> {
        let now = self.clock.now_unix();
        let mut inner = self.inner.lock();
        match inner.live(key, now) {
            Some((stored, _)) if stored == expected => {
                new.clone_into(stored);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove(&self, key: &Key, expected: &str) -> Result<bool, StoreError> {
        let now = self.clock.now_unix();
        let mut inner = self.inner.lock();
        match inner.live(key, now) {
            Some((stored, _)) if stored == expected => {
                inner.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
