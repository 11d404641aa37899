//! Command line and environment (the Go buyer's flags, each with an `OBOL_BUYER_*` variable).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::future::IntoFuture as _;

use anyhow::Context as _;
use tracing::Instrument as _;

use crate::buyer::{Buyer, BuyerParts, SystemClock, reload_loop};
use crate::config::Source;
use crate::journal::{DEFAULT_COMPACT_BYTES, FileStorage, Journal, MemStorage, Storage, legacy};

/// `x402-buyer`: an OpenAI-compatible proxy that pays sellers with pre-signed x402 authorizations.
#[derive(Debug, clap::Parser)]
#[command(name = "x402-buyer", version)]
pub struct Args {
    /// One `<upstream>.json` per upstream; used with --auths-dir instead of --config/--auths.
    #[arg(long, env = "OBOL_BUYER_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// One `<upstream>.json` array of pre-signed authorizations per upstream.
    #[arg(long, env = "OBOL_BUYER_AUTHS_DIR")]
    pub auths_dir: Option<PathBuf>,
    /// Legacy single config file.
    #[arg(long, env = "OBOL_BUYER_CONFIG", default_value = "/config/config.json")]
    pub config: PathBuf,
    /// Legacy single auths file.
    #[arg(long, env = "OBOL_BUYER_AUTHS", default_value = "/config/auths.json")]
    pub auths: PathBuf,
    /// The Go buyer's state file: imported if present; the journal lives beside it. Empty:
    /// in memory only (spends are forgotten on restart).
    #[arg(long, env = "OBOL_BUYER_STATE", default_value = "/state/consumed.json")]
    pub state: String,
    /// Listen address (`:8402` means all interfaces).
    #[arg(long, env = "OBOL_BUYER_LISTEN", default_value = ":8402")]
    pub listen: String,
    /// How often the files are re-read (`5s`, `500ms`, `0` disables the timer).
    #[arg(long, env = "OBOL_BUYER_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub reload_interval: Duration,
    /// Most authorizations tried for one request while sellers answer "already used".
    #[arg(long, env = "OBOL_BUYER_MAX_HEAL", default_value_t = 32)]
    pub max_heal: usize,
    /// Timeout of one upstream request, including a streamed response.
    #[arg(long, env = "OBOL_BUYER_UPSTREAM_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,
    /// Compact the journal when its log exceeds this many bytes.
    #[arg(long, env = "OBOL_BUYER_COMPACT_BYTES", default_value_t = DEFAULT_COMPACT_BYTES)]
    pub compact_bytes: u64,
    /// JSON-RPC endpoint: at start-up, authorizations already used on this chain
    /// (`authorizationState`) are recorded as spent. Unset: no chain check.
    #[arg(long, env = "OBOL_BUYER_RPC_URL")]
    pub rpc_url: Option<String>,
    /// Log filter (`info`, `obol_buyer=debug`, ...).
    #[arg(long, env = "OBOL_BUYER_LOG", default_value = "info")]
    pub log: String,
}

/// How long in-flight requests may run after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Parses `5s`, `500ms`, `2m` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("invalid duration unit in {s:?} (use ms, s or m)")),
    }
}

/// `:8402` → `0.0.0.0:8402`.
pub fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_owned()
    };
    full.parse()
        .with_context(|| format!("invalid --listen {s:?}"))
}

fn open_journal(state: &str, compact_bytes: u64) -> anyhow::Result<Journal> {
    let (storage, import): (Arc<dyn Storage>, _) = if state.is_empty() {
        tracing::warn!("No --state: spends are kept in memory only and forgotten on restart");
        (Arc::new(MemStorage::default()), Vec::new())
    } else {
        let path = Path::new(state);
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let storage = FileStorage::open(dir)
            .with_context(|| format!("cannot open state directory {}", dir.display()))?;
        (Arc::new(storage), legacy::load(path)?)
    };
    let (journal, recovered) = Journal::open(storage, import, compact_bytes)?;
    tracing::info!(
        spent = recovered.records.len(),
        imported = recovered.imported,
        dropped_torn_tail = recovered.dropped_torn_tail,
        "Spend journal recovered"
    );
    Ok(journal)
}

impl Args {
    /// Runs the buyer until SIGTERM or SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            config_dir,
            auths_dir,
            config,
            auths,
            state,
            listen,
            reload_interval,
            max_heal,
            upstream_timeout,
            compact_bytes,
            rpc_url,
            log,
        } = self;
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_new(&log).context("invalid --log")?)
            .init();
        let addr = parse_listen(&listen)?;
        let source = match (config_dir, auths_dir) {
            (Some(config_dir), Some(auths_dir)) => Source::Dirs {
                config_dir,
                auths_dir,
            },
            (None, None) => Source::Files { config, auths },
            _ => anyhow::bail!("--config-dir and --auths-dir go together"),
        };
        let journal =
            Arc::new(open_journal(&state, compact_bytes).context("cannot open the spend journal")?);
        let client = reqwest::Client::builder()
            .timeout(upstream_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .context("HTTP client")?;
        let (buyer, reload_rx) = Buyer::new(BuyerParts {
            source,
            journal,
            client,
            clock: Arc::new(SystemClock),
            max_heal,
        });
        buyer.reload(true).await;
        let interval = (!reload_interval.is_zero()).then_some(reload_interval);
        tokio::spawn(
            reload_loop(buyer.clone(), reload_rx, interval)
                .instrument(tracing::info_span!("reload")),
        );
        if let Some(url) = rpc_url {
            let (buyer, rpc) = (
                buyer.clone(),
                crate::chain::Rpc::new(reqwest::Client::new(), url),
            );
            let check = async move {
                match buyer.check_chain(&rpc).await {
                    Ok(marked) => {
                        tracing::info!(marked, "Chain check recorded used authorizations")
                    }
                    Err(error) => {
                        tracing::warn!(%error, "Chain check failed; healing covers used authorizations")
                    }
                }
            };
            tokio::spawn(check.instrument(tracing::info_span!("chain_check")));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, "Buyer listening");
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(listener, crate::proxy::router(buyer))
            .with_graceful_shutdown(async move {
                shutdown().await;
                let _ = stopping_tx.send(());
            })
            .into_future();
        // In-flight requests get SHUTDOWN_GRACE to finish, as in the Go buyer.
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = server => served.context("server"),
            () = deadline => {
                tracing::warn!("Shutdown grace period over; dropping open connections");
                Ok(())
            }
        }
    }
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
    tracing::info!("Shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn flags_parse_like_the_go_buyer() {
        let a = Args::try_parse_from([
            "x402-buyer",
            "--config-dir=/config/buyer-config",
            "--auths-dir=/config/buyer-auths",
            "--state=/state/consumed.json",
            "--listen=:8402",
            "--reload-interval=500ms",
        ])
        .unwrap();
        assert_eq!(a.reload_interval, Duration::from_millis(500));
        assert_eq!(parse_listen(&a.listen).unwrap().port(), 8402);
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5h").is_err());
        assert!(parse_listen("nope").is_err());
    }
}
