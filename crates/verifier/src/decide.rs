//! Pure decisions: forwarded headers + route + local verification + facilitator outcome → the
//! reply (status, headers, body). No I/O, no clock (`now` is an argument).

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use obol_x402 as x402;
use serde::Serialize;
use x402::codec::{self, headers as names};
use x402::verify::UptoRequirement;
use x402::wire::{ResourceInfo, SettleResponse};
use x402::{PaymentPayload, Refusal, Requirement, VerifiedPayment};

use crate::error::Denial;
use crate::route::RouteEntry;

/// `error` of an unpaid 402 (the Go verifier's text).
pub const PAYMENT_REQUIRED_ERROR: &str = "Payment required for this resource";

/// Header naming the payer on success (for the upstream).
pub const X_PAYMENT_PAYER: HeaderName = HeaderName::from_static(obol_api::traefik::X_PAYMENT_PAYER);
/// Header carrying the settlement transaction on success (for the upstream).
pub const X_PAYMENT_TX: HeaderName = HeaderName::from_static(obol_api::traefik::X_PAYMENT_TX);
pub(crate) const PAYMENT_REQUIRED: HeaderName = HeaderName::from_static("payment-required");
/// The settlement receipt header of x402 v2.
pub const PAYMENT_RESPONSE: HeaderName = HeaderName::from_static("payment-response");
/// The settlement receipt header of x402 v1.
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
    /// The client gets the HTML paywall ([`wants_html`]).
    pub wants_html: bool,
}

