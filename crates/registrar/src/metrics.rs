//! The registrar's Prometheus metrics (`obol_registrar_*`). Labels are bounded: outcomes,
//! transaction kinds and `metric_label`s, never names or addresses.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label: a reconcile's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or an error's `metric_label`.
    pub result: String,
}

/// Label: a transaction kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TxLabel {
    /// `register`, `set_agent_uri`, `tombstone`, `metadata`.
    pub kind: &'static str,
}

/// All registrar metrics.
#[derive(Debug, Default)]
pub struct RegistrarMetrics {
    /// Reconciles by result.
    pub reconciles: Family<ResultLabel, Counter>,
    /// Transactions sent by kind.
    pub transactions: Family<TxLabel, Counter>,
    /// Finalizers released without a tombstone on chain.
    pub abandoned_tombstones: Counter,
    /// 1 while this replica holds the lease.
    pub leader: Gauge,
}

impl RegistrarMetrics {
    /// Registers under `obol_registrar_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("obol_registrar");
        r.register("reconciles", "Reconciles by result", m.reconciles.clone());
        r.register(
            "transactions",
            "Transactions sent by kind",
            m.transactions.clone(),
        );
        r.register(
            "abandoned_tombstones",
            "Deletions released without an on-chain tombstone",
            m.abandoned_tombstones.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the lease",
            m.leader.clone(),
        );
        m
    }

    /// Counts one sent transaction.
    pub fn sent(&self, kind: &'static str) {
        self.transactions.get_or_create(&TxLabel { kind }).inc();
    }
}
