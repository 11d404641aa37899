//! Everything a request handler needs, cheap to clone.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::clock::{Clock, SystemClock};
use crate::evidence::Evidence;
use crate::facilitators::Facilitators;
use crate::metrics::VerifierMetrics;
use crate::reservations::Reservations;
use crate::route_table::RouteTable;

/// Default longest time a request holds a reservation before it is presumed dead, in seconds.
pub const DEFAULT_HOLD_SECS: u64 = 600;

/// Shared state of the verifier app.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Loaded routes.
    pub table: Arc<RouteTable>,
    /// Facilitator per route.
    pub facilitators: Arc<Facilitators>,
    /// Authorizations in flight, settled or spent.
    pub reservations: Reservations,
    /// Longest time a request holds a reservation (verify, upstream, settle, delivery) before it
    /// is presumed dead.
    pub hold_secs: u64,
    /// Chain evidence of earlier settlements, when a chain RPC is configured.
    pub evidence: Option<Arc<dyn Evidence>>,
    /// Metrics, registered in `registry`.
    pub metrics: VerifierMetrics,
    /// What `/metrics` serves.
    pub registry: Arc<Registry>,
    /// Time source for payment windows.
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// State with a fresh registry, a memory reservation store and the system clock.
    pub fn new(table: Arc<RouteTable>, facilitators: Facilitators) -> Self {
        let mut registry = Registry::default();
        let metrics = VerifierMetrics::register(&mut registry);
        Self {
            table,
            facilitators: Arc::new(facilitators),
            reservations: Reservations::in_memory(),
            hold_secs: DEFAULT_HOLD_SECS,
            evidence: None,
            metrics,
            registry: Arc::new(registry),
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses another clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses another reservation store.
    #[must_use]
    pub fn with_reservations(mut self, reservations: Reservations) -> Self {
        self.reservations = reservations;
        self
    }

    /// Asks the chain for evidence of earlier settlements.
    #[must_use]
    pub fn with_evidence(mut self, evidence: Arc<dyn Evidence>) -> Self {
        self.evidence = Some(evidence);
        self
    }

    /// Sets how long a request may hold a reservation.
    #[must_use]
    pub fn with_hold_secs(mut self, secs: u64) -> Self {
        self.hold_secs = secs.max(1);
        self
    }
}
