//! The EVM `exact` scheme payload (EIP-3009), shared by v1 and v2.

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::scalar;

/// The only scheme this crate implements.
pub const SCHEME_EXACT: &str = "exact";

/// The only `extra.assetTransferMethod` this crate implements (and the default when absent).
pub const TRANSFER_METHOD_EIP3009: &str = "eip3009";

/// `payload` of an `exact` EVM payment: the EIP-3009 authorization and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactEvmPayload {
    /// `0x` + hex: 65 bytes `r‖s‖v` for an EOA, longer for ERC-1271 / ERC-6492 wallets.
    #[serde(with = "scalar::hex_bytes")]
    pub signature: Bytes,
    /// The signed `TransferWithAuthorization` message.
    pub authorization: Authorization,
}

/// The EIP-3009 `TransferWithAuthorization` message as sent on the wire (numbers as strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// The payer.
    #[serde(with = "scalar::address")]
    pub from: Address,
    /// The recipient; must equal the requirement's `payTo`.
    #[serde(with = "scalar::address")]
    pub to: Address,
    /// Atomic units of the token (decimal string).
    #[serde(with = "scalar::dec_u256")]
    pub value: U256,
    /// Unix seconds (decimal string); the chain requires `block.timestamp > validAfter`.
    #[serde(with = "scalar::dec_u64")]
    pub valid_after: u64,
    /// Unix seconds (decimal string); the chain requires `block.timestamp < validBefore`.
    #[serde(with = "scalar::dec_u64")]
    pub valid_before: u64,
    /// 32 random bytes chosen by the payer; consumed on chain by settlement.
    #[serde(with = "scalar::b256")]
    pub nonce: B256,
}

/// `extra` of an `exact` EVM requirement: the token's EIP-712 domain name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Eip712Extra {
    /// EIP-712 domain `name` of the token (Base Sepolia USDC: `USDC`).
    pub name: String,
    /// EIP-712 domain `version` of the token (USDC: `2`).
    pub version: String,
    /// `eip3009` (default when absent) for `exact`; `permit2` for `upto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_transfer_method: Option<String>,
    /// `upto`: the facilitator signer the payer must name in its witness (the one allowed to
    /// settle), as the facilitator's `/supported` announces it.
    #[serde(
        default,
        with = "scalar::opt_address",
        skip_serializing_if = "Option::is_none"
    )]
    pub facilitator_address: Option<Address>,
    /// Any other keys, kept so a copied `accepted` round-trips.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Eip712Extra {
    /// `{name, version}` with no other keys.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            asset_transfer_method: None,
            facilitator_address: None,
            other: Map::new(),
        }
    }

    /// Whether the transfer method is EIP-3009 (explicitly or by default).
    pub fn is_eip3009(&self) -> bool {
        self.asset_transfer_method
            .as_deref()
            .is_none_or(|m| m == TRANSFER_METHOD_EIP3009)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = r#"{"from":"0x857b06519E91e3A54538791bDbb0E22373e36b66","to":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","value":"10000","validAfter":"1740672089","validBefore":"1740672154","nonce":"0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"}"#;

    #[test]
    fn authorization_round_trips_byte_for_byte() {
        let a: Authorization = serde_json::from_str(AUTH).unwrap();
        assert_eq!(a.valid_before, 1_740_672_154);
        assert_eq!(serde_json::to_string(&a).unwrap(), AUTH);
    }

    #[test]
    fn authorization_strictness_table() {
        let cases = [
            (
                "value as number",
                AUTH.replace(r#""value":"10000""#, r#""value":10000"#),
            ),
            (
                "validAfter as number",
                AUTH.replace(r#""1740672089""#, "1740672089"),
            ),
            (
                "validAfter as hex",
                AUTH.replace(r#""1740672089""#, r#""0x67c0b059""#),
            ),
            (
                "validBefore above u64",
                AUTH.replace(r#""1740672154""#, r#""18446744073709551616""#),
            ),
            ("short nonce", AUTH.replace("13480\"", "1348\"")),
            ("from without 0x", AUTH.replace(r#""0x857b"#, r#""857b"#)),
            (
                "missing nonce",
                AUTH.replace(r#","nonce":"#, r#","other":"#),
            ),
        ];
        for (name, json) in cases {
            let err = serde_json::from_str::<Authorization>(&json).unwrap_err();
            assert!(err.is_data(), "{name}: {err}");
        }
    }

    #[test]
    fn extra_keeps_unknown_keys_and_defaults_to_eip3009() {
        let json = r#"{"name":"USDC","version":"2","feePayer":"x"}"#;
        let extra: Eip712Extra = serde_json::from_str(json).unwrap();
        assert!(extra.is_eip3009());
        assert_eq!(serde_json::to_string(&extra).unwrap(), json);
        let permit2: Eip712Extra = serde_json::from_str(
            r#"{"name":"USDC","version":"2","assetTransferMethod":"permit2"}"#,
        )
        .unwrap();
        assert!(!permit2.is_eip3009());
    }
}
