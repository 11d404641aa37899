//! The buyer's shared state: pool, journal, metrics, HTTP client, clock, reload.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::config::{Loaded, Source};
use crate::error::SpendError;
use crate::journal::{Journal, Record};
use crate::metrics::BuyerMetrics;
use crate::pool::{Pool, TakeError};
use crate::upstream::{Auth, Upstream};

/// Unix time in seconds; injected so decisions never read the clock themselves.
pub trait Clock: Send + Sync {
    /// Seconds since the epoch.
    fn now_unix(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// How a [`Buyer`] is put together.
pub struct BuyerParts {
    /// Where the config and auth files are.
    pub source: Source,
    /// The recovered journal.
    pub journal: Arc<Journal>,
    /// HTTP client for sellers.
    pub client: reqwest::Client,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Most authorizations tried per request when sellers answer "already used".
    pub max_heal: usize,
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
    source: Source,
    last_loaded: Mutex<Option<Loaded>>,
    fingerprint: Mutex<Option<crate::config::Fingerprint>>,
}

impl Buyer {
    /// A buyer with an empty pool that knows the journal's spends, and the receiving end of
    /// the 1-slot reload channel (drive it with [`reload_loop`]). Call [`Buyer::reload`] once
    /// before serving.
    pub fn new(parts: BuyerParts) -> (Arc<Self>, mpsc::Receiver<()>) {
        let BuyerParts {
            source,
            journal,
            client,
            clock,
            max_heal,
        } = parts;
        let (reload_tx, reload_rx) = mpsc::channel(1);
        let consumed = journal.records().into_iter().map(|r| r.key);
        let buyer = Self {
            pool: Mutex::new(Pool::new(consumed)),
            journal,
            metrics: BuyerMetrics::default(),
            client,
            clock,
            max_heal,
            reload_tx,
            source,
            last_loaded: Mutex::new(None),
            fingerprint: Mutex::new(None),
        };
        (Arc::new(buyer), reload_rx)
    }

    /// Re-reads the files and swaps the pool in when they changed (or when `force`).
    pub async fn reload(&self, force: bool) {
        let source = self.source.clone();
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

    fn apply(&self, loaded: Loaded, force: bool) {
        let mut last = self.last_loaded.lock();
        if !force && last.as_ref() == Some(&loaded) {
            return;
        }
        let mut pool = self.pool.lock();
        for note in pool.apply(&loaded) {
            tracing::warn!(problem = %note, "Skipping invalid configuration");
        }
        self.metrics.reset_gauges(&pool);
        for (name, s) in pool.status() {
            let price = loaded.upstreams.get(&name).map(|c| c.price.as_str());
            tracing::info!(upstream = %name, url = %s.url, auths = s.remaining, spent = s.spent,
                price, network = %s.network, "Upstream loaded");
            if s.remaining == 0 {
                tracing::warn!(upstream = %name, "Upstream has 0 remaining pre-signed auths");
            }
        }
        *last = Some(loaded);
    }

    /// Takes an authorization for `upstream` and records it durably; only then may it be sent.
    pub async fn spend(&self, upstream: &Upstream) -> Result<Auth, SpendError> {
        let now = self.clock.now_unix();
        let taken = self.pool.lock().take(&upstream.name, now);
        let auth = taken.map_err(|e| match e {
            TakeError::Unknown | TakeError::Exhausted => SpendError::Exhausted {
                upstream: upstream.name.clone(),
            },
        })?;
        let record = Record::new(upstream.name.clone(), auth.key.clone());
        let journal = self.journal.clone();
        let outcome = tokio::task::spawn_blocking(move || journal.record(&[record])).await;
        let labels = BuyerMetrics::labels(&upstream.name, upstream.remote_model.as_deref());
        let result = match outcome {
            Ok(Ok(())) => Ok(auth),
            Ok(Err(e)) => {
                self.pool.lock().give_back(&upstream.name, auth);
                Err(SpendError::Journal(e))
            }
            Err(join) => {
                self.pool.lock().give_back(&upstream.name, auth);
                Err(SpendError::Journal(crate::journal::JournalError::Io {
                    context: "journal task",
                    source: std::io::Error::other(join.to_string()),
                }))
            }
        };
        if let Some((remaining, spent)) = self.pool.lock().counts(&upstream.name) {
            self.metrics.set_counts(&labels, remaining, spent);
        }
        result
    }

    /// Records as spent every pool authorization the chain reports as used (`--rpc-url`).
    /// Returns how many were marked.
    pub async fn check_chain(&self, rpc: &crate::chain::Rpc) -> Result<usize, SpendError> {
        let chain_id = rpc.chain_id().await?;
        let groups = self.pool.lock().unspent_on(chain_id);
        let mut marked = 0;
        for (name, asset, auths) in groups {
            let items: Vec<_> = auths
                .iter()
                .filter_map(|a| Some((a.key.clone(), crate::chain::authorizer(a)?)))
                .collect();
            let pairs: Vec<_> = items.iter().map(|(_, p)| *p).collect();
            let used = rpc.used(asset, &pairs).await?;
            for ((key, _), used) in items.into_iter().zip(used) {
                if !used || !self.pool.lock().mark_spent(&name, &key) {
                    continue;
                }
                let journal = self.journal.clone();
                let record = Record::new(name.clone(), key);
                tokio::task::spawn_blocking(move || journal.record(&[record]))
                    .await
                    .map_err(|e| {
                        SpendError::Journal(crate::journal::JournalError::Io {
                            context: "journal task",
                            source: std::io::Error::other(e.to_string()),
                        })
                    })??;
                marked += 1;
            }
        }
        self.metrics.reset_gauges(&self.pool.lock());
        Ok(marked)
    }

    /// Asks the reload task for a reload; `false` when one is already queued.
    pub fn trigger_reload(&self) -> bool {
        self.reload_tx.try_send(()).is_ok()
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
