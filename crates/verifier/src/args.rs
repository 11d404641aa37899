//! Command line and environment (`OBOL_VERIFIER_*`), and the wiring that runs the verifier.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
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

/// `x402-verifier` flags; each also reads an `OBOL_VERIFIER_*` variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "x402-verifier",
    version,
    about = "x402 ForwardAuth payment verifier"
)]
pub struct Args {
    /// Address to serve ForwardAuth, probes and metrics on.
    #[arg(long, env = "OBOL_VERIFIER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Facilitator base URL (`/verify` and `/settle` are appended).
    #[arg(long, env = "OBOL_VERIFIER_FACILITATOR_URL")]
    pub facilitator_url: reqwest::Url,
    /// Time budget of a facilitator `/verify` call.
    #[arg(
        long,
        env = "OBOL_VERIFIER_FACILITATOR_VERIFY_TIMEOUT_SECS",
        default_value_t = 5
    )]
    pub facilitator_verify_timeout_secs: u64,
    /// Time budget of a facilitator `/settle` call (it waits for the transaction).
    #[arg(
        long,
        env = "OBOL_VERIFIER_FACILITATOR_SETTLE_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub facilitator_settle_timeout_secs: u64,
    /// Route source.
    #[arg(
        long,
        env = "OBOL_VERIFIER_ROUTE_SOURCE",
        value_enum,
        default_value = "kube"
    )]
    pub route_source: RouteSource,
    /// Watch PaymentRoutes in this namespace only (default: all namespaces).
    #[arg(long, env = "OBOL_VERIFIER_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Routes file for `--route-source file`.
    #[arg(long, env = "OBOL_VERIFIER_ROUTES_FILE")]
    pub routes_file: Option<PathBuf>,
    /// How often the routes file's mtime is checked.
    #[arg(long, env = "OBOL_VERIFIER_ROUTES_POLL_SECS", default_value_t = 2)]
    pub routes_poll_secs: u64,
    /// Most authorizations the memory reservation store remembers (in flight or settled).
    #[arg(long, env = "OBOL_VERIFIER_REPLAY_CAPACITY", default_value_t = 100_000)]
    pub replay_capacity: usize,
    /// Reservation store: `memory` (one replica) or `redis://[:password@]host[:port][/db]`
    /// (Redis or Valkey 7+, shared by every replica; down means 503 for paid requests).
    #[arg(long, env = "OBOL_VERIFIER_RESERVATIONS", default_value = "memory")]
    pub reservations: ReservationsAt,
    /// Time budget of one reservation store operation, in milliseconds.
    #[arg(
        long,
        env = "OBOL_VERIFIER_RESERVATIONS_TIMEOUT_MS",
        default_value_t = 500
    )]
    pub reservations_timeout_ms: u64,
    /// Most connections to the reservation store.
    #[arg(
        long,
        env = "OBOL_VERIFIER_RESERVATIONS_MAX_CONNECTIONS",
        default_value_t = 64
    )]
    pub reservations_max_connections: usize,
    /// Chain RPC per network, `<network>=<url>` (repeat, or comma-separated), for serving once
    /// more a payment the chain shows settled here whose answer never arrived.
    #[arg(long, env = "OBOL_VERIFIER_CHAIN_RPC", value_delimiter = ',')]
    pub chain_rpc: Vec<ChainRpc>,
    /// How many blocks back the chain is searched for such a settlement.
    #[arg(
        long,
        env = "OBOL_VERIFIER_CHAIN_LOOKBACK_BLOCKS",
        default_value_t = 10_000
    )]
    pub chain_lookback_blocks: u64,
    /// How old (seconds) a settlement may be and still be served once more from chain evidence.
    #[arg(long, env = "OBOL_VERIFIER_RESERVE_WINDOW_SECS", default_value_t = 600)]
    pub reserve_window_secs: u64,
    /// The gateway mode's listener and upstream client.
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Log filter (`tracing` env-filter syntax).
    #[arg(long, env = "OBOL_VERIFIER_LOG", default_value = "info")]
    pub log: String,
}

