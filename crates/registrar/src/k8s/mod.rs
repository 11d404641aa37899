//! The Kubernetes shell: reconcile (apply and finalizer cleanup) and status writes.

pub mod cleanup;
pub mod reconcile;
pub mod status;

pub use reconcile::{Context, error_policy, reconcile};
