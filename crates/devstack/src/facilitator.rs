//! The third-party facilitator: the official x402 reference packages (npm `@x402/core`,
//! `@x402/evm`) served by `tools/x402-peers/facilitator.cjs`, settling on the local chain.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::chain::ChainError;

/// A running reference facilitator, killed when dropped.
pub struct ReferenceFacilitator {
    url: String,
    _child: tokio::process::Child,
}

impl ReferenceFacilitator {
    /// Starts it with `node`: `peers` is the installed package directory (with `node_modules`),
    /// `script` the server file, `rpc_url` the chain, `key` the settling account (hex).
    pub async fn start(
        peers: &Path,
        script: &Path,
        rpc_url: &str,
        key: &str,
        log: &Path,
    ) -> Result<Self, ChainError> {
        let spawn = |source| ChainError::Spawn {
            what: "node facilitator".into(),
            source,
        };
        let err_log = std::fs::File::create(log).map_err(spawn)?;
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .env("NODE_PATH", peers.join("node_modules"))
            .env("RPC_URL", rpc_url)
            .env("FACILITATOR_KEY", key)
            .env("FACILITATOR_PORT", "0")
            .stdout(Stdio::piped())
            .stderr(err_log)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn)?;
        let stdout = child
            .stdout
            .take()
            .ok_or(ChainError::Timeout("facilitator stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| ChainError::Timeout("facilitator start"))?
            .map_err(spawn)?
            .unwrap_or_default();
        let url = first
            .strip_prefix("listening on ")
            .ok_or_else(|| ChainError::Rpc {
                method: "facilitator start".into(),
                message: format!("unexpected first line {first:?}; see {}", log.display()),
            })?
            .to_owned();
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { url, _child: child })
    }

    /// Base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }
}