/// Whether a request gets the HTML paywall ([`crate::html::wants_paywall`] on its `Accept`,
/// `Sec-Fetch-Dest` and payment headers).
pub fn wants_html(headers: &axum::http::HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    crate::html::wants_paywall(
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        text("sec-fetch-dest"),
        PAYMENT_HEADERS.iter().any(|h| headers.contains_key(*h)),
    )
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

/// Longest request URI (path and query) the verifier prices: a longer one is refused with 414
/// (`uri_too_long`) before anything else, rather than echoed into a 402 or left to whatever a
/// gateway does with an oversized auth answer.
pub const MAX_URI_LEN: usize = 8 * 1024;
/// Longest resource URL written into a 402: past it the query (and fragment) is dropped; the
/// path is always kept.
pub const MAX_RESOURCE_URL_LEN: usize = 2048;
/// Longest `X-Forwarded-Host` echoed (a DNS name has at most 253 characters, plus a port);
/// a longer one is left out of the resource URL.
pub const MAX_HOST_LEN: usize = 260;

/// The resource being paid for: `<proto>://<host><uri>`, bounded (see
/// [`MAX_RESOURCE_URL_LEN`]).
pub fn resource(route: &RouteEntry, fwd: &Forwarded<'_>) -> ResourceInfo {
    let path = crate::matcher::path_of(fwd.uri);
    let base = base_url(fwd.proto, fwd.host);
    let url = if base.len() + fwd.uri.len() <= MAX_RESOURCE_URL_LEN {
        format!("{base}{}", fwd.uri)
    } else {
        format!("{base}{path}")
    };
    let description = route
        .description
        .clone()
        .unwrap_or_else(|| format!("Payment required for {path}"));
    ResourceInfo {
        description: Some(description),
        mime_type: Some("application/json".into()),
        ..ResourceInfo::new(url)
    }
}

/// `<proto>://<host>` of the client's request (`https` only when the gateway says so), empty
/// without a usable host (at most [`MAX_HOST_LEN`]).
pub fn base_url(proto: Option<&str>, host: Option<&str>) -> String {
    let scheme = match proto {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    match host {
        Some(host) if !host.is_empty() && host.len() <= MAX_HOST_LEN => {
            format!("{scheme}://{host}")
        }
        _ => String::new(),
    }
}

/// A 402 for `requirement`: v2 `PAYMENT-REQUIRED` header and a v1-compatible JSON body (or an
/// HTML page with the same content). `denial` is the previous attempt's failure, if any: the
/// body then also carries `reason` and `extensions.paymentFailure`.
pub fn payment_required(
    requirement: &Requirement,
    resource: &ResourceInfo,
    wants_html: bool,
    denial: Option<&Denial>,
) -> Reply {
    payment_required_offering(requirement, None, resource, wants_html, denial, None)
}

/// [`payment_required`] for a route with a Bazaar description (`extensions.bazaar`, see
/// [`crate::discovery::bazaar`]), in the `PAYMENT-REQUIRED` document and in the body.
pub fn payment_required_with(
    requirement: &Requirement,
    resource: &ResourceInfo,
    wants_html: bool,
    denial: Option<&Denial>,
    bazaar: Option<&serde_json::Value>,
) -> Reply {
    payment_required_offering(requirement, None, resource, wants_html, denial, bazaar)
}

/// [`payment_required`] of a metered route: with `upto` given, the v2 document offers it first
/// (the maximum) and `exact` second (v1 has no `upto`: its body stays `exact`); with `bazaar`,
/// the route's Bazaar description too.
pub fn payment_required_offering(
    requirement: &Requirement,
    upto: Option<&UptoRequirement>,
    resource: &ResourceInfo,
    wants_html: bool,
    denial: Option<&Denial>,
    bazaar: Option<&serde_json::Value>,
) -> Reply {
    let refusal = denial.map(|d| d.refusal(Some(requirement)));
    build_402(
        requirement,
        upto,
        resource,
        wants_html,
        denial.zip(refusal.as_ref()),
        bazaar,
    )
}

fn build_402(
    requirement: &Requirement,
    upto: Option<&UptoRequirement>,
    resource: &ResourceInfo,
    wants_html: bool,
    failure: Option<(&Denial, &Refusal)>,
    bazaar: Option<&serde_json::Value>,
) -> Reply {
    let error = failure.map_or_else(
        || PAYMENT_REQUIRED_ERROR.to_owned(),
        |(d, _)| d.x402_error(),
    );
    let mut v2 = match upto {
        Some(upto) => {
            x402::verify::payment_required_metered_v2(requirement, upto, resource, error.clone())
        }
        None => x402::verify::payment_required_v2(requirement, resource, error.clone()),
    };
    if let Some(b) = bazaar {
        v2.extensions = Some(serde_json::Map::from_iter([(
            "bazaar".to_owned(),
            b.clone(),
        )]));
    }
    let mut headers = Vec::with_capacity(4);
    if let Ok(encoded) = codec::encode_header(&v2)
        && let Ok(value) = HeaderValue::try_from(encoded)
    {
        headers.push((PAYMENT_REQUIRED, value));
    }
    headers.push((
        header::LINK,
        HeaderValue::from_static(obol_api::routes::CATALOG_LINK),
    ));
    if let Some((denial, _)) = failure {
        settlement_headers(denial, &mut headers);
    }
    // v1 needs a legacy network name; a chain without one gets the v2 document as the body.
    // The failure is added by flattening, which is slower: only refusals pay for it.
    let v1 = x402::verify::payment_required_v1(requirement, resource, error);
    let json = match (v1, failure, bazaar) {
        (Ok(v1), None, None) => to_json(&v1),
        (Ok(v1), Some((_, refusal)), None) => to_json(&WithFailure::new(&v1, refusal)),
        (Err(_), None, None) => to_json(&v2),
        (Err(_), Some((_, refusal)), None) => to_json(&WithFailure::new(&v2, refusal)),
        // A described route: the body's `extensions` holds the description (and the failure).
        (v1, failure, Some(b)) => {
            let doc = match v1 {
                Ok(v1) => serde_json::to_value(&v1),
                Err(_) => serde_json::to_value(&v2),
            };
            let mut doc = doc.unwrap_or_else(|_| serde_json::json!({}));
            if let Some((_, refusal)) = failure {
                doc["reason"] = refusal.reason.code().into();
                doc["extensions"]["paymentFailure"] =
                    serde_json::to_value(refusal.payment_failure()).unwrap_or_default();
            }
            doc["extensions"]["bazaar"] = b.clone();
            to_json(&doc)
        }
    };
    let body = if wants_html {
        headers.extend(crate::html::page_headers());
        Body::Html(crate::html::paywall(
            requirement,
            resource,
            failure.map(|(_, r)| r),
        ))
    } else {
        Body::Json(json.into())
    };
    Reply {
        status: StatusCode::PAYMENT_REQUIRED,
        headers,
        body,
    }
}

/// A 402 document with the failure added: `reason` and `extensions.paymentFailure` (neither
/// document writes an `extensions` of its own here, so the key is not repeated).
#[derive(Serialize)]
struct WithFailure<'a, T> {
    #[serde(flatten)]
    inner: &'a T,
    reason: &'static str,
    extensions: FailureExtensions<'a>,
}

impl<'a, T> WithFailure<'a, T> {
    fn new(inner: &'a T, refusal: &'a Refusal) -> Self {
        Self {
            inner,
            reason: refusal.reason.code(),
            extensions: FailureExtensions {
                payment_failure: refusal.payment_failure(),
            },
        }
    }
}

#[derive(Serialize)]
struct FailureExtensions<'a> {
    #[serde(rename = "paymentFailure")]
    payment_failure: x402::refusal::PaymentFailure<'a>,
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own wire types cannot fail; an empty object keeps the reply well-formed.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// A failed settlement that named a transaction is reported as it is: `PAYMENT-RESPONSE` and
/// `X-PAYMENT-RESPONSE` (`success:false` and the transaction), and `X-Payment-Tx`.
fn settlement_headers(denial: &Denial, headers: &mut Vec<(HeaderName, HeaderValue)>) {
    let Some(settle) = &denial.failed_settlement() else {
        return;
    };
    if let Some(tx) = settle.transaction()
        && let Ok(value) = HeaderValue::from_str(tx)
    {
        headers.push((X_PAYMENT_TX, value));
    }
    if let Ok(encoded) = codec::encode_header(settle)
        && let Ok(value) = HeaderValue::try_from(encoded)
    {
        headers.push((PAYMENT_RESPONSE, value.clone()));
        headers.push((X_PAYMENT_RESPONSE, value));
    }
}

/// A refusal that is not a 402 (403, 400, 414, 502, 503):
/// `{"error", "reason", "detail", "hint", "retriable"}`, `Retry-After` on a 503.
pub fn denied(denial: &Denial, requirement: Option<&Requirement>) -> Reply {
    refusal_reply(denial, &denial.refusal(requirement))
}

fn refusal_reply(denial: &Denial, refusal: &Refusal) -> Reply {
    let body = Body::Json(to_json(&refusal.body()).into());
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut headers = Vec::new();
    if let Some(secs) = denial.retry_after() {
        headers.push((header::RETRY_AFTER, HeaderValue::from(secs)));
    }
    if let Denial::MethodNotAllowed { allow } = denial
        && let Ok(value) = HeaderValue::from_str(allow)
    {
        headers.push((header::ALLOW, value));
    }
    settlement_headers(denial, &mut headers);
    Reply {
        status,
        headers,
        body,
    }
}

/// The reply to a refused payment on a priced route: a fresh 402 that also says why, or the
/// refusal's own status.
pub fn refused(
    requirement: &Requirement,
    resource: &ResourceInfo,
    wants_html: bool,
    denial: &Denial,
) -> Reply {
    refused_offering(requirement, None, resource, wants_html, denial, None)
}

/// [`refused`] for a route with a Bazaar description.
pub fn refused_with(
    requirement: &Requirement,
    resource: &ResourceInfo,
    wants_html: bool,
    denial: &Denial,
    bazaar: Option<&serde_json::Value>,
) -> Reply {
    refused_offering(requirement, None, resource, wants_html, denial, bazaar)
}

/// [`refused`] on a metered route: a fresh 402 offers `upto` too when `upto` is given.
pub fn refused_offering(
    requirement: &Requirement,
    upto: Option<&UptoRequirement>,
    resource: &ResourceInfo,
    wants_html: bool,
    denial: &Denial,
    bazaar: Option<&serde_json::Value>,
) -> Reply {
    let refusal = denial.refusal(Some(requirement));
    if refusal.status() == StatusCode::PAYMENT_REQUIRED.as_u16() {
        build_402(
            requirement,
            upto,
            resource,
            wants_html,
            Some((denial, &refusal)),
            bazaar,
        )
    } else {
        refusal_reply(denial, &refusal)
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

/// Decodes the header and runs every local check, before any network call. The payload comes
/// back in the form that was checked (a `v` of 0/1 rewritten to 27/28), ready for the
/// facilitator's `/verify` and `/settle`.
pub fn check_payment(
    requirement: &Requirement,
    header: &str,
    now: u64,
) -> Result<(PaymentPayload, VerifiedPayment), Denial> {
    let mut payload = codec::decode_payment_payload(header)?;
    let verified = x402::verify_payment(requirement, &payload, now)?;
    verified.normalize(&mut payload);
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
