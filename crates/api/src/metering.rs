//! Metered per-token billing (x402 `upto`): exact integer charges for the tokens an answer used.
//!
//! An offer priced per token ([`crate::price`]) is sold two ways:
//! - `upto`: the buyer authorizes the **maximum** — `maxTokensPerRequest` tokens (default
//!   [`DEFAULT_MAX_TOKENS_FACTOR`] × `approxTokensPerRequest`) at the higher rate, rounded up —
//!   and the gateway settles what the answer used: `⌈(input × inRate + output × outRate) ÷ 10⁶⌉`
//!   atomic units, rates in atomic units per million tokens, one rounding per request, never
//!   more than the maximum (nor the amount authorized);
//! - `exact`, for clients without `upto`: the approximate price of `approxTokensPerRequest`
//!   tokens ([`crate::price::effective_price`]), which is also the **fallback** an `upto`
//!   request is charged when the answer reports no usage — never the maximum silently.
//!
//! Rates must be whole atomic units per million tokens (`0.000001` USDC per million tokens is the
//! finest), so every charge is exact; a finer price is refused with
//! [`PriceError::TooPrecise`].

use std::fmt;

#[path = "metering/usage.rs"]
pub mod usage;

use crate::price::{self, PriceError, PriceInput, PriceSource};

/// Tokens a per-million-token rate is for.
pub const TOKENS_PER_MTOK: u128 = 1_000_000;

/// Without `maxTokensPerRequest`, the maximum is this many times `approxTokensPerRequest`.
pub const DEFAULT_MAX_TOKENS_FACTOR: u64 = 10;

/// Per-token rates, in atomic units of the asset per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRates {
    /// Prompt (input) tokens.
    pub input: u128,
    /// Completion (output) tokens.
    pub output: u128,
}

impl TokenRates {
    /// The higher of the two rates (what the maximum and the approximation use).
    pub fn highest(&self) -> u128 {
        self.input.max(self.output)
    }
}

/// Tokens an answer used, as the upstream reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// `usage.prompt_tokens`.
    pub input: u64,
    /// `usage.completion_tokens`.
    pub output: u64,
}

impl TokenUsage {
    /// `input + output`.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// What a metered route charges: its rates, the most one request may cost and the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tariff {
    /// Per-token rates.
    pub rates: TokenRates,
    /// The `upto` maximum in atomic units (the `amount` a buyer authorizes).
    pub maximum: u128,
    /// Charged when the answer reports no usage (the `exact` price), at most `maximum`.
    pub fallback: u128,
}

/// A per-token offer's metered terms, as the controller derives them from the offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeteredPrice {
    /// Rates, maximum and fallback.
    pub tariff: Tariff,
    /// `maxTokensPerRequest` (or its default).
    pub max_tokens: u64,
    /// `approxTokensPerRequest` (or its default): the tokens the fallback is priced at.
    pub fallback_tokens: u64,
}

/// `⌈num ÷ den⌉`.
fn ceil_div(num: u128, den: u128) -> u128 {
    num / den + u128::from(!num.is_multiple_of(den))
}

/// The metered terms of an offer priced per token; `Ok(None)` when its price is not per token
/// (`perRequest` wins, or `perHour`).
pub fn metered_price(
    input: PriceInput<'_>,
    decimals: u8,
) -> Result<Option<MeteredPrice>, PriceError> {
    let effective = price::effective_price(input, decimals)?;
    if effective.source != PriceSource::PerMTok {
        return Ok(None);
    }
    let (rate_in, rate_out) = input.token_rates()?;
    let exact = |field: &'static str, rate: price::Decimal| {
        rate.to_exact_atomic(decimals)?
            .ok_or_else(|| PriceError::TooPrecise {
                field,
                value: rate.to_string(),
            })
    };
    let input_field = if input.per_mtok_input.is_some() {
        "perMTokInput"
    } else {
        "perMTok"
    };
    let output_field = if input.per_mtok_output.is_some() {
        "perMTokOutput"
    } else {
        "perMTok"
    };
    let rates = TokenRates {
        input: exact(input_field, rate_in)?,
        output: exact(output_field, rate_out)?,
    };
    let fallback_tokens = effective
        .approx_tokens_per_request
        .unwrap_or(price::DEFAULT_APPROX_TOKENS_PER_REQUEST);
    let max_tokens = match input.max_tokens_per_request {
        Some(max) if max < fallback_tokens => {
            return Err(PriceError::MaxBelowApprox {
                max,
                approx: fallback_tokens,
            });
        }
        Some(max) => max,
        None => fallback_tokens
            .checked_mul(DEFAULT_MAX_TOKENS_FACTOR)
            .ok_or(PriceError::Overflow)?,
    };
    let maximum = u128::from(max_tokens)
        .checked_mul(rates.highest())
        .map(|n| ceil_div(n, TOKENS_PER_MTOK))
        .ok_or(PriceError::Overflow)?;
    Ok(Some(MeteredPrice {
        tariff: Tariff {
            rates,
            maximum,
            fallback: effective.atomic.min(maximum),
        },
        max_tokens,
        fallback_tokens,
    }))
}

