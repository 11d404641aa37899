//! Exact decimal price math: no floats anywhere.
//!
//! Prices are written as decimal USDC strings (`"0.001"`). The gate charges an integer number of
//! the asset's atomic units, so every conversion ends in [`Decimal::to_atomic`]-style rounding:
//! exact rational arithmetic on integers, rounded half-up once, at the asset's decimals
//! (`0.001` → `1000`, never `999` as the Go v1 float path gave).
//!
//! Which price gates a request ([`effective_price`]): `perRequest` > per-token > `perHour`.
//! - Per-token prices are per million tokens: `perMTok`, or `perMTokInput` / `perMTokOutput`
//!   for prompt and completion tokens (each defaults to `perMTok`, else 0). One request is
//!   assumed to use `approxTokensPerRequest` tokens (default
//!   [`DEFAULT_APPROX_TOKENS_PER_REQUEST`]) at the higher of the two rates, so the request
//!   price is `rate × tokens ÷ 10⁶` (`1.0` → `0.001`). That is the `exact` price; metered
//!   (`upto`) charges are in [`crate::metering`].
//! - `perHour` is charged as five minutes of use per request, `perHour × 5 ÷ 60`, the conversion
//!   of the Go project's later shared schema. (The main Go verifier charged the raw hourly price
//!   per request, a 12× overcharge.)

use std::fmt;
use std::str::FromStr;

/// Tokens one request is assumed to use when pricing per million tokens.
pub const DEFAULT_APPROX_TOKENS_PER_REQUEST: u64 = 1000;
/// USDC's decimals.
pub const USDC_DECIMALS: u8 = 6;
/// Most significant digits accepted in a decimal price; with them every conversion fits `u128`.
pub const MAX_DIGITS: usize = 30;
/// Minutes of use one request is charged for when pricing per hour.
pub const MINUTES_PER_REQUEST_FOR_HOURLY: u128 = 5;

/// Why a price was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// Empty string.
    #[error("price is empty")]
    Empty,
    /// A leading minus sign.
    #[error("price {0:?} is negative")]
    Negative(String),
    /// Anything but digits with one optional decimal point (no sign, exponent or spaces).
    #[error("price {0:?} is not a decimal number (expected digits like 0.001)")]
    NotANumber(String),
    /// More significant digits than [`MAX_DIGITS`].
    #[error("price {0:?} has more than {MAX_DIGITS} digits")]
    TooManyDigits(String),
    /// The result does not fit the arithmetic (absurd decimals or token counts).
    #[error("price arithmetic overflowed")]
    Overflow,
    /// No price field is set.
    #[error("no price is set (one of perRequest, perMTok or perHour)")]
    Missing,
    /// The price rounds to zero atomic units: the gate would charge nothing.
    #[error("price {0} rounds to zero atomic units")]
    Zero(String),
    /// `approxTokensPerRequest` is zero.
    #[error("approxTokensPerRequest must be at least 1")]
    ZeroTokens,
    /// A per-token price finer than one atomic unit per million tokens: metered charges are
    /// computed in whole atomic units per million tokens.
    #[error("{field} {value} is finer than one atomic unit of the asset per million tokens")]
    TooPrecise {
        /// The price field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// `maxTokensPerRequest` is below `approxTokensPerRequest`.
    #[error("maxTokensPerRequest {max} is below approxTokensPerRequest {approx}")]
    MaxBelowApprox {
        /// `maxTokensPerRequest`.
        max: u64,
        /// `approxTokensPerRequest`.
        approx: u64,
    },
}

/// A non-negative decimal number `mantissa / 10^scale`, parsed exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    mantissa: u128,
    scale: u32,
}

