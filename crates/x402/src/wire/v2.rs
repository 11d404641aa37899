//! x402 v2: `PAYMENT-REQUIRED` and `PAYMENT-SIGNATURE`.

use alloy::primitives::{Address, U256};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Accept, Eip712Extra, ExactEvmPayload, UptoEvmPayload, V2Tag, scalar, scalar::Caip2};

/// Top-level `resource` of v2 (the v1 per-requirement fields, moved up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// Absolute URL of the resource.
    pub url: String,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// MIME type of the resource's response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Short service name (newer foundation text: ≤ 32 printable ASCII).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Tags (newer foundation text: ≤ 5 × ≤ 32 chars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Icon URL (newer foundation text: ≤ 2048 chars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
}

impl ResourceInfo {
    /// A resource with only a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            description: None,
            mime_type: None,
            service_name: None,
            tags: None,
            icon_url: None,
        }
    }
}

/// One v2 payment option; also the `accepted` copy inside a v2 payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirementsV2 {
    /// `exact`.
    pub scheme: String,
    /// CAIP-2 network id (`eip155:84532`).
    pub network: Caip2,
    /// Price in atomic units (decimal string); the payment must match it exactly.
    #[serde(with = "scalar::dec_u256")]
    pub amount: U256,
    /// Token contract (the proxy address for USDC).
    #[serde(with = "scalar::address")]
    pub asset: Address,
    /// Recipient of the payment.
    #[serde(with = "scalar::address")]
    pub pay_to: Address,
    /// How long the authorization should stay valid.
    pub max_timeout_seconds: u64,
    /// EIP-712 domain of the token; required by the `exact` EVM scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Eip712Extra>,
}

/// The decoded `PAYMENT-REQUIRED` header of v2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV2 {
    /// Always `2`.
    pub x402_version: V2Tag,
    /// Why payment is required, or the previous attempt's rejection reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What is being paid for.
    pub resource: ResourceInfo,
    /// Payment options; entries this crate cannot type (other chains) are kept raw.
    pub accepts: Vec<Accept<PaymentRequirementsV2>>,
    /// Protocol extensions, `{"<id>": {"info": …, "schema": …}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

/// The decoded `PAYMENT-SIGNATURE` header of v2; `P` is the scheme's `payload` (`exact`:
/// [`ExactEvmPayload`], `upto`: [`UptoEvmPayload`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV2<P = ExactEvmPayload> {
    /// Always `2`.
    pub x402_version: V2Tag,
    /// The resource, echoed by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    /// The requirement the client chose, copied from the 402.
    pub accepted: PaymentRequirementsV2,
    /// The signed authorization.
    pub payload: P,
    /// Extensions echoed by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

/// A v2 payment of the `upto` scheme.
pub type UptoPaymentPayload = PaymentPayloadV2<UptoEvmPayload>;

#[cfg(test)]
mod tests {
    use super::*;

    const ACCEPTED: &str = r#"{"scheme":"exact","network":"eip155:84532","amount":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}"#;

    #[test]
    fn requirement_round_trips_and_rejects_bad_fields() {
        let req: PaymentRequirementsV2 = serde_json::from_str(ACCEPTED).unwrap();
        assert_eq!(req.network.eip155_chain_id(), Some(84_532));
        assert_eq!(serde_json::to_string(&req).unwrap(), ACCEPTED);
        let cases = [
            (
                "legacy network name",
                ACCEPTED.replace("eip155:84532", "base-sepolia"),
            ),
            ("amount as number", ACCEPTED.replace(r#""10000""#, "10000")),
            ("timeout as string", ACCEPTED.replace(":60,", r#":"60","#)),
            ("negative timeout", ACCEPTED.replace(":60,", ":-60,")),
            ("bad payTo", ACCEPTED.replace("0x2096", "0x2O96")),
        ];
        for (name, json) in cases {
            assert!(
                serde_json::from_str::<PaymentRequirementsV2>(&json).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn foreign_accepts_entries_are_kept_raw() {
        let solana = r#"{"scheme":"exact","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1","amount":"10000","asset":"4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU","payTo":"9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin","maxTimeoutSeconds":60,"extra":{"feePayer":"x"}}"#;
        let body = format!(
            r#"{{"x402Version":2,"resource":{{"url":"https://a.example/x"}},"accepts":[{solana},{ACCEPTED}]}}"#
        );
        let parsed: PaymentRequiredV2 = serde_json::from_str(&body).unwrap();
        assert!(matches!(parsed.accepts[0], Accept::Unparsed(_)));
        assert!(matches!(parsed.accepts[1], Accept::Parsed(_)));
        // Raw entries keep their content; key order follows serde_json's map (sorted).
        let reparsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), reparsed);
    }
}
