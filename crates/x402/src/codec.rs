//! base64(JSON) header codecs and the JSON 402 body parser.
//!
//! Accepted: the RFC 4648 **standard** alphabet, with or without `=` padding (official clients
//! pad; some hand-rolled ones do not), surrounded by optional spaces or tabs (HTTP OWS).
//! Refused, each with a typed [`DecodeError`]: empty or oversized input (checked before any
//! decoding), URL-safe characters, inner whitespace, non-canonical trailing bits, non-JSON, a
//! top-level value that is not an object, a missing or unknown `x402Version`, and any shape
//! error of the wire types. Encoding always writes padded standard base64 of compact JSON.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use serde::de::{DeserializeOwned, Error as _};

use crate::error::{DecodeError, EncodeError};
use crate::wire::X402Version;
use crate::wire::{PaymentPayload, PaymentRequired, PaymentRequiredV2, SettleResponse};
use crate::wire::{SCHEME_UPTO, SchemePayment};

/// HTTP header names (compare case-insensitively; these are the spellings of the specs).
pub mod headers {
    /// v1 client → server payment (TS v2 servers also read v2 payloads under this name).
    pub const X_PAYMENT: &str = "X-PAYMENT";
    /// v1 server → client settlement result.
    pub const X_PAYMENT_RESPONSE: &str = "X-PAYMENT-RESPONSE";
    /// v2 server → client requirements.
    pub const PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";
    /// v2 client → server payment.
    pub const PAYMENT_SIGNATURE: &str = "PAYMENT-SIGNATURE";
    /// v2 server → client settlement result.
    pub const PAYMENT_RESPONSE: &str = "PAYMENT-RESPONSE";
}

/// Largest payment header accepted, in bytes of base64 text. A v2 payload is about 1.1 KB.
pub const MAX_HEADER_LEN: usize = 16 * 1024;

/// Largest JSON body accepted by [`parse_payment_required_body`].
pub const MAX_BODY_LEN: usize = 64 * 1024;

const DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const ENCODER: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Decodes the base64 layer of a header: trims OWS, enforces [`MAX_HEADER_LEN`], then decodes.
pub fn decode_base64(header: &str) -> Result<Vec<u8>, DecodeError> {
    let text = header.trim_matches([' ', '\t']);
    if text.is_empty() {
        return Err(DecodeError::Empty);
    }
    if text.len() > MAX_HEADER_LEN {
        return Err(DecodeError::TooLarge {
            len: text.len(),
            max: MAX_HEADER_LEN,
        });
    }
    DECODER.decode(text).map_err(DecodeError::Base64)
}

/// Decodes a base64(JSON object) header into any wire type.
pub fn decode_header<T: DeserializeOwned>(header: &str) -> Result<T, DecodeError> {
    from_json_object(&decode_base64(header)?)
}

/// Decodes `X-PAYMENT` or `PAYMENT-SIGNATURE` into a payload of the version it declares.
pub fn decode_payment_payload(header: &str) -> Result<PaymentPayload, DecodeError> {
    let json = decode_base64(header)?;
    Ok(match peek_version(&json)? {
        X402Version::V1 => PaymentPayload::V1(from_json_object(&json)?),
        X402Version::V2 => PaymentPayload::V2(from_json_object(&json)?),
    })
}

/// Decodes a payment header of either scheme: a v2 payload whose `accepted.scheme` is `upto`
/// becomes [`SchemePayment::Upto`], anything else is decoded as [`decode_payment_payload`]
/// does.
pub fn decode_scheme_payment(header: &str) -> Result<SchemePayment, DecodeError> {
    #[derive(serde::Deserialize)]
    struct Accepted {
        scheme: Option<serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct Peek {
        accepted: Option<Accepted>,
    }
    let json = decode_base64(header)?;
    Ok(match peek_version(&json)? {
        X402Version::V1 => SchemePayment::Exact(PaymentPayload::V1(from_json_object(&json)?)),
        X402Version::V2 => {
            let peek: Peek = from_json_object(&json)?;
            let scheme = peek.accepted.and_then(|a| a.scheme);
            if scheme.as_ref().and_then(|s| s.as_str()) == Some(SCHEME_UPTO) {
                SchemePayment::Upto(from_json_object(&json)?)
            } else {
                SchemePayment::Exact(PaymentPayload::V2(from_json_object(&json)?))
            }
        }
    })
}

/// Decodes a `PAYMENT-REQUIRED` header (v2 only: v1 sends its requirements in the body).
pub fn decode_payment_required(header: &str) -> Result<PaymentRequiredV2, DecodeError> {
    let json = decode_base64(header)?;
    match peek_version(&json)? {
        X402Version::V2 => from_json_object(&json),
        X402Version::V1 => Err(DecodeError::UnsupportedVersion("1".into())),
    }
}

/// Decodes a `PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE` header.
pub fn decode_settle_response(header: &str) -> Result<SettleResponse, DecodeError> {
    decode_header(header)
}

/// Parses a 402 JSON body of either version (v1 requirements, or a v2 body that repeats the
/// `PAYMENT-REQUIRED` content). A v2 client must read the header first (TS clients do).
pub fn parse_payment_required_body(body: &[u8]) -> Result<PaymentRequired, DecodeError> {
    if body.len() > MAX_BODY_LEN {
        return Err(DecodeError::TooLarge {
            len: body.len(),
            max: MAX_BODY_LEN,
        });
    }
    Ok(match peek_version(body)? {
        X402Version::V1 => PaymentRequired::V1(from_json_object(body)?),
        X402Version::V2 => PaymentRequired::V2(from_json_object(body)?),
    })
}

/// Encodes a wire value as padded standard base64 of its compact JSON.
pub fn encode_header<T: Serialize + ?Sized>(value: &T) -> Result<String, EncodeError> {
    Ok(ENCODER.encode(serde_json::to_vec(value)?))
}

/// Parses JSON that must be an object, mapping syntax errors to [`DecodeError::Json`] and
/// type errors to [`DecodeError::Shape`].
pub(crate) fn from_json_object<T: DeserializeOwned>(json: &[u8]) -> Result<T, DecodeError> {
    // serde's derived structs also accept JSON arrays (positional fields): refuse those.
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => {
            // Syntax errors still win, so `not json` reports invalid_json, `[1]` invalid_shape.
            serde_json::from_slice::<serde::de::IgnoredAny>(json).map_err(DecodeError::Json)?;
            return Err(DecodeError::Shape(serde_json::Error::custom(
                "expected a JSON object",
            )));
        }
        None => {
            return Err(DecodeError::Json(serde_json::Error::custom(
                "no JSON value",
            )));
        }
    }
    serde_json::from_slice(json).map_err(|e| {
        if e.is_data() {
            DecodeError::Shape(e)
        } else {
            DecodeError::Json(e)
        }
    })
}

fn peek_version(json: &[u8]) -> Result<X402Version, DecodeError> {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "x402Version")]
        version: Option<serde_json::Value>,
    }
    let peek: Peek = from_json_object(json)?;
    let version = peek.version.ok_or(DecodeError::MissingVersion)?;
    X402Version::from_json(&version)
        .ok_or_else(|| DecodeError::UnsupportedVersion(version.to_string()))
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
