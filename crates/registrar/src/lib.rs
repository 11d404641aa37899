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
//! | Flag (each also read from `OBOL_REGISTRAR_<FLAG>`) | Default |
//! |---|---|
//! | `--rpc-url` | none |
//! | `--chain-rpc CHAIN=URL` (the variable: comma-separated) | none |
//! | `--key-file` | none (or the file absent) → `OffChainOnly` |
//! | `--listen` | `0.0.0.0:8080` |
//! | `--public-url` | none → `data:` agent URIs |
//! | `--namespace` | all namespaces |
//! | `--leader-elect`, `--lease-name`, `--lease-namespace`, `--identity` | `true`, `erc8004-registrar`, the process's namespace, `POD_NAME` |
//! | `--lease-duration`, `--lease-grace` | `15s`, `5s` |
//! | `--retry-initial`, `--retry-max` | `2s`, `5m` |
//! | `--poll-interval`, `--receipt-timeout` | `2s`, `60s` |
//! | `--tombstone-attempts` | 5 |
//! | `--log` | `info` |
//!
//! Durations are written `500ms`, `15s`, `2m` or as bare seconds ([`obol_runtime::duration`]).
//! Renamed (the old names work for one release, with a warning): `--lease-duration-secs`,
//! `--lease-grace-secs`, `--receipt-timeout-secs` (same values), `--retry-initial-ms`,
//! `--retry-max-ms`, `--poll-interval-ms` (a bare number meant milliseconds).
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
