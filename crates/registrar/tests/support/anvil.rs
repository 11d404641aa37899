//! anvil on loopback for one test: chain id 84532, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

/// Public anvil dev key #0 (test-only): the registrar's signer in tests.
pub const DEV_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// Address of dev key #0.
pub const DEV_0: Address =
    alloy::primitives::address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
/// Public anvil dev key #1 (test-only): deploys the contracts.
pub const DEV_KEY_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// Address of dev key #1.
pub const DEV_1: Address =
    alloy::primitives::address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
/// Chain id of every test chain (Base Sepolia).
pub const CHAIN_ID: u64 = 84532;

/// The two registries every registrar test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    /// The small test registry (`contracts/src/IdentityRegistry.sol`).
    Simple,
    /// The official-like one behind an ERC-1967 proxy
    /// (`contracts/src/UpgradeableIdentityRegistry.sol`).
    Upgradeable,
}

impl RegistryKind {
    /// Where [`Anvil::deploy`] puts it on a fresh chain (dev key #1's first deployment; for
    /// the upgradeable one, the proxy is the second).
    pub fn address_on_a_fresh_chain(self) -> Address {
        match self {
            Self::Simple => DEV_1.create(0),
            Self::Upgradeable => DEV_1.create(1),
        }
    }
}

/// A running anvil.
pub struct Anvil {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Anvil {
    /// Starts anvil on a port it picks itself (`--port 0`, read back from its output, so no
    /// other process can take the port in between).
    pub async fn start(extra: &[&str]) -> Self {
        let bin = obol_testenv::tools::anvil();
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--chain-id", &CHAIN_ID.to_string()])
            // Old block states are dropped instead of written to ~/.foundry/anvil/tmp: the
            // interleavings test mines thousands of blocks per run, and 35 repetitions of it had
            // written 36 GB there and filled the disk. Recent states stay in memory, which is
            // all the pinned reads of recovery ask for.
            .arg("--max-persisted-states=0")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the banner up to "Listening on 127.0.0.1:<port>", then keeps draining (anvil
        // logs every call) so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.trim().strip_prefix("Listening on ")
                    && let Some(port) = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("anvil did not print its port");
        let anvil = Self { child, port };
        anvil.wait_ready().await;
        anvil
    }

    async fn wait_ready(&self) {
        let provider = self.provider(None);
        let start = Instant::now();
        loop {
            if let Ok(id) = provider.get_chain_id().await {
                assert_eq!(id, CHAIN_ID);
                // Ours, not another process's on the same port: a fresh chain.
                let block = provider.get_block_number().await.expect("eth_blockNumber");
                assert_eq!(
                    block, 0,
                    "port {} answers, but not with a fresh anvil",
                    self.port
                );
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "anvil did not answer on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A provider, signing with `key` when given.
    pub fn provider(&self, key: Option<&str>) -> DynProvider {
        let url = self.url().parse().expect("url");
        match key {
            Some(k) => {
                let signer: PrivateKeySigner = k.parse().expect("dev key");
                // Nonces from the node on every send: a cached nonce would advance on a send
                // that fails its gas estimate (a revert a test expects), and stall the next one.
                ProviderBuilder::new()
                    .disable_recommended_fillers()
                    .with_gas_estimation()
                    .with_simple_nonce_management()
                    .fetch_chain_id()
                    .wallet(EthereumWallet::from(signer))
                    .connect_http(url)
                    .erased()
            }
            None => ProviderBuilder::new().connect_http(url).erased(),
        }
    }

    /// Deploys a registry of `kind` with dev key #1; its address (the proxy, when upgradeable).
    pub async fn deploy(&self, kind: RegistryKind) -> Address {
        match kind {
            RegistryKind::Simple => self.deploy_registry().await,
            RegistryKind::Upgradeable => {
                let p = self.provider(Some(DEV_KEY_1));
                obol_registrar::contracts::deploy_upgradeable_registry(&p)
                    .await
                    .expect("deploy UpgradeableIdentityRegistry")
                    .proxy
            }
        }
    }

    /// Deploys the test IdentityRegistry with dev key #1.
    pub async fn deploy_registry(&self) -> Address {
        let p = self.provider(Some(DEV_KEY_1));
        *obol_registrar::contracts::IdentityRegistry::deploy(&p)
            .await
            .expect("deploy IdentityRegistry")
            .address()
    }

    /// Deploys the always-reverting registry with dev key #1.
    pub async fn deploy_reverting_registry(&self) -> Address {
        let p = self.provider(Some(DEV_KEY_1));
        *obol_registrar::contracts::RevertingIdentityRegistry::deploy(&p)
            .await
            .expect("deploy RevertingIdentityRegistry")
            .address()
    }

    /// Stops it now (also done on drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.stop();
    }
}
