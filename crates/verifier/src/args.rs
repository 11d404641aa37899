//! Command line and environment (`OBOL_VERIFIER_*`), and the wiring that runs the verifier.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use obol_x402 as x402;
use tracing::{Instrument as _, info, info_span};
use x402::{Facilitator, HttpFacilitator, HttpFacilitatorConfig};

use crate::facilitators::{Facilitators, MakeFacilitator};
use crate::replay::{DEFAULT_MAX_TTL_SECS, ReplayCache};
use crate::route_table::RouteTable;
use crate::state::AppState;

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
    /// Most nonces remembered (in flight or settled).
    #[arg(long, env = "OBOL_VERIFIER_REPLAY_CAPACITY", default_value_t = 100_000)]
    pub replay_capacity: usize,
    /// Log filter (`tracing` env-filter syntax).
    #[arg(long, env = "OBOL_VERIFIER_LOG", default_value = "info")]
    pub log: String,
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
        let state = AppState::new(table.clone(), Facilitators::with_factory(default, make))
            .with_replay(ReplayCache::new(replay_capacity, DEFAULT_MAX_TTL_SECS));
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
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| crate::Error::Io {
                context: "cannot bind the listen address",
                source,
            })?;
        info!(addr = %listen, source = ?route_source, "Serving");
        axum::serve(listener, crate::app(state))
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|source| crate::Error::Io {
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
