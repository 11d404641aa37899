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
//! | Flag | Environment | Default |
//! |---|---|---|
//! | `--config-dir`, `--auths-dir` | `OBOL_BUYER_CONFIG_DIR`, `OBOL_BUYER_AUTHS_DIR` | unset (use the legacy files) |
//! | `--config`, `--auths` | `OBOL_BUYER_CONFIG`, `OBOL_BUYER_AUTHS` | `/config/config.json`, `/config/auths.json` |
//! | `--state` | `OBOL_BUYER_STATE` | `/state/consumed.json` (imported; journal beside it; empty = memory) |
//! | `--listen` | `OBOL_BUYER_LISTEN` | `:8402` |
//! | `--reload-interval` | `OBOL_BUYER_RELOAD_INTERVAL` | `5s` (`0` = only `/admin/reload`) |
//! | `--max-heal` | `OBOL_BUYER_MAX_HEAL` | `32` |
//! | `--upstream-timeout` | `OBOL_BUYER_UPSTREAM_TIMEOUT` | `300s` |
//! | `--compact-bytes` | `OBOL_BUYER_COMPACT_BYTES` | `1048576` |
//! | `--rpc-url` | `OBOL_BUYER_RPC_URL` | unset (no start-up `authorizationState` check) |
//! | `--log` | `OBOL_BUYER_LOG` | `info` |

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

pub use args::{Args, parse_duration};
pub use buyer::{Buyer, BuyerParts, Clock, SystemClock};
pub use error::SpendError;
