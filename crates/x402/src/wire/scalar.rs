//! Strict string forms of the scalars on the x402 wire.
//!
//! Amounts and timestamps travel as decimal **strings** (a JSON number is refused), addresses as
//! `0x` + 40 hex digits in any case, nonces as `0x` + 64 hex digits, signatures as `0x` + hex.
//! The `serde` adapters in this module are used with `#[serde(with = "...")]` on alloy types;
//! the `parse_*` functions are the same rules for configuration and tests.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// Why a scalar string was refused. The text ends up inside [`crate::DecodeError::Shape`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {problem}")]
pub struct ScalarError {
    what: &'static str,
    problem: &'static str,
}

fn err(what: &'static str, problem: &'static str) -> ScalarError {
    ScalarError { what, problem }
}

fn strip_0x<'a>(s: &'a str, what: &'static str) -> Result<&'a str, ScalarError> {
    s.strip_prefix("0x").ok_or(err(what, "must start with 0x"))
}

fn all_hex(s: &str, what: &'static str) -> Result<(), ScalarError> {
    if s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(err(what, "must be hexadecimal"))
    }
}

/// Parses `0x` + 40 hex digits, any letter case (the EIP-55 checksum is not enforced, as no
/// official client enforces it either).
pub fn parse_address(s: &str) -> Result<Address, ScalarError> {
    const WHAT: &str = "address";
    let hex = strip_0x(s, WHAT)?;
    all_hex(hex, WHAT)?;
    if hex.len() != 40 {
        return Err(err(WHAT, "must be 20 bytes (40 hex digits)"));
    }
    Address::from_str(hex).map_err(|_| err(WHAT, "must be hexadecimal"))
}

/// Parses `0x` + 64 hex digits (an EIP-3009 nonce).
pub fn parse_b256(s: &str) -> Result<B256, ScalarError> {
    const WHAT: &str = "bytes32";
    let hex = strip_0x(s, WHAT)?;
    all_hex(hex, WHAT)?;
    if hex.len() != 64 {
        return Err(err(WHAT, "must be 32 bytes (64 hex digits)"));
    }
    B256::from_str(hex).map_err(|_| err(WHAT, "must be hexadecimal"))
}

/// Parses `0x` + an even, non-zero number of hex digits (a signature).
pub fn parse_hex_bytes(s: &str) -> Result<Bytes, ScalarError> {
    const WHAT: &str = "hex bytes";
    let hex = strip_0x(s, WHAT)?;
    all_hex(hex, WHAT)?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return Err(err(WHAT, "must be a non-empty, even number of hex digits"));
    }
    Bytes::from_str(hex).map_err(|_| err(WHAT, "must be hexadecimal"))
}

fn digits_only(s: &str, what: &'static str) -> Result<(), ScalarError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            what,
            "must be a decimal string of digits (no sign, no 0x)",
        ));
    }
    Ok(())
}

/// Parses a decimal uint256 string, e.g. an amount in atomic units.
pub fn parse_decimal_u256(s: &str) -> Result<U256, ScalarError> {
    const WHAT: &str = "uint256";
    digits_only(s, WHAT)?;
    U256::from_str_radix(s, 10).map_err(|_| err(WHAT, "does not fit in 256 bits"))
}

/// Parses a decimal u64 string, e.g. a unix timestamp (x402-rs refuses anything larger).
pub fn parse_decimal_u64(s: &str) -> Result<u64, ScalarError> {
    const WHAT: &str = "timestamp";
    digits_only(s, WHAT)?;
    s.parse().map_err(|_| err(WHAT, "does not fit in 64 bits"))
}

fn de_str<'de, D: Deserializer<'de>, T>(
    d: D,
    parse: fn(&str) -> Result<T, ScalarError>,
) -> Result<T, D::Error> {
    // A `String` (not `&str`) so escaped JSON strings are accepted too; a JSON number is refused
    // here with serde's "invalid type: integer, expected a string".
    let s = String::deserialize(d)?;
    parse(&s).map_err(D::Error::custom)
}

/// Serde adapter: [`Address`] as a strict hex string, written EIP-55 checksummed.
pub(crate) mod address {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(a: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&a.to_checksum(None))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        de_str(d, parse_address)
    }
}

/// Serde adapter: `Option<Address>` as [`address`] (use with `default` and
/// `skip_serializing_if = "Option::is_none"`; an explicit `null` is refused).
pub(crate) mod opt_address {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(a: &Option<Address>, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => address::serialize(a, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Address>, D::Error> {
        address::deserialize(d).map(Some)
    }
}

/// Serde adapter: [`B256`] as `0x` + 64 lowercase hex digits.
pub(crate) mod b256 {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &B256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:#x}"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<B256, D::Error> {
        de_str(d, parse_b256)
    }
}

/// Serde adapter: [`Bytes`] as `0x` + lowercase hex digits.
pub(crate) mod hex_bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v}"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        de_str(d, parse_hex_bytes)
    }
}

/// Serde adapter: [`U256`] as a decimal string.
pub(crate) mod dec_u256 {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        de_str(d, parse_decimal_u256)
    }
}

/// Serde adapter: `u64` as a decimal string.
pub(crate) mod dec_u64 {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        de_str(d, parse_decimal_u64)
    }
}

/// A v1 network name such as `base-sepolia`: lowercase ASCII letters, digits and `-`.
///
/// A CAIP-2 id (`eip155:84532`) is refused: v1 peers (x402-rs) answer `unsupported_chain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct V1Network(String);

impl V1Network {
    /// The name as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for V1Network {
    type Err = ScalarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "v1 network";
        if s.contains(':') {
            return Err(err(
                WHAT,
                "a v1 payload names its network by name, not by CAIP-2 id",
            ));
        }
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(err(WHAT, "must be 1-64 lowercase letters, digits or '-'"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for V1Network {
    type Error = ScalarError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<V1Network> for String {
    fn from(n: V1Network) -> Self {
        n.0
    }
}

impl fmt::Display for V1Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A CAIP-2 chain id, `namespace:reference`, e.g. `eip155:84532`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Caip2(String);

impl Caip2 {
    /// The `eip155:<chain id>` id of an EVM chain.
    pub fn eip155(chain_id: u64) -> Self {
        Self(format!("eip155:{chain_id}"))
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The chain id when the namespace is `eip155` and the reference a canonical decimal.
    pub fn eip155_chain_id(&self) -> Option<u64> {
        let reference = self.0.strip_prefix("eip155:")?;
        let canonical = !reference.starts_with('0') || reference == "0";
        if canonical && reference.bytes().all(|b| b.is_ascii_digit()) {
            reference.parse().ok()
        } else {
            None
        }
    }
}

impl FromStr for Caip2 {
    type Err = ScalarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "CAIP-2 network";
        let (ns, reference) = s
            .split_once(':')
            .ok_or(err(WHAT, "must be namespace:reference"))?;
        let ns_ok = (3..=8).contains(&ns.len())
            && ns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ref_ok = (1..=32).contains(&reference.len())
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ns_ok && ref_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(err(WHAT, "must match [-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}"))
        }
    }
}

impl TryFrom<String> for Caip2 {
    type Error = ScalarError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Caip2> for String {
    fn from(n: Caip2) -> Self {
        n.0
    }
}

impl fmt::Display for Caip2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
#[path = "scalar_tests.rs"]
mod tests;
