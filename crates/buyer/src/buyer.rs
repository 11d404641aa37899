//! The buyer's shared state: pool, journal, metrics, HTTP client, clock, chain readers, reload.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::chain::ChainReaders;
use crate::config::{Loaded, Source};
use crate::error::SpendError;
use crate::journal::{Journal, JournalError, Mark, Record};
use crate::metrics::BuyerMetrics;
use crate::partition::Slot;
use crate::pool::{Pool, TakeError};
use crate::upstream::{Auth, Upstream};

pub use obol_runtime::clock::{Clock, SystemClock};

/// How a [`Buyer`] is put together.
pub struct BuyerParts {
    /// Where the config and auth files are; `None` when a watcher feeds [`Buyer::load`].
    pub source: Option<Source>,
    /// The recovered journal.
    pub journal: Arc<Journal>,
    /// HTTP client for sellers.
    pub client: reqwest::Client,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Most authorizations tried per request when sellers answer "already used".
    pub max_heal: usize,
    /// Chain readers (`authorizationState`, Permit2's nonce bitmap).
    pub chains: Arc<ChainReaders>,
    /// Seconds before `validBefore` at which an authorization is no longer sent.
    pub expiry_margin: u64,
}

/// What a chain check found for one upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Healed {
    /// Authorizations checked.
    pub checked: usize,
    /// Found used and marked spent.
    pub marked: usize,
    /// Whether the suspect authorization (if any) was used.
    pub suspect_used: bool,
}

/// Which authorizations a chain check asks about.
enum Scope<'a> {
    /// The held ones.
    Held,
    /// The free and held ones.
    All,
    /// The free and held ones in these slots.
    Slots(&'a BTreeSet<Slot>),
}

/// Shared by every request.
pub struct Buyer {
    pub(crate) pool: Mutex<Pool>,
    pub(crate) journal: Arc<Journal>,
    pub(crate) metrics: BuyerMetrics,
    pub(crate) client: reqwest::Client,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) max_heal: usize,
    pub(crate) reload_tx: mpsc::Sender<()>,
    pub(crate) chains: Arc<ChainReaders>,
    heal_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    source: Option<Source>,
    last_loaded: Mutex<Option<Loaded>>,
    fingerprint: Mutex<Option<crate::config::Fingerprint>>,
    observers: Mutex<Vec<Arc<dyn Observer>>>,
}

/// Something that wants to know what the buyer saw (the PurchaseRequest status writer).
pub trait Observer: Send + Sync {
    /// The pool of `upstream` changed.
    fn pool_changed(&self, upstream: &str);
    /// The seller of `upstream` answered (`status`) or could not be reached (`None`);
    /// `outcome` is a short code, `message` the details.
    fn seller_answered(&self, upstream: &str, status: Option<u16>, outcome: &str, message: &str);
}

fn journal_task_error(e: impl std::fmt::Display) -> SpendError {
    SpendError::Journal(JournalError::Io {
        context: "journal task",
        source: std::io::Error::other(e.to_string()),
    })
}

impl Buyer {
    /// A buyer with an empty pool that knows the journal's marks, and the receiving end of
    /// the 1-slot reload channel (drive it with [`reload_loop`]). Call [`Buyer::reload`] (or
    /// [`Buyer::load`]) once before serving.
    pub fn new(parts: BuyerParts) -> (Arc<Self>, mpsc::Receiver<()>) {
        let BuyerParts {
            source,
            journal,
            client,
            clock,
            max_heal,
            chains,
            expiry_margin,
        } = parts;
        let (reload_tx, reload_rx) = mpsc::channel(1);
        let records = journal.records();
        let charges: Vec<(String, u128)> = records
            .iter()
            .filter_map(|r| Some((r.key.clone(), r.charged?)))
            .collect();
        let marks = records.into_iter().map(|r| (r.key, r.mark));
        let pool = Pool::new(marks)
            .with_charges(charges)
            .with_margin(expiry_margin);
        let buyer = Self {
            pool: Mutex::new(pool),
            journal,
            metrics: BuyerMetrics::default(),
            client,
            clock,
            max_heal,
            reload_tx,
            chains,
            heal_locks: Mutex::new(HashMap::new()),
            source,
            last_loaded: Mutex::new(None),
            fingerprint: Mutex::new(None),
            observers: Mutex::new(Vec::new()),
        };
        (Arc::new(buyer), reload_rx)
    }