impl Decimal {
    /// Parses `digits[.digits]`: no sign, no exponent, no surrounding spaces, at most
    /// [`MAX_DIGITS`] significant digits.
    pub fn parse(input: &str) -> Result<Self, PriceError> {
        if input.is_empty() {
            return Err(PriceError::Empty);
        }
        if input.starts_with('-') {
            return Err(PriceError::Negative(input.to_owned()));
        }
        let (int, frac) = match input.split_once('.') {
            Some((i, f)) => (i, f),
            None => (input, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty()
            || !all_digits(int)
            || !all_digits(frac)
            || (input.contains('.') && frac.is_empty())
        {
            return Err(PriceError::NotANumber(input.to_owned()));
        }
        let significant = int.trim_start_matches('0').len() + frac.len();
        if significant > MAX_DIGITS {
            return Err(PriceError::TooManyDigits(input.to_owned()));
        }
        let mut mantissa: u128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa * 10 + u128::from(b - b'0');
        }
        let scale = u32::try_from(frac.len()).map_err(|_| PriceError::Overflow)?;
        Ok(Self { mantissa, scale }.normalized())
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Rounds `self × mul ÷ div` half-up to `decimals` places and returns it in atomic units.
    fn scaled_atomic(&self, mul: u128, div: u128, decimals: u8) -> Result<u128, PriceError> {
        let unit = 10u128
            .checked_pow(u32::from(decimals))
            .ok_or(PriceError::Overflow)?;
        let num = self
            .mantissa
            .checked_mul(mul)
            .and_then(|n| n.checked_mul(unit))
            .ok_or(PriceError::Overflow)?;
        let den = 10u128
            .checked_pow(self.scale)
            .and_then(|d| d.checked_mul(div))
            .ok_or(PriceError::Overflow)?;
        // Half-up: floor((2·num + den) / (2·den)).
        let twice = num.checked_mul(2).ok_or(PriceError::Overflow)?;
        Ok(twice.checked_add(den).ok_or(PriceError::Overflow)? / (den * 2))
    }

    /// The value in atomic units of an asset with `decimals`, rounded half-up.
    pub fn to_atomic(&self, decimals: u8) -> Result<u128, PriceError> {
        self.scaled_atomic(1, 1, decimals)
    }

    /// The value in atomic units of an asset with `decimals` when that is a whole number,
    /// `Ok(None)` when the value has more decimals than the asset.
    pub fn to_exact_atomic(&self, decimals: u8) -> Result<Option<u128>, PriceError> {
        let unit = 10u128
            .checked_pow(u32::from(decimals))
            .ok_or(PriceError::Overflow)?;
        let num = self
            .mantissa
            .checked_mul(unit)
            .ok_or(PriceError::Overflow)?;
        let den = 10u128.checked_pow(self.scale).ok_or(PriceError::Overflow)?;
        Ok(num.is_multiple_of(den).then(|| num / den))
    }

    /// The larger of two values.
    pub fn max(self, other: Self) -> Result<Self, PriceError> {
        let scale = self.scale.max(other.scale);
        let widen = |d: Self| {
            10u128
                .checked_pow(scale - d.scale)
                .and_then(|f| d.mantissa.checked_mul(f))
                .ok_or(PriceError::Overflow)
        };
        Ok(if widen(self)? >= widen(other)? {
            self
        } else {
            other
        })
    }

    /// `self × tokens ÷ 10⁶`, exactly (a per-million-token price to a per-request price).
    pub fn per_mtok_to_per_request(&self, tokens: u64) -> Result<Self, PriceError> {
        if tokens == 0 {
            return Err(PriceError::ZeroTokens);
        }
        let mantissa = self
            .mantissa
            .checked_mul(u128::from(tokens))
            .ok_or(PriceError::Overflow)?;
        Ok(Self {
            mantissa,
            scale: self.scale + 6,
        }
        .normalized())
    }

    fn normalized(mut self) -> Self {
        while self.scale > 0 && self.mantissa.is_multiple_of(10) {
            self.mantissa /= 10;
            self.scale -= 1;
        }
        if self.mantissa == 0 {
            self.scale = 0;
        }
        self
    }
}

impl FromStr for Decimal {
    type Err = PriceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Decimal {
    /// The shortest exact form: `0.00125`, `1`, `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return f.write_str(&digits);
        }
        if digits.len() <= scale {
            write!(f, "0.{}{}", "0".repeat(scale - digits.len()), digits)
        } else {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{int}.{frac}")
        }
    }
}

/// Which field of `payment.price` set the gated price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// `perRequest`.
    PerRequest,
    /// A per-token price: `perMTok`, `perMTokInput` or `perMTokOutput`.
    PerMTok,
    /// `perHour`.
    PerHour,
}

