//! Which facilitator a route uses: the verifier's default, or the route's own `facilitatorURL`
//! (clients built on first use and kept; their number is bounded by the distinct URLs loaded).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use std::time::{Duration, Instant};

use obol_x402::{Address, Facilitator};
use parking_lot::RwLock;

use crate::error::{Denial, FacilitatorDenial};
use crate::route::RouteEntry;

/// Builds a facilitator client for a URL.
pub type MakeFacilitator =
    Arc<dyn Fn(&str) -> Result<Arc<dyn Facilitator>, String> + Send + Sync + 'static>;

/// The facilitators of every route.
pub struct Facilitators {
    default: Arc<dyn Facilitator>,
    make: Option<MakeFacilitator>,
    by_url: RwLock<HashMap<String, Arc<dyn Facilitator>>>,
    /// The `upto` settling address per (facilitator URL, "" for the default; CAIP-2 network),
    /// from the facilitator's `/supported`; a facilitator without `upto` there is asked again
    /// after [`UPTO_RETRY`].
    upto: RwLock<HashMap<(String, String), UptoSigner>>,
}

/// How long a facilitator that offered no `upto` signer (or did not answer) is not asked again.
pub const UPTO_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum UptoSigner {
    Known(Address),
    Absent(Instant),
}

impl fmt::Debug for Facilitators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Facilitators")
            .field("per_route", &self.by_url.read().len())
            .finish_non_exhaustive()
    }
}

impl Facilitators {
    /// Every route uses `default` (tests; routes naming their own URL are refused with 503).
    pub fn single(default: Arc<dyn Facilitator>) -> Self {
        Self {
            default,
            make: None,
            by_url: RwLock::default(),
            upto: RwLock::default(),
        }
    }

    /// `default`, plus clients built by `make` for routes with their own URL.
    pub fn with_factory(default: Arc<dyn Facilitator>, make: MakeFacilitator) -> Self {
        Self {
            make: Some(make),
            ..Self::single(default)
        }
    }

    /// The address that settles `upto` payments on `route`'s network for its facilitator (the
    /// witness's `facilitator`), from the facilitator's `/supported`; `None` when it does not
    /// offer `upto` there or cannot be asked (the route then sells `exact` only).
    pub async fn upto_signer(&self, route: &RouteEntry) -> Option<Address> {
        let key = (
            route.facilitator_url.clone().unwrap_or_default(),
            route.labels.chain.clone(),
        );
        match self.upto.read().get(&key) {
            Some(UptoSigner::Known(a)) => return Some(*a),
            Some(UptoSigner::Absent(at)) if at.elapsed() < UPTO_RETRY => return None,
            _ => {}
        }
        let facilitator = self.for_route(route).ok()?;
        let found = match facilitator.supported().await {
            Ok(supported) => supported.upto_facilitator(&route.labels.chain),
            Err(error) => {
                tracing::warn!(route = %route.key, %error, "Cannot ask the facilitator for its upto signer; selling exact only");
                None
            }
        };
        let entry = found.map_or_else(|| UptoSigner::Absent(Instant::now()), UptoSigner::Known);
        self.upto.write().insert(key, entry);
        found
    }

    /// The facilitator of `route`.
    pub fn for_route(&self, route: &RouteEntry) -> Result<Arc<dyn Facilitator>, Denial> {
        let Some(url) = &route.facilitator_url else {
            return Ok(self.default.clone());
        };
        if let Some(f) = self.by_url.read().get(url) {
            return Ok(f.clone());
        }
        let unavailable = Denial::Facilitator(Box::new(FacilitatorDenial::not_configured()));
        let make = self.make.as_ref().ok_or_else(|| {
            tracing::warn!(route = %route.key, "No facilitator client for the route's own URL");
            unavailable
        })?;
        match make(url) {
            Ok(f) => {
                self.by_url.write().insert(url.clone(), f.clone());
                Ok(f)
            }
            Err(error) => {
                tracing::warn!(route = %route.key, %error, "Cannot build the route's facilitator");
                Err(Denial::Facilitator(Box::new(
                    FacilitatorDenial::not_configured(),
                )))
            }
        }
    }
}
