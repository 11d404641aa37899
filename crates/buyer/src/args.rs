//! Command line and environment (the Go buyer's flags, each with an `OBOL_BUYER_*` variable).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use obol_runtime::{LogArgs, Shutdown, duration};
use tracing::Instrument as _;

use crate::buyer::{Buyer, BuyerParts, SystemClock, maintenance_loop, reload_loop};
use crate::chain::ChainReaders;
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
    /// JSON-RPC endpoints (one per chain, repeatable or comma-separated): `authorizationState`
    /// (exact) and Permit2's nonce bitmap (upto) tell which authorizations were used, whatever any journal or seller remembers. Asked at
    /// start-up for the whole pool, when a seller refuses for a reason the buyer cannot
    /// classify, and periodically for held authorizations. Required with `--source kube`.
    #[arg(long, value_delimiter = ',')]
    pub rpc_url: Vec<String>,
    /// Where the pool comes from: `files` (the Go buyer's config and auth files) or `kube`
    /// (PurchaseRequests and their ConfigMaps, watched through the API; statuses written back).
    #[arg(long, value_enum, default_value = "files")]
    pub source: SourceKind,
    /// With `--source kube`: the namespace whose PurchaseRequests are served (all when unset).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Authorizations expiring within this margin are no longer sent (`60s`, `5m`).
    #[arg(long, default_value = "60s", value_parser = duration::parse)]
    pub expiry_margin: Duration,
    /// How often held authorizations are looked up on chain.
    #[arg(long, default_value = "60s", value_parser = duration::parse)]
    pub held_check_interval: Duration,
    /// With `--source kube`: how often each seller's 402 is re-checked for `SellerReachable`.
    #[arg(long, default_value = "60s", value_parser = duration::parse)]
    pub seller_check_interval: Duration,
    /// With `--source kube`: this replica's pod name (`x402-buyer-2`, from the downward API)
    /// when the buyer runs as a StatefulSet of several. Each replica then spends only the
    /// partition slots it holds (see `partition`); unset: a single buyer spending every
    /// authorization.
    #[arg(long)]
    pub replica: Option<String>,
    /// With `--replica`: the StatefulSet (in `--namespace`) whose `spec.replicas` is the
    /// replica count.
    #[arg(long, default_value = "x402-buyer")]
    pub statefulset: String,
    /// With `--replica`: a peer whose status entry did not change for this long is taken for
    /// dead and its slots may be claimed; a replica that could not renew its own for half of
    /// it stops spending.
    #[arg(long, default_value = "15s", value_parser = duration::parse)]
    pub replica_lease: Duration,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Where the pool comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// The Go buyer's files (`--config-dir`/`--auths-dir`, or `--config`/`--auths`).
    Files,
    /// PurchaseRequests and their ConfigMaps, through the API.
    Kube,
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

    /// Runs the buyer until shutdown; requests in flight get `SHUTDOWN_GRACE` to finish.
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
            source,
            namespace,
            expiry_margin,
            held_check_interval,
            seller_check_interval,
            replica,
            statefulset,
            replica_lease,
            log: _,
        } = self;
        let namespace = namespace.filter(|n| !n.is_empty());
        let replica = match replica.filter(|r| !r.is_empty()) {
            None => None,
            Some(name) => {
                let ordinal = crate::partition::ordinal_of(&name).with_context(|| {
                    format!("--replica {name}: not a StatefulSet pod name (<set>-<ordinal>)")
                })?;
                anyhow::ensure!(
                    source == SourceKind::Kube,
                    "--replica partitions PurchaseRequests: it needs --source kube"
                );
                let namespace = namespace.clone().context(
                    "--replica needs --namespace (where the StatefulSet and its PurchaseRequests are)",
                )?;
                anyhow::ensure!(
                    replica_lease >= Duration::from_secs(2),
                    "--replica-lease must be at least 2s"
                );
                Some(crate::replica::ReplicaOptions {
                    name,
                    ordinal,
                    statefulset,
                    namespace,
                    lease: replica_lease,
                    drain_limit: upstream_timeout + Duration::from_secs(5),
                })
            }
        };
        let partitioned = replica.is_some();
        let files = match (source, config_dir, auths_dir) {
            (SourceKind::Kube, None, None) => None,
            (SourceKind::Kube, _, _) => {
                anyhow::bail!(
                    "--source kube reads PurchaseRequests; --config-dir/--auths-dir are for --source files"
                )
            }
            (SourceKind::Files, Some(config_dir), Some(auths_dir)) => Some(Source::Dirs {
                config_dir,
                auths_dir,
            }),
            (SourceKind::Files, None, None) => Some(Source::Files { config, auths }),
            _ => anyhow::bail!("--config-dir and --auths-dir go together"),
        };
        if source == SourceKind::Kube && rpc_url.is_empty() {
            anyhow::bail!(
                "--source kube needs --rpc-url: without a chain reader the buyer cannot heal lost state"
            );
        }
        if rpc_url.is_empty() {
            tracing::warn!(
                "No --rpc-url: lost state heals only from sellers' \"already used\" answers"
            );
        }
        let journal =
            Arc::new(open_journal(&state, compact_bytes).context("cannot open the spend journal")?);
        let client = reqwest::Client::builder()
            .timeout(upstream_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .context("HTTP client")?;
        // One client (building one loads the trust roots, ~0.1 s in a debug build); RPC calls
        // set their own timeout.
        let chains = Arc::new(ChainReaders::new(&client, &rpc_url));
        let (buyer, reload_rx) = Buyer::new(BuyerParts {
            source: files,
            journal,
            client,
            clock: Arc::new(SystemClock),
            max_heal,
            chains,
            expiry_margin: expiry_margin.as_secs(),
        });
        let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel::<()>();
        match source {
            SourceKind::Files => {
                buyer.reload(true).await;
                let _ = loaded_tx.send(());
                let interval = (!reload_interval.is_zero()).then_some(reload_interval);
                tokio::spawn(
                    reload_loop(buyer.clone(), reload_rx, interval)
                        .instrument(tracing::info_span!("reload")),
                );
            }
            SourceKind::Kube => {
                let kube = kube::Client::try_default()
                    .await
                    .context("Kubernetes client (in-cluster, or KUBECONFIG)")?;
                let options = crate::purchases::WatchOptions {
                    namespace,
                    seller_check: seller_check_interval,
                    replica,
                };
                let on_ready = move || {
                    let _ = loaded_tx.send(());
                };
                tokio::spawn(
                    crate::purchases::run(buyer.clone(), kube, options, on_ready)
                        .instrument(tracing::info_span!("purchases")),
                );
            }
        }
        // Served (and so ready) only once the pool is loaded: until then every request would 404.
        tokio::select! {
            _ = loaded_rx => {}
            () = shutdown.requested() => return Ok(()),
        }
        // A replica checks each slot on chain when it claims it, before spending from it; the
        // whole-pool check would only delay those claims (it holds the upstream's check lock).
        if !rpc_url.is_empty() && !partitioned {
            let b = buyer.clone();
            let check = async move {
                let marked = b.check_chain().await;
                tracing::info!(marked, "Start-up chain check done");
            };
            tokio::spawn(check.instrument(tracing::info_span!("chain_check")));
        }
        tokio::spawn(maintenance_loop(
            buyer.clone(),
            Duration::from_secs(1),
            held_check_interval,
        ));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(addr = %listen, "Buyer listening");
        // In-flight requests get SHUTDOWN_GRACE to finish, as in the Go buyer.
        let served = obol_runtime::admin::serve(
            listener,
            crate::proxy::router(buyer.clone()),
            shutdown.requested(),
            Some(SHUTDOWN_GRACE),
        )
        .await
        .context("server");
        buyer.flush().await;
        served
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
