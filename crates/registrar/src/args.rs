//! Command line and environment (`OBOL_REGISTRAR_*`), parsed at the edge into typed values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use obol_runtime::cli::Deprecated;
use obol_runtime::{LeaseArgs, LogArgs, Shutdown, Surroundings, duration};

use crate::backoff::Backoff;
use crate::chain::Chains;
use crate::chain::reqwest_url::Url;
use crate::key::SigningKey;
use crate::run::RunConfig;

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

/// `erc8004-registrar` flags; each `--flag` also reads `OBOL_REGISTRAR_FLAG`.
#[derive(Debug, Parser)]
#[command(
    name = "erc8004-registrar",
    version,
    about = "ERC-8004 registrar for RegistrationRequests"
)]
pub struct Args {
    /// Default JSON-RPC endpoint for every chain.
    #[arg(long)]
    pub rpc_url: Option<Url>,
    /// Per-chain endpoints, `CHAIN=URL` (repeat, or comma-separated in the variable).
    #[arg(long = "chain-rpc", value_delimiter = ',')]
    pub chain_rpc: Vec<ChainRpc>,
    /// File holding the signing key (`0x` + 64 hex). Without it (flag unset, or the file absent,
    /// e.g. an optional Secret not created) requests become OffChainOnly.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Address of the document and admin server.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Public base URL of this server; when set, agents are registered with their served
    /// document URL instead of a `data:` URI.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Watch only this namespace (default: all).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Leader election.
    #[command(flatten)]
    pub lease: LeaseArgs,
    /// First retry delay after a transient failure.
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    pub retry_initial: Duration,
    /// Longest retry delay.
    #[arg(long, default_value = "5m", value_parser = duration::parse)]
    pub retry_max: Duration,
    /// How often a pending transaction is checked (10ms to 1m).
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    pub poll_interval: Duration,
    /// How long to wait for the receipt of a URI or metadata update.
    #[arg(long, default_value = "60s", value_parser = duration::parse)]
    pub receipt_timeout: Duration,
    /// Tombstone attempts before a deletion is released anyway (with a Warning Event).
    #[arg(long, default_value_t = 5)]
    pub tombstone_attempts: u32,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

impl obol_runtime::Service for Args {
    const ENV_PREFIX: &'static str = "OBOL_REGISTRAR";
    const DEPRECATED: &'static [Deprecated] = &[
        Deprecated::flag("lease-duration-secs", "lease-duration"),
        Deprecated::flag("lease-grace-secs", "lease-grace"),
        Deprecated::flag("retry-initial-ms", "retry-initial").unit("ms"),
        Deprecated::flag("retry-max-ms", "retry-max").unit("ms"),
        Deprecated::flag("poll-interval-ms", "poll-interval").unit("ms"),
        Deprecated::flag("receipt-timeout-secs", "receipt-timeout"),
    ];

    fn log(&self) -> &LogArgs {
        &self.log
    }

    /// Reads the key, connects to Kubernetes (`KUBECONFIG` or in-cluster) and runs until
    /// shutdown.
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let client = kube::Client::try_default()
            .await
            .context("Kubernetes client")?;
        let around = Surroundings::of_this_process(
            &obol_runtime::program_name::<Self>(),
            client.default_namespace(),
        );
        let config = self.config(&around)?;
        crate::run::run(client, config, shutdown.requested()).await?;
        Ok(())
    }
}

impl Args {
    /// What [`crate::run::run`] needs: reads the key file, resolves the lease defaults from
    /// `around`.
    pub fn config(self, around: &Surroundings) -> anyhow::Result<RunConfig> {
        let lease = self.lease.config(around).map_err(anyhow::Error::msg)?;
        let key = match &self.key_file {
            Some(path) => {
                let key = SigningKey::from_optional_file(path)?;
                if key.is_none() {
                    tracing::warn!(path = %path.display(), "Key file absent: running OffChainOnly");
                }
                key
            }
            None => None,
        };
        let overrides: BTreeMap<u64, Url> = self
            .chain_rpc
            .into_iter()
            .map(|c| (c.chain_id, c.url))
            .collect();
        let poll_interval = self
            .poll_interval
            .clamp(Duration::from_millis(10), Duration::from_secs(60));
        let chains = Chains::new(
            key,
            self.rpc_url,
            overrides,
            poll_interval,
            self.receipt_timeout,
        );
        let initial = self.retry_initial.max(Duration::from_millis(1));
        Ok(RunConfig {
            chains: Arc::new(chains),
            public_url: self.public_url,
            namespace: self.namespace,
            listen: Some(self.listen),
            lease,
            backoff: Backoff {
                initial,
                max: self.retry_max.max(initial),
            },
            poll_interval,
            tombstone_attempts: self.tombstone_attempts.max(1),
        })
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
        assert!(!a.lease.leader_elect);
        assert_eq!(a.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(a.retry_max, Duration::from_secs(300));
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
