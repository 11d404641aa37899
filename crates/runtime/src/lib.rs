//! Process plumbing shared by the service binaries, so that each writes it once:
//!
//! - [`main`] and [`Service`]: the whole `main` of a service (TLS provider, flags, logging,
//!   runtime, shutdown);
//! - [`cli`]: one naming scheme for flags and variables, and the deprecated names that still
//!   work; [`duration`]: the one way to write a duration;
//! - [`log`] (`--log`), [`lease_args`] (`--leader-elect`, `--lease-*`, `--identity`);
//! - [`shutdown`]: the first SIGTERM/SIGINT drains, a second one aborts;
//! - [`admin`]: `/healthz`, `/readyz` and `/metrics` with one body each, and serving with a drain;
//! - [`clock`]: the one source of `now` (unix seconds) the services inject, and a test clock;
//! - [`lease`] (feature `lease`): leader election on a `coordination.k8s.io` Lease (the
//!   ServiceOffer controller and the registrar).
//!
//! It depends on no other crate of the workspace.

pub mod admin;
pub mod cli;
pub mod clock;
pub mod duration;
#[cfg(feature = "lease")]
pub mod lease;
pub mod lease_args;
pub mod log;
mod main_helper;
pub mod shutdown;

pub use lease_args::{LeaseArgs, LeaseConfig, Surroundings};
pub use log::LogArgs;
pub use main_helper::{Service, command, install_crypto_provider, main, parse_from, program_name};
pub use shutdown::Shutdown;
