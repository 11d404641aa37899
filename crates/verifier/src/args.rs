//! Command line and environment (`OBOL_VERIFIER_*`), and the wiring that runs the verifier.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use obol_runtime::cli::Deprecated;
use obol_runtime::{LogArgs, Shutdown, duration};
use obol_x402 as x402;
use tracing::{Instrument as _, info, info_span};
use x402::{Facilitator, HttpFacilitator, HttpFacilitatorConfig};

use crate::evidence::RpcEvidence;
use crate::facilitators::{Facilitators, MakeFacilitator};
use crate::gateway::upstream::UpstreamConfig;
use crate::reservations::memory::MemoryStore;
use crate::reservations::redis::RedisStore;
use crate::reservations::{DEFAULT_MAX_TTL_SECS, Reservations, Store};
use crate::route_table::RouteTable;
use crate::state::AppState;

/// Where reservations are kept: `memory` (one replica) or a `redis://` URL (replicas share it).
/// `Debug` never shows the URL, which may carry a password.
#[derive(Clone, PartialEq, Eq)]
pub enum ReservationsAt {
    /// This process's memory.
    Memory,
    /// A Redis or Valkey server.
    Redis(String),
}

impl std::str::FromStr for ReservationsAt {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "memory" => Ok(Self::Memory),
            url if url.starts_with("redis://") => {
                crate::reservations::redis::RedisStore::new(url, Duration::from_secs(1), 1)?;
                Ok(Self::Redis(url.to_owned()))
            }
            _ => Err("expected `memory` or a redis://[:password@]host[:port][/db] URL".into()),
        }
    }
}

impl std::fmt::Debug for ReservationsAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Redis(_) => f.write_str("redis://<redacted>"),
        }
    }
}

/// A chain RPC endpoint for one network: `<network>=<url>` (`eip155:84532=http://...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRpc {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The endpoint.
    pub url: reqwest::Url,
}

impl std::str::FromStr for ChainRpc {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (network, url) = s
            .split_once('=')
            .ok_or("expected <network>=<url>, e.g. eip155:84532=http://127.0.0.1:8545")?;
        let network = x402::Network::resolve(network.trim()).map_err(|e| e.to_string())?;
        let url = reqwest::Url::parse(url.trim()).map_err(|e| format!("{url}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{url}: the RPC URL must be http(s)"));
        }
        Ok(Self {
            chain_id: network.chain_id,
            url,
        })
    }
}

/// Where routes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RouteSource {
    /// PaymentRoutes in all namespaces (needs a kubeconfig or in-cluster credentials).
    Kube,
    /// A YAML file (`--routes-file`), re-read on change.
    File,
}

