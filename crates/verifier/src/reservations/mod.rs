//! Reservations: which authorizations `(payer, nonce)` are in flight, settled or spent, so one
//! authorization never reaches an upstream twice and a settled one is never charged twice.
//!
//! A request takes the reservation **before** the facilitator's `/verify` and holds it until the
//! payment is settled or released. The records and the decision on a known authorization are
//! pure ([`record`]); a [`Store`] keeps them: [`memory::MemoryStore`] (one replica, bounded
//! memory) or [`redis::RedisStore`] (several replicas sharing one Redis or Valkey, `SET NX PX`
//! with the authorization's remaining validity as the expiry). A store that cannot answer is an
//! error the caller turns into 503: the check is never skipped.

pub mod memory;
pub mod record;
pub mod redis;
mod resp;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use obol_x402::facilitator::async_trait;
use obol_x402::{Address, B256};

pub use record::{Fingerprint, Known, Record, Token};

/// Default longest time a record is kept, in seconds: buyers often sign
/// `validBefore = 2^32 - 1`, and no settled payment needs remembering for longer than the
/// re-serve window after that.
pub const DEFAULT_MAX_TTL_SECS: u64 = 24 * 3600;
/// Default number of records a memory store holds.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// One authorization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Who signed it.
    pub payer: Address,
    /// Its EIP-3009 nonce.
    pub nonce: B256,
}

impl Key {
    /// The key of `payer`'s authorization `nonce`.
    pub fn new(payer: Address, nonce: B256) -> Self {
        Self { payer, nonce }
    }
}

/// A store that could not do its part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Bounded memory is full of records that requests hold.
    #[error("the reservation table is full")]
    Full,
    /// The shared store did not answer (down, timed out, refused).
    #[error("the reservation store is unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// A bounded label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Full => "reservations_full",
            Self::Unavailable(_) => "reservations_unavailable",
        }
    }
}

/// Keeps records: three atomic operations, each all-or-nothing.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Stores `value` for `ttl` unless `key` holds a value; returns the value it holds.
    async fn insert(
        &self,
        key: &Key,
        value: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError>;

    /// Replaces `expected` by `new`, keeping the expiry; `false` when `key` holds anything else.
    async fn swap(&self, key: &Key, expected: &str, new: &str) -> Result<bool, StoreError>;

    /// Deletes `key` if it holds `expected`; `false` otherwise.
    async fn remove(&self, key: &Key, expected: &str) -> Result<bool, StoreError>;
}

/// A reservation a request holds: the record it last wrote, so every change is a
/// compare-and-swap from it (a holder presumed dead cannot overwrite its successor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The authorization.
    pub key: Key,
    /// The holder.
    pub token: Token,
    current: String,
}

impl Lease {
    /// The record as this holder last wrote it.
    pub fn record(&self) -> Option<Record> {
        Record::decode(&self.current)
    }
}

/// The outcome of [`Reservations::hold`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The authorization was free: this request holds it now.
    Taken(Lease),
    /// The store knows it: what to do instead.
    Known(Known),
}

/// The reservation records over a [`Store`].
#[derive(Debug, Clone)]
pub struct Reservations {
    store: Arc<dyn Store>,
    max_ttl: u64,
}

impl Reservations {
    /// Records in `store`, kept at most `max_ttl` seconds each.
    pub fn new(store: Arc<dyn Store>, max_ttl: u64) -> Self {
        Self {
            store,
            max_ttl: max_ttl.max(1),
        }
    }

    /// A memory store of the default size with the system clock (tests and one replica).
    pub fn in_memory() -> Self {
        Self::new(
            Arc::new(memory::MemoryStore::new(
                DEFAULT_CAPACITY,
                Arc::new(crate::clock::SystemClock),
            )),
            DEFAULT_MAX_TTL_SECS,
        )
    }

    /// How long a record of an authorization valid until `valid_before` is kept, at `now`.
    pub fn ttl(&self, valid_before: u64, now: u64) -> Duration {
        Duration::from_secs(valid_before.saturating_sub(now).clamp(1, self.max_ttl))
    }

    /// Takes the authorization for a request until `deadline` (unix seconds), or says what
    /// the store knows about it, judged for a requirement with `fingerprint`.
    pub async fn hold(
        &self,
        key: Key,
        valid_before: u64,
        now: u64,
        deadline: u64,
        fingerprint: Fingerprint,
    ) -> Result<Hold, StoreError> {
        let token = Token::random();
        let held = Record::Held { token, deadline }.encode();
        let ttl = self.ttl(valid_before, now);
        match self.store.insert(&key, &held, ttl).await? {
            None => Ok(Hold::Taken(Lease {
                key,
                token,
                current: held,
            })),
            Some(stored) => Ok(Hold::Known(record::on_known(&stored, now, fingerprint))),
        }
    }

    /// Takes over a record the store holds as `expected` (see [`Known`]), writing `record`
    /// (which names the new holder's token); `None` when another request was faster.
    pub async fn take_over(
        &self,
        key: Key,
        token: Token,
        expected: &str,
        record: Record,
    ) -> Result<Option<Lease>, StoreError> {
        let new = record.encode();
        Ok(self
            .store
            .swap(&key, expected, &new)
            .await?
            .then_some(Lease {
                key,
                token,
                current: new,
            }))
    }

    /// Moves the lease's record to `record`; `false` when the record is no longer this
    /// holder's (it was presumed dead and taken over).
    pub async fn set(&self, lease: &mut Lease, record: Record) -> Result<bool, StoreError> {
        let new = record.encode();
        let swapped = self.store.swap(&lease.key, &lease.current, &new).await?;
        if swapped {
            lease.current = new;
        }
        Ok(swapped)
    }

    /// Gives the authorization back: nothing was charged, the buyer may use it again. Only a
    /// `Held` record is ever given back; a settled one stays (`false`).
    pub async fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        if !matches!(lease.record(), Some(Record::Held { .. })) {
            return Ok(false);
        }
        self.store.remove(&lease.key, &lease.current).await
    }
}

#[cfg(test)]
mod tests;
