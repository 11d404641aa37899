//! The EVM `upto` scheme payload (Permit2 witness transfer through the x402 upto proxy), v2
//! only, with the field names and order of `@x402/evm`.
//!
//! ```json
//! {"signature": "0x…",
//!  "permit2Authorization": {
//!    "from": "0x…", "permitted": {"token": "0x…", "amount": "50000"},
//!    "spender": "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002",
//!    "nonce": "<decimal uint256>", "deadline": "<unix seconds>",
//!    "witness": {"to": "0x…", "facilitator": "0x…", "validAfter": "0"}}}
//! ```

use alloy::primitives::{Address, Bytes, U256};
use serde::{Deserialize, Serialize};

use super::scalar;

/// The metered scheme: the payer authorizes a maximum, the seller settles what was used.
pub const SCHEME_UPTO: &str = "upto";

/// `extra.assetTransferMethod` of every `upto` requirement.
pub const TRANSFER_METHOD_PERMIT2: &str = "permit2";

/// `payload` of an `upto` EVM payment: the Permit2 authorization and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UptoEvmPayload {
    /// `0x` + hex: 65 bytes `r‖s‖v` for an EOA, longer for contract wallets.
    #[serde(with = "scalar::hex_bytes")]
    pub signature: Bytes,
    /// The signed `PermitWitnessTransferFrom` message.
    pub permit2_authorization: Permit2Authorization,
}

/// Permit2's `PermitWitnessTransferFrom` with the `upto` witness, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permit2Authorization {
    /// The payer (the Permit2 `owner`).
    #[serde(with = "scalar::address")]
    pub from: Address,
    /// The token and the most that may be settled.
    pub permitted: Permitted,
    /// Who may call Permit2 with this signature: the `x402UptoPermit2Proxy`.
    #[serde(with = "scalar::address")]
    pub spender: Address,
    /// Permit2's unordered nonce (decimal string of a uint256; `@x402/evm` picks 32 random bytes).
    #[serde(with = "scalar::dec_u256")]
    pub nonce: U256,
    /// Unix seconds (decimal string) after which Permit2 refuses the signature.
    #[serde(with = "scalar::dec_u64")]
    pub deadline: u64,
    /// Recipient, settling facilitator and start of validity.
    pub witness: UptoWitness,
}

/// `permitted` of a Permit2 authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permitted {
    /// The token contract.
    #[serde(with = "scalar::address")]
    pub token: Address,
    /// The most that may be transferred, atomic units (decimal string).
    #[serde(with = "scalar::dec_u256")]
    pub amount: U256,
}

/// The `upto` witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UptoWitness {
    /// The recipient; must equal the requirement's `payTo`.
    #[serde(with = "scalar::address")]
    pub to: Address,
    /// The only address allowed to settle (the facilitator's signer).
    #[serde(with = "scalar::address")]
    pub facilitator: Address,
    /// Unix seconds (decimal string); the proxy refuses to settle before it.
    #[serde(with = "scalar::dec_u64")]
    pub valid_after: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str = r#"{"signature":"0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c","permit2Authorization":{"from":"0x857b06519E91e3A54538791bDbb0E22373e36b66","permitted":{"token":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","amount":"50000"},"spender":"0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002","nonce":"110427941548649020598956093796432407239217743554726184882600387580788736","deadline":"1740672154","witness":{"to":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","facilitator":"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","validAfter":"0"}}}"#;

    #[test]
    fn payload_round_trips_byte_for_byte() {
        let p: UptoEvmPayload = serde_json::from_str(PAYLOAD).unwrap();
        assert_eq!(p.permit2_authorization.permitted.amount, U256::from(50_000));
        assert_eq!(p.permit2_authorization.witness.valid_after, 0);
        assert_eq!(serde_json::to_string(&p).unwrap(), PAYLOAD);
    }

    #[test]
    fn payload_strictness_table() {
        let cases = [
            ("amount as number", PAYLOAD.replace(r#""50000""#, "50000")),
            ("amount negative", PAYLOAD.replace(r#""50000""#, r#""-1""#)),
            (
                "nonce as hex",
                PAYLOAD.replace(
                    r#""110427941548649020598956093796432407239217743554726184882600387580788736""#,
                    r#""0x1""#,
                ),
            ),
            (
                "deadline above u64",
                PAYLOAD.replace(r#""1740672154""#, r#""18446744073709551616""#),
            ),
            (
                "validAfter as number",
                PAYLOAD.replace(r#""validAfter":"0""#, r#""validAfter":0"#),
            ),
            ("spender not hex", PAYLOAD.replace("0x4020A4", "0x4020G4")),
            (
                "missing witness",
                PAYLOAD.replace(r#","witness":"#, r#","other":"#),
            ),
            (
                "missing facilitator",
                PAYLOAD.replace(r#""facilitator":"#, r#""f":"#),
            ),
            ("signature not hex", PAYLOAD.replace("0x2d6a", "0xzz6a")),
        ];
        for (name, json) in cases {
            let err = serde_json::from_str::<UptoEvmPayload>(&json).unwrap_err();
            assert!(err.is_data() || err.is_syntax(), "{name}: {err}");
        }
    }
}