/// `x402-verifier` flags; each `--flag` also reads `OBOL_VERIFIER_FLAG` (see
/// [`obol_runtime::cli`]). Durations are written `500ms`, `5s`, `1m` or as bare seconds.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "x402-verifier",
    version,
    about = "x402 ForwardAuth payment verifier"
)]
pub struct Args {
    /// Address to serve ForwardAuth, probes and metrics on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Facilitator base URL (`/verify` and `/settle` are appended).
    #[arg(long)]
    pub facilitator_url: reqwest::Url,
    /// Time budget of a facilitator `/verify` call.
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    pub facilitator_verify_timeout: Duration,
    /// Time budget of a facilitator `/settle` call (it waits for the transaction).
    #[arg(long, default_value = "60s", value_parser = duration::parse)]
    pub facilitator_settle_timeout: Duration,
    /// Route source.
    #[arg(long, value_enum, default_value = "kube")]
    pub route_source: RouteSource,
    /// Watch PaymentRoutes in this namespace only (default: all namespaces).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Routes file for `--route-source file`.
    #[arg(long)]
    pub routes_file: Option<PathBuf>,
    /// How often the routes file's mtime is checked (at least once a second).
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    pub routes_poll_interval: Duration,
    /// Most authorizations the memory reservation store remembers (in flight or settled).
    #[arg(long, default_value_t = 100_000)]
    pub replay_capacity: usize,
    /// Reservation store: `memory` (one replica) or `redis://[:password@]host[:port][/db]`
    /// (Redis or Valkey 7+, shared by every replica; down means 503 for paid requests).
    #[arg(long, default_value = "memory")]
    pub reservations: ReservationsAt,
    /// Time budget of one reservation store operation.
    #[arg(long, default_value = "500ms", value_parser = duration::parse)]
    pub reservations_timeout: Duration,
    /// Most connections to the reservation store.
    #[arg(long, default_value_t = 64)]
    pub reservations_max_connections: usize,
    /// Chain RPC per network, `<network>=<url>` (repeat, or comma-separated), for serving once
    /// more a payment the chain shows settled here whose answer never arrived.
    #[arg(long, value_delimiter = ',')]
    pub chain_rpc: Vec<ChainRpc>,
    /// How many blocks back the chain is searched for such a settlement.
    #[arg(long, default_value_t = 10_000)]
    pub chain_lookback_blocks: u64,
    /// How old a settlement may be and still be served once more from chain evidence.
    #[arg(long, default_value = "600s", value_parser = duration::parse)]
    pub reserve_window: Duration,
    /// The gateway mode's listener and upstream client.
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Gateway mode `proxy`: where paid traffic is served and how upstreams are called.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Address the gateway traffic is served on (apart from `--listen`: a request path never
    /// reaches /verify, /metrics or the probes).
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub gateway_listen: SocketAddr,
    /// Budget to connect to an upstream.
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    pub upstream_connect_timeout: Duration,
    /// Budget from forwarding a request to the upstream's answer head.
    #[arg(long, default_value = "300s", value_parser = duration::parse)]
    pub upstream_timeout: Duration,
    /// Longest silence inside an upstream's answer (between stream events).
    #[arg(long, default_value = "300s", value_parser = duration::parse)]
    pub upstream_idle_timeout: Duration,
    /// How long an idle upstream connection is kept for reuse.
    #[arg(long, default_value = "90s", value_parser = duration::parse)]
    pub upstream_pool_idle: Duration,
    /// Most idle connections kept per upstream.
    #[arg(long, default_value_t = 64)]
    pub upstream_pool_max_idle: usize,
    /// Speak HTTP/2 without TLS (h2c, prior knowledge) to upstreams instead of HTTP/1.1.
    #[arg(long, default_value_t = false)]
    pub upstream_http2: bool,
    /// Largest request body forwarded; larger ones get 413 before any payment is taken.
    #[arg(long, default_value_t = 10 << 20)]
    pub max_request_bytes: u64,
    /// Largest answer read whole and settled before it is sent; larger ones are streamed and
    /// settled at their end.
    #[arg(long, default_value_t = 16 << 20)]
    pub max_answer_buffer_bytes: u64,
}

/// Flags renamed when the services were unified (units moved from the name into the value);
/// the old names work for one release, with a warning.
const DEPRECATED: &[Deprecated] = &[
    Deprecated::flag(
        "facilitator-verify-timeout-secs",
        "facilitator-verify-timeout",
    ),
    Deprecated::flag(
        "facilitator-settle-timeout-secs",
        "facilitator-settle-timeout",
    ),
    Deprecated::flag("watch-namespace", "namespace"),
    Deprecated::flag("routes-poll-secs", "routes-poll-interval"),
    Deprecated::flag("reservations-timeout-ms", "reservations-timeout").unit("ms"),
    Deprecated::flag("reserve-window-secs", "reserve-window"),
    Deprecated::flag("upstream-connect-timeout-ms", "upstream-connect-timeout").unit("ms"),
    Deprecated::flag("upstream-timeout-secs", "upstream-timeout"),
    Deprecated::flag("upstream-idle-timeout-secs", "upstream-idle-timeout"),
    Deprecated::flag("upstream-pool-idle-secs", "upstream-pool-idle"),
];

impl GatewayArgs {
    /// The upstream client's settings.
    pub fn upstream_config(&self) -> UpstreamConfig {
        let Self {
            gateway_listen: _,
            upstream_connect_timeout,
            upstream_timeout,
            upstream_idle_timeout,
            upstream_pool_idle,
            upstream_pool_max_idle,
            upstream_http2,
            max_request_bytes,
            max_answer_buffer_bytes,
        } = self;
        UpstreamConfig {
            connect_timeout: (*upstream_connect_timeout).max(Duration::from_millis(1)),
            head_timeout: (*upstream_timeout).max(Duration::from_secs(1)),
            idle_timeout: (*upstream_idle_timeout).max(Duration::from_secs(1)),
            pool_idle_timeout: *upstream_pool_idle,
            pool_max_idle: *upstream_pool_max_idle,
            http2: *upstream_http2,
            max_request_bytes: *max_request_bytes,
            max_buffer_bytes: *max_answer_buffer_bytes,
        }
    }
}

impl obol_runtime::Service for Args {
    const ENV_PREFIX: &'static str = "OBOL_VERIFIER";
    const DEPRECATED: &'static [Deprecated] = DEPRECATED;

    fn log(&self) -> &LogArgs {
        &self.log
    }