/// `⌈(input × inRate + output × outRate) ÷ 10⁶⌉` atomic units; `None` when it does not fit 128
/// bits (the caller charges its cap).
pub fn usage_cost(rates: TokenRates, usage: TokenUsage) -> Option<u128> {
    let input = u128::from(usage.input).checked_mul(rates.input)?;
    let output = u128::from(usage.output).checked_mul(rates.output)?;
    Some(ceil_div(input.checked_add(output)?, TOKENS_PER_MTOK))
}

/// What a charge is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeBasis {
    /// The usage the upstream reported.
    Usage(TokenUsage),
    /// No usage was reported: the declared fallback.
    Fallback,
}

/// The amount to settle for one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// Atomic units to settle.
    pub amount: u128,
    /// What it is based on.
    pub basis: ChargeBasis,
    /// The usage cost more than the cap (the maximum, or the amount authorized if lower) and
    /// was cut to it.
    pub capped: bool,
}

/// The charge for an answer that reported `usage` (or none), for a payment that authorized
/// `authorized` atomic units: the usage cost (or the fallback), never above the tariff's
/// maximum nor the authorization.
pub fn charge(tariff: &Tariff, usage: Option<TokenUsage>, authorized: u128) -> Charge {
    let cap = tariff.maximum.min(authorized);
    let (cost, basis) = match usage {
        Some(u) => (
            usage_cost(tariff.rates, u).unwrap_or(u128::MAX),
            ChargeBasis::Usage(u),
        ),
        None => (tariff.fallback, ChargeBasis::Fallback),
    };
    Charge {
        amount: cost.min(cap),
        basis,
        capped: cost > cap,
    }
}

/// The key of the metering report a metered answer's receipt (`PAYMENT-RESPONSE`) carries in
/// its `extensions`.
pub const RECEIPT_EXTENSION: &str = "metering";

/// What a metered receipt reports besides the settled `amount`: what the charge is based on
/// (`usage` with the token counts, or `fallback`), whether the usage was capped at the
/// maximum, and the maximum (decimal strings for amounts, as x402 writes them).
pub fn receipt_report(charge: &Charge, maximum: u128) -> serde_json::Value {
    let mut report = serde_json::json!({
        "basis": match charge.basis {
            ChargeBasis::Usage(_) => "usage",
            ChargeBasis::Fallback => "fallback",
        },
        "capped": charge.capped,
        "maximum": maximum.to_string(),
    });
    if let ChargeBasis::Usage(u) = charge.basis {
        report["inputTokens"] = u.input.into();
        report["outputTokens"] = u.output.into();
    }
    report
}

impl fmt::Display for ChargeBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(u) => write!(f, "{} input + {} output tokens", u.input, u.output),
            Self::Fallback => f.write_str("no usage reported: fallback price"),
        }
    }
}

/// The sentence a metered route's 402 carries in its description: the rates and what a
/// request costs. `upto` says whether the route sells the `upto` scheme (gateway mode `proxy`,
/// where the verifier sees the answer and meters it): then a request paid with `upto` is
/// charged the tokens its answer reports, rounded up, at most the maximum, and the fallback
/// when the answer reports none; paid with `exact` (and always in ForwardAuth mode), it costs
/// the fallback.
pub fn describe(price: &MeteredPrice, decimals: u8, symbol: &str, upto: bool) -> String {
    let t = &price.tariff;
    let amount = |atomic: u128| format!("{} {symbol}", price::format_atomic(atomic, decimals));
    let rates = if t.rates.input == t.rates.output {
        format!("{} per million tokens", amount(t.rates.input))
    } else {
        format!(
            "{} per million input tokens and {} per million output tokens",
            amount(t.rates.input),
            amount(t.rates.output)
        )
    };
    let fallback = amount(t.fallback);
    let tokens = price.fallback_tokens;
    if !upto {
        return format!(
            "Metered per token: {rates}. A request costs {fallback} ({tokens} tokens), paid with \
             the exact scheme."
        );
    }
    format!(
        "Metered per token: {rates}. Paid with upto, a request is charged the tokens its answer \
         reports, rounded up to the atomic unit, at most {} ({} tokens); an answer without usage \
         is charged {fallback} ({tokens} tokens). Paid with exact, a request costs {fallback}.",
        amount(t.maximum),
        price.max_tokens,
    )
}

#[cfg(test)]
#[path = "metering/tests.rs"]
mod tests;

#[cfg(test)]
#[path = "metering/usage_tests.rs"]
mod usage_tests;
