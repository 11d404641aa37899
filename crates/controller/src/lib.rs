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
//! | Endpoint (on `--listen`) | Meaning |
//! |---|---|
//! | `/healthz` | the process runs |
//! | `/readyz` | leader, and every watch has synced |
//! | `/metrics` | `obol_controller_*` (reconciles, durations, errors by bounded label, applies, status writes, leader) |
//!
//! Flags: see [`args::Args`]; each `--flag` also reads `OBOL_CONTROLLER_FLAG`
//! ([`obol_runtime::cli`]). Renamed: `--admin-addr` is `--listen`, and `RUST_LOG` is `--log`
//! (the old names work for one release, with a warning).

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
