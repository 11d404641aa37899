//! The spend journal: every authorization is recorded durably as *held* before it is sent, and
//! then as spent, healed or released as answers come in.
//!
//! Files (in the state directory): `spend.journal`, an append-only log of [`Record`]s, and
//! `spend.snapshot`, each key's state as of the last compaction. The state on disk is the
//! snapshot with the log replayed over it ([`settle`]: spent is final, a release frees only a
//! held key, a hold never downgrades a spent one).
//!
//! * **Only holds must be durable before the send** ([`Journal::record`]). Spends, heals and
//!   releases may be queued ([`Journal::note`]): the log is written in order, so the next
//!   hold's sync covers them, and losing one in a crash leaves its key held, which is safe
//!   (held keys are never sent again). A periodic [`Journal::flush`] makes them durable when
//!   nothing else is written.
//!
//! * **Append with group commit.** [`Journal::record`] enqueues its frames and blocks until a
//!   sync covers them. The first caller to find no sync running becomes the leader: it writes
//!   everything queued, syncs once, and wakes everyone it covered. Concurrent spends share one
//!   `fsync`.
//! * **Compaction** (at open and when the log grows past a threshold, by the leader, so no
//!   append interleaves): snapshot to a temp file, sync, rename, sync the directory; then an
//!   empty log the same way. A crash between the two leaves both; their union is the same set.
//! * **Recovery** ([`Journal::open`]): a torn tail of the log is dropped (nothing in it was
//!   acknowledged), any other damage is [`JournalError::Corrupt`] and the buyer refuses to
//!   spend. A Go buyer's `consumed.json` is merged in and made durable before the first spend.
//! * **Failure** of any write or sync poisons the journal: what is on disk is unknown, so every
//!   later spend fails until a restart recovers from the files.

pub mod codec;
pub mod legacy;
pub mod storage;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

pub use codec::{Mark, Record};
pub use storage::{FileStorage, MemStorage, Storage};

/// The append-only log.
pub const JOURNAL_FILE: &str = "spend.journal";
/// The last compacted set.
pub const SNAPSHOT_FILE: &str = "spend.snapshot";
const JOURNAL_TMP: &str = "spend.journal.tmp";
const SNAPSHOT_TMP: &str = "spend.snapshot.tmp";

/// Compact when the log holds more than this many bytes (about 10 000 records).
pub const DEFAULT_COMPACT_BYTES: u64 = 1 << 20;

