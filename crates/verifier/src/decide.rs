//! Pure decisions: forwarded headers + route + local verification + facilitator outcome → the
//! reply (status, headers, body). No I/O, no clock (`now` is an argument).

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use obol_x402 as x402;
use serde::Serialize;
use x402::codec::{self, headers as names};
use x402::wire::{ResourceInfo, SettleResponse};
use x402::{PaymentPayload, Requirement, VerifiedPayment};

use crate::error::Denial;
use crate::route::RouteEntry;

/// `error` of an unpaid 402 (the Go verifier's text).
pub const PAYMENT_REQUIRED_ERROR: &str = "Payment required for this resource";

/// Header naming the payer on success (for the upstream).
pub const X_PAYMENT_PAYER: HeaderName = HeaderName::from_static("x-payment-payer");
/// Header carrying the settlement transaction on success (for the upstream).
pub const X_PAYMENT_TX: HeaderName = HeaderName::from_static("x-payment-tx");
pub(crate) const PAYMENT_REQUIRED: HeaderName = HeaderName::from_static("payment-required");
/// The v2 settlement receipt header (and trailer of a streamed answer).
pub const PAYMENT_RESPONSE: HeaderName = HeaderName::from_static("payment-response");
/// The v1 settlement receipt header (and trailer of a streamed answer).
pub const X_PAYMENT_RESPONSE: HeaderName = HeaderName::from_static("x-payment-response");

/// What the gateway told us about the client's request.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    /// `X-Forwarded-Proto`.
    pub proto: Option<&'a str>,
    /// `X-Forwarded-Host`.
    pub host: Option<&'a str>,
    /// `X-Forwarded-Uri` (path and query).
    pub uri: &'a str,
    /// `Accept` asks for HTML (`text/html` or `application/xhtml+xml`).
    pub wants_html: bool,
}

/// Whether an `Accept` value asks for an HTML page.
pub fn wants_html(accept: &str) -> bool {
    let accept = accept.to_ascii_lowercase();
    accept.contains("text/html") || accept.contains("application/xhtml+xml")
}

/// A reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Nothing.
    Empty,
    /// `application/json` (shared bytes: a cached 402 is cloned by reference count).
    Json(Bytes),
    /// `text/html; charset=utf-8`.
    Html(String),
}

/// A decided reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers besides `Content-Type`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body.
    pub body: Body,
}

impl Reply {
    /// The value of a header, for tests and logs.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.to_str().ok())
    }
}

