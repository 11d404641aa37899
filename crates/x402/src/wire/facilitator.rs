//! Bodies of the facilitator API (`POST /verify`, `POST /settle`, `GET /supported`) and the
//! settlement header (`PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`).
//!
//! Answers are parsed tolerantly (x402-rs sends `payer:""`, `network:""` and extra fields on
//! errors); requests are written exactly.

use alloy::primitives::Address;
use serde::{Deserialize, Serialize, de::Error as _};
use serde_json::{Map, Value};

use super::{PaymentPayloadV1, PaymentPayloadV2, PaymentRequirementsV1, PaymentRequirementsV2};
use super::{SCHEME_UPTO, UptoPaymentPayload, X402Version, scalar};

/// Body of `POST /verify` and `POST /settle`:
/// `{"x402Version", "paymentPayload": {…}, "paymentRequirements": {…}}`.
///
/// The payload is always a JSON **object** (x402-rs answers `unsupported_scheme` to the base64
/// string), and its version always matches the requirement's, by construction.
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived, one per request; boxing buys nothing"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FacilitatorRequest {
    /// A v1 payment and the requirement it was matched to.
    V1 {
        /// The decoded `X-PAYMENT`.
        payload: PaymentPayloadV1,
        /// The selected requirement.
        requirements: PaymentRequirementsV1,
    },
    /// A v2 payment and the requirement it was matched to (equal to `payload.accepted`).
    V2 {
        /// The decoded `PAYMENT-SIGNATURE`.
        payload: PaymentPayloadV2,
        /// The selected requirement.
        requirements: PaymentRequirementsV2,
    },
    /// A v2 `upto` payment. For `/verify` the requirement is `payload.accepted` (the maximum);
    /// for `/settle` its `amount` is the metered charge the facilitator transfers.
    Upto {
        /// The decoded `PAYMENT-SIGNATURE`.
        payload: UptoPaymentPayload,
        /// The selected requirement, `amount` = what to verify or settle.
        requirements: PaymentRequirementsV2,
    },
}

