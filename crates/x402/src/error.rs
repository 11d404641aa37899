//! Error types shared by the codec, the chain table and the crate as a whole.
//!
//! Callers branch on the narrow enums ([`DecodeError`], [`UnknownNetwork`],
//! [`crate::verify::Rejection`], [`crate::facilitator::FacilitatorError`]); [`Error`] only
//! gathers them for code that just propagates. Every enum has a bounded `metric_label`.

/// The crate-wide error, for callers that only propagate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A header or body could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A value could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A network name or CAIP-2 id is not in the chain table.
    #[error(transparent)]
    UnknownNetwork(#[from] UnknownNetwork),
    /// A requirement could not be built from its parts.
    #[error(transparent)]
    Requirement(#[from] crate::verify::RequirementError),
    /// Signing or signature recovery failed.
    #[error(transparent)]
    Signature(#[from] crate::eip3009::SignatureError),
    /// A call to the facilitator failed.
    #[error(transparent)]
    Facilitator(#[from] crate::facilitator::FacilitatorError),
    /// The HTTP facilitator client could not be built.
    #[cfg(feature = "http")]
    #[error(transparent)]
    FacilitatorConfig(#[from] crate::facilitator::FacilitatorConfigError),
    /// A private key could not be parsed.
    #[error(transparent)]
    PrivateKey(#[from] crate::key::InvalidPrivateKey),
}

/// Result alias with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bounded, machine-readable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Decode(e) => e.metric_label(),
            Self::Encode(_) => "encode_failed",
            Self::UnknownNetwork(_) => "unknown_network",
            Self::Requirement(e) => e.metric_label(),
            Self::Signature(e) => e.metric_label(),
            Self::Facilitator(e) => e.metric_label(),
            #[cfg(feature = "http")]
            Self::FacilitatorConfig(_) => "facilitator_config",
            Self::PrivateKey(_) => "invalid_private_key",
        }
    }
}

/// Why a base64(JSON) header or a JSON body was refused.
///
/// The variants are checked in this order: size, base64, JSON syntax, `x402Version`, shape.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The header was empty (or only whitespace).
    #[error("payment header is empty")]
    Empty,
    /// The input exceeds the size limit; nothing was decoded.
    #[error("payment header is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Length of the input in bytes.
        len: usize,
        /// The limit that was exceeded.
        max: usize,
    },
    /// Not standard-alphabet base64 (URL-safe characters, whitespace, bad length or padding).
    #[error("payment header is not valid base64")]
    Base64(#[source] base64::DecodeError),
    /// The decoded bytes are not a JSON document.
    #[error("payment header is not valid JSON")]
    Json(#[source] serde_json::Error),
    /// The JSON object has no `x402Version`.
    #[error("x402Version is missing")]
    MissingVersion,
    /// `x402Version` is not a protocol version this crate speaks (1 or 2).
    #[error("unsupported x402Version {0}")]
    UnsupportedVersion(String),
    /// Valid JSON of the wrong shape: a missing field, a number where a string is required,
    /// a malformed address or amount, a CAIP-2 id in a v1 payload, ...
    #[error("payment header has an invalid shape: {0}")]
    Shape(#[source] serde_json::Error),
}

impl DecodeError {
    /// A bounded, machine-readable reason (same as [`Self::metric_label`]).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge { .. } => "too_large",
            Self::Base64(_) => "invalid_base64",
            Self::Json(_) => "invalid_json",
            Self::MissingVersion => "missing_version",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::Shape(_) => "invalid_shape",
        }
    }

    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        self.reason()
    }
}

/// A value could not be serialized to JSON (only possible with foreign `Serialize` impls).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode value as JSON")]
pub struct EncodeError(#[from] pub serde_json::Error);

/// A network name or CAIP-2 id that is not in the chain table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported chain: {input} (use one of: {known})")]
pub struct UnknownNetwork {
    /// What the caller asked for.
    pub input: String,
    /// The canonical names that would have been accepted, comma-separated.
    pub known: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_snake_case() {
        let json_err = || serde_json::from_str::<u8>("x").unwrap_err();
        let all = [
            DecodeError::Empty,
            DecodeError::TooLarge { len: 2, max: 1 },
            DecodeError::Base64(base64::DecodeError::InvalidPadding),
            DecodeError::Json(json_err()),
            DecodeError::MissingVersion,
            DecodeError::UnsupportedVersion("3".into()),
            DecodeError::Shape(json_err()),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for e in &all {
            let r = e.reason();
            assert!(
                r.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
            );
            assert!(seen.insert(r), "duplicate reason {r}");
            assert_eq!(r, e.metric_label());
        }
    }
}
