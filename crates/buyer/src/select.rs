//! Pure decisions about a seller's 402: read it, pick a requirement this upstream can pay,
//! build the payment header, and recognise an answer meaning "this authorization was used".
//!
//! The 402 is read leniently (the Go mock seller omits `maxTimeoutSeconds` and `resource`)
//! but matched strictly: the upstream's scheme (`exact`, or `upto` for a metered purchase),
//! same chain, `asset` and `payTo` equal as addresses (so case never matters), `amount` (or v1
//! `maxAmountRequired`) equal to the price (for `upto`: the maximum the authorizations allow).

use obol_x402::codec::{self, headers};
use obol_x402::refusal::{self, Reason};
use obol_x402::wire::scalar;
use obol_x402::{Address, U256, X402Version};
use serde_json::{Map, Value, json};

use crate::upstream::{Auth, Upstream};

/// One `accepts[]` entry, as far as matching needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `exact` or `upto`.
    pub scheme: String,
    /// Name or CAIP-2 id, as sent.
    pub network: String,
    /// `amount`, else `maxAmountRequired`.
    pub amount: U256,
    /// The token.
    pub asset: Address,
    /// The recipient.
    pub pay_to: Address,
}

/// A parsed 402.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// Which header the payment goes in (v1 `X-PAYMENT`, v2 `PAYMENT-SIGNATURE`).
    pub version: X402Version,
    /// `accepts[]` as received (the v2 `accepted` echo must be verbatim).
    pub accepts: Vec<Value>,
    /// v2 `resource`, echoed.
    pub resource: Option<Value>,
    /// v2 `extensions`, echoed.
    pub extensions: Option<Value>,
}

/// Why a 402 could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// Neither a `PAYMENT-REQUIRED` header nor a JSON body with `x402Version` 1 or 2.
    #[error("unreadable payment requirements: {0}")]
    Unreadable(String),
    /// `accepts` is missing or empty.
    #[error("payment requirements list no accepted payment")]
    Empty,
}

/// Reads a 402 from its `PAYMENT-REQUIRED` header (preferred, as TS clients do) or its body.
pub fn parse_offer(payment_required: Option<&str>, body: &[u8]) -> Result<Offer, OfferError> {
    let doc: Value = match payment_required {
        Some(h) => {
            let raw = codec::decode_base64(h).map_err(|e| OfferError::Unreadable(e.to_string()))?;
            serde_json::from_slice(&raw).map_err(|e| OfferError::Unreadable(e.to_string()))?
        }
        None => {
            if body.len() > codec::MAX_BODY_LEN {
                return Err(OfferError::Unreadable("402 body too large".into()));
            }
            serde_json::from_slice(body).map_err(|e| OfferError::Unreadable(e.to_string()))?
        }
    };
    let version = match doc.get("x402Version").and_then(Value::as_u64) {
        Some(1) => X402Version::V1,
        Some(2) => X402Version::V2,
        _ => {
            return Err(OfferError::Unreadable(
                "missing or unknown x402Version".into(),
            ));
        }
    };
    let accepts = match doc.get("accepts").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a.clone(),
        _ => return Err(OfferError::Empty),
    };
    Ok(Offer {
        version,
        accepts,
        resource: doc.get("resource").cloned(),
        extensions: doc.get("extensions").cloned(),
    })
}

/// Reads the fields matching needs; `None` for an entry that is not an EVM requirement.
pub fn candidate(entry: &Value) -> Option<Candidate> {
    let s = |k: &str| entry.get(k).and_then(Value::as_str);
    let amount = s("amount").or_else(|| s("maxAmountRequired"))?;
    Some(Candidate {
        scheme: s("scheme")?.to_owned(),
        network: s("network")?.to_owned(),
        amount: scalar::parse_decimal_u256(amount).ok()?,
        asset: scalar::parse_address(s("asset")?).ok()?,
        pay_to: scalar::parse_address(s("payTo")?).ok()?,
    })
}

