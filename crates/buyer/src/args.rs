//! Command line and environment (the Go buyer's flags, each with an `OBOL_BUYER_*` variable).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use obol_runtime::{LogArgs, Shutdown, duration};
use tracing::Instrument as _;

use crate::buyer::{Buyer, BuyerParts, SystemClock, reload_loop};
use crate::config::Source;
use crate::journal::{DEFAULT_COMPACT_BYTES, FileStorage, Journal, MemStorage, Storage, legacy};

/// `x402-buyer`: an OpenAI-compatible proxy that pays sellers with pre-signed x402 authorizations.
#[derive(Debug, clap::Parser)]
#[command(name = "x402-buyer", version)]
pub struct Args {
    /// One `<upstream>.json` per upstream; used with --auths-dir instead of --config/--auths.
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// One `<upstream>.json` array of pre-signed authorizations per upstream.
    #[arg(long)]
    pub auths_dir: Option<PathBuf>,
    /// Legacy single config file.
    #[arg(long, default_value = "/config/config.json")]
    pub config: PathBuf,
    /// Legacy single auths file.
    #[arg(long, default_value = "/config/auths.json")]
    pub auths: PathBuf,
    /// The Go buyer's state file: imported if present; the journal lives beside it. Empty:
    /// in memory only (spends are forgotten on restart).
    #[arg(long, default_value = "/state/consumed.json")]
    pub state: String,
    /// Address of the proxy and the admin endpoints.
    #[arg(long, default_value = "0.0.0.0:8402")]
    pub listen: SocketAddr,
    /// How often the files are re-read (`5s`, `500ms`, `0` disables the timer).
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    pub reload_interval: Duration,
    /// Most authorizations tried for one request while sellers answer "already used".
    #[arg(long, default_value_t = 32)]
    pub max_heal: usize,
    /// Timeout of one upstream request, including a streamed response.
    #[arg(long, default_value = "300s", value_parser = duration::parse)]
    pub upstream_timeout: Duration,
    /// Compact the journal when its log exceeds this many bytes.
    #[arg(long, default_value_t = DEFAULT_COMPACT_BYTES)]
    pub compact_bytes: u64,
    /// JSON-RPC endpoint: at start-up, authorizations already used on this chain
    /// (`authorizationState`) are recorded as spent. Unset: no chain check.
    #[arg(long)]
    pub rpc_url: Option<String>,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// How long in-flight requests may run after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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

impl obol_runtime::Service for Args {
    const ENV_PREFIX: &'static str = "OBOL_BUYER";

    fn log(&self) -> &LogArgs {
        &self.log
    }

    /// Runs the buyer until shutdown; requests in flight get [`SHUTDOWN_GRACE`] to finish.
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
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
            log: _,
        } = self;
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
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(addr = %listen, "Buyer listening");
        // In-flight requests get SHUTDOWN_GRACE to finish, as in the Go buyer.
        obol_runtime::admin::serve(
            listener,
            crate::proxy::router(buyer),
            shutdown.requested(),
            Some(SHUTDOWN_GRACE),
        )
        .await
        .context("server")
    }
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
            "--listen=0.0.0.0:8402",
            "--reload-interval=500ms",
        ])
        .unwrap();
        assert_eq!(a.reload_interval, Duration::from_millis(500));
        assert_eq!(a.listen.port(), 8402);
        let b = Args::try_parse_from(["x402-buyer", "--reload-interval=0"]).unwrap();
        assert_eq!(b.reload_interval, Duration::ZERO);
        assert_eq!(b.listen.to_string(), "0.0.0.0:8402");
        assert!(Args::try_parse_from(["x402-buyer", "--listen=nope"]).is_err());
    }

    #[test]
    fn the_go_buyers_listen_spelling_still_works_with_a_warning() {
        let args = ["x402-buyer", "--listen=:8402"].map(std::ffi::OsString::from);
        let (a, warnings) = obol_runtime::parse_from::<Args>(args, |_| None).unwrap();
        assert_eq!(a.listen.to_string(), "0.0.0.0:8402");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
}