    /// Registers an observer.
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        self.observers.lock().push(observer);
    }

    fn each_observer(&self, f: impl Fn(&dyn Observer)) {
        let observers = self.observers.lock().clone();
        for o in observers {
            f(&*o);
        }
    }

    pub(crate) fn seller_answered(
        &self,
        upstream: &str,
        status: Option<u16>,
        outcome: &str,
        message: &str,
    ) {
        self.each_observer(|o| o.seller_answered(upstream, status, outcome, message));
    }

    /// Re-reads the files and swaps the pool in when they changed (or when `force`). Does
    /// nothing without a file source.
    pub async fn reload(&self, force: bool) {
        let Some(source) = self.source.clone() else {
            return;
        };
        let seen = self.fingerprint.lock().clone();
        let read = tokio::task::spawn_blocking(move || {
            let fingerprint = source.fingerprint();
            let unchanged = !force && seen.as_ref() == Some(&fingerprint);
            (fingerprint, (!unchanged).then(|| source.load()))
        });
        match read.await {
            Ok((fingerprint, Some(loaded))) => {
                self.apply(loaded, force);
                *self.fingerprint.lock() = Some(fingerprint);
            }
            Ok((_, None)) => {}
            Err(error) => tracing::error!(%error, "Reload task failed"),
        }
    }

    /// Swaps in the upstreams and authorizations of `loaded` (from a watcher); returns the
    /// notes about what was skipped.
    pub fn load(&self, loaded: Loaded) -> Vec<String> {
        self.apply(loaded, true)
    }

    fn apply(&self, loaded: Loaded, force: bool) -> Vec<String> {
        let mut last = self.last_loaded.lock();
        if !force && last.as_ref() == Some(&loaded) {
            return Vec::new();
        }
        let notes;
        let names;
        {
            let mut pool = self.pool.lock();
            notes = pool.apply(&loaded, self.clock.now_unix());
            for note in &notes {
                tracing::warn!(problem = %note, "Skipping invalid configuration");
            }
            self.metrics.reset_gauges(&pool);
            for (name, s) in pool.status() {
                let price = loaded.upstreams.get(&name).map(|c| c.price.as_str());
                tracing::info!(upstream = %name, url = %s.url, auths = s.remaining, spent = s.spent,
                    held = s.held, price, network = %s.network, "Upstream loaded");
                if s.remaining == 0 {
                    tracing::warn!(upstream = %name, "Upstream has 0 remaining pre-signed auths");
                }
            }
            names = pool.names();
        }
        *last = Some(loaded);
        drop(last);
        for name in names {
            self.each_observer(|o| o.pool_changed(&name));
        }
        notes
    }

    fn refresh_gauges(&self, upstream: &Upstream) {
        let counts = self.pool.lock().counts(&upstream.name);
        if let Some(c) = counts {
            let labels = BuyerMetrics::labels(&upstream.name, upstream.remote_model.as_deref());
            self.metrics.set_counts(&labels, &c);
        }
        self.each_observer(|o| o.pool_changed(&upstream.name));
    }

    /// Takes an authorization for `upstream` and records it durably as held; only then may
    /// it be sent.
    pub async fn spend(&self, upstream: &Upstream) -> Result<Auth, SpendError> {
        let now = self.clock.now_unix();
        let taken = self.pool.lock().take(&upstream.name, now);
        let auth = taken.map_err(|e| match e {
            TakeError::Unknown | TakeError::Exhausted => SpendError::Exhausted {
                upstream: upstream.name.clone(),
            },
        })?;
        let record = Record::marked(upstream.name.clone(), auth.key.clone(), Mark::Held);
        let journal = self.journal.clone();
        let outcome = tokio::task::spawn_blocking(move || journal.record(&[record])).await;
        let result = match outcome {
            Ok(Ok(())) => Ok(auth),
            Ok(Err(e)) => {
                self.pool.lock().give_back(&upstream.name, auth);
                Err(SpendError::Journal(e))
            }
            Err(join) => {
                self.pool.lock().give_back(&upstream.name, auth);
                Err(journal_task_error(join))
            }
        };
        self.refresh_gauges(upstream);
        result
    }

    /// Moves `key` of `upstream` on to `mark` (see [`Pool::settle`]) and queues the change in
    /// the journal in the same critical section, so a released key cannot be taken again
    /// before its release is in the log.
    pub fn settle(&self, upstream: &Upstream, key: &str, mark: Mark) -> Option<Mark> {
        self.settle_charged(upstream, key, mark, None)
    }

    /// [`Buyer::settle`] for an answer whose receipt stated the amount charged (`upto`): the
    /// amount is journaled with the spend and counted in the status.
    pub fn settle_charged(
        &self,
        upstream: &Upstream,
        key: &str,
        mark: Mark,
        charged: Option<u128>,
    ) -> Option<Mark> {
        let effective = {
            let mut pool = self.pool.lock();
            let effective = pool.settle_charged(&upstream.name, key, mark, charged)?;
            let record = match (effective, charged) {
                (Mark::Spent, Some(amount)) => {
                    Record::spent_charged(upstream.name.clone(), key.to_owned(), amount)
                }
                _ => Record::marked(upstream.name.clone(), key.to_owned(), effective),
            };
            if let Err(error) = self.journal.note(&[record]) {
                // Held stays held on disk: never re-sent, which is the safe side.
                tracing::error!(%error, "Could not journal an answer");
            }
            effective
        };
        let labels = BuyerMetrics::labels(&upstream.name, upstream.remote_model.as_deref());
        if effective == Mark::Released {
            self.metrics.released.get_or_create(&labels).inc();
        }
        self.refresh_gauges(upstream);
        Some(effective)
    }

    /// Records the amount a receipt stated after the spend of `key` was recorded (a streamed
    /// answer's trailer): journaled and counted once, only for a spent key without one.
    pub fn add_charge(&self, upstream: &str, key: &str, amount: u128) {
        let mut pool = self.pool.lock();
        if pool.add_charge(upstream, key, amount) {
            let record = Record::spent_charged(upstream.to_owned(), key.to_owned(), amount);
            if let Err(error) = self.journal.note(&[record]) {
                tracing::error!(%error, "Could not journal a charged amount");
            }
        }
    }

    fn heal_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.heal_locks
            .lock()
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Asks the chain about every free and held authorization of `upstream` (plus `suspect`,
    /// one that a seller refused) in batches, and marks the used ones spent. One check per
    /// upstream at a time; a caller that waited behind another still asks (its suspect may be
    /// new).
    pub async fn heal(
        &self,
        upstream: &Upstream,
        suspect: Option<&Auth>,
        held_only: bool,
    ) -> Result<Healed, SpendError> {
        let scope = if held_only { Scope::Held } else { Scope::All };
        self.heal_scope(upstream, suspect, scope).await
    }

    /// Asks the chain about every free and held authorization of `upstream` in `slots` (the
    /// check of slots this replica just claimed: whatever their previous holder spent becomes
    /// spent here), and marks the used ones spent.
    pub async fn check_slots(
        &self,
        upstream: &Upstream,
        slots: &BTreeSet<Slot>,
    ) -> Result<Healed, SpendError> {
        self.heal_scope(upstream, None, Scope::Slots(slots)).await
    }

    async fn heal_scope(
        &self,
        upstream: &Upstream,
        suspect: Option<&Auth>,
        scope: Scope<'_>,
    ) -> Result<Healed, SpendError> {
        let lock = self.heal_lock(&upstream.name);
        let _guard = lock.lock().await;
        let Some(chain_id) = upstream.chain_id else {
            return Err(SpendError::NoChainReader {
                upstream: upstream.name.clone(),
            });
        };
        let rpc =
            self.chains
                .for_chain(chain_id)
                .await?
                .ok_or_else(|| SpendError::NoChainReader {
                    upstream: upstream.name.clone(),
                })?;
        let mut auths: Vec<Auth> = match scope {
            Scope::Held => self
                .pool
                .lock()
                .held()
                .into_iter()
                .filter(|(n, _)| *n == upstream.name)
                .flat_map(|(_, a)| a)
                .collect(),
            Scope::All => self.pool.lock().unresolved(&upstream.name),
            Scope::Slots(slots) => self
                .pool
                .lock()
                .unresolved(&upstream.name)
                .into_iter()
                .filter(|a| slots.contains(&a.slot()))
                .collect(),
        };
        if let Some(s) = suspect
            && !auths.iter().any(|a| a.key == s.key)
        {
            auths.push(s.clone());
        }
        let items: Vec<_> = auths
            .iter()
            .filter_map(|a| Some((a.key.clone(), crate::chain::query(a)?)))
            .collect();
        let pairs: Vec<_> = items.iter().map(|(_, p)| *p).collect();
        let labels = BuyerMetrics::labels(&upstream.name, upstream.remote_model.as_deref());
        let used = match rpc.used(upstream.asset, &pairs).await {
            Ok(u) => u,
            Err(e) => {
                self.count_check(e.metric_label());
                return Err(e.into());
            }
        };
        self.count_check("ok");
        let mut report = Healed {
            checked: items.len(),
            ..Healed::default()
        };
        for ((key, _), used) in items.into_iter().zip(used) {
            if !used {
                continue;
            }
            let is_suspect = suspect.is_some_and(|s| s.key == key);
            report.suspect_used |= is_suspect;
            // A suspect was refused by the seller although the chain has it used: spent before,
            // by a buyer whose state was lost.
            let mark = if is_suspect {
                Mark::Healed
            } else {
                Mark::Spent
            };
            if let Some(m) = self.settle(upstream, &key, mark) {
                report.marked += 1;
                if m == Mark::Healed {
                    self.metrics.chain_healed.get_or_create(&labels).inc();
                }
            }
        }
        if report.marked > 0 {
            self.flush().await;
        }
        Ok(report)
    }

    fn count_check(&self, result: &str) {
        self.metrics
            .chain_checks
            .get_or_create(&crate::metrics::ReasonLabels {
                reason: result.to_owned(),
            })
            .inc();
    }

    /// Makes queued journal records durable.
    pub async fn flush(&self) {
        let journal = self.journal.clone();
        match tokio::task::spawn_blocking(move || journal.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "Journal flush failed"),
            Err(error) => tracing::error!(%error, "Journal flush task failed"),
        }
    }

    /// Checks every upstream's free and held authorizations against the chain (at start-up,
    /// after the first load). Returns how many were marked spent.
    pub async fn check_chain(&self) -> usize {
        self.check_all(false).await
    }

    /// Checks the held authorizations of every upstream (periodically): those the chain has
    /// used become spent.
    pub async fn check_held(&self) -> usize {
        self.check_all(true).await
    }

    async fn check_all(&self, held_only: bool) -> usize {
        let names = self.pool.lock().names();
        let mut marked = 0;
        for name in names {
            let Some(upstream) = self.pool.lock().upstream(&name) else {
                continue;
            };
            if held_only && self.pool.lock().counts(&name).is_none_or(|c| c.held == 0) {
                continue;
            }
            match self.heal(&upstream, None, held_only).await {
                Ok(r) => marked += r.marked,
                Err(error) => {
                    tracing::warn!(upstream = %name, %error, "Chain check failed; retried later")
                }
            }
        }
        marked
    }

    /// Drops authorizations that expire within the margin from the counts.
    pub fn sweep(&self) {
        let names = {
            let mut pool = self.pool.lock();
            pool.sweep(self.clock.now_unix());
            self.metrics.reset_gauges(&pool);
            pool.names()
        };
        for name in names {
            self.each_observer(|o| o.pool_changed(&name));
        }
    }

    /// Asks the reload task for a reload; `false` when one is already queued.
    pub fn trigger_reload(&self) -> bool {
        self.reload_tx.try_send(()).is_ok()
    }

    /// Makes this buyer one of several replicas: it spends from no slot until
    /// [`Buyer::set_gate`] opens some.
    pub fn set_partitioned(&self) {
        self.pool.lock().set_partitioned();
    }

    /// Lets this replica spend only from `slots` of `upstream`.
    pub fn set_gate(&self, upstream: &str, slots: BTreeSet<Slot>) {
        self.pool.lock().set_gate(upstream, Some(slots));
    }

    /// The counts of `upstream` per partition slot.
    pub fn slot_counts(&self, upstream: &str) -> Option<Vec<crate::pool::Counts>> {
        self.pool.lock().slot_counts(upstream)
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        self.pool.lock().upstream(name)
    }

    /// The counts of `upstream`.
    pub fn counts(&self, upstream: &str) -> Option<crate::pool::Counts> {
        self.pool.lock().counts(upstream)
    }
}

/// Reloads on every trigger and, when `interval` is set, periodically (only if files changed).
pub async fn reload_loop(
    buyer: Arc<Buyer>,
    mut rx: mpsc::Receiver<()>,
    interval: Option<Duration>,
) {
    loop {
        let forced = match interval {
            Some(every) => tokio::select! {
                msg = rx.recv() => match msg { Some(()) => true, None => return },
                () = tokio::time::sleep(every) => false,
            },
            None => match rx.recv().await {
                Some(()) => true,
                None => return,
            },
        };
        buyer.reload(forced).await;
    }
}

/// Housekeeping until the process ends: every `every`, make queued journal records durable,
/// drop expiring authorizations from the counts, and ask the chain about held ones.
pub async fn maintenance_loop(buyer: Arc<Buyer>, every: Duration, held_every: Duration) {
    let mut last_held = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        buyer.flush().await;
        buyer.sweep();
        if last_held.elapsed() >= held_every {
            last_held = tokio::time::Instant::now();
            let marked = buyer.check_held().await;
            if marked > 0 {
                tracing::info!(marked, "Held authorizations found used on chain");
            }
        }
    }
}
