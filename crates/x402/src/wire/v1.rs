//! x402 v1: the 402 JSON body and the `X-PAYMENT` payload.

use alloy::primitives::{Address, U256};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Accept, ExactEvmPayload, scalar, scalar::V1Network};
use super::{Eip712Extra, V1Tag};

/// One v1 payment option (`accepts[]` of the 402 body).
///
/// Keys are written in the order of the x402 v1 examples. `resource`, `description` and
/// `mimeType` are informational: they default to `""` when a server omits them (the reference
/// Go mock seller does), and are always written (TS requires `mimeType`, x402-rs
/// `description`). Absent optional fields (`outputSchema`, `extra`) are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirementsV1 {
    /// `exact`.
    pub scheme: String,
    /// v1 network name (`base-sepolia`), never a CAIP-2 id.
    pub network: V1Network,
    /// Price in atomic units (decimal string).
    #[serde(with = "scalar::dec_u256")]
    pub max_amount_required: U256,
    /// Token contract (the proxy address for USDC).
    #[serde(with = "scalar::address")]
    pub asset: Address,
    /// Recipient of the payment.
    #[serde(with = "scalar::address")]
    pub pay_to: Address,
    /// Absolute URL of the resource.
    #[serde(default)]
    pub resource: String,
    /// Human-readable description.
    #[serde(default)]
    pub description: String,
    /// MIME type of the resource's response.
    #[serde(default)]
    pub mime_type: String,
    /// v1 discovery data. Omitted when absent, never written as `null`: the official v1
    /// client (`x402` 1.2.0) validates it as an optional object and refuses the whole 402
    /// over a `null` (the spec's own example has one; it is still read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// How long the authorization should stay valid; the buyer sets
    /// `validBefore = now + maxTimeoutSeconds`.
    pub max_timeout_seconds: u64,
    /// EIP-712 domain of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Eip712Extra>,
}

/// The v1 402 response body (`PaymentRequirementsResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV1 {
    /// Always `1`.
    pub x402_version: V1Tag,
    /// Why payment is required (e.g. `X-PAYMENT header is required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Payment options; entries this crate cannot type (other chains) are kept raw.
    pub accepts: Vec<Accept<PaymentRequirementsV1>>,
}

/// The decoded `X-PAYMENT` header of x402 v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV1 {
    /// Always `1`.
    pub x402_version: V1Tag,
    /// The chosen scheme (`exact`).
    pub scheme: String,
    /// The chosen v1 network name.
    pub network: V1Network,
    /// The signed authorization.
    pub payload: ExactEvmPayload,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str = r#"{"x402Version":1,"scheme":"exact","network":"base-sepolia","payload":{"signature":"0x00","authorization":{"from":"0x857b06519E91e3A54538791bDbb0E22373e36b66","to":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","value":"10000","validAfter":"1740672089","validBefore":"1740672154","nonce":"0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"}}}"#;

    #[test]
    fn payload_strictness_table() {
        assert!(serde_json::from_str::<PaymentPayloadV1>(PAYLOAD).is_ok());
        let cases = [
            (
                "caip-2 network",
                PAYLOAD.replace("base-sepolia", "eip155:84532"),
            ),
            (
                "version 2",
                PAYLOAD.replace(r#""x402Version":1"#, r#""x402Version":2"#),
            ),
            (
                "version as string",
                PAYLOAD.replace(r#""x402Version":1"#, r#""x402Version":"1""#),
            ),
            (
                "missing scheme",
                PAYLOAD.replace(r#""scheme":"exact","#, ""),
            ),
            ("value as number", PAYLOAD.replace(r#""10000""#, "10000")),
        ];
        for (name, json) in cases {
            assert!(
                serde_json::from_str::<PaymentPayloadV1>(&json).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn informational_fields_default_and_are_always_written() {
        let minimal = r#"{"scheme":"exact","network":"base-sepolia","maxAmountRequired":"1000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","maxTimeoutSeconds":60}"#;
        let req: PaymentRequirementsV1 = serde_json::from_str(minimal).unwrap();
        assert_eq!(req.max_amount_required, U256::from(1000u64));
        let out = serde_json::to_value(&req).unwrap();
        assert_eq!(out["mimeType"], "");
        assert_eq!(out["description"], "");
        assert!(out.get("outputSchema").is_none(), "never written as null");
        assert!(out.get("extra").is_none());
    }
}
