//! The ServiceOffer controller: turns each ServiceOffer into its Middleware (ForwardAuth to
//! the verifier), PaymentRoute, HTTPRoute and RegistrationRequest, all in the offer's own
//! namespace with controller owner references, and keeps them true (every child kind is
//! watched, so external edits and deletes heal).
//!
//! - [`plan`] decides (pure, table-tested): desired children, invalid specs, conditions, phase,
//!   the fail-closed route rule, when registration is due, path conflicts.
//! - [`reconcile`] is the shell: probe the upstream, server-side apply under
//!   [`obol_api::FIELD_MANAGER`], write status only when it changed, publish Events, and on
//!   deletion withdraw the route and wait (bounded) for the RegistrationRequest to go.
//! - [`run()`] wires the watches (default list/watch; the 1.20 API server has no streaming
//!   lists), the Lease, and the admin server.
//!
//! It depends on `obol-api` and `obol-x402` (chain names only), never on other service crates.
//!
//! | Endpoint | Meaning |
//! |---|---|
//! | `/healthz` | the process runs |
//! | `/readyz` | leader, and every watch has synced |
//! | `/metrics` | `obol_controller_*` (reconciles, durations, errors by bounded label, applies, status writes, leader) |
//!
//! Flags and environment variables: see [`args::Args`] (`OBOL_CONTROLLER_VERIFIER_URL`,
//! `OBOL_CONTROLLER_GATEWAY_NAME`, `OBOL_CONTROLLER_GATEWAY_NAMESPACE`,
//! `OBOL_CONTROLLER_PUBLIC_BASE_URL`, `OBOL_CONTROLLER_PROBE_TIMEOUT`,
//! `OBOL_CONTROLLER_PROBE_INTERVAL`, `OBOL_CONTROLLER_CLEANUP_TIMEOUT`,
//! `OBOL_CONTROLLER_CONCURRENCY`, `OBOL_CONTROLLER_LEADER_ELECT`, `OBOL_CONTROLLER_LEASE_*`,
//! `OBOL_CONTROLLER_IDENTITY`, `OBOL_CONTROLLER_ADMIN_ADDR`).

pub mod admin;
pub mod apply;
pub mod args;
mod cleanup;
pub mod error;
pub mod metrics;
pub mod plan;
pub mod probe;
pub mod reconcile;
pub mod run;

#[cfg(test)]
mod reconcile_tests;

pub use error::{Error, Result};
pub use run::{LeaseConfig, RunConfig, run};
