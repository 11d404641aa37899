//! x402 v1 and v2 wire types with the exact field names of the protocol.
//!
//! Parsing is strict about what matters (types, versions, number-as-string rules, address and
//! hex forms, v1 names vs CAIP-2 ids) and tolerant of unknown keys, so a newer client adding a
//! field is not locked out. Serialization writes keys in the order of the protocol examples and
//! addresses EIP-55 checksummed.

mod exact;
mod facilitator;
pub mod scalar;
mod upto;
mod v1;
mod v2;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use serde_json::Value;

pub use exact::TRANSFER_METHOD_EIP3009;
pub use exact::{Authorization, Eip712Extra, ExactEvmPayload, SCHEME_EXACT};
pub use facilitator::VerifyResponse;
pub use facilitator::{FacilitatorRequest, SettleResponse, SupportedKind, SupportedResponse};
pub use scalar::{Caip2, V1Network};
pub use upto::{Permit2Authorization, Permitted, UptoEvmPayload, UptoWitness};
pub use upto::{SCHEME_UPTO, TRANSFER_METHOD_PERMIT2};
pub use v1::{PaymentPayloadV1, PaymentRequiredV1, PaymentRequirementsV1};
pub use v2::UptoPaymentPayload;
pub use v2::{PaymentPayloadV2, PaymentRequiredV2, PaymentRequirementsV2, ResourceInfo};

/// An `x402Version` field fixed to `N`: written as the JSON number `N`, and any other value
/// (another number, the string `"N"`) is refused when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VersionTag<const N: u8>;

/// `x402Version: 1`.
pub type V1Tag = VersionTag<1>;
/// `x402Version: 2`.
pub type V2Tag = VersionTag<2>;

impl<const N: u8> Serialize for VersionTag<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(N)
    }
}

impl<'de, const N: u8> Deserialize<'de> for VersionTag<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        if v == u64::from(N) {
            Ok(Self)
        } else {
            Err(D::Error::custom(format_args!(
                "expected x402Version {N}, got {v}"
            )))
        }
    }
}

/// A protocol version this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum X402Version {
    /// v1: `X-PAYMENT`, JSON 402 body, network names.
    V1,
    /// v2: `PAYMENT-SIGNATURE`, `PAYMENT-REQUIRED`, CAIP-2 ids.
    V2,
}

impl X402Version {
    /// `1` or `2`.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }

    /// Classifies a raw `x402Version` value: `None` unless it is the number 1 or 2.
    pub(crate) fn from_json(v: &Value) -> Option<Self> {
        match v.as_u64() {
            Some(1) => Some(Self::V1),
            Some(2) => Some(Self::V2),
            _ => None,
        }
    }
}

impl Serialize for X402Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.as_u8())
    }
}

impl<'de> Deserialize<'de> for X402Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            1 => Ok(Self::V1),
            2 => Ok(Self::V2),
            v => Err(D::Error::custom(format_args!(
                "unsupported x402Version {v}"
            ))),
        }
    }
}

/// An `accepts[]` entry: typed when it is an EVM requirement this crate understands, kept raw
/// otherwise (e.g. a Solana option next to a Base one), so one foreign entry does not make the
/// whole 402 unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Accept<R> {
    /// A requirement with EVM addresses and well-formed amounts.
    Parsed(R),
    /// Anything else, as received.
    Unparsed(Value),
}

impl<R> Accept<R> {
    /// The typed requirement, if any.
    pub fn parsed(&self) -> Option<&R> {
        match self {
            Self::Parsed(r) => Some(r),
            Self::Unparsed(_) => None,
        }
    }
}

/// A decoded payment header of either version.
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived, one per request; boxing buys nothing"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PaymentPayload {
    /// From `X-PAYMENT` (v1).
    V1(PaymentPayloadV1),
    /// From `PAYMENT-SIGNATURE` (v2; TS servers also accept it as `X-PAYMENT`).
    V2(PaymentPayloadV2),
}

