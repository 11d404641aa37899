//! Decisions as values: what children an offer should have, what its status says, who owns a
//! path. Nothing here holds a client or reads a clock; the reconcile shell feeds observations
//! in and applies what comes out.
//!
//! - [`desired`]: the Middleware (ForwardAuth mode only), PaymentRoute, HTTPRoute and
//!   RegistrationRequest for an offer, or [`InvalidSpec`] when the spec cannot be turned into
//!   children;
//! - [`status`]: conditions, phase and "did the status change?";
//! - [`conflict`]: which offer keeps a path;
//! - [`deletion`]: whether the finalizer releases a deleted offer;
//! - draining ([`status::carry_drain`], [`status::drained_condition`],
//!   [`status::requeue_after`]) and the readiness mark discovery reads
//!   ([`status::mark_ready`]).

mod children;
mod conditions;
pub mod conflict;
pub mod deletion;
mod drain;
pub mod status;

#[cfg(test)]
mod tests;

pub use children::{Desired, desired, in_cluster_url, reach_upstream_at};

/// Everything the children depend on besides the offer: process configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Base URL of the verifier (`http://x402-verifier.x402.svc.cluster.local:8080`); the
    /// Middleware calls `<base>/verify/<namespace>/<paymentroute>`.
    pub verifier_url: String,
    /// The verifier Service's gateway port, the backend of every HTTPRoute in gateway mode
    /// `proxy`.
    pub verifier_gateway: ServiceRef,
    /// The Gateway every HTTPRoute attaches to.
    pub gateway: GatewayRef,
    /// Public base URL announced in registration documents (`<base><path>`).
    pub public_base_url: String,
}

/// A parent Gateway reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRef {
    /// Gateway name.
    pub name: String,
    /// Gateway namespace.
    pub namespace: String,
}

/// A Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    /// Service name.
    pub name: String,
    /// Service namespace.
    pub namespace: String,
    /// Service port.
    pub port: i32,
}

/// Why an offer's spec cannot be turned into children (the message goes into the `Ready`
/// condition as reason `InvalidSpec`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSpec(pub String);