/// The index of the first requirement `upstream` can pay.
pub fn pick(upstream: &Upstream, offer: &Offer) -> Option<usize> {
    offer.accepts.iter().position(|entry| {
        candidate(entry).is_some_and(|c| {
            c.scheme == upstream.scheme.as_str()
                && upstream.same_network(&c.network)
                && c.asset == upstream.asset
                && c.pay_to == upstream.pay_to
                && c.amount == upstream.price
        })
    })
}

/// The payment header (name, base64 value) spending `auth` on requirement `index`.
pub fn payment_header(
    offer: &Offer,
    index: usize,
    auth: &Auth,
) -> Result<(&'static str, String), obol_x402::EncodeError> {
    let accepted = &offer.accepts[index];
    let body = match offer.version {
        X402Version::V1 => json!({
            "x402Version": 1,
            "scheme": accepted.get("scheme").cloned().unwrap_or(Value::Null),
            "network": accepted.get("network").cloned().unwrap_or(Value::Null),
            "payload": auth.payload,
        }),
        X402Version::V2 => {
            let mut m = Map::new();
            m.insert("x402Version".into(), json!(2));
            if let Some(r) = &offer.resource {
                m.insert("resource".into(), r.clone());
            }
            m.insert("accepted".into(), accepted.clone());
            m.insert("payload".into(), auth.payload.clone());
            if let Some(x) = &offer.extensions {
                m.insert("extensions".into(), x.clone());
            }
            Value::Object(m)
        }
    };
    let name = match offer.version {
        X402Version::V1 => headers::X_PAYMENT,
        X402Version::V2 => headers::PAYMENT_SIGNATURE,
    };
    Ok((name, codec::encode_header(&body)?))
}

/// Why `auth` must not be sent on requirement `accepted` although the terms match: an `upto`
/// authorization names in its witness the one facilitator allowed to settle it, and a seller
/// that now settles through another (`extra.facilitatorAddress`) could never settle it.
/// Nothing to say for `exact` items, or when the requirement names no facilitator.
pub fn unpayable_with(accepted: &Value, auth: &Auth) -> Option<String> {
    let wanted = accepted
        .get("extra")?
        .get("facilitatorAddress")?
        .as_str()
        .and_then(|a| scalar::parse_address(a).ok());
    let signed = auth
        .payload
        .get("permit2Authorization")?
        .pointer("/witness/facilitator")
        .and_then(Value::as_str)
        .and_then(|a| scalar::parse_address(a).ok());
    match (wanted, signed) {
        (Some(w), Some(s)) if w == s => None,
        (Some(w), Some(s)) => Some(format!(
            "the seller settles through facilitator {w} (signed for {s})"
        )),
        (None, _) => Some("the seller's facilitatorAddress is not an address".to_owned()),
        (_, None) => Some("the authorization's witness names no facilitator".to_owned()),
    }
}

/// Why the first requirement closest to this upstream's terms cannot be paid, for the client
/// and the status: "price 2000 (signed for 1000)", ... The buyer never sends an authorization
/// to terms it was not signed for.
pub fn terms_mismatch(upstream: &Upstream, offer: &Offer) -> String {
    let described: Vec<Vec<String>> = offer
        .accepts
        .iter()
        .filter_map(candidate)
        .map(|c| {
            let mut d = Vec::new();
            if c.scheme != upstream.scheme.as_str() {
                d.push(format!(
                    "scheme {} (signed for {})",
                    c.scheme,
                    upstream.scheme.as_str()
                ));
            }
            if !upstream.same_network(&c.network) {
                d.push(format!(
                    "network {} (signed for {})",
                    c.network, upstream.network_label
                ));
            }
            if c.asset != upstream.asset {
                d.push(format!("asset {} (signed for {})", c.asset, upstream.asset));
            }
            if c.pay_to != upstream.pay_to {
                d.push(format!(
                    "payTo {} (signed for {})",
                    c.pay_to, upstream.pay_to
                ));
            }
            if c.amount != upstream.price {
                let more = if c.amount > upstream.price {
                    "more"
                } else {
                    "less"
                };
                d.push(format!(
                    "price {} atomic units, {more} than the {} signed for",
                    c.amount, upstream.price
                ));
            }
            d
        })
        .collect();
    match described.into_iter().min_by_key(Vec::len) {
        None => "the 402 lists no EVM requirement".into(),
        Some(d) if d.is_empty() => "the terms match".into(),
        Some(d) => format!("the seller now asks for {}", d.join(", ")),
    }
}

