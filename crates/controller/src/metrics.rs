//! Controller metrics (`prometheus-client`), registered under the `obol_controller` prefix.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels: one bounded key and value.
pub type Labels = Vec<(&'static str, &'static str)>;

/// What the controller counts.
#[derive(Debug)]
pub struct ControllerMetrics {
    /// Reconciles by `result` (`ok` / `error`).
    pub reconciles: Family<Labels, Counter>,
    /// Reconcile errors by `error` ([`crate::Error::metric_label`]).
    pub errors: Family<Labels, Counter>,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// Server-side applies by child `kind`.
    pub applies: Family<Labels, Counter>,
    /// Status writes (only when the status changed).
    pub status_writes: Counter,
    /// 1 while this replica holds the lease.
    pub leader: Gauge,
}

impl ControllerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            applies: Family::default(),
            status_writes: Counter::default(),
            leader: Gauge::default(),
        };
        let reg = registry.sub_registry_with_prefix("obol_controller");
        reg.register(
            "reconciles",
            "ServiceOffer reconciles by result",
            m.reconciles.clone(),
        );
        reg.register(
            "reconcile_errors",
            "Reconcile errors by kind",
            m.errors.clone(),
        );
        reg.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            m.duration.clone(),
        );
        reg.register(
            "applies",
            "Server-side applies by child kind",
            m.applies.clone(),
        );
        reg.register(
            "status_writes",
            "ServiceOffer status writes",
            m.status_writes.clone(),
        );
        reg.register(
            "leader",
            "1 while this replica holds the lease",
            m.leader.clone(),
        );
        m
    }
}
