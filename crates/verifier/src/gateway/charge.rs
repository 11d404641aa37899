//! What to charge and when to settle, in gateway mode `proxy`: pure decisions on what the
//! upstream answered and how the answer reached the client. The I/O shell
//! ([`super::serve`]) only reads, calls these, and acts.
//!
//! | Upstream answer | Decision |
//! |---|---|
//! | `< 400`, not a stream, fits the buffer | read it whole, **settle**, then send it with the receipt |
//! | `< 400`, a stream (SSE or a type the offer declares), or larger than the buffer | send at once, settle when it ended and reached the client, receipt as a trailer |
//! | `101` to a WebSocket upgrade the route allows | **settle**, then switch protocols with the receipt |
//! | `>= 400`, other `1xx` | pass through, no charge, reservation released |
//! | no answer, timeout, broken body | no charge, reservation released, 502/504 |
//!
//! The amount settled is decided after the answer ([`charge`]): with `exact` it is the
//! authorized amount; with `upto` it is computed from the tokens the answer's [`Usage`]
//! reports (`⌈tokens × rate ÷ 10⁶⌉`, never above the maximum nor the authorization), or the
//! route's declared fallback when the answer reports none ([`obol_api::metering::charge`]).

use axum::http::StatusCode;
use obol_api::metering::{self, ChargeBasis, Tariff, TokenUsage};
use obol_x402::U256;

/// The content type that is always streamed.
pub const EVENT_STREAM: &str = "text/event-stream";

/// What the upstream's answer head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'a> {
    /// Its status.
    pub status: StatusCode,
    /// `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// `Content-Length`, if declared.
    pub content_length: Option<u64>,
    /// The request asked for a WebSocket upgrade (on a route that allows them).
    pub upgrade: bool,
}

/// How a route's answers are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// Content types streamed besides [`EVENT_STREAM`] (lower-case, no parameters).
    pub streaming_types: &'a [String],
    /// Largest answer read whole before settling; larger ones are streamed.
    pub max_buffer: u64,
}

/// What to do once the upstream's answer head arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterHead {
    /// Read the whole answer, settle, then send it.
    BufferThenSettle,
    /// Send it as it comes; settle when it ended and reached the client.
    StreamThenSettle,
    /// The upstream accepted a WebSocket upgrade: settle, then switch protocols.
    SettleThenUpgrade,
    /// No charge: release the reservation and pass the answer through.
    PassUnpaid,
}

/// The media type of a `Content-Type` value: lower-case, parameters cut off.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether answers of `content_type` are streams under `delivery`.
pub fn is_stream(content_type: Option<&str>, delivery: &Delivery<'_>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let media = media_type(ct);
    media == EVENT_STREAM || delivery.streaming_types.contains(&media)
}

/// The decision once the head arrived.
pub fn after_head(head: &Head<'_>, delivery: &Delivery<'_>) -> AfterHead {
    let status = head.status.as_u16();
    if head.upgrade && head.status == StatusCode::SWITCHING_PROTOCOLS {
        return AfterHead::SettleThenUpgrade;
    }
    if !(200..400).contains(&status) {
        return AfterHead::PassUnpaid;
    }
    let too_large = head
        .content_length
        .is_some_and(|len| len > delivery.max_buffer);
    if is_stream(head.content_type, delivery) || too_large {
        AfterHead::StreamThenSettle
    } else {
        AfterHead::BufferThenSettle
    }
}

/// How a streamed answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream finished and every byte was handed to the client's connection.
    Finished {
        /// Bytes delivered.
        delivered: u64,
    },
    /// The upstream broke off or went quiet for too long.
    UpstreamFailed,
    /// The client went away or a write failed (the body was dropped before its end).
    ClientGone,
}

/// What to do at the end of a streamed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEnd {
    /// Settle (a fresh payment) or mark spent (a payment settled before).
    Charge,
    /// Nothing was served: give the reservation back.
    Release,
}

/// The decision at the end of a stream: only an answer that ended normally and delivered at
/// least one byte is charged.
pub fn at_end(end: StreamEnd) -> AtEnd {
    match end {
        StreamEnd::Finished { delivered } if delivered > 0 => AtEnd::Charge,
        _ => AtEnd::Release,
    }
}