    /// Runs the verifier until shutdown; requests in flight on both listeners finish first.
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self {
            listen,
            facilitator_url,
            facilitator_verify_timeout,
            facilitator_settle_timeout,
            route_source,
            namespace,
            routes_file,
            routes_poll_interval,
            replay_capacity,
            reservations,
            reservations_timeout,
            reservations_max_connections,
            chain_rpc,
            chain_lookback_blocks,
            reserve_window,
            gateway,
            log: _,
        } = self;
        let timeouts = (facilitator_verify_timeout, facilitator_settle_timeout);
        let make: MakeFacilitator = Arc::new(move |url: &str| {
            let url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
            http_facilitator(url, timeouts).map_err(|e| e.to_string())
        });
        let default = http_facilitator(facilitator_url, timeouts)?;
        let table = Arc::new(RouteTable::new());
        let store: Arc<dyn Store> = match &reservations {
            ReservationsAt::Memory => Arc::new(MemoryStore::new(
                replay_capacity,
                Arc::new(crate::clock::SystemClock),
            )),
            ReservationsAt::Redis(url) => {
                let store = RedisStore::new(
                    url,
                    reservations_timeout.max(Duration::from_millis(1)),
                    reservations_max_connections,
                )
                .map_err(|e| crate::Error::Config(format!("--reservations: {e}")))?;
                if let Err(error) = store.ping().await {
                    // Not fatal: paid requests answer 503 until it answers.
                    tracing::warn!(%error, "Reservation store not answering yet");
                }
                Arc::new(store)
            }
        };
        let upstream_config = gateway.upstream_config();
        // Verify, the upstream's head, settle, and delivery of a whole answer.
        let hold_secs = (facilitator_verify_timeout
            + upstream_config.head_timeout
            + facilitator_settle_timeout)
            .as_secs()
            + 60;
        let mut state = AppState::new(table.clone(), Facilitators::with_factory(default, make))
            .with_reservations(Reservations::new(store, DEFAULT_MAX_TTL_SECS))
            .with_hold_secs(hold_secs);
        if !chain_rpc.is_empty() {
            let rpc = chain_rpc.into_iter().map(|c| (c.chain_id, c.url)).collect();
            let evidence = RpcEvidence::new(
                rpc,
                chain_lookback_blocks,
                reserve_window.as_secs(),
                Duration::from_secs(10),
            )
            .map_err(|e| crate::Error::Config(format!("--chain-rpc: {e}")))?;
            state = state.with_evidence(Arc::new(evidence));
        }
        match route_source {
            RouteSource::File => {
                let path = routes_file.context("--route-source file needs --routes-file")?;
                let every = routes_poll_interval.max(Duration::from_secs(1));
                let task =
                    crate::file_source::watch_file(path, table, state.metrics.clone(), every);
                tokio::spawn(task.instrument(info_span!("routes_file")));
            }
            RouteSource::Kube => {
                let client = kube::Client::try_default()
                    .await
                    .map_err(crate::Error::Kube)?;
                let task = crate::k8s::run(client, namespace, table, state.metrics.clone());
                tokio::spawn(task.instrument(info_span!("paymentroute_watch")));
            }
        }
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| crate::Error::Io {
                    context: "cannot bind a listen address",
                    source,
                })
        };
        let listener = bind(listen).await?;
        let gateway_listener = bind(gateway.gateway_listen).await?;
        let gw = crate::gateway::Gateway {
            state: state.clone(),
            upstream: Arc::new(crate::gateway::upstream::Upstream::new(upstream_config)),
        };
        let gateway_addr = gateway_listener
            .local_addr()
            .map_or_else(|_| gateway.gateway_listen.to_string(), |a| a.to_string());
        info!(addr = %listen, gateway = %gateway_addr, source = ?route_source, ?reservations, "Serving");
        let admin =
            obol_runtime::admin::serve(listener, crate::app(state), shutdown.requested(), None);
        let paid = obol_runtime::admin::serve(
            gateway_listener,
            crate::gateway::app(gw),
            shutdown.requested(),
            None,
        );
        let (a, b) = tokio::join!(admin, paid);
        a.and(b).map_err(|source| crate::Error::Io {
            context: "server failed",
            source,
        })?;
        Ok(())
    }
}

fn http_facilitator(
    url: reqwest::Url,
    (verify, settle): (Duration, Duration),
) -> Result<Arc<dyn Facilitator>, crate::Error> {
    let config = HttpFacilitatorConfig {
        verify_timeout: verify,
        settle_timeout: settle,
        ..HttpFacilitatorConfig::new(url)
    };
    let f = HttpFacilitator::new(config).map_err(|e| crate::Error::Facilitator(e.into()))?;
    Ok(Arc::new(f))
}