/// Gateway mode `proxy`: where paid traffic is served and how upstreams are called.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Address the gateway traffic is served on (apart from `--listen`: a request path never
    /// reaches /verify, /metrics or the probes).
    #[arg(
        long,
        env = "OBOL_VERIFIER_GATEWAY_LISTEN",
        default_value = "0.0.0.0:8081"
    )]
    pub gateway_listen: SocketAddr,
    /// Budget to connect to an upstream, in milliseconds.
    #[arg(
        long,
        env = "OBOL_VERIFIER_UPSTREAM_CONNECT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub upstream_connect_timeout_ms: u64,
    /// Budget from forwarding a request to the upstream's answer head, in seconds.
    #[arg(
        long,
        env = "OBOL_VERIFIER_UPSTREAM_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub upstream_timeout_secs: u64,
    /// Longest silence inside an upstream's answer (between stream events), in seconds.
    #[arg(
        long,
        env = "OBOL_VERIFIER_UPSTREAM_IDLE_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub upstream_idle_timeout_secs: u64,
    /// How long an idle upstream connection is kept for reuse, in seconds.
    #[arg(
        long,
        env = "OBOL_VERIFIER_UPSTREAM_POOL_IDLE_SECS",
        default_value_t = 90
    )]
    pub upstream_pool_idle_secs: u64,
    /// Most idle connections kept per upstream.
    #[arg(
        long,
        env = "OBOL_VERIFIER_UPSTREAM_POOL_MAX_IDLE",
        default_value_t = 64
    )]
    pub upstream_pool_max_idle: usize,
    /// Speak HTTP/2 without TLS (h2c, prior knowledge) to upstreams instead of HTTP/1.1.
    #[arg(long, env = "OBOL_VERIFIER_UPSTREAM_HTTP2", default_value_t = false)]
    pub upstream_http2: bool,
    /// Largest request body forwarded; larger ones get 413 before any payment is taken.
    #[arg(long, env = "OBOL_VERIFIER_MAX_REQUEST_BYTES", default_value_t = 10 << 20)]
    pub max_request_bytes: u64,
    /// Largest answer read whole and settled before it is sent; larger ones are streamed and
    /// settled at their end.
    #[arg(
        long,
        env = "OBOL_VERIFIER_MAX_ANSWER_BUFFER_BYTES",
        default_value_t = 16 << 20
    )]
    pub max_answer_buffer_bytes: u64,
}

impl GatewayArgs {
    /// The upstream client's settings.
    pub fn upstream_config(&self) -> UpstreamConfig {
        let Self {
            gateway_listen: _,
            upstream_connect_timeout_ms,
            upstream_timeout_secs,
            upstream_idle_timeout_secs,
            upstream_pool_idle_secs,
            upstream_pool_max_idle,
            upstream_http2,
            max_request_bytes,
            max_answer_buffer_bytes,
        } = self;
        UpstreamConfig {
            connect_timeout: Duration::from_millis((*upstream_connect_timeout_ms).max(1)),
            head_timeout: Duration::from_secs((*upstream_timeout_secs).max(1)),
            idle_timeout: Duration::from_secs((*upstream_idle_timeout_secs).max(1)),
            pool_idle_timeout: Duration::from_secs(*upstream_pool_idle_secs),
            pool_max_idle: *upstream_pool_max_idle,
            http2: *upstream_http2,
            max_request_bytes: *max_request_bytes,
            max_buffer_bytes: *max_answer_buffer_bytes,
        }
    }
}

impl Args {
    /// Runs the verifier until SIGTERM or Ctrl-C.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            listen,
            facilitator_url,
            facilitator_verify_timeout_secs,
            facilitator_settle_timeout_secs,
            route_source,
            watch_namespace,
            routes_file,
            routes_poll_secs,
            replay_capacity,
            reservations,
            reservations_timeout_ms,
            reservations_max_connections,
            chain_rpc,
            chain_lookback_blocks,
            reserve_window_secs,
            gateway,
            log,
        } = self;
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_new(&log).context("--log")?)
            .init();
        let timeouts = (
            Duration::from_secs(facilitator_verify_timeout_secs),
            Duration::from_secs(facilitator_settle_timeout_secs),
        );
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
                    Duration::from_millis(reservations_timeout_ms.max(1)),
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
        let hold_secs = facilitator_verify_timeout_secs
            + upstream_config.head_timeout.as_secs()
            + facilitator_settle_timeout_secs
            + 60;
        let mut state = AppState::new(table.clone(), Facilitators::with_factory(default, make))
            .with_reservations(Reservations::new(store, DEFAULT_MAX_TTL_SECS))
            .with_hold_secs(hold_secs);
        if !chain_rpc.is_empty() {
            let rpc = chain_rpc.into_iter().map(|c| (c.chain_id, c.url)).collect();
            let evidence = RpcEvidence::new(
                rpc,
                chain_lookback_blocks,
                reserve_window_secs,
                Duration::from_secs(10),
            )
            .map_err(|e| crate::Error::Config(format!("--chain-rpc: {e}")))?;
            state = state.with_evidence(Arc::new(evidence));
        }
        match route_source {
            RouteSource::File => {
                let path = routes_file.context("--route-source file needs --routes-file")?;
                let every = Duration::from_secs(routes_poll_secs.max(1));
                let task = crate::file_source::watch_file(path, table, every);
                tokio::spawn(task.instrument(info_span!("routes_file")));
            }
            RouteSource::Kube => {
                let client = kube::Client::try_default()
                    .await
                    .map_err(crate::Error::Kube)?;
                let task = crate::k8s::run(client, watch_namespace, table, state.metrics.clone());
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
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown().await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let admin = axum::serve(listener, crate::app(state))
            .with_graceful_shutdown(stopped(stop_rx.clone()));
        let paid = axum::serve(gateway_listener, crate::gateway::app(gw))
            .with_graceful_shutdown(stopped(stop_rx));
        let (a, b) = tokio::join!(admin.into_future(), paid.into_future());
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

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("Shutting down");
}