impl PaymentPayload {
    /// The protocol version.
    pub fn version(&self) -> X402Version {
        match self {
            Self::V1(_) => X402Version::V1,
            Self::V2(_) => X402Version::V2,
        }
    }

    /// The signed authorization and signature.
    pub fn exact(&self) -> &ExactEvmPayload {
        match self {
            Self::V1(p) => &p.payload,
            Self::V2(p) => &p.payload,
        }
    }

    /// The signed authorization and signature, to rewrite (see
    /// [`crate::verify::VerifiedPayment::normalize`]).
    pub fn exact_mut(&mut self) -> &mut ExactEvmPayload {
        match self {
            Self::V1(p) => &mut p.payload,
            Self::V2(p) => &mut p.payload,
        }
    }
}

/// A decoded payment header of any scheme this crate speaks: what a route that accepts both
/// `exact` and `upto` reads before choosing the checks.
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived, one per request; boxing buys nothing"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SchemePayment {
    /// `exact` (v1 or v2), or any scheme that is not `upto` (refused by the `exact` checks).
    Exact(PaymentPayload),
    /// v2 `upto`.
    Upto(UptoPaymentPayload),
}

/// A decoded 402 answer of either version (v1 JSON body, v2 `PAYMENT-REQUIRED` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PaymentRequired {
    /// v1 JSON body.
    V1(PaymentRequiredV1),
    /// v2 header.
    V2(PaymentRequiredV2),
}

/// A single requirement of either version (what `/verify` and `/settle` receive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PaymentRequirements {
    /// v1 (`maxAmountRequired`, network name).
    V1(PaymentRequirementsV1),
    /// v2 (`amount`, CAIP-2).
    V2(PaymentRequirementsV2),
}

/// Reads `x402Version` first, then the matching type; used by the `Deserialize` impls of the
/// version-dispatching enums. The codec does the same without buffering (see `codec`).
fn dispatch<'de, D, T>(
    d: D,
    v1: fn(Value) -> serde_json::Result<T>,
    v2: fn(Value) -> serde_json::Result<T>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Value::deserialize(d)?;
    let version = value
        .get("x402Version")
        .ok_or_else(|| D::Error::missing_field("x402Version"))?;
    let parsed = match X402Version::from_json(version) {
        Some(X402Version::V1) => v1(value),
        Some(X402Version::V2) => v2(value),
        None => {
            let message = format!("unsupported x402Version {version}");
            return Err(D::Error::custom(message));
        }
    };
    parsed.map_err(D::Error::custom)
}

impl<'de> Deserialize<'de> for PaymentPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        dispatch(
            d,
            |v| serde_json::from_value(v).map(Self::V1),
            |v| serde_json::from_value(v).map(Self::V2),
        )
    }
}

impl<'de> Deserialize<'de> for PaymentRequired {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        dispatch(
            d,
            |v| serde_json::from_value(v).map(Self::V1),
            |v| serde_json::from_value(v).map(Self::V2),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_tags_are_strict() {
        assert!(serde_json::from_str::<V1Tag>("1").is_ok());
        for bad in ["2", "\"1\"", "1.0", "-1", "null"] {
            assert!(serde_json::from_str::<V1Tag>(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&V2Tag::default()).unwrap(), "2");
        assert!(serde_json::from_str::<X402Version>("3").is_err());
    }

    #[test]
    fn enum_dispatch_by_version() {
        let v3 = r#"{"x402Version":3,"scheme":"exact"}"#;
        let err = serde_json::from_str::<PaymentPayload>(v3).unwrap_err();
        assert!(
            err.to_string().contains("unsupported x402Version 3"),
            "{err}"
        );
        let none = r#"{"scheme":"exact"}"#;
        assert!(serde_json::from_str::<PaymentPayload>(none).is_err());
    }
}
