//! The x402 verifier: the only component on the paid request path, in two gateway modes.
//!
//! **ForwardAuth**: the gateway asks `/verify/...` before letting a request through; the payment
//! is settled first (ForwardAuth cannot see the answer). **Proxy** ([`gateway`]): the gateway
//! sends the paid traffic to the verifier's own gateway listener, which forwards it to the
//! upstream and settles only for answers delivered (streams at their end).
//!
//! It owns the route table fed by a route source (PaymentRoutes through a kube reflector, or a
//! YAML file), the reservations of authorizations ([`reservations`], memory or Redis), the
//! payment gate (local checks, reservation, facilitator `/verify` then `/settle`), the axum
//! apps, and the PaymentRoute status it reports. It depends on `obol-api`
//! and `obol-x402` only, never on another service crate. Every failure is a deliberate status:
//! it fails closed, never panics on input and never lets an unpaid request through a priced
//! route.
//!
//! | Endpoint | Answer |
//! |---|---|
//! | `/verify/{namespace}/{name}` | ForwardAuth for one PaymentRoute: 200 (paid, headers `X-Payment-Payer`, `X-Payment-Tx`, `Authorization` = `upstreamAuth`), 402 (unpaid or refused payment: `PAYMENT-REQUIRED` + v1 JSON body, or for a browser the HTML paywall of [`html`], payable with an injected wallet), 503 (route not loaded, not ready, facilitator down) |
//! | `/verify` | ForwardAuth by `X-Forwarded-Uri` (query cut off): missing → 403, unmatched → 200 (free), matched → as above |
//! | `/healthz` | 200 `{"status":"ok"}` |
//! | `/readyz` | 200 after the first full sync of the route source, else 503 |
//! | `/metrics` | OpenMetrics text: `obol_x402_verifier_*` |
//! | `--gateway-listen`, any path | gateway mode `proxy`: the route by the `X-Obol-Payment-Route` header (else by path), 402 unpaid, the upstream's answer when paid (`PAYMENT-RESPONSE` in the head, or as a trailer of a stream), errors passed through uncharged |
//!
//! | Flag (each also read from `OBOL_VERIFIER_<FLAG>`) | Default |
//! |---|---|
//! | `--listen` | `0.0.0.0:8080` |
//! | `--facilitator-url` | required |
//! | `--facilitator-verify-timeout` | `5s` |
//! | `--facilitator-settle-timeout` | `60s` |
//! | `--route-source` | `kube` (or `file`) |
//! | `--namespace` | all namespaces |
//! | `--routes-file` | required with `file` |
//! | `--routes-poll-interval` | `2s` |
//! | `--replay-capacity` | `100000` (memory reservations) |
//! | `--reservations` | `memory` (or `redis://[:password@]host[:port][/db]`) |
//! | `--reservations-timeout` | `500ms` |
//! | `--reservations-max-connections` | `64` |
//! | `--chain-rpc` | none (`<network>=<url>`, repeated or comma-separated) |
//! | `--chain-lookback-blocks` | `10000` |
//! | `--reserve-window` | `600s` |
//! | `--gateway-listen` | `0.0.0.0:8081` |
//! | `--upstream-connect-timeout` | `5s` |
//! | `--upstream-timeout` | `300s` (to the answer's head) |
//! | `--upstream-idle-timeout` | `300s` (between chunks) |
//! | `--upstream-pool-idle` | `90s` |
//! | `--upstream-pool-max-idle` | `64` |
//! | `--upstream-http2` | `false` (HTTP/1.1 keep-alive) |
//! | `--max-request-bytes` | `10485760` |
//! | `--max-answer-buffer-bytes` | `16777216` (larger answers are streamed) |
//! | `--log` | `info` |
//!
//! Durations are written `500ms`, `5s`, `1m` or as bare seconds ([`obol_runtime::duration`]).
//! Renamed (the old names work for one release, with a warning): `--watch-namespace`, and the
//! `-secs`/`-ms` flags, whose unit moved into the value.

//!
//! Tests: `cargo nextest run -p obol-verifier` (unit tables, router tests with a scripted
//! facilitator, a hostile-input table, and PaymentRoute tests on the local control plane).
//! Benchmarks: `cargo bench -p obol-verifier --bench verifier` (lookup, signature check, 402
//! decision) and `scripts/bench-verifier-402.sh` (wrk: unpaid 402 vs a bare hyper server).
//! Fuzzing: `crates/verifier/fuzz` (`cargo +nightly fuzz run payment_header`).

pub mod admit;
pub mod args;
/// The clock the gate asks for `now` (obol-runtime's, shared with the buyer).
pub use obol_runtime::clock;
pub mod decide;
pub mod discovery;
pub mod error;
pub mod evidence;
pub mod facilitators;
pub mod file_source;
pub mod gate;
pub mod gateway;
pub mod html;
pub mod http;
pub mod k8s;
pub mod matcher;
pub mod metrics;
pub mod reservations;
pub mod route;
pub mod route_table;
pub mod rule_scan;
pub mod state;
pub mod status;
#[cfg(test)]
mod testing;
pub mod unpaid_cache;
pub mod unpaid_template;

pub use args::Args;
pub use error::{Denial, Error, LoadError, Result};
pub use http::app;
pub use route::{RouteEntry, RouteKey};
pub use route_table::RouteTable;
pub use state::AppState;