impl FacilitatorRequest {
    /// The protocol version, copied into `x402Version`.
    pub fn version(&self) -> X402Version {
        match self {
            Self::V1 { .. } => X402Version::V1,
            Self::V2 { .. } | Self::Upto { .. } => X402Version::V2,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestBody<P, R> {
    x402_version: X402Version,
    payment_payload: P,
    payment_requirements: R,
}

impl Serialize for FacilitatorRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::V1 {
                payload,
                requirements,
            } => RequestBody {
                x402_version: X402Version::V1,
                payment_payload: payload,
                payment_requirements: requirements,
            }
            .serialize(s),
            Self::V2 {
                payload,
                requirements,
            } => RequestBody {
                x402_version: X402Version::V2,
                payment_payload: payload,
                payment_requirements: requirements,
            }
            .serialize(s),
            Self::Upto {
                payload,
                requirements,
            } => RequestBody {
                x402_version: X402Version::V2,
                payment_payload: payload,
                payment_requirements: requirements,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for FacilitatorRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let version = value.get("x402Version").cloned().unwrap_or(Value::Null);
        let version: X402Version = serde_json::from_value(version).map_err(D::Error::custom)?;
        let parsed = match version {
            X402Version::V1 => {
                serde_json::from_value::<RequestBody<_, _>>(value).map(|b| Self::V1 {
                    payload: b.payment_payload,
                    requirements: b.payment_requirements,
                })
            }
            X402Version::V2
                if value["paymentRequirements"]["scheme"].as_str() == Some(SCHEME_UPTO) =>
            {
                serde_json::from_value::<RequestBody<_, _>>(value).map(|b| Self::Upto {
                    payload: b.payment_payload,
                    requirements: b.payment_requirements,
                })
            }
            X402Version::V2 => {
                serde_json::from_value::<RequestBody<_, _>>(value).map(|b| Self::V2 {
                    payload: b.payment_payload,
                    requirements: b.payment_requirements,
                })
            }
        };
        parsed.map_err(D::Error::custom)
    }
}

/// Answer of `POST /verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    /// Whether the payment would settle.
    pub is_valid: bool,
    /// Machine-readable reason when invalid (codes differ per facilitator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    /// Human-readable detail (TS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_message: Option<String>,
    /// Human-readable detail (x402-rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason_details: Option<String>,
    /// The payer as the facilitator saw it (x402-rs sends `""` on errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// Extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

impl VerifyResponse {
    /// The payer, when it is a well-formed address.
    pub fn payer_address(&self) -> Option<Address> {
        self.payer
            .as_deref()
            .and_then(|p| scalar::parse_address(p).ok())
    }
}

/// Answer of `POST /settle`, also the decoded `PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    /// Whether the transfer was mined successfully.
    pub success: bool,
    /// Machine-readable reason on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// Human-readable detail on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Transaction hash; `""` (v1) or absent (v2 examples) on failure. Always written.
    #[serde(default)]
    pub transaction: String,
    /// Network of the transaction (x402-rs sends `""` on errors).
    #[serde(default)]
    pub network: String,
    /// The payer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// Settled amount (`upto` scheme).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

impl SettleResponse {
    /// The transaction hash, when one is known (a failed settle may still carry one).
    pub fn transaction(&self) -> Option<&str> {
        Some(self.transaction.as_str()).filter(|t| !t.is_empty())
    }
}

/// Answer of `GET /supported`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedResponse {
    /// The (version, scheme, network) triples the facilitator handles.
    pub kinds: Vec<SupportedKind>,
    /// Extension ids (v2; TS defaults it to `[]`).
    #[serde(default)]
    pub extensions: Vec<Value>,
    /// Signer addresses per CAIP-2 pattern (v2; TS defaults it to `{}`).
    #[serde(default)]
    pub signers: Map<String, Value>,
}

impl SupportedResponse {
    /// Whether `(version, scheme, network)` is listed; `network` is compared verbatim.
    pub fn supports(&self, version: X402Version, scheme: &str, network: &str) -> bool {
        self.kinds.iter().any(|k| {
            k.x402_version == version.as_u8() as u64 && k.scheme == scheme && k.network == network
        })
    }
}

impl SupportedResponse {
    /// The settling address a facilitator announces for `upto` on `network` (CAIP-2):
    /// `extra.facilitatorAddress` of that v2 kind. `None` when it does not offer `upto` there.
    pub fn upto_facilitator(&self, network: &str) -> Option<Address> {
        self.kinds
            .iter()
            .filter(|k| k.x402_version == 2 && k.scheme == SCHEME_UPTO && k.network == network)
            .find_map(|k| {
                let address = k.extra.as_ref()?.get("facilitatorAddress")?.as_str()?;
                scalar::parse_address(address).ok()
            })
    }
}

/// One entry of [`SupportedResponse::kinds`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedKind {
    /// Protocol version (any number is kept, so a newer facilitator still parses).
    pub x402_version: u64,
    /// Scheme, e.g. `exact`.
    pub scheme: String,
    /// Network: a v1 name or a CAIP-2 id.
    pub network: String,
    /// Scheme-specific data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_both_facilitators_parse() {
        let cases = [
            r#"{"isValid":true,"payer":"0x857b06519E91e3A54538791bDbb0E22373e36b66"}"#,
            r#"{"isValid":false,"invalidReason":"insufficient_funds","payer":"0x857b06519E91e3A54538791bDbb0E22373e36b66"}"#,
            r#"{"isValid":false,"invalidReason":"invalid_signature","invalidReasonDetails":"x","payer":""}"#,
        ];
        for json in cases {
            let r: VerifyResponse = serde_json::from_str(json).unwrap();
            assert_eq!(
                r.payer_address().is_some(),
                json.contains("0x857b"),
                "{json}"
            );
        }
        let settle = r#"{"success":false,"network":"","transaction":"","errorReason":"unexpected_error","errorMessage":"x","payer":""}"#;
        let s: SettleResponse = serde_json::from_str(settle).unwrap();
        assert_eq!(s.transaction(), None);
        let v2_failure =
            r#"{"success":false,"errorReason":"insufficient_funds","network":"eip155:84532"}"#;
        assert!(serde_json::from_str::<SettleResponse>(v2_failure).is_ok());
        let supported =
            r#"{"kinds":[{"x402Version":2,"scheme":"exact","network":"eip155:84532"}]}"#;
        let s: SupportedResponse = serde_json::from_str(supported).unwrap();
        assert!(s.supports(X402Version::V2, "exact", "eip155:84532"));
        assert!(!s.supports(X402Version::V1, "exact", "eip155:84532"));
        assert_eq!(s.upto_facilitator("eip155:84532"), None);
    }

    #[test]
    fn upto_facilitator_address_from_supported() {
        let supported = r#"{"kinds":[{"x402Version":2,"scheme":"exact","network":"eip155:84532"},{"x402Version":2,"scheme":"upto","network":"eip155:84532","extra":{"facilitatorAddress":"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"}},{"x402Version":2,"scheme":"upto","network":"eip155:8453","extra":{"facilitatorAddress":"not an address"}}],"extensions":[],"signers":{}}"#;
        let s: SupportedResponse = serde_json::from_str(supported).unwrap();
        let want: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
            .parse()
            .unwrap();
        assert_eq!(s.upto_facilitator("eip155:84532"), Some(want));
        assert_eq!(s.upto_facilitator("eip155:8453"), None, "malformed address");
        assert_eq!(s.upto_facilitator("eip155:1"), None, "not offered");
    }

    #[test]
    fn wrong_shapes_are_refused() {
        for json in [
            r#"{"isValid":"true"}"#,
            r#"{"payer":"0x"}"#,
            "[]",
            r#"{"error":"boom"}"#,
        ] {
            assert!(
                serde_json::from_str::<VerifyResponse>(json).is_err(),
                "{json}"
            );
        }
        assert!(serde_json::from_str::<SettleResponse>(r#"{"transaction":"0x"}"#).is_err());
    }
}
