//! Command line and environment (`OBOL_REGISTRAR_*`), parsed at the edge into typed values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

use crate::backoff::Backoff;
use crate::chain::Chains;
use crate::chain::reqwest_url::Url;
use crate::key::SigningKey;
use crate::run::{LeaseConfig, RunConfig};

/// A per-chain RPC override: `CHAIN=URL`, chain as a name (`base-sepolia`), CAIP-2
/// (`eip155:84532`) or a decimal chain id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRpc {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Endpoint.
    pub url: Url,
}

impl FromStr for ChainRpc {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (chain, url) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected CHAIN=URL"))?;
        let chain_id = match chain.parse::<u64>() {
            Ok(id) => id,
            Err(_) => {
                obol_x402::Network::resolve(chain)
                    .map_err(|e| e.to_string())?
                    .chain_id
            }
        };
        let url = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        Ok(Self { chain_id, url })
    }
}

/// `erc8004-registrar` flags.
#[derive(Debug, Parser)]
#[command(
    name = "erc8004-registrar",
    version,
    about = "ERC-8004 registrar for RegistrationRequests"
)]
pub struct Args {
    /// Default JSON-RPC endpoint for every chain.
    #[arg(long, env = "OBOL_REGISTRAR_RPC_URL")]
    pub rpc_url: Option<Url>,
    /// Per-chain endpoints, `CHAIN=URL` (repeat, or comma-separated in the variable).
    #[arg(
        long = "chain-rpc",
        env = "OBOL_REGISTRAR_CHAIN_RPC",
        value_delimiter = ','
    )]
    pub chain_rpc: Vec<ChainRpc>,
    /// File holding the signing key (`0x` + 64 hex). Without it (flag unset, or the file absent,
    /// e.g. an optional Secret not created) requests become OffChainOnly.
    #[arg(long, env = "OBOL_REGISTRAR_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Address of the document and admin server.
    #[arg(long, env = "OBOL_REGISTRAR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Public base URL of this server; when set, agents are registered with their served
    /// document URL instead of a `data:` URI.
    #[arg(long, env = "OBOL_REGISTRAR_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Watch only this namespace (default: all).
    #[arg(long, env = "OBOL_REGISTRAR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Campaign for a Lease before reconciling.
    #[arg(long, env = "OBOL_REGISTRAR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Lease name.
    #[arg(
        long,
        env = "OBOL_REGISTRAR_LEASE_NAME",
        default_value = "erc8004-registrar"
    )]
    pub lease_name: String,
    /// Lease namespace (in a cluster: the registrar's own).
    #[arg(long, env = "OBOL_REGISTRAR_LEASE_NAMESPACE", default_value = "x402")]
    pub lease_namespace: String,
    /// Identity in the Lease (default: `POD_NAME`, else `<hostname>-<pid>`).
    #[arg(long, env = "OBOL_REGISTRAR_IDENTITY")]
    pub identity: Option<String>,
    /// Lease validity in seconds.
    #[arg(long, env = "OBOL_REGISTRAR_LEASE_DURATION_SECS", default_value_t = 15)]
    pub lease_duration_secs: u64,
    /// Renew this many seconds before expiry.
    #[arg(long, env = "OBOL_REGISTRAR_LEASE_GRACE_SECS", default_value_t = 5)]
    pub lease_grace_secs: u64,
    /// First retry delay after a transient failure, in milliseconds.
    #[arg(long, env = "OBOL_REGISTRAR_RETRY_INITIAL_MS", default_value_t = 2_000)]
    pub retry_initial_ms: u64,
    /// Longest retry delay, in milliseconds.
    #[arg(long, env = "OBOL_REGISTRAR_RETRY_MAX_MS", default_value_t = 300_000)]
    pub retry_max_ms: u64,
    /// How often a pending transaction is checked, in milliseconds.
    #[arg(long, env = "OBOL_REGISTRAR_POLL_INTERVAL_MS", default_value_t = 2_000)]
    pub poll_interval_ms: u64,
    /// How long to wait for the receipt of a URI or metadata update, in seconds.
    #[arg(
        long,
        env = "OBOL_REGISTRAR_RECEIPT_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub receipt_timeout_secs: u64,
    /// Tombstone attempts before a deletion is released anyway (with a Warning Event).
    #[arg(long, env = "OBOL_REGISTRAR_TOMBSTONE_ATTEMPTS", default_value_t = 5)]
    pub tombstone_attempts: u32,
    /// Log filter (`tracing` env-filter syntax).
    #[arg(long, env = "OBOL_REGISTRAR_LOG", default_value = "info")]
    pub log: String,
}

