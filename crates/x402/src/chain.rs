//! The networks this crate can price in, and their USDC deployments.
//!
//! Legacy names, aliases and CAIP-2 ids resolve alike: `Network::resolve("base-sepolia")` and
//! `Network::resolve("eip155:84532")` return the same entry (a past regression converted route
//! networks but not the chain lookup, and every paid request failed).

use alloy::primitives::{Address, address};

use crate::eip3009::TokenDomain;
use crate::error::UnknownNetwork;
use crate::wire::{Caip2, V1Network};

/// Decimals of USDC on every listed chain: `$0.01` = `10000` atomic units.
pub const USDC_DECIMALS: u8 = 6;

/// An EVM network known to this crate.
#[derive(Debug, PartialEq, Eq)]
pub struct Network {
    /// Canonical name, also the v1 wire name when [`Self::v1_name`] is set.
    pub name: &'static str,
    /// Other accepted names (`base-mainnet`, ...).
    pub aliases: &'static [&'static str],
    /// Whether the name may be sent as a v1 `network` (some chains only work with v2).
    pub has_v1_name: bool,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The USDC deployment, when this crate can price in it.
    pub usdc: Option<Usdc>,
}

/// A USDC (FiatToken v2, EIP-3009) deployment.
#[derive(Debug, PartialEq, Eq)]
pub struct Usdc {
    /// The proxy address (the EIP-712 `verifyingContract`).
    pub address: Address,
    /// EIP-712 domain `name`.
    pub eip712_name: &'static str,
    /// EIP-712 domain `version`.
    pub eip712_version: &'static str,
    /// `true` only where the domain was checked against a recovering signature (Base Sepolia,
    /// x402.md §10); elsewhere the SDK tables agree but a startup `DOMAIN_SEPARATOR()` read is
    /// advisable.
    pub domain_confirmed: bool,
}

const fn usdc(address: Address, eip712_name: &'static str) -> Option<Usdc> {
    Some(Usdc {
        address,
        eip712_name,
        eip712_version: "2",
        domain_confirmed: false,
    })
}