/// What an answer used, for metered prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Body bytes delivered.
    pub bytes: u64,
    /// The tokens the upstream's answer reported (JSON `usage`, or a stream's last usage
    /// event), if it reported any. Never read from the client's request.
    pub tokens: Option<TokenUsage>,
}

/// The x402 scheme a payment was made with, and what it settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The authorized amount, always.
    Exact,
    /// Metered: what the answer used under the route's tariff, at most the authorized amount.
    Upto(Tariff),
}

/// The amount to settle for one answer, and what it is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charged {
    /// Atomic units to settle.
    pub amount: U256,
    /// `None` for `exact`; for `upto`, the usage charged or the fallback.
    pub basis: Option<ChargeBasis>,
    /// The usage cost more than the cap and was cut to it.
    pub capped: bool,
}

/// How much to settle for an answer, decided after it: `exact` settles what was authorized;
/// `upto` settles the metered charge of the reported tokens (or the fallback), never more than
/// the tariff's maximum nor the `authorized` amount.
pub fn charge(scheme: Scheme, authorized: U256, usage: Usage) -> Charged {
    match scheme {
        Scheme::Exact => Charged {
            amount: authorized,
            basis: None,
            capped: false,
        },
        Scheme::Upto(tariff) => {
            let authorized = u128::try_from(authorized).unwrap_or(u128::MAX);
            let c = metering::charge(&tariff, usage.tokens, authorized);
            Charged {
                amount: U256::from(c.amount),
                basis: Some(c.basis),
                capped: c.capped,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELIVERY: Delivery<'static> = Delivery {
        streaming_types: &[],
        max_buffer: 1000,
    };

    #[test]
    fn after_head_table() {
        let ndjson = ["application/x-ndjson".to_owned()];
        let declared = Delivery {
            streaming_types: &ndjson,
            max_buffer: 1000,
        };
        let head = |status: u16, ct: Option<&'static str>, len: Option<u64>| Head {
            status: StatusCode::from_u16(status).unwrap(),
            content_type: ct,
            content_length: len,
            upgrade: false,
        };
        let upgraded = |status: u16| Head {
            upgrade: true,
            ..head(status, None, None)
        };
        let cases = [
            (
                "json 200",
                head(200, Some("application/json"), Some(10)),
                DELIVERY,
                AfterHead::BufferThenSettle,
            ),
            (
                "no type",
                head(200, None, None),
                DELIVERY,
                AfterHead::BufferThenSettle,
            ),
            (
                "204",
                head(204, None, Some(0)),
                DELIVERY,
                AfterHead::BufferThenSettle,
            ),
            (
                "redirect",
                head(302, None, None),
                DELIVERY,
                AfterHead::BufferThenSettle,
            ),
            (
                "sse",
                head(200, Some("text/event-stream; charset=utf-8"), None),
                DELIVERY,
                AfterHead::StreamThenSettle,
            ),
            (
                "SSE upper case",
                head(200, Some("Text/Event-Stream"), None),
                DELIVERY,
                AfterHead::StreamThenSettle,
            ),
            (
                "ndjson undeclared",
                head(200, Some("application/x-ndjson"), None),
                DELIVERY,
                AfterHead::BufferThenSettle,
            ),
            (
                "ndjson declared",
                head(200, Some("application/x-ndjson"), None),
                declared,
                AfterHead::StreamThenSettle,
            ),
            (
                "larger than the buffer",
                head(200, Some("application/json"), Some(1001)),
                DELIVERY,
                AfterHead::StreamThenSettle,
            ),
            (
                "exactly the buffer",
                head(200, Some("application/json"), Some(1000)),
                DELIVERY,
                AfterHead::BufferThenSettle,
            ),
            (
                "400",
                head(400, Some("application/json"), None),
                DELIVERY,
                AfterHead::PassUnpaid,
            ),
            (
                "404",
                head(404, None, None),
                DELIVERY,
                AfterHead::PassUnpaid,
            ),
            (
                "500",
                head(500, Some("text/event-stream"), None),
                DELIVERY,
                AfterHead::PassUnpaid,
            ),
            (
                "503",
                head(503, None, None),
                DELIVERY,
                AfterHead::PassUnpaid,
            ),
            (
                "1xx",
                head(103, None, None),
                DELIVERY,
                AfterHead::PassUnpaid,
            ),
            (
                "upgrade accepted",
                upgraded(101),
                DELIVERY,
                AfterHead::SettleThenUpgrade,
            ),
            (
                "upgrade refused by the upstream",
                upgraded(403),
                DELIVERY,
                AfterHead::PassUnpaid,
            ),
            (
                "upgrade answered as a plain request",
                upgraded(200),
                DELIVERY,
                AfterHead::BufferThenSettle,
            ),
            (
                "101 without an upgrade asked",
                head(101, None, None),
                DELIVERY,
                AfterHead::PassUnpaid,
            ),
        ];
        for (name, h, d, want) in cases {
            assert_eq!(after_head(&h, &d), want, "{name}");
        }
    }

    #[test]
    fn only_a_finished_stream_that_delivered_is_charged() {
        let cases = [
            (StreamEnd::Finished { delivered: 1 }, AtEnd::Charge),
            (StreamEnd::Finished { delivered: 0 }, AtEnd::Release),
            (StreamEnd::UpstreamFailed, AtEnd::Release),
            (StreamEnd::ClientGone, AtEnd::Release),
        ];
        for (end, want) in cases {
            assert_eq!(at_end(end), want, "{end:?}");
        }
    }

    #[test]
    fn exact_charges_the_authorized_amount_whatever_was_used() {
        let a = U256::from(1000u64);
        let tokens = Some(TokenUsage {
            input: 5,
            output: 7,
        });
        for usage in [
            Usage::default(),
            Usage {
                bytes: 1 << 30,
                tokens,
            },
        ] {
            let c = charge(Scheme::Exact, a, usage);
            assert_eq!((c.amount, c.basis, c.capped), (a, None, false));
        }
    }

    #[test]
    fn upto_charge_table() {
        // 2 atomic units per million input tokens, 3 per million output tokens would round
        // almost everything to 1; use realistic USDC rates: 0.25 / 0.75 USDC per million.
        let tariff = Tariff {
            rates: metering::TokenRates {
                input: 250_000,
                output: 750_000,
            },
            maximum: 7_500,
            fallback: 1_000,
        };
        let t = |input: u64, output: u64| Usage {
            bytes: 100,
            tokens: Some(TokenUsage { input, output }),
        };
        let max = U256::from(7_500u64);
        let cases: &[(&str, Usage, U256, u64, bool, bool)] = &[
            // name, usage, authorized, amount, fallback, capped
            ("zero tokens", t(0, 0), max, 0, false, false),
            ("one input token rounds up", t(1, 0), max, 1, false, false),
            ("exact multiple", t(4, 0), max, 1, false, false),
            (
                "input and output, one rounding",
                t(3, 1),
                max,
                2,
                false,
                false,
            ),
            ("1000 in, 500 out", t(1_000, 500), max, 625, false, false),
            (
                "just below the maximum",
                t(0, 9_999),
                max,
                7_500,
                false,
                false,
            ),
            ("at the maximum", t(0, 10_000), max, 7_500, false, false),
            (
                "over the maximum is capped",
                t(0, 10_001),
                max,
                7_500,
                false,
                true,
            ),
            (
                "huge counts are capped",
                t(u64::MAX, u64::MAX),
                max,
                7_500,
                false,
                true,
            ),
            (
                "authorized above the maximum: still the maximum",
                t(0, 1_000_000),
                U256::from(1_000_000u64),
                7_500,
                false,
                true,
            ),
            (
                "no usage: the fallback",
                Usage::default(),
                max,
                1_000,
                true,
                false,
            ),
            (
                "authorized beyond 128 bits",
                t(1_000, 0),
                U256::MAX,
                250,
                false,
                false,
            ),
        ];
        for &(name, usage, authorized, amount, fallback, capped) in cases {
            let c = charge(Scheme::Upto(tariff), authorized, usage);
            assert_eq!(c.amount, U256::from(amount), "{name}");
            assert_eq!(c.capped, capped, "{name}");
            let want_basis = if fallback {
                ChargeBasis::Fallback
            } else {
                ChargeBasis::Usage(usage.tokens.unwrap())
            };
            assert_eq!(c.basis, Some(want_basis), "{name}");
        }
    }
}
