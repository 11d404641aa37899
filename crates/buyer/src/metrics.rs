//! Prometheus metrics under the Go buyer's names (`obol_x402_buyer_*`, obol-reference §6.3).
//!
//! Labels are bounded: the upstream name and its configured remote model, or an error's
//! `metric_label`. Gauges are reset on reload so removed upstreams disappear.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::pool::{Counts, Pool};

/// `{upstream, remote_model}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// Upstream name.
    pub upstream: String,
    /// Configured remote model, or empty.
    pub remote_model: String,
}

/// `{reason}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// A `metric_label`.
    pub reason: String,
}

/// Every buyer metric.
#[derive(Debug)]
pub struct BuyerMetrics {
    registry: Registry,
    syncs_lock: parking_lot::Mutex<()>,
    /// Model-routed requests.
    pub requests: Family<UpstreamLabels, Counter>,
    /// Paid retries sent.
    pub attempts: Family<UpstreamLabels, Counter>,
    /// Paid retries answered below 400.
    pub success: Family<UpstreamLabels, Counter>,
    /// Paid retries answered 400 or more, or failed in transport.
    pub failure: Family<UpstreamLabels, Counter>,
    /// Authorizations a seller reported as already used (healed lost state).
    pub already_used: Family<UpstreamLabels, Counter>,
    /// Paid answers below 400 without a settlement receipt (the authorization is counted spent).
    pub unsettled_confirmations: Family<UpstreamLabels, Counter>,
    /// Authorizations released after a refusal without settlement.
    pub released: Family<UpstreamLabels, Counter>,
    /// Authorizations found used on chain that were not known spent.
    pub chain_healed: Family<UpstreamLabels, Counter>,
    /// Chain checks of nonces (`authorizationState`, Permit2's `nonceBitmap`), by result (`ok` or an error label).
    pub chain_checks: Family<ReasonLabels, Counter>,
    /// Authorizations held: sent, fate unknown.
    pub held: Family<UpstreamLabels, Gauge>,
    /// Authorizations dropped unsent because they expire within the safety margin.
    pub expired: Family<UpstreamLabels, Gauge>,
    /// Spends that failed before anything was sent, by reason.
    pub spend_errors: Family<ReasonLabels, Counter>,
    /// Journal group-commit syncs (spends per sync shows the group commit at work).
    pub journal_syncs: Counter,
    /// Authorizations left.
    pub remaining: Family<UpstreamLabels, Gauge>,
    /// Authorizations spent.
    pub spent: Family<UpstreamLabels, Gauge>,
    /// 1 per model mapping.
    pub mappings: Family<UpstreamLabels, Gauge>,
}

impl Default for BuyerMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("obol_x402_buyer");
        let m = Self {
            requests: Family::default(),
            attempts: Family::default(),
            success: Family::default(),
            failure: Family::default(),
            already_used: Family::default(),
            unsettled_confirmations: Family::default(),
            released: Family::default(),
            chain_healed: Family::default(),
            chain_checks: Family::default(),
            held: Family::default(),
            expired: Family::default(),
            spend_errors: Family::default(),
            journal_syncs: Counter::default(),
            remaining: Family::default(),
            spent: Family::default(),
            mappings: Family::default(),
            registry: Registry::default(),
            syncs_lock: parking_lot::Mutex::new(()),
        };
        registry.register("requests", "Model-routed requests", m.requests.clone());
        registry.register("payment_attempts", "Paid retries sent", m.attempts.clone());
        registry.register(
            "payment_success",
            "Paid retries below 400",
            m.success.clone(),
        );
        registry.register("payment_failure", "Paid retries failed", m.failure.clone());
        registry.register(
            "auth_already_used",
            "Authorizations a seller reported as already used",
            m.already_used.clone(),
        );
        registry.register(
            "unsettled_confirmations",
            "Paid answers below 400 without a settlement receipt",
            m.unsettled_confirmations.clone(),
        );
        registry.register(
            "auth_released",
            "Authorizations released after a refusal without settlement",
            m.released.clone(),
        );
        registry.register(
            "auth_chain_healed",
            "Authorizations found used on chain that were not known spent",
            m.chain_healed.clone(),
        );
        registry.register(
            "chain_checks",
            "Chain checks of authorization nonces (authorizationState, Permit2 nonceBitmap) by result",
            m.chain_checks.clone(),
        );
        registry.register(
            "auth_held",
            "Authorizations sent, fate unknown",
            m.held.clone(),
        );
        registry.register(
            "auth_expired",
            "Authorizations dropped unsent: expiring within the safety margin",
            m.expired.clone(),
        );
        registry.register(
            "spend_errors",
            "Spends refused before sending",
            m.spend_errors.clone(),
        );
        registry.register(
            "journal_syncs",
            "Spend journal group-commit syncs",
            m.journal_syncs.clone(),
        );
        registry.register("auth_remaining", "Authorizations left", m.remaining.clone());
        registry.register("auth_spent", "Authorizations spent", m.spent.clone());
        registry.register(
            "active_model_mappings",
            "Model to upstream mappings",
            m.mappings.clone(),
        );
        Self { registry, ..m }
    }
}

impl BuyerMetrics {
    /// Labels of an upstream.
    pub fn labels(upstream: &str, remote_model: Option<&str>) -> UpstreamLabels {
        UpstreamLabels {
            upstream: upstream.to_owned(),
            remote_model: remote_model.unwrap_or_default().to_owned(),
        }
    }

    /// Brings the sync counter up to the journal's total (concurrent scrapes count once).
    pub fn observe_syncs(&self, total: u64) {
        let _guard = self.syncs_lock.lock();
        let counted = self.journal_syncs.get();
        self.journal_syncs.inc_by(total.saturating_sub(counted));
    }

    /// Sets the pool gauges of one upstream.
    pub fn set_counts(&self, labels: &UpstreamLabels, c: &Counts) {
        self.remaining.get_or_create(labels).set(gauge(c.remaining));
        self.spent.get_or_create(labels).set(gauge(c.spent));
        self.held.get_or_create(labels).set(gauge(c.held));
        self.expired.get_or_create(labels).set(gauge(c.expired));
    }

    /// Rebuilds every gauge from the pool (after a reload).
    pub fn reset_gauges(&self, pool: &Pool) {
        self.remaining.clear();
        self.spent.clear();
        self.held.clear();
        self.expired.clear();
        self.mappings.clear();
        for name in pool.names() {
            if let (Some(u), Some(c)) = (pool.upstream(&name), pool.counts(&name)) {
                let labels = Self::labels(&name, u.remote_model.as_deref());
                self.set_counts(&labels, &c);
            }
        }
        for name in pool.models().values() {
            if let Some(u) = pool.upstream(name) {
                let labels = Self::labels(name, u.remote_model.as_deref());
                self.mappings.get_or_create(&labels).set(1);
            }
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        obol_runtime::admin::encode(&self.registry)
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
