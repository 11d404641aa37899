//! The x402 buyer: an OpenAI-compatible proxy that pays sellers with pre-signed x402
//! authorizations, and never spends one twice.
//!
//! It owns the spend journal ([`journal`]: every authorization is recorded durably as held
//! before it is sent, then spent, healed or released by the answer; compaction and recovery
//! are crash-safe), the pool and its selection rules ([`pool`], [`select`]), the chain reader
//! that heals lost state ([`chain`]), the proxy ([`proxy`], [`forward`]), and the cluster
//! source ([`purchases`]: PurchaseRequests and their ConfigMaps, statuses written back). It
//! depends on `obol-x402` (wire codecs, address and amount parsing) and `obol-api` (the
//! PurchaseRequest type), never on other service crates, and needs no signing key at run
//! time. Formats, routes and metric names follow the Go buyer (obol-reference §6).
//!
//! An answer to a paid request decides the authorization's fate: below 400, spent (a missing
//! settlement receipt is counted in `obol_x402_buyer_unsettled_confirmations_total`); 400 or
//! more with a settlement transaction, spent; "already used", spent (healed) and the next one
//! is tried; a 402 the buyer cannot classify, the chain is asked (batched, the whole pool) and
//! a used one is healed; any other 400 or more, released; no answer, held until the chain
//! says. A held authorization is never sent again.
//!
//! | Endpoint | Behaviour |
//! |---|---|
//! | `POST /v1/chat/completions`, `/chat/completions`, `/v1/responses`, `/responses` | route by `model` (`paid/`, `openai/` stripped) to the purchased upstream; 404 if none |
//! | `ANY /upstream/<name>/…` | forward to that upstream with the prefix stripped; 404 if unknown |
//! | on a seller 402 | pick a matching requirement, journal one authorization, attach `X-PAYMENT` (v1) or `PAYMENT-SIGNATURE` (v2), retry once; "already used" answers move to the next authorization (bounded); pool exhausted → 502 |
//! | `GET /status` | `{"<name>": {url, remote_model, public_model, remaining, spent, network}}` |
//! | `GET /healthz`, `GET /readyz`, `GET /metrics` | `ok` (served only after journal recovery); Prometheus `obol_x402_buyer_*` |
//! | `POST /admin/reload` | `reload triggered` / `reload already pending` |
//!
//! | Flag (each also read from `OBOL_BUYER_<FLAG>`) | Default |
//! |---|---|
//! | `--config-dir`, `--auths-dir` | unset (use the legacy files) |
//! | `--config`, `--auths` | `/config/config.json`, `/config/auths.json` |
//! | `--state` | `/state/consumed.json` (imported; journal beside it; empty = memory) |
//! | `--listen` | `0.0.0.0:8402` (the Go buyer's `:8402` still works, with a warning) |
//! | `--reload-interval` | `5s` (`0` = only `/admin/reload`) |
//! | `--max-heal` | `32` |
//! | `--upstream-timeout` | `300s` |
//! | `--compact-bytes` | `1048576` |
//! | `--rpc-url` (repeatable, or comma-separated; one per chain) | unset (required with `--source kube`) |
//! | `--source` | `files` (`kube`: PurchaseRequests) |
//! | `--namespace` | all namespaces (with `--source kube`) |
//! | `--expiry-margin` | `60s` |
//! | `--held-check-interval` | `60s` |
//! | `--seller-check-interval` | `60s` |
//! | `--replica` | unset (one buyer spends every authorization; set: this pod's name, one of a StatefulSet's replicas, see [`partition`]) |
//! | `--statefulset` | `x402-buyer` (with `--replica`: whose `spec.replicas` counts the replicas) |
//! | `--replica-lease` | `15s` |
//! | `--log` | `info` |

mod args;
pub mod buyer;
pub mod chain;
pub mod config;
pub mod error;
pub mod forward;
pub mod journal;
pub mod metrics;
pub mod partition;
pub mod pool;
pub mod proxy;
pub mod purchases;
pub mod replica;
pub mod select;
pub mod upstream;

pub use args::{Args, SourceKind};
pub use buyer::{Buyer, BuyerParts, Clock, SystemClock};
pub use error::SpendError;
