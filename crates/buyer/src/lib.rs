//! The x402 buyer: an OpenAI-compatible proxy that pays sellers with pre-signed x402
//! authorizations, and never spends one twice.
//!
//! It owns the spend journal ([`journal`]: every authorization is recorded durably before it
//! is sent; compaction and recovery are crash-safe), the pool and its selection rules
//! ([`pool`], [`select`]), and the proxy ([`proxy`], [`forward`]). It depends on `obol-x402`
//! only (wire codecs and address/amount parsing), never on other service crates, and needs no
//! signing key at run time. Formats, routes and metric names follow the Go buyer
//! (obol-reference §6).
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
//! | `--rpc-url` | unset (no start-up `authorizationState` check) |
//! | `--log` | `info` |

mod args;
pub mod buyer;
pub mod chain;
pub mod config;
pub mod error;
pub mod forward;
pub mod journal;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod select;
pub mod upstream;

pub use args::Args;
pub use buyer::{Buyer, BuyerParts, Clock, SystemClock};
pub use error::SpendError;