/// Every known network (obol-reference.md §5.7).
pub static NETWORKS: &[Network] = &[
    Network {
        name: "base",
        aliases: &["base-mainnet"],
        has_v1_name: true,
        chain_id: 8453,
        usdc: usdc(
            address!("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
            "USD Coin",
        ),
    },
    Network {
        name: "base-sepolia",
        aliases: &[],
        has_v1_name: true,
        chain_id: 84532,
        // `USDC`, not `USD Coin`: the other name makes every facilitator reject the signature.
        usdc: Some(Usdc {
            address: address!("0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
            eip712_name: "USDC",
            eip712_version: "2",
            domain_confirmed: true,
        }),
    },
    Network {
        name: "ethereum",
        aliases: &["ethereum-mainnet", "mainnet"],
        has_v1_name: true,
        chain_id: 1,
        usdc: usdc(
            address!("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"),
            "USD Coin",
        ),
    },
    Network {
        name: "sepolia",
        aliases: &[],
        has_v1_name: false,
        chain_id: 11155111,
        usdc: None,
    },
    Network {
        name: "polygon",
        aliases: &["polygon-mainnet"],
        has_v1_name: true,
        chain_id: 137,
        usdc: usdc(
            address!("0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359"),
            "USD Coin",
        ),
    },
    Network {
        name: "polygon-amoy",
        aliases: &[],
        has_v1_name: true,
        chain_id: 80002,
        usdc: usdc(
            address!("0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582"),
            "USDC",
        ),
    },
    Network {
        name: "avalanche",
        aliases: &["avalanche-mainnet"],
        has_v1_name: true,
        chain_id: 43114,
        usdc: usdc(
            address!("0xB97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E"),
            "USD Coin",
        ),
    },
    Network {
        name: "avalanche-fuji",
        aliases: &[],
        has_v1_name: true,
        chain_id: 43113,
        usdc: usdc(
            address!("0x5425890298aed601595a70AB815c96711a31Bc65"),
            "USD Coin",
        ),
    },
    Network {
        name: "arbitrum-one",
        aliases: &["arbitrum"],
        has_v1_name: true,
        chain_id: 42161,
        usdc: usdc(
            address!("0xaf88d065e77c8cC2239327C5EDb3A432268e5831"),
            "USD Coin",
        ),
    },
    Network {
        name: "arbitrum-sepolia",
        aliases: &[],
        has_v1_name: true,
        chain_id: 421614,
        usdc: usdc(
            address!("0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d"),
            "USD Coin",
        ),
    },
];

impl Network {
    /// Resolves a canonical name, an alias (ASCII case-insensitive) or a CAIP-2 id.
    pub fn resolve(id: &str) -> Result<&'static Self, UnknownNetwork> {
        let found = match id.parse::<Caip2>() {
            Ok(caip2) => caip2.eip155_chain_id().and_then(Self::by_chain_id),
            Err(_) => NETWORKS.iter().find(|n| {
                n.name.eq_ignore_ascii_case(id)
                    || n.aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
            }),
        };
        found.ok_or_else(|| UnknownNetwork {
            input: id.to_owned(),
            known: NETWORKS
                .iter()
                .map(|n| n.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The network with this EIP-155 chain id.
    pub fn by_chain_id(chain_id: u64) -> Option<&'static Self> {
        NETWORKS.iter().find(|n| n.chain_id == chain_id)
    }

    /// The CAIP-2 id, `eip155:<chain id>` (v2 `network`).
    pub fn caip2(&self) -> Caip2 {
        Caip2::eip155(self.chain_id)
    }

    /// The v1 `network` name, if this chain has one usable with v1 peers.
    pub fn v1_name(&self) -> Option<V1Network> {
        self.has_v1_name.then(|| self.name.parse().ok()).flatten()
    }

    /// The EIP-712 domain of this chain's USDC.
    pub fn usdc_domain(&self) -> Option<TokenDomain> {
        let usdc = self.usdc.as_ref()?;
        Some(TokenDomain::new(
            usdc.eip712_name,
            usdc.eip712_version,
            self.chain_id,
            usdc.address,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_caip2_resolve_alike() {
        let cases: &[(&str, &str, u64)] = &[
            ("base-sepolia", "eip155:84532", 84_532),
            ("base", "eip155:8453", 8453),
            ("base-mainnet", "eip155:8453", 8453),
            ("Base-Sepolia", "eip155:84532", 84_532),
            ("ethereum", "eip155:1", 1),
            ("mainnet", "eip155:1", 1),
            ("sepolia", "eip155:11155111", 11_155_111),
            ("polygon-mainnet", "eip155:137", 137),
            ("polygon-amoy", "eip155:80002", 80_002),
            ("avalanche-mainnet", "eip155:43114", 43_114),
            ("avalanche-fuji", "eip155:43113", 43_113),
            ("arbitrum", "eip155:42161", 42_161),
            ("arbitrum-sepolia", "eip155:421614", 421_614),
        ];
        for (name, caip2, chain_id) in cases {
            let by_name = Network::resolve(name).unwrap();
            let by_id = Network::resolve(caip2).unwrap();
            assert_eq!(by_name, by_id, "{name}");
            assert_eq!(by_name.chain_id, *chain_id);
            assert_eq!(by_name.caip2().as_str(), *caip2);
        }
    }

    #[test]
    fn unknown_networks_are_errors() {
        for bad in [
            "unsupported-chain",
            "eip155:999999",
            "eip155:084532",
            "solana",
            "",
            "eip155",
        ] {
            let err = Network::resolve(bad).unwrap_err();
            assert!(err.to_string().contains("unsupported chain"), "{err}");
        }
    }

    #[test]
    fn base_sepolia_usdc_is_named_usdc() {
        let net = Network::resolve("base-sepolia").unwrap();
        let usdc = net.usdc.as_ref().unwrap();
        assert_eq!((usdc.eip712_name, usdc.eip712_version), ("USDC", "2"));
        let lower: Address = "0x036cbd53842c5426634e7929541ec2318f3dcf7e"
            .parse()
            .unwrap();
        assert_eq!(
            usdc.address, lower,
            "addresses compare as parsed values, not strings"
        );
        assert_eq!(net.v1_name().unwrap().as_str(), "base-sepolia");
    }

    #[test]
    fn table_is_consistent() {
        let mut ids = std::collections::BTreeSet::new();
        for n in NETWORKS {
            assert!(ids.insert(n.chain_id), "duplicate chain id {}", n.chain_id);
            assert_eq!(n.v1_name().is_some(), n.has_v1_name, "{}", n.name);
            if let Some(u) = &n.usdc {
                assert_eq!(u.eip712_version, "2");
                assert_ne!(u.address, Address::ZERO);
            }
        }
        assert_eq!(Network::resolve("sepolia").unwrap().v1_name(), None);
    }
}