impl Args {
    /// Configures logging, reads the key, connects to Kubernetes (`KUBECONFIG` or in-cluster)
    /// and runs until SIGTERM or Ctrl-C.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            rpc_url,
            chain_rpc,
            key_file,
            listen,
            public_url,
            namespace,
            leader_elect,
            lease_name,
            lease_namespace,
            identity,
            lease_duration_secs,
            lease_grace_secs,
            retry_initial_ms,
            retry_max_ms,
            poll_interval_ms,
            receipt_timeout_secs,
            tombstone_attempts,
            log,
        } = self;
        tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(tracing_subscriber::EnvFilter::try_new(&log).context("--log")?)
            .init();
        anyhow::ensure!(
            lease_duration_secs > lease_grace_secs,
            "--lease-duration-secs must exceed --lease-grace-secs"
        );
        let key = match &key_file {
            Some(path) => {
                let key = SigningKey::from_optional_file(path).map_err(anyhow::Error::msg)?;
                if key.is_none() {
                    tracing::warn!(path = %path.display(), "Key file absent: running OffChainOnly");
                }
                key
            }
            None => None,
        };
        let overrides: BTreeMap<u64, Url> =
            chain_rpc.into_iter().map(|c| (c.chain_id, c.url)).collect();
        let chains = Chains::new(
            key,
            rpc_url,
            overrides,
            Duration::from_millis(poll_interval_ms.clamp(10, 60_000)),
            Duration::from_secs(receipt_timeout_secs),
        );
        let identity = identity
            .or_else(|| std::env::var("POD_NAME").ok())
            .unwrap_or_else(|| {
                let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "registrar".into());
                format!("{host}-{}", std::process::id())
            });
        let config = RunConfig {
            chains: Arc::new(chains),
            public_url,
            namespace,
            listen: Some(listen),
            lease: leader_elect.then(|| LeaseConfig {
                name: lease_name,
                namespace: lease_namespace,
                identity,
                duration: Duration::from_secs(lease_duration_secs),
                grace: Duration::from_secs(lease_grace_secs),
            }),
            backoff: Backoff {
                initial: Duration::from_millis(retry_initial_ms.max(1)),
                max: Duration::from_millis(retry_max_ms.max(retry_initial_ms.max(1))),
            },
            poll_interval: Duration::from_millis(poll_interval_ms.clamp(10, 60_000)),
            tombstone_attempts: tombstone_attempts.max(1),
        };
        let client = kube::Client::try_default()
            .await
            .context("Kubernetes client")?;
        crate::run::run(client, config, shutdown_signal()).await?;
        Ok(())
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_defaults() {
        let a = Args::try_parse_from([
            "erc8004-registrar",
            "--rpc-url",
            "http://127.0.0.1:8545",
            "--chain-rpc",
            "base=https://base.example/rpc",
            "--chain-rpc",
            "eip155:84532=http://127.0.0.1:9545",
            "--chain-rpc",
            "1=http://127.0.0.1:7545",
            "--leader-elect=false",
        ])
        .unwrap();
        let ids: Vec<u64> = a.chain_rpc.iter().map(|c| c.chain_id).collect();
        assert_eq!(ids, [8453, 84532, 1]);
        assert!(!a.leader_elect);
        assert_eq!(a.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(a.tombstone_attempts, 5);
        assert!(a.key_file.is_none());
    }

    #[test]
    fn bad_overrides_are_refused() {
        for bad in ["base", "nowhere=http://x", "base=not a url"] {
            assert!(bad.parse::<ChainRpc>().is_err(), "{bad}");
        }
    }
}
