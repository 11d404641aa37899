//! A local EVM chain (anvil) for the stack and the tests: start it, deploy the test contracts,
//! mint test USDC, read balances. Plain JSON-RPC: anvil's dev accounts are unlocked, so
//! `eth_sendTransaction` needs no signing here.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::{SolCall, SolValue};
use serde_json::{Value, json};

/// Base Sepolia's chain id, which the local chain uses.
pub const CHAIN_ID: u64 = 84532;

/// anvil's first dev accounts (public test keys of `test test … junk`; never for real funds):
/// (address, private key).
pub const DEV_ACCOUNTS: [(&str, &str); 4] = [
    (
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    ),
    (
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    ),
    (
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    ),
    (
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    ),
];

alloy::sol! {
    function initialize(string name_, string version_);
    function mint(address to, uint256 amount);
    function balanceOf(address owner) returns (uint256);
    function approve(address spender, uint256 amount) returns (bool);
    function allowance(address owner, address spender) returns (uint256);
}

/// Chain failures.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A JSON-RPC call that gave no result (transport, HTTP status, malformed answer, node
    /// error); never shows the URL.
    #[error(transparent)]
    Call(#[from] obol_x402::rpc::RpcError),
    /// A JSON-RPC error or an unexpected answer.
    #[error("{method}: {message}")]
    Rpc {
        /// JSON-RPC method.
        method: String,
        /// What went wrong.
        message: String,
    },
    /// A transaction reverted.
    #[error("transaction {0} reverted")]
    Reverted(B256),
    /// Waiting ran out.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// A contract artifact could not be read.
    #[error("artifact {path}: {message}")]
    Artifact {
        /// File.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Starting a process.
    #[error("starting {what}: {source}")]
    Spawn {
        /// The program.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A JSON-RPC endpoint.
#[derive(Debug, Clone)]
pub struct Rpc {
    url: String,
    http: reqwest::Client,
}

fn parse<T: std::str::FromStr>(method: &str, v: &Value) -> Result<T, ChainError> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ChainError::Rpc {
            method: method.to_owned(),
            message: format!("unexpected answer {v}"),
        })
}

impl Rpc {
    /// An endpoint at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            url: url.into(),
            http,
        }
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One JSON-RPC call.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ChainError> {
        let rpc = obol_x402::rpc::JsonRpc::new(self.http.clone(), &self.url)?;
        Ok(rpc.call(method, params).await?)
    }

    /// Waits until the node answers `eth_chainId`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<u64, ChainError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(v) = self.call("eth_chainId", json!([])).await {
                let hex = v.as_str().unwrap_or_default().trim_start_matches("0x");
                return u64::from_str_radix(hex, 16).map_err(|_| ChainError::Rpc {
                    method: "eth_chainId".into(),
                    message: v.to_string(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ChainError::Timeout("waiting for the chain"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a transaction from an unlocked account and waits for its successful receipt.
    pub async fn transact(
        &self,
        from: Address,
        to: Option<Address>,
        data: &[u8],
    ) -> Result<Value, ChainError> {
        let mut tx =
            json!({"from": from, "data": format!("0x{}", hex_encode(data)), "gas": "0x1c9c380"});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let hash: B256 = parse(
            "eth_sendTransaction",
            &self.call("eth_sendTransaction", json!([tx])).await?,
        )?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let receipt = self
                .call("eth_getTransactionReceipt", json!([hash]))
                .await?;
            if !receipt.is_null() {
                if receipt["status"] != "0x1" {
                    return Err(ChainError::Reverted(hash));
                }
                return Ok(receipt);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ChainError::Timeout("waiting for a receipt"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deploys a committed artifact (`contracts/out/<Name>.json`) with ABI-encoded constructor
    /// arguments; returns the contract address.
    pub async fn deploy(
        &self,
        from: Address,
        artifact: &Path,
        ctor_args: &[u8],
    ) -> Result<Address, ChainError> {
        let bad = |message: String| ChainError::Artifact {
            path: artifact.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(artifact).map_err(|e| bad(e.to_string()))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let code = json["bytecode"]
            .as_str()
            .ok_or_else(|| bad("no bytecode".into()))?;
        let mut data = hex_decode(code.trim_start_matches("0x"))
            .ok_or_else(|| bad("bytecode is not hex".into()))?;
        data.extend_from_slice(ctor_args);
        let receipt = self.transact(from, None, &data).await?;
        parse("eth_getTransactionReceipt", &receipt["contractAddress"])
    }

    /// Deploys the test USDC (EIP-3009) with EIP-712 domain `name` / `version`.
    pub async fn deploy_test_usdc(
        &self,
        contracts: &Path,
        name: &str,
        version: &str,
    ) -> Result<Address, ChainError> {
        let args = (name.to_owned(), version.to_owned()).abi_encode_params();
        self.deploy(dev_address(0), &contracts.join("out/TestUSDC.json"), &args)
            .await
    }

    /// Puts the runtime code of a committed artifact (`contracts/out/<Name>.json`) at `address`
    /// with `anvil_setCode`. No constructor runs: the contract must not rely on immutables or
    /// constructor-written storage.
    pub async fn set_code(&self, artifact: &Path, address: Address) -> Result<(), ChainError> {
        let bad = |message: String| ChainError::Artifact {
            path: artifact.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(artifact).map_err(|e| bad(e.to_string()))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let code = json["deployedBytecode"]
            .as_str()
            .ok_or_else(|| bad("no deployedBytecode".into()))?;
        let code = format!("0x{}", code.trim_start_matches("0x"));
        self.call("anvil_setCode", json!([address, code])).await?;
        Ok(())
    }

    /// The runtime code at `address` (empty: no contract).
    pub async fn code_at(&self, address: Address) -> Result<Vec<u8>, ChainError> {
        let v = self.call("eth_getCode", json!([address, "latest"])).await?;
        let raw = v.as_str().unwrap_or_default().trim_start_matches("0x");
        hex_decode(raw).ok_or_else(|| ChainError::Rpc {
            method: "eth_getCode".into(),
            message: format!("unexpected answer {v}"),
        })
    }

    /// Sets the ether balance of `address` (`anvil_setBalance`).
    pub async fn set_balance(&self, address: Address, wei: U256) -> Result<(), ChainError> {
        self.call("anvil_setBalance", json!([address, format!("{wei:#x}")]))
            .await
            .map(|_| ())
    }

    /// The ether balance of `address`, in wei.
    pub async fn eth_balance(&self, address: Address) -> Result<U256, ChainError> {
        let method = "eth_getBalance";
        parse(
            method,
            &self.call(method, json!([address, "latest"])).await?,
        )
    }

    /// Puts the test USDC's runtime code at `address` (e.g. Base Sepolia's canonical USDC, so
    /// every component's chain table applies unchanged) and initializes its EIP-712 domain.
    /// The token computes its domain separator at call time, so signatures bind to `address`.
    pub async fn install_test_usdc_at(
        &self,
        contracts: &Path,
        address: Address,
        name: &str,
        version: &str,
    ) -> Result<(), ChainError> {
        self.set_code(&contracts.join("out/TestUSDC.json"), address)
            .await?;
        let data = initializeCall {
            name_: name.to_owned(),
            version_: version.to_owned(),
        }
        .abi_encode();
        self.transact(dev_address(0), Some(address), &data)
            .await
            .map(|_| ())
    }

    /// Puts the test Permit2 (signature transfers) and the test `x402UptoPermit2Proxy` at their
    /// canonical addresses, where `@x402/evm`'s `upto` client signs for them and its facilitator
    /// calls them. Both compute everything address-dependent at call time.
    pub async fn install_upto_permit2(&self, contracts: &Path) -> Result<(), ChainError> {
        self.set_code(
            &contracts.join("out/TestPermit2.json"),
            obol_x402::permit2::PERMIT2_ADDRESS,
        )
        .await?;
        self.set_code(
            &contracts.join("out/TestUptoPermit2Proxy.json"),
            obol_x402::permit2::UPTO_PROXY_ADDRESS,
        )
        .await
    }

    /// `owner` (an unlocked dev account) approves `spender` for `amount` of `token`: for
    /// Permit2, the one-time approval every `upto` payer needs.
    pub async fn approve(
        &self,
        token: Address,
        owner: Address,
        spender: Address,
        amount: U256,
    ) -> Result<(), ChainError> {
        let data = approveCall { spender, amount }.abi_encode();
        self.transact(owner, Some(token), &data).await.map(|_| ())
    }

    /// An ERC-20 allowance.
    pub async fn allowance(
        &self,
        token: Address,
        owner: Address,
        spender: Address,
    ) -> Result<U256, ChainError> {
        let data = allowanceCall { owner, spender }.abi_encode();
        self.read_u256(token, &data).await
    }

    async fn read_u256(&self, to: Address, data: &[u8]) -> Result<U256, ChainError> {
        let data = format!("0x{}", hex_encode(data));
        let v = self
            .call("eth_call", json!([{"to": to, "data": data}, "latest"]))
            .await?;
        let raw = v.as_str().unwrap_or_default().trim_start_matches("0x");
        let bytes = hex_decode(raw).unwrap_or_default();
        U256::abi_decode(&bytes).map_err(|e| ChainError::Rpc {
            method: "eth_call".into(),
            message: e.to_string(),
        })
    }

    /// Mints test tokens (anyone may mint the test USDC).
    pub async fn mint(&self, token: Address, to: Address, amount: U256) -> Result<(), ChainError> {
        let data = mintCall { to, amount }.abi_encode();
        self.transact(dev_address(0), Some(token), &data)
            .await
            .map(|_| ())
    }

    /// An ERC-20 balance.
    pub async fn balance_of(&self, token: Address, owner: Address) -> Result<U256, ChainError> {
        self.read_u256(token, &balanceOfCall { owner }.abi_encode())
            .await
    }
}

/// The address of dev account `i`.
pub fn dev_address(i: usize) -> Address {
    DEV_ACCOUNTS[i].0.parse().unwrap_or_default()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A running anvil, killed when dropped.
pub struct Anvil {
    rpc: Rpc,
    _child: tokio::process::Child,
}

impl Anvil {
    /// Starts `bin` on a free loopback port with Base Sepolia's chain id; output goes to `log`.
    pub async fn start(bin: &Path, log: &Path) -> Result<Self, ChainError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|source| ChainError::Spawn {
                what: "anvil".into(),
                source,
            })?;
        let spawn = |source| ChainError::Spawn {
            what: bin.display().to_string(),
            source,
        };
        let out = std::fs::File::create(log).map_err(spawn)?;
        let child = tokio::process::Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--chain-id",
                &CHAIN_ID.to_string(),
                "--silent",
            ])
            .stdout(out.try_clone().map_err(spawn)?)
            .stderr(out)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn)?;
        let rpc = Rpc::new(format!("http://127.0.0.1:{port}"));
        rpc.wait_ready(Duration::from_secs(20)).await?;
        Ok(Self { rpc, _child: child })
    }

    /// Its RPC endpoint.
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex_encode(&[0, 1, 0xab]), "0001ab");
        assert_eq!(hex_decode("0001ab"), Some(vec![0, 1, 0xab]));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(
            dev_address(1),
            DEV_ACCOUNTS[1].0.parse::<Address>().unwrap()
        );
    }
}
