//! The replay cache: `(payer, nonce)` pairs in flight or settled, so one authorization is never
//! let through twice by this replica (and not even sent to the facilitator twice).
//!
//! Memory is bounded by `capacity`. An entry lives until its authorization's `validBefore`
//! (after which no facilitator can settle it anyway), capped at `max_ttl` because buyers often
//! sign `validBefore = 2^32 - 1`. When the cache is full, expired entries go first, then the
//! settled entries closest to expiry: forgetting a *settled* nonce is safe because the payment
//! is settled before any request is let through, and the chain refuses a second settlement of
//! it. In-flight entries are never evicted; a cache full of them refuses new payments (503).

use std::collections::{BTreeSet, HashMap};

use obol_x402::{Address, B256};
use parking_lot::Mutex;

/// Default number of entries.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Default longest time an entry is kept, in seconds.
pub const DEFAULT_MAX_TTL_SECS: u64 = 24 * 3600;

type Key = (Address, B256);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight,
    Settled,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, (State, u64)>,
    /// Settled entries by expiry (eviction order).
    settled: BTreeSet<(u64, Key)>,
}

/// Why a payment cannot be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Already in flight or settled.
    Replayed,
    /// Full of in-flight payments.
    Full,
}

/// See the module docs.
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<Inner>,
    capacity: usize,
    max_ttl: u64,
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_MAX_TTL_SECS)
    }
}

impl ReplayCache {
    /// A cache holding at most `capacity` entries for at most `max_ttl` seconds each.
    pub fn new(capacity: usize, max_ttl: u64) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            max_ttl,
        }
    }

    /// Registers a payment as in flight, unless its nonce is known.
    pub fn begin(
        &self,
        payer: Address,
        nonce: B256,
        valid_before: u64,
        now: u64,
    ) -> Result<(), ReplayError> {
        let key = (payer, nonce);
        let expires = valid_before.min(now.saturating_add(self.max_ttl));
        let mut inner = self.inner.lock();
        if let Some(&(_, exp)) = inner.entries.get(&key) {
            if exp > now {
                return Err(ReplayError::Replayed);
            }
            inner.remove(&key);
        }
        if inner.entries.len() >= self.capacity {
            inner.purge_expired(now);
        }
        if inner.entries.len() >= self.capacity && !inner.evict_one_settled() {
            return Err(ReplayError::Full);
        }
        inner.entries.insert(key, (State::InFlight, expires));
        Ok(())
    }

    /// The payment settled (or may have): keep the nonce until it expires.
    pub fn settled(&self, payer: Address, nonce: B256) {
        let key = (payer, nonce);
        let mut inner = self.inner.lock();
        if let Some(entry) = inner.entries.get_mut(&key)
            && entry.0 == State::InFlight
        {
            entry.0 = State::Settled;
            let exp = entry.1;
            inner.settled.insert((exp, key));
        }
    }

    /// The payment was refused before any settlement was attempted: the nonce is unused and
    /// the buyer may try it again.
    pub fn release(&self, payer: Address, nonce: B256) {
        let key = (payer, nonce);
        let mut inner = self.inner.lock();
        if inner
            .entries
            .get(&key)
            .is_some_and(|e| e.0 == State::InFlight)
        {
            inner.entries.remove(&key);
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn remove(&mut self, key: &Key) {
        if let Some((State::Settled, exp)) = self.entries.remove(key) {
            self.settled.remove(&(exp, *key));
        }
    }

    fn purge_expired(&mut self, now: u64) {
        self.entries.retain(|_, (_, exp)| *exp > now);
        self.settled = self
            .settled
            .split_off(&(now.saturating_add(1), Key::default()));
    }

    fn evict_one_settled(&mut self) -> bool {
        match self.settled.pop_first() {
            Some((_, key)) => {
                self.entries.remove(&key);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u8) -> (Address, B256) {
        (Address::repeat_byte(1), B256::repeat_byte(i))
    }

    #[test]
    fn in_flight_and_settled_are_replays_until_expiry() {
        let c = ReplayCache::new(10, 1000);
        let (p, n) = k(1);
        c.begin(p, n, 500, 100).unwrap();
        assert_eq!(c.begin(p, n, 500, 101), Err(ReplayError::Replayed));
        c.settled(p, n);
        assert_eq!(c.begin(p, n, 500, 499), Err(ReplayError::Replayed));
        // Another payer with the same nonce is another authorization.
        c.begin(Address::repeat_byte(2), n, 500, 100).unwrap();
        // After validBefore the entry is gone (no facilitator could settle it anyway).
        c.begin(p, n, 900, 500).unwrap();
    }

    #[test]
    fn release_frees_an_unsettled_nonce_only() {
        let c = ReplayCache::new(10, 1000);
        let (p, n) = k(1);
        c.begin(p, n, 500, 100).unwrap();
        c.release(p, n);
        c.begin(p, n, 500, 100).unwrap();
        c.settled(p, n);
        c.release(p, n);
        assert_eq!(c.begin(p, n, 500, 100), Err(ReplayError::Replayed));
    }

    #[test]
    fn ttl_is_capped() {
        let c = ReplayCache::new(10, 60);
        let (p, n) = k(1);
        c.begin(p, n, u64::from(u32::MAX), 100).unwrap();
        assert_eq!(c.begin(p, n, u64::MAX, 159), Err(ReplayError::Replayed));
        c.begin(p, n, u64::MAX, 160).unwrap();
    }

    #[test]
    fn bounded_memory_evicts_expired_then_settled_never_in_flight() {
        let c = ReplayCache::new(3, 1000);
        for i in 0..3 {
            let (p, n) = k(i);
            c.begin(p, n, 200 + u64::from(i), 100).unwrap();
        }
        // Full of in-flight entries: refuse.
        let (p, n) = k(9);
        assert_eq!(c.begin(p, n, 500, 100), Err(ReplayError::Full));
        // Settle one: it is evicted for the newcomer.
        c.settled(k(1).0, k(1).1);
        c.begin(p, n, 500, 100).unwrap();
        assert_eq!(c.len(), 3);
        assert!(c.begin(k(1).0, k(1).1, 500, 100).is_err(), "full again");
        // Once entries expire they make room.
        let (p2, n2) = k(10);
        c.begin(p2, n2, 900, 300).unwrap();
        assert!(c.len() <= 3);
    }
}