/// Why the journal could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file is damaged somewhere other than a torn tail; refusing to guess what was spent.
    #[error(
        "{file} is corrupt at byte {offset}: {reason}; refusing to spend (move it aside only if the pool's nonces are known unused)"
    )]
    Corrupt {
        /// Which file.
        file: &'static str,
        /// Byte offset of the damage.
        offset: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// A read, write, sync or rename failed.
    #[error("journal I/O failed during {context}")]
    Io {
        /// The operation.
        context: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An earlier write or sync failed; the journal refuses further spends until restart.
    #[error("journal unusable after an earlier I/O failure; restart to recover")]
    Poisoned,
    /// A record does not fit a frame.
    #[error(transparent)]
    TooLarge(#[from] codec::TooLarge),
    /// A Go buyer state file that cannot be read; as in the Go buyer this is fatal.
    #[error("load state: {0}")]
    Legacy(String),
}

impl JournalError {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Corrupt { .. } => "journal_corrupt",
            Self::Io { .. } => "journal_io",
            Self::Poisoned => "journal_poisoned",
            Self::TooLarge(_) => "journal_record_too_large",
            Self::Legacy(_) => "legacy_state_invalid",
        }
    }
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> JournalError {
    move |source| JournalError::Io { context, source }
}

/// Applies `record` to the state of its key: spent and healed are final; a release frees only
/// a held key; a hold never downgrades a spent key. The one change to a spent key: a spend
/// without an amount learns it (a streamed answer's receipt comes after its head), once.
/// Returns whether the state changed.
pub fn settle(state: &mut BTreeMap<String, Record>, record: Record) -> bool {
    let current = state
        .get(&record.key)
        .map(|r| (r.mark, r.charged.is_some()));
    match (current, record.mark) {
        (Some((Mark::Spent, false)), Mark::Spent) if record.charged.is_some() => {
            state.insert(record.key.clone(), record);
            true
        }
        (Some((m, _)), _) if m.is_spent() => false,
        (Some((Mark::Held, _)), Mark::Released) => {
            state.remove(&record.key);
            true
        }
        (_, Mark::Released) | (Some((Mark::Held, _)), Mark::Held) => false,
        _ => {
            state.insert(record.key.clone(), record);
            true
        }
    }
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The state of every key that is not free: held, spent or healed (one record per key).
    pub records: BTreeSet<Record>,
    /// Whether a torn tail was dropped.
    pub dropped_torn_tail: bool,
    /// Records imported from a legacy state file.
    pub imported: usize,
}

struct Inner {
    pending: Vec<u8>,
    enqueued: u64,
    durable: u64,
    leader: bool,
    poisoned: bool,
    log_bytes: u64,
    all: BTreeMap<String, Record>,
    syncs: u64,
}

/// The journal over a [`Storage`].
pub struct Journal {
    storage: Arc<dyn Storage>,
    inner: Mutex<Inner>,
    done: Condvar,
    compact_bytes: u64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

/// Reads what the files hold without writing anything (for inspection tools; a torn tail is
/// reported, not removed).
pub fn inspect(storage: &dyn Storage) -> Result<Recovered, JournalError> {
    let mut recovered = Recovered::default();
    let mut state = BTreeMap::new();
    if let Some(buf) = storage
        .read(SNAPSHOT_FILE)
        .map_err(io_err("read snapshot"))?
    {
        let records = codec::decode_snapshot(&buf).map_err(|d| JournalError::Corrupt {
            file: SNAPSHOT_FILE,
            offset: d.offset,
            reason: d.reason,
        })?;
        for r in records {
            settle(&mut state, r);
        }
    }
    if let Some(buf) = storage.read(JOURNAL_FILE).map_err(io_err("read journal"))? {
        let decoded = codec::decode_journal(&buf).map_err(|d| JournalError::Corrupt {
            file: JOURNAL_FILE,
            offset: d.offset,
            reason: d.reason,
        })?;
        recovered.dropped_torn_tail = decoded.torn.is_some();
        for r in decoded.records {
            settle(&mut state, r);
        }
    }
    recovered.records = state.into_values().collect();
    Ok(recovered)
}

impl Journal {
    /// Recovers the set from `storage`, merges `import` (a legacy state file's records), and
    /// compacts so the result is durable and the log is clean before any spend.
    pub fn open(
        storage: Arc<dyn Storage>,
        import: Vec<Record>,
        compact_bytes: u64,
    ) -> Result<(Self, Recovered), JournalError> {
        let mut recovered = inspect(&*storage)?;
        let mut state: BTreeMap<String, Record> = recovered
            .records
            .iter()
            .map(|r| (r.key.clone(), r.clone()))
            .collect();
        for r in import {
            if settle(&mut state, r) {
                recovered.imported += 1;
            }
        }
        recovered.records = state.values().cloned().collect();
        let journal = Self {
            storage,
            inner: Mutex::new(Inner {
                pending: Vec::new(),
                enqueued: 0,
                durable: 0,
                leader: false,
                poisoned: false,
                log_bytes: 0,
                all: state,
                syncs: 0,
            }),
            done: Condvar::new(),
            compact_bytes,
        };
        // Leftovers of an interrupted compaction are never read; clear them first.
        for tmp in [SNAPSHOT_TMP, JOURNAL_TMP] {
            journal
                .storage
                .remove(tmp)
                .map_err(io_err("remove temp file"))?;
        }
        let all = journal.inner.lock().all.clone();
        journal.compact(&all)?;
        Ok((journal, recovered))
    }

    /// Queues `records` in order behind everything queued before, without waiting for a sync
    /// (see the module documentation for why spends, heals and releases may).
    pub fn note(&self, records: &[Record]) -> Result<(), JournalError> {
        let mut g = self.inner.lock();
        Self::enqueue(&mut g, records)
    }

    fn enqueue(g: &mut Inner, records: &[Record]) -> Result<(), JournalError> {
        if g.poisoned {
            return Err(JournalError::Poisoned);
        }
        let mark = g.pending.len();
        for r in records {
            if let Err(e) = codec::encode_record(&mut g.pending, r) {
                g.pending.truncate(mark);
                return Err(e.into());
            }
        }
        for r in records {
            settle(&mut g.all, r.clone());
        }
        Ok(())
    }

    /// Makes everything queued so far durable.
    pub fn flush(&self) -> Result<(), JournalError> {
        {
            let g = self.inner.lock();
            if g.pending.is_empty() && !g.leader && !g.poisoned {
                return Ok(());
            }
        }
        self.record(&[])
    }

    /// Records `records` (and everything queued before them) durably; returns once a sync
    /// covers them (group commit).
    pub fn record(&self, records: &[Record]) -> Result<(), JournalError> {
        let mut g = self.inner.lock();
        Self::enqueue(&mut g, records)?;
        g.enqueued += 1;
        let mine = g.enqueued;
        loop {
            if g.durable >= mine {
                return Ok(());
            }
            if g.poisoned {
                return Err(JournalError::Poisoned);
            }
            if g.leader {
                self.done.wait(&mut g);
                continue;
            }
            g.leader = true;
            let batch = std::mem::take(&mut g.pending);
            let upto = g.enqueued;
            let written = batch.len() as u64;
            let result = parking_lot::MutexGuard::unlocked(&mut g, || self.append_sync(&batch));
            match result {
                Ok(()) => {
                    g.durable = upto;
                    g.syncs += 1;
                    g.log_bytes += written;
                    if g.log_bytes > self.compact_bytes {
                        let all = g.all.clone();
                        let compacted =
                            parking_lot::MutexGuard::unlocked(&mut g, || self.compact(&all));
                        match compacted {
                            Ok(()) => g.log_bytes = 0,
                            Err(e) => {
                                tracing::error!(error = %e, "Journal compaction failed");
                                g.poisoned = true;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "Journal append failed");
                    g.poisoned = true;
                    g.leader = false;
                    self.done.notify_all();
                    return Err(e);
                }
            }
            g.leader = false;
            self.done.notify_all();
            if g.durable < mine {
                return Err(JournalError::Poisoned);
            }
            return Ok(());
        }
    }

    /// The state of every key that is not free, durable or about to be.
    pub fn records(&self) -> BTreeSet<Record> {
        self.inner.lock().all.values().cloned().collect()
    }

    /// The state of `key`, when it is not free.
    pub fn mark(&self, key: &str) -> Option<Mark> {
        self.inner.lock().all.get(key).map(|r| r.mark)
    }

    /// How many group-commit syncs have run (for tests and metrics).
    pub fn syncs(&self) -> u64 {
        self.inner.lock().syncs
    }

    fn append_sync(&self, batch: &[u8]) -> Result<(), JournalError> {
        self.storage
            .append(JOURNAL_FILE, batch)
            .map_err(io_err("append"))?;
        self.storage
            .sync(JOURNAL_FILE)
            .map_err(io_err("sync journal"))
    }

    /// Publishes `all` as the snapshot, then replaces the log with an empty one.
    fn compact(&self, all: &BTreeMap<String, Record>) -> Result<(), JournalError> {
        let s = &*self.storage;
        let snapshot = codec::encode_snapshot(all.values())?;
        s.write(SNAPSHOT_TMP, &snapshot)
            .map_err(io_err("write snapshot"))?;
        s.sync(SNAPSHOT_TMP).map_err(io_err("sync snapshot"))?;
        s.rename(SNAPSHOT_TMP, SNAPSHOT_FILE)
            .map_err(io_err("rename snapshot"))?;
        s.sync_dir().map_err(io_err("sync directory"))?;
        s.write(JOURNAL_TMP, codec::JOURNAL_MAGIC)
            .map_err(io_err("write journal"))?;
        s.sync(JOURNAL_TMP).map_err(io_err("sync journal"))?;
        s.rename(JOURNAL_TMP, JOURNAL_FILE)
            .map_err(io_err("rename journal"))?;
        s.sync_dir().map_err(io_err("sync directory"))
    }
}

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
pub(crate) mod tests;