/// The resource being paid for: `<proto>://<host><uri>`.
pub fn resource(route: &RouteEntry, fwd: &Forwarded<'_>) -> ResourceInfo {
    let scheme = match fwd.proto {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let url = match fwd.host {
        Some(host) if !host.is_empty() => format!("{scheme}://{host}{}", fwd.uri),
        _ => fwd.uri.to_owned(),
    };
    let description = route
        .description
        .clone()
        .unwrap_or_else(|| format!("Payment required for {}", crate::matcher::path_of(fwd.uri)));
    ResourceInfo {
        description: Some(description),
        mime_type: Some("application/json".into()),
        ..ResourceInfo::new(url)
    }
}

/// A 402 for `requirement`: v2 `PAYMENT-REQUIRED` header and a v1-compatible JSON body (or an
/// HTML page with the same content). `denial` is the previous attempt's failure, if any.
pub fn payment_required(
    requirement: &Requirement,
    resource: &ResourceInfo,
    wants_html: bool,
    denial: Option<&Denial>,
) -> Reply {
    let error = denial.map_or_else(|| PAYMENT_REQUIRED_ERROR.to_owned(), Denial::x402_error);
    let reason = denial.map(Denial::metric_label);
    let v2 = x402::verify::payment_required_v2(requirement, resource, error.clone());
    let mut headers = Vec::with_capacity(3);
    if let Ok(encoded) = codec::encode_header(&v2)
        && let Ok(value) = HeaderValue::try_from(encoded)
    {
        headers.push((PAYMENT_REQUIRED, value));
    }
    if let Some(tx) = denial.and_then(Denial::transaction)
        && let Ok(value) = HeaderValue::from_str(tx)
    {
        headers.push((X_PAYMENT_TX, value));
    }
    // v1 needs a legacy network name; a chain without one gets the v2 document as the body.
    // `reason` is added by flattening, which is slower: only refusals pay for it.
    let json = match (
        x402::verify::payment_required_v1(requirement, resource, error),
        reason,
    ) {
        (Ok(v1), None) => to_json(&v1),
        (Ok(v1), reason) => to_json(&WithReason { inner: &v1, reason }),
        (Err(_), None) => to_json(&v2),
        (Err(_), reason) => to_json(&WithReason { inner: &v2, reason }),
    };
    let body = if wants_html {
        headers.push((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        Body::Html(crate::html::paywall(requirement, resource, &json))
    } else {
        Body::Json(json.into())
    };
    Reply {
        status: StatusCode::PAYMENT_REQUIRED,
        headers,
        body,
    }
}

#[derive(Serialize)]
struct WithReason<'a, T> {
    #[serde(flatten)]
    inner: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'a str,
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own wire types cannot fail; an empty object keeps the reply well-formed.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// A denial that is not a 402 (403, 400, 503): `{"error": <reason>, "message": ...}`.
pub fn denied(denial: &Denial) -> Reply {
    let message = denial.to_string();
    let body = Body::Json(
        to_json(&ErrorBody {
            error: denial.metric_label(),
            message: &message,
        })
        .into(),
    );
    let mut headers = Vec::new();
    if let Some(secs) = denial.retry_after() {
        headers.push((header::RETRY_AFTER, HeaderValue::from(secs)));
    }
    if let Some(tx) = denial.transaction()
        && let Ok(value) = HeaderValue::from_str(tx)
    {
        headers.push((X_PAYMENT_TX, value));
    }
    Reply {
        status: denial.status(),
        headers,
        body,
    }
}

/// The reply to a refused payment on a priced route: a 402 that also says why, or the
/// denial's own status.
pub fn refused(
    requirement: &Requirement,
    resource: &ResourceInfo,
    wants_html: bool,
    denial: &Denial,
) -> Reply {
    if denial.status() == StatusCode::PAYMENT_REQUIRED {
        payment_required(requirement, resource, wants_html, Some(denial))
    } else {
        denied(denial)
    }
}

/// Picks the payment header: `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1, and v2 from TS
/// clients). Several values that disagree are refused rather than guessed between.
pub fn payment_header<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue>,
) -> Result<Option<&'a str>, Denial> {
    let mut found: Option<&str> = None;
    for value in values {
        let text = value.to_str().map_err(|_| Denial::UnreadableHeader)?;
        match found {
            Some(prev) if prev != text => return Err(Denial::ConflictingHeaders),
            _ => found = Some(text),
        }
    }
    Ok(found)
}

/// Decodes the header and runs every local check, before any network call.
pub fn check_payment(
    requirement: &Requirement,
    header: &str,
    now: u64,
) -> Result<(PaymentPayload, VerifiedPayment), Denial> {
    let payload = codec::decode_payment_payload(header)?;
    let verified = x402::verify_payment(requirement, &payload, now)?;
    Ok((payload, verified))
}

/// 200 for a route that costs nothing (unmatched path, or price 0).
pub fn free(route: Option<&RouteEntry>) -> Reply {
    let mut headers = Vec::new();
    if let Some(auth) = route.and_then(|r| r.upstream_auth.as_ref()) {
        headers.push((header::AUTHORIZATION, auth.header_value().clone()));
    }
    Reply {
        status: StatusCode::OK,
        headers,
        body: Body::Empty,
    }
}

/// 200 after a settled payment: payer, transaction and the route's upstream credentials for
/// the gateway to copy upstream, and the settlement response for the client.
pub fn paid(route: &RouteEntry, verified: &VerifiedPayment, settle: &SettleResponse) -> Reply {
    let receipt = codec::encode_header(settle).ok();
    let_through(route, verified, settle.transaction(), receipt.as_deref())
}

/// 200 for a payment settled earlier whose answer was never delivered: the same headers as
/// [`paid`], from the stored receipt.
pub fn reserved(route: &RouteEntry, verified: &VerifiedPayment, receipt: &str) -> Reply {
    let settle = codec::decode_settle_response(receipt).ok();
    let tx = settle.as_ref().and_then(SettleResponse::transaction);
    let_through(route, verified, tx, Some(receipt))
}

fn let_through(
    route: &RouteEntry,
    verified: &VerifiedPayment,
    tx: Option<&str>,
    receipt: Option<&str>,
) -> Reply {
    let mut reply = free(Some(route));
    let payer = verified.payer.to_checksum(None);
    if let Ok(v) = HeaderValue::from_str(&payer) {
        reply.headers.push((X_PAYMENT_PAYER, v));
    }
    if let Some(tx) = tx
        && let Ok(v) = HeaderValue::from_str(tx)
    {
        reply.headers.push((X_PAYMENT_TX, v));
    }
    if let Some(receipt) = receipt
        && let Ok(v) = HeaderValue::from_str(receipt)
    {
        let name = match verified.version {
            x402::X402Version::V1 => X_PAYMENT_RESPONSE,
            x402::X402Version::V2 => PAYMENT_RESPONSE,
        };
        reply.headers.push((name, v));
    }
    reply
}

/// Header names, lower-case, in the order they are read.
pub const PAYMENT_HEADERS: [&str; 2] = [names::PAYMENT_SIGNATURE, names::X_PAYMENT];

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
