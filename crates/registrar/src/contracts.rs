//! `sol!` bindings of the committed test contracts in `contracts/out` (ABI and bytecode; see
//! `contracts/compile.js`), so that tests (and the local stack) can deploy them. The registrar
//! itself calls the registry through [`crate::abi`], never through these.
//!
//! Two registries stand in for the official ERC-8004 v2 IdentityRegistry: the small
//! [`IdentityRegistry`], and [`UpgradeableIdentityRegistry`], which is deployed the way the
//! official one is ([`deploy_upgradeable_registry`]): behind an ERC-1967 proxy, first pointing
//! at an owner-only placeholder, then upgraded to the registry with its `initialize()`.

#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::primitives::{Address, Bytes};
use alloy::providers::Provider;
use alloy::sol;
use alloy::sol_types::SolCall as _;

sol!(
    #[sol(rpc)]
    IdentityRegistry,
    "../../contracts/out/IdentityRegistry.json"
);

sol!(
    #[sol(rpc)]
    RevertingIdentityRegistry,
    "../../contracts/out/RevertingIdentityRegistry.json"
);

sol!(
    #[sol(rpc)]
    TestUSDC,
    "../../contracts/out/TestUSDC.json"
);

sol!(
    #[sol(rpc)]
    Erc1967Proxy,
    "../../contracts/out/Erc1967Proxy.json"
);

sol!(
    #[sol(rpc)]
    MinimalUupsPlaceholder,
    "../../contracts/out/MinimalUupsPlaceholder.json"
);

sol!(
    #[sol(rpc)]
    UpgradeableIdentityRegistry,
    "../../contracts/out/UpgradeableIdentityRegistry.json"
);

/// The ERC-1967 slot holding a proxy's implementation address.
pub const IMPLEMENTATION_SLOT: alloy::primitives::B256 =
    alloy::primitives::b256!("0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc");

/// Where [`deploy_upgradeable_registry`] put things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeableDeployment {
    /// The registry: the proxy (the address agents are registered under).
    pub proxy: Address,
    /// The registry's implementation (never to be registered with directly).
    pub implementation: Address,
    /// The placeholder the proxy pointed at before the upgrade.
    pub placeholder: Address,
}

/// Installs the official-like registry at `at` on a dev chain (anvil: `anvil_setCode` and
/// `anvil_setStorageAt`), e.g. at a chain's official registry address: both implementations are
/// deployed normally, the proxy's runtime code is placed at `at` with its implementation slot
/// pointing at the placeholder, then the placeholder's `initialize` makes the provider's signer
/// the owner and `upgradeToAndCall(registry, initialize())` completes it. `at` must hold no
/// storage yet. The miner must be on.
pub async fn install_upgradeable_registry_at<P: Provider>(
    provider: &P,
    at: Address,
) -> anyhow::Result<UpgradeableDeployment> {
    let placeholder = *MinimalUupsPlaceholder::deploy(provider).await?.address();
    let implementation = *UpgradeableIdentityRegistry::deploy(provider)
        .await?
        .address();
    // anvil answers these with `null` or `true` depending on its version: the answer is ignored.
    let _: serde_json::Value = provider
        .raw_request(
            "anvil_setCode".into(),
            (at, Erc1967Proxy::DEPLOYED_BYTECODE.clone()),
        )
        .await?;
    let _: serde_json::Value = provider
        .raw_request(
            "anvil_setStorageAt".into(),
            (at, IMPLEMENTATION_SLOT, placeholder.into_word()),
        )
        .await?;
    let proxy = MinimalUupsPlaceholder::new(at, provider);
    let receipt = proxy
        .initialize(Address::ZERO)
        .send()
        .await?
        .get_receipt()
        .await?;
    anyhow::ensure!(receipt.status(), "initialize reverted at {at}");
    upgrade(provider, at, implementation).await?;
    Ok(UpgradeableDeployment {
        proxy: at,
        implementation,
        placeholder,
    })
}

async fn upgrade<P: Provider>(
    provider: &P,
    proxy: Address,
    implementation: Address,
) -> anyhow::Result<()> {
    let init_registry = UpgradeableIdentityRegistry::initializeCall {}.abi_encode();
    let receipt = MinimalUupsPlaceholder::new(proxy, provider)
        .upgradeToAndCall(implementation, Bytes::from(init_registry))
        .send()
        .await?
        .get_receipt()
        .await?;
    anyhow::ensure!(
        receipt.status(),
        "upgradeToAndCall reverted in {}",
        receipt.transaction_hash
    );
    Ok(())
}

/// Deploys the official-like registry with the provider's signer as owner, in the official
/// order: placeholder implementation, proxy initialized with the placeholder's
/// `initialize(owner)`, registry implementation, `upgradeToAndCall(registry, initialize())`.
/// Each transaction is awaited, so the miner must be on.
pub async fn deploy_upgradeable_registry<P: Provider>(
    provider: &P,
) -> anyhow::Result<UpgradeableDeployment> {
    let placeholder = *MinimalUupsPlaceholder::deploy(provider).await?.address();
    let init_placeholder = MinimalUupsPlaceholder::initializeCall(Address::ZERO).abi_encode();
    let proxy = *Erc1967Proxy::deploy(provider, placeholder, Bytes::from(init_placeholder))
        .await?
        .address();
    let implementation = *UpgradeableIdentityRegistry::deploy(provider)
        .await?
        .address();
    upgrade(provider, proxy, implementation).await?;
    Ok(UpgradeableDeployment {
        proxy,
        implementation,
        placeholder,
    })
}
