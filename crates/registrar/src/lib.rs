//! The ERC-8004 registrar (`erc8004-registrar`): on-chain agent registration for
//! RegistrationRequests (`obol.org/v1alpha1`, any namespace).
//!
//! It owns the registration document ([`document`]), the decision of what to do next for a
//! request ([`plan`], pure, time injected), the chain edge ([`chain`], alloy over HTTP with
//! `sol!` bindings of the committed artifacts in `contracts/out`, see [`contracts`]), the
//! Kubernetes shell ([`k8s`]: kube-runtime Controller, finalizer, status writes under
//! `erc8004-registrar`) and the HTTP server ([`http`]). It must not depend on the other service
//! crates (controller, verifier, buyer); it only holds the signing key of the registrar.
//!
//! Exactly once: before `register` is sent the request is fenced (status `searchFromBlock`
//! and `registrationUri`), and after any restart the registrar recovers from the stored
//! `txHash`, the signer's `Registered` logs since the fence, or the signer's pending
//! transactions before it may send again.
//!
//! | Endpoint | |
//! |---|---|
//! | `GET /.well-known/agent-registration.json` | aggregated document (registered requests, oldest first) |
//! | `GET /registrations/{namespace}/{name}.json` | one request's document (tombstone once retired) |
//! | `GET /healthz`, `/readyz`, `/metrics` | liveness, cache synced, Prometheus |
//!
//! | Flag | Environment | Default |
//! |---|---|---|
//! | `--rpc-url` | `OBOL_REGISTRAR_RPC_URL` | none |
//! | `--chain-rpc CHAIN=URL` | `OBOL_REGISTRAR_CHAIN_RPC` (comma-separated) | none |
//! | `--key-file` | `OBOL_REGISTRAR_KEY_FILE` | none (or the file absent) → `OffChainOnly` |
//! | `--listen` | `OBOL_REGISTRAR_LISTEN` | `0.0.0.0:8080` |
//! | `--public-url` | `OBOL_REGISTRAR_PUBLIC_URL` | none → `data:` agent URIs |
//! | `--namespace` | `OBOL_REGISTRAR_NAMESPACE` | all namespaces |
//! | `--leader-elect`, `--lease-name`, `--lease-namespace`, `--identity` | `OBOL_REGISTRAR_LEADER_ELECT`, `_LEASE_NAME`, `_LEASE_NAMESPACE`, `_IDENTITY` | `true`, `erc8004-registrar`, `x402`, `POD_NAME` |
//! | `--lease-duration-secs`, `--lease-grace-secs` | `OBOL_REGISTRAR_LEASE_DURATION_SECS`, `_LEASE_GRACE_SECS` | 15, 5 |
//! | `--retry-initial-ms`, `--retry-max-ms` | `OBOL_REGISTRAR_RETRY_INITIAL_MS`, `_RETRY_MAX_MS` | 2000, 300000 |
//! | `--poll-interval-ms`, `--receipt-timeout-secs` | `OBOL_REGISTRAR_POLL_INTERVAL_MS`, `_RECEIPT_TIMEOUT_SECS` | 2000, 60 |
//! | `--tombstone-attempts` | `OBOL_REGISTRAR_TOMBSTONE_ATTEMPTS` | 5 |
//! | `--log` | `OBOL_REGISTRAR_LOG` | `info` |
//!
//! `KUBECONFIG` is read like kubectl does (in a cluster: the service account).

pub mod abi;
pub mod args;
pub mod backoff;
pub mod chain;
pub mod contracts;
pub mod deployments;
pub mod document;
pub mod error;
pub mod http;
pub mod k8s;
pub mod key;
pub mod metrics;
pub mod plan;
pub mod receipt;
pub mod request;
pub mod run;
pub mod step;

pub use args::Args;
pub use error::{ChainError, Error, Result};
