//! Process plumbing shared by the service binaries:
//!
//! - [`admin`]: the `/readyz` and `/metrics` responses (every service);
//! - [`lease`] (feature `lease`): leader election on a `coordination.k8s.io` Lease (the
//!   ServiceOffer controller and the registrar).
//!
//! It depends on no other crate of the workspace.

pub mod admin;
#[cfg(feature = "lease")]
pub mod lease;
