//! Forwarding to a seller: send, and on a 402 pay with one journaled authorization and retry
//! once; heal "already used" answers by moving to the next authorization (bounded).
//!
//! Responses other than the 402 (and error answers inspected for healing) stream through
//! unbuffered.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use futures::TryStreamExt as _;
use obol_x402::codec::headers as x402h;
use tracing::warn;

use crate::buyer::Buyer;
use crate::error::SpendError;
use crate::metrics::BuyerMetrics;
use crate::select;
use crate::upstream::Upstream;

/// Largest 402 or 4xx body read to decide what to do (bigger ones are not x402 answers).
const MAX_INSPECT: usize = 256 * 1024;

/// A request ready to be (re)sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Method.
    pub method: Method,
    /// Path (starting with `/`, or empty) and query, appended to the upstream URL.
    pub path_and_query: String,
    /// Client headers, hop-by-hop ones removed.
    pub headers: HeaderMap,
    /// The buffered body, replayed on the paid retry.
    pub body: Bytes,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Client headers worth forwarding: no hop-by-hop, no client-supplied payment, no
/// `accept-encoding` (a compressed 402 could not be read), and no client credentials
/// (`authorization`, `cookie`): the seller is a third party and the payment is the credential.
pub fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    let extra = [
        "host",
        "content-length",
        "accept-encoding",
        "x-payment",
        "payment-signature",
        "authorization",
        "cookie",
    ];
    for name in HOP_BY_HOP.iter().chain(&extra) {
        out.remove(*name);
    }
    out
}

async fn send(
    buyer: &Buyer,
    upstream: &Upstream,
    req: &Outgoing,
    payment: Option<(&'static str, String)>,
) -> Result<reqwest::Response, SpendError> {
    let url = format!("{}{}", upstream.url, req.path_and_query);
    let mut builder = buyer
        .client
        .request(req.method.clone(), url)
        .headers(req.headers.clone())
        .body(req.body.clone());
    if let Some((name, value)) = payment {
        builder = builder.header(name, value);
    }
    builder.send().await.map_err(|source| SpendError::Upstream {
        upstream: upstream.name.clone(),
        source,
    })
}

fn response_head(resp: &reqwest::Response) -> axum::http::response::Builder {
    let mut builder = Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            builder = builder.header(name, value);
        }
    }
    builder
}

fn stream_back(resp: reqwest::Response) -> Response {
    let head = response_head(&resp);
    let body = Body::from_stream(resp.bytes_stream().map_err(std::io::Error::other));
    head.body(body).unwrap_or_else(|_| bad_gateway())
}

fn buffered(head: axum::http::response::Builder, body: Bytes) -> Response {
    // The upstream's content-length, if any, is already in `head` and matches `body`.
    head.body(Body::from(body))
        .unwrap_or_else(|_| bad_gateway())
}

fn bad_gateway() -> Response {
    let mut r = Response::new(Body::from("bad gateway"));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

/// Reads at most `limit` bytes; `None` when the body is larger or breaks off.
async fn read_bounded(resp: &mut reqwest::Response, limit: usize) -> Option<Bytes> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.ok()? {
        if buf.len() + chunk.len() > limit {
            return None;
        }
        buf.extend_from_slice(&chunk);
    }
    Some(buf.into())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Sends `req` to `upstream`, paying once if asked to.
pub async fn forward(
    buyer: &Buyer,
    upstream: &Upstream,
    req: Outgoing,
) -> Result<Response, SpendError> {
    let mut first = send(buyer, upstream, &req, None).await?;
    if first.status() != StatusCode::PAYMENT_REQUIRED {
        return Ok(stream_back(first));
    }
    let bad = |detail: String| SpendError::BadPaymentRequired {
        upstream: upstream.name.clone(),
        detail,
    };
    let required = header_str(first.headers(), x402h::PAYMENT_REQUIRED).map(str::to_owned);
    let body = read_bounded(&mut first, MAX_INSPECT)
        .await
        .ok_or_else(|| bad("402 body too large or cut off".into()))?;
    let offer = select::parse_offer(required.as_deref(), &body).map_err(|e| bad(e.to_string()))?;
    let index = select::pick(upstream, &offer).ok_or_else(|| SpendError::NoMatch {
        upstream: upstream.name.clone(),
    })?;
    let labels = BuyerMetrics::labels(&upstream.name, upstream.remote_model.as_deref());
    let m = &buyer.metrics;
    let mut tries = 0;
    loop {
        let auth = buyer.spend(upstream).await?;
        tries += 1;
        let payment = select::payment_header(&offer, index, &auth)
            .map_err(|e| bad(format!("cannot encode payment: {e}")))?;
        m.attempts.get_or_create(&labels).inc();
        let mut paid = match send(buyer, upstream, &req, Some(payment)).await {
            Ok(r) => r,
            Err(e) => {
                m.failure.get_or_create(&labels).inc();
                return Err(e);
            }
        };
        let status = paid.status();
        if status.as_u16() < 400 {
            m.success.get_or_create(&labels).inc();
            return Ok(stream_back(paid));
        }
        m.failure.get_or_create(&labels).inc();
        if !status.is_client_error() {
            // A server error is the upstream's own failure, not an x402 answer: pass it on.
            return Ok(stream_back(paid));
        }
        let head = response_head(&paid);
        let texts: Vec<Vec<u8>> = [
            x402h::PAYMENT_RESPONSE,
            x402h::X_PAYMENT_RESPONSE,
            x402h::PAYMENT_REQUIRED,
        ]
        .iter()
        .filter_map(|h| header_str(paid.headers(), h).map(select::decoded_header))
        .collect();
        let Some(body) = read_bounded(&mut paid, MAX_INSPECT).await else {
            return Err(bad("paid answer too large or cut off".into()));
        };
        let mut all: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
        all.push(&body);
        if !select::says_already_used(status.as_u16(), &all) {
            return Ok(buffered(head, body));
        }
        m.already_used.get_or_create(&labels).inc();
        let nonce_prefix: String = auth.key.chars().take(10).collect();
        warn!(upstream = %upstream.name, nonce_prefix, tries, "Seller reports authorization already used; trying the next");
        if tries > buyer.max_heal {
            return Err(SpendError::AlreadyUsed {
                upstream: upstream.name.clone(),
                tries,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_credentials_and_hop_by_hop_headers_stay_here() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer sk-litellm-key"),
            ("cookie", "a=b"),
            ("connection", "keep-alive"),
            ("host", "buyer"),
            ("x-payment", "abc"),
            ("accept-encoding", "gzip"),
            ("content-type", "application/json"),
            ("x-request-id", "r1"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let out = forwardable(&h);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(out.contains_key("content-type") && out.contains_key("x-request-id"));
    }
}
