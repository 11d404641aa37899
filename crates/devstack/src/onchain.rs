//! What the local chain holds besides the test USDC, so that every feature behaves as on Base
//! Sepolia: the official-like upgradeable ERC-8004 IdentityRegistry at the official registry
//! address (so offers created with `--register` register without naming a registry),
//! Multicall3 at its canonical address (the official facilitator batches its diagnostic reads
//! through it and otherwise reports every refusal as a failed simulation), and a registrar key
//! of the stack's own with ether for gas.

use std::path::Path;

use alloy::primitives::{Address, B256, U256, address};

use crate::chain::{CHAIN_ID, ChainError, DEV_ACCOUNTS, Rpc};

/// Where Multicall3 lives on every public chain.
pub const MULTICALL3: Address = address!("0xcA11bde05977b3631167028862bE2a173976CA11");
/// Ether the registrar gets for gas: 10 ETH.
pub const REGISTRAR_FUNDS_WEI: u128 = 10_000_000_000_000_000_000;

/// The IdentityRegistry address the registrar uses on the local chain by default.
pub fn registry_address() -> Result<Address, ChainError> {
    obol_registrar::deployments::official_registry(CHAIN_ID).ok_or_else(|| ChainError::Rpc {
        method: "registry".into(),
        message: format!("no official IdentityRegistry for chain {CHAIN_ID}"),
    })
}

/// Installs the official-like upgradeable IdentityRegistry (an ERC-1967 proxy at the official
/// address, upgraded from a placeholder as the official deployment was, owned by dev account
/// 0) and Multicall3 (runtime code only: it keeps no state). Returns the registry address.
pub async fn install_contracts(rpc: &Rpc, contracts: &Path) -> Result<Address, ChainError> {
    let registry = registry_address()?;
    let failed = |message: String| ChainError::Rpc {
        method: "installing the IdentityRegistry".into(),
        message,
    };
    let owner: alloy::signers::local::PrivateKeySigner = DEV_ACCOUNTS[0]
        .1
        .parse()
        .map_err(|e| failed(format!("dev key: {e}")))?;
    let url = rpc
        .url()
        .parse()
        .map_err(|e| failed(format!("{}: {e}", rpc.url())))?;
    let provider = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(owner))
        .connect_http(url);
    obol_registrar::contracts::install_upgradeable_registry_at(&provider, registry)
        .await
        .map_err(|e| failed(format!("{e:#}")))?;
    rpc.set_code(&contracts.join("out/Multicall3.json"), MULTICALL3)
        .await?;
    Ok(registry)
}

/// A fresh signing key (32 random bytes that are a valid secp256k1 scalar), as `0x` + hex.
pub fn new_key() -> Result<(obol_x402::PrivateKey, String), String> {
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        let mut f = std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?;
        std::io::Read::read_exact(&mut f, &mut bytes).map_err(|e| e.to_string())?;
        if let Ok(key) = obol_x402::PrivateKey::from_bytes(&B256::from(bytes)) {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            return Ok((key, format!("0x{hex}")));
        }
    }
    Err("no valid key from /dev/urandom".into())
}

/// Gives `account` [`REGISTRAR_FUNDS_WEI`].
pub async fn fund(rpc: &Rpc, account: Address) -> Result<(), ChainError> {
    rpc.set_balance(account, U256::from(REGISTRAR_FUNDS_WEI))
        .await
}
