//! Third-party x402 peers run with Node: the official reference facilitator (`@x402/core`,
//! `@x402/evm`) served by `tools/x402-peers/facilitator.cjs`, and a seller behind the official
//! `@x402/express` middleware (`tools/x402-peers/seller.cjs`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::chain::ChainError;

/// A Node peer that prints `listening on <url>` when ready; killed when dropped.
pub struct NodePeer {
    url: String,
    _child: tokio::process::Child,
}

impl NodePeer {
    /// Runs `node script` with `NODE_PATH=<peers>/node_modules` and `envs`; stderr goes to `log`.
    pub async fn start(
        peers: &Path,
        script: &Path,
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Result<Self, ChainError> {
        let spawn = |source| ChainError::Spawn {
            what: format!("node {}", script.display()),
            source,
        };
        let err_log = std::fs::File::create(log).map_err(spawn)?;
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .env("NODE_PATH", peers.join("node_modules"))
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(err_log)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn)?;
        let stdout = child
            .stdout
            .take()
            .ok_or(ChainError::Timeout("node peer stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| ChainError::Timeout("node peer start"))?
            .map_err(spawn)?
            .unwrap_or_default();
        let url = first
            .strip_prefix("listening on ")
            .ok_or_else(|| ChainError::Rpc {
                method: format!("start {}", script.display()),
                message: format!("unexpected first line {first:?}; see {}", log.display()),
            })?
            .to_owned();
        // Keep draining stdout so the peer never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { url, _child: child })
    }

    /// Base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Runs `node script` once with `NODE_PATH=<peers>/node_modules`, `envs` and `stdin`, and
/// returns its standard output; a non-zero exit is an error carrying its standard error.
pub async fn run_node_script(
    peers: &Path,
    script: &Path,
    envs: &[(&str, &str)],
    stdin: &[u8],
) -> Result<String, ChainError> {
    use tokio::io::AsyncWriteExt as _;
    let what = format!("node {}", script.display());
    let spawn = |source| ChainError::Spawn {
        what: what.clone(),
        source,
    };
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .env("NODE_PATH", peers.join("node_modules"))
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn)?;
    let mut input = child
        .stdin
        .take()
        .ok_or(ChainError::Timeout("node script stdin"))?;
    input.write_all(stdin).await.map_err(spawn)?;
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| ChainError::Timeout("node script"))?
        .map_err(spawn)?;
    if !out.status.success() {
        return Err(ChainError::Rpc {
            method: what,
            message: format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The reference facilitator settling on `rpc_url` with the account of `key` (hex).
pub struct ReferenceFacilitator(NodePeer);

impl ReferenceFacilitator {
    /// Starts `script` (facilitator.cjs) from the installed `peers` directory.
    pub async fn start(
        peers: &Path,
        script: &Path,
        rpc_url: &str,
        key: &str,
        log: &Path,
    ) -> Result<Self, ChainError> {
        let envs = [
            ("RPC_URL", rpc_url),
            ("FACILITATOR_KEY", key),
            ("FACILITATOR_PORT", "0"),
        ];
        NodePeer::start(peers, script, &envs, log).await.map(Self)
    }

    /// Base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        self.0.url()
    }
}

/// The chain side of a real x402 payment, for tests: anvil with the test USDC at Base Sepolia's
/// USDC address, dev account #1 (the payer) funded, and the reference facilitator settling on
/// it with dev account #0. Both processes are killed when it is dropped.
pub struct PaidChain {
    /// The chain.
    pub anvil: crate::chain::Anvil,
    /// The test USDC's address.
    pub usdc: alloy::primitives::Address,
    /// The facilitator.
    pub facilitator: ReferenceFacilitator,
}

impl PaidChain {
    /// Starts anvil (`anvil_bin`) and the facilitator (from the installed `peers`) with the
    /// contracts and scripts of `repo`, logging into `dir`, and mints `payer_funds` atomic
    /// units to the payer.
    pub async fn start(
        anvil_bin: &Path,
        peers: &Path,
        repo: &Path,
        dir: &Path,
        payer_funds: alloy::primitives::U256,
    ) -> Result<Self, ChainError> {
        use crate::chain::{Anvil, DEV_ACCOUNTS, dev_address};
        let anvil = Anvil::start(anvil_bin, &dir.join("anvil.log")).await?;
        let rpc = anvil.rpc();
        let usdc = obol_x402::Network::resolve("base-sepolia")
            .ok()
            .and_then(|n| n.usdc.as_ref().map(|u| u.address))
            .ok_or_else(|| ChainError::Rpc {
                method: "base-sepolia".into(),
                message: "no USDC address in the chain table".into(),
            })?;
        rpc.install_test_usdc_at(&repo.join("contracts"), usdc, "USDC", "2")
            .await?;
        rpc.mint(usdc, dev_address(1), payer_funds).await?;
        let facilitator = ReferenceFacilitator::start(
            peers,
            &repo.join("tools/x402-peers/facilitator.cjs"),
            rpc.url(),
            DEV_ACCOUNTS[0].1,
            &dir.join("facilitator.log"),
        )
        .await?;
        Ok(Self {
            anvil,
            usdc,
            facilitator,
        })
    }
}
