//! Where the official ERC-8004 v2 IdentityRegistry is deployed: one CREATE2 vanity address on
//! every mainnet and another on every testnet (`erc8004.md` §2). The chain list is the official
//! deployment scripts' list (`erc-8004/erc-8004-contracts`, `scripts/addresses.ts`: the chains
//! whose ids it validates, without its local Hardhat chain), plus README entries whose chain id
//! the official repository states. Chains the README names without an id (e.g. Robinhood Chain,
//! Billions, Injective, 0G Galileo) are not listed: a request there names `spec.registry`.

use alloy::primitives::{Address, address};

/// The IdentityRegistry proxy on every listed mainnet.
pub const MAINNET_IDENTITY_REGISTRY: Address =
    address!("0x8004A169FB4a3325136EB29fA0ceB6D2e539a432");
/// The IdentityRegistry proxy on every listed testnet.
pub const TESTNET_IDENTITY_REGISTRY: Address =
    address!("0x8004A818BFB912233c491871b3d84c89A494BD9e");

/// Mainnet or testnet: which vanity address the chain has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Production chains.
    Mainnet,
    /// Test chains.
    Testnet,
}

/// One chain of the official deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The chain's name in the official list.
    pub name: &'static str,
    /// Which address it has.
    pub kind: Kind,
}

impl Deployment {
    /// The IdentityRegistry (proxy) address on this chain.
    pub const fn identity_registry(&self) -> Address {
        match self.kind {
            Kind::Mainnet => MAINNET_IDENTITY_REGISTRY,
            Kind::Testnet => TESTNET_IDENTITY_REGISTRY,
        }
    }
}

const fn main(chain_id: u64, name: &'static str) -> Deployment {
    Deployment {
        chain_id,
        name,
        kind: Kind::Mainnet,
    }
}

const fn test(chain_id: u64, name: &'static str) -> Deployment {
    Deployment {
        chain_id,
        name,
        kind: Kind::Testnet,
    }
}

/// Every chain of the official deployment this registrar knows.
pub static DEPLOYMENTS: &[Deployment] = &[
    main(1, "Ethereum"),
    main(8453, "Base"),
    main(42161, "Arbitrum One"),
    main(10, "Optimism"),
    main(137, "Polygon"),
    main(43114, "Avalanche"),
    main(56, "BSC"),
    main(143, "Monad"),
    main(534352, "Scroll"),
    main(100, "Gnosis"),
    main(42220, "Celo"),
    main(167000, "Taiko"),
    main(59144, "Linea"),
    main(4326, "MegaETH"),
    main(196, "XLayer"),
    main(2741, "Abstract"),
    main(5000, "Mantle"),
    main(1868, "Soneium"),
    main(2345, "GOAT Network"),
    main(1088, "Metis"),
    main(295, "Hedera"),
    main(1187947933, "SKALE Base"),
    main(360, "Shape"),
    // README; the chain id is in the commit that added it.
    main(16661, "0G"),
    test(11155111, "Sepolia"),
    test(84532, "Base Sepolia"),
    test(421614, "Arbitrum Sepolia"),
    test(11155420, "Optimism Sepolia"),
    test(80002, "Polygon Amoy"),
    test(43113, "Avalanche Fuji"),
    test(97, "BSC Testnet"),
    test(10143, "Monad Testnet"),
    test(534351, "Scroll Sepolia"),
    test(10200, "Gnosis Chiado"),
    test(11142220, "Celo Sepolia"),
    test(167013, "Taiko Hoodi"),
    test(6343, "MegaETH Testnet"),
    test(59141, "Linea Sepolia"),
    test(1952, "XLayer Testnet"),
    test(11124, "Abstract Sepolia"),
    test(5003, "Mantle Sepolia"),
    test(1946, "Soneium Minato"),
    test(48816, "GOAT Testnet3"),
    test(59902, "Metis Sepolia"),
    test(296, "Hedera Testnet"),
    test(324705682, "SKALE Base Sepolia"),
    test(5042002, "Arc Testnet"),
    test(11011, "Shape Sepolia"),
];

/// The official deployment on `chain_id`, if the chain is listed.
pub fn by_chain_id(chain_id: u64) -> Option<&'static Deployment> {
    DEPLOYMENTS.iter().find(|d| d.chain_id == chain_id)
}

/// The official IdentityRegistry (proxy) on `chain_id`, if the chain is listed.
pub fn official_registry(chain_id: u64) -> Option<Address> {
    by_chain_id(chain_id).map(Deployment::identity_registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_chain_has_one_entry() {
        let mut ids: Vec<u64> = DEPLOYMENTS.iter().map(|d| d.chain_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), DEPLOYMENTS.len(), "a chain id is listed twice");
        let mainnets = DEPLOYMENTS
            .iter()
            .filter(|d| d.kind == Kind::Mainnet)
            .count();
        assert_eq!((mainnets, DEPLOYMENTS.len() - mainnets), (24, 24));
        assert!(
            by_chain_id(31337).is_none(),
            "a local chain has no official registry"
        );
    }

    #[test]
    fn mainnets_and_testnets_have_their_own_vanity_address() {
        for (chain_id, want) in [
            (1, MAINNET_IDENTITY_REGISTRY),
            (8453, MAINNET_IDENTITY_REGISTRY),
            (42220, MAINNET_IDENTITY_REGISTRY),
            (84532, TESTNET_IDENTITY_REGISTRY),
            (11155111, TESTNET_IDENTITY_REGISTRY),
            (80002, TESTNET_IDENTITY_REGISTRY),
        ] {
            assert_eq!(official_registry(chain_id), Some(want), "{chain_id}");
        }
        assert_eq!(
            TESTNET_IDENTITY_REGISTRY.to_checksum(None),
            "0x8004A818BFB912233c491871b3d84c89A494BD9e"
        );
        assert_eq!(
            MAINNET_IDENTITY_REGISTRY.to_checksum(None),
            "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"
        );
        assert_eq!(official_registry(999_999), None);
    }
}