/// What a paid answer of 400 or more says about the authorization sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It was already used (this buyer, or one before it, spent it): mark it spent, heal.
    AlreadyUsed,
    /// The seller refused the payment (a 402) for a reason this buyer cannot classify: only
    /// the chain can say whether it was used.
    Payment,
    /// Any other failure (the service's own error, a gateway refusal): not settled.
    Other,
}

/// Words and codes that say a nonce was consumed: the TS facilitator's
/// `invalid_exact_evm_nonce_already_used`, FiatToken's revert texts, our verifier's `replayed`.
const USED_MARKERS: &[&str] = &[
    "already used",
    "already_used",
    "used or canceled",
    "used or cancelled",
    "used_or_canceled",
    "authorization is used",
];

/// Reads a paid answer of 400 or more. `texts` are the body and any decoded x402 headers.
pub fn classify_refusal(status: u16, texts: &[&[u8]]) -> Refusal {
    if says_already_used(status, texts) {
        Refusal::AlreadyUsed
    } else if status == 402 {
        Refusal::Payment
    } else {
        Refusal::Other
    }
}

/// The settlement transaction a paid answer carries: the `PAYMENT-RESPONSE` /
/// `X-PAYMENT-RESPONSE` receipt's `transaction`, else an `X-Payment-Tx` header.
pub fn settlement_tx(receipts: &[&str], payment_tx: Option<&str>) -> Option<String> {
    receipts
        .iter()
        .filter_map(|h| codec::decode_settle_response(h).ok())
        .find_map(|r| r.transaction().map(str::to_owned))
        .or_else(|| {
            payment_tx
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        })
}

/// The amount a receipt says was charged (an `upto` settlement states it), in atomic units:
/// the first receipt that decodes and states a decimal amount. A receipt without one (an
/// `exact` payment, a v1 seller) or with an unreadable one gives nothing, never a guess.
pub fn settled_amount(receipts: &[&str]) -> Option<u128> {
    receipts
        .iter()
        .filter_map(|h| codec::decode_settle_response(h).ok())
        .find_map(|r| r.amount.as_deref().and_then(|a| a.parse::<u128>().ok()))
}

/// Whether a failed paid answer says the authorization's nonce was already consumed (the state
/// was lost and this one was spent before). `texts` are the body and any decoded x402 headers.
///
/// A seller that states a stable refusal reason (an obol verifier: `reason`, or
/// `extensions.paymentFailure.reason`) is taken at its word: `replayed` and nothing else.
/// Other sellers are read from their words.
pub fn says_already_used(status: u16, texts: &[&[u8]]) -> bool {
    if status < 400 {
        return false;
    }
    if let Some(reason) = texts.iter().find_map(|t| refusal::reason_of_body(t)) {
        return reason == Reason::Replayed;
    }
    texts.iter().any(|t| {
        let lower = String::from_utf8_lossy(t).to_ascii_lowercase();
        USED_MARKERS.iter().any(|m| lower.contains(m))
    })
}

/// The decoded JSON of an x402 response header (`PAYMENT-RESPONSE`, `PAYMENT-REQUIRED`), for
/// [`says_already_used`]; undecodable headers give nothing.
pub fn decoded_header(value: &str) -> Vec<u8> {
    codec::decode_base64(value).unwrap_or_default()
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