/// The offer's price fields, as strings (as in the resource).
#[derive(Debug, Clone, Copy, Default)]
pub struct PriceInput<'a> {
    /// `perRequest`.
    pub per_request: Option<&'a str>,
    /// `perMTok`.
    pub per_mtok: Option<&'a str>,
    /// `perMTokInput` (prompt tokens; default `perMTok`).
    pub per_mtok_input: Option<&'a str>,
    /// `perMTokOutput` (completion tokens; default `perMTok`).
    pub per_mtok_output: Option<&'a str>,
    /// `perHour`.
    pub per_hour: Option<&'a str>,
    /// `approxTokensPerRequest` (for per-token prices).
    pub approx_tokens_per_request: Option<u64>,
    /// `maxTokensPerRequest` (for metered per-token prices; see [`crate::metering`]).
    pub max_tokens_per_request: Option<u64>,
}

impl PriceInput<'_> {
    /// Whether any per-token price is set.
    pub fn is_per_token(&self) -> bool {
        [self.per_mtok, self.per_mtok_input, self.per_mtok_output]
            .into_iter()
            .any(|p| present(p).is_some())
    }

    /// The per-token rates as decimals (input, output): each side's own field, else
    /// `perMTok`, else zero.
    pub fn token_rates(&self) -> Result<(Decimal, Decimal), PriceError> {
        let parse = |v: Option<&str>| present(v).map(Decimal::parse).transpose();
        let common = parse(self.per_mtok)?;
        let zero = Decimal {
            mantissa: 0,
            scale: 0,
        };
        let input = parse(self.per_mtok_input)?.or(common).unwrap_or(zero);
        let output = parse(self.per_mtok_output)?.or(common).unwrap_or(zero);
        Ok((input, output))
    }
}

/// A field that is set to something other than blanks.
fn present(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !v.trim().is_empty())
}

/// The price one request is charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePrice {
    /// The field it came from.
    pub source: PriceSource,
    /// The field's value as written (parsed); for per-token prices the higher of the input and
    /// output rates, the one the approximation uses.
    pub original: Decimal,
    /// Atomic units charged per request (`> 0`).
    pub atomic: u128,
    /// Tokens per request assumed (only for `perMTok`).
    pub approx_tokens_per_request: Option<u64>,
}

/// Applies the precedence `perRequest` > `perMTok` > `perHour` and converts to atomic units of an
/// asset with `decimals`. A price that is missing, malformed or rounds to zero is an error: the
/// gate never charges nothing by accident.
pub fn effective_price(input: PriceInput<'_>, decimals: u8) -> Result<EffectivePrice, PriceError> {
    let (source, original, atomic, tokens) = if let Some(p) = present(input.per_request) {
        let d = Decimal::parse(p)?;
        (PriceSource::PerRequest, d, d.to_atomic(decimals)?, None)
    } else if input.is_per_token() {
        let (rate_in, rate_out) = input.token_rates()?;
        let d = rate_in.max(rate_out)?;
        let tokens = input
            .approx_tokens_per_request
            .unwrap_or(DEFAULT_APPROX_TOKENS_PER_REQUEST);
        let per_request = d.per_mtok_to_per_request(tokens)?;
        (
            PriceSource::PerMTok,
            d,
            per_request.to_atomic(decimals)?,
            Some(tokens),
        )
    } else if let Some(p) = present(input.per_hour) {
        let d = Decimal::parse(p)?;
        let atomic = d.scaled_atomic(MINUTES_PER_REQUEST_FOR_HOURLY, 60, decimals)?;
        (PriceSource::PerHour, d, atomic, None)
    } else {
        return Err(PriceError::Missing);
    };
    if atomic == 0 {
        return Err(PriceError::Zero(original.to_string()));
    }
    Ok(EffectivePrice {
        source,
        original,
        atomic,
        approx_tokens_per_request: tokens,
    })
}

/// Formats atomic units as a decimal amount of an asset with `decimals` (`1000`, 6 → `0.001`).
pub fn format_atomic(atomic: u128, decimals: u8) -> String {
    Decimal {
        mantissa: atomic,
        scale: u32::from(decimals),
    }
    .normalized()
    .to_string()
}

#[cfg(test)]
mod tests;
