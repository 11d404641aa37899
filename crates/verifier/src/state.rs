//! Everything a request handler needs, cheap to clone.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::clock::{Clock, SystemClock};
use crate::facilitators::Facilitators;
use crate::metrics::VerifierMetrics;
use crate::replay::ReplayCache;
use crate::route_table::RouteTable;

/// Shared state of the verifier app.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Loaded routes.
    pub table: Arc<RouteTable>,
    /// Facilitator per route.
    pub facilitators: Arc<Facilitators>,
    /// Nonces in flight or settled.
    pub replay: Arc<ReplayCache>,
    /// Metrics, registered in `registry`.
    pub metrics: VerifierMetrics,
    /// What `/metrics` serves.
    pub registry: Arc<Registry>,
    /// Time source for payment windows.
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// State with a fresh registry, the default replay cache and the system clock.
    pub fn new(table: Arc<RouteTable>, facilitators: Facilitators) -> Self {
        let mut registry = Registry::default();
        let metrics = VerifierMetrics::register(&mut registry);
        Self {
            table,
            facilitators: Arc::new(facilitators),
            replay: Arc::new(ReplayCache::default()),
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

    /// Uses another replay cache.
    #[must_use]
    pub fn with_replay(mut self, replay: ReplayCache) -> Self {
        self.replay = Arc::new(replay);
        self
    }
}
