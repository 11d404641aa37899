//! Forwarding to a seller: send, and on a 402 pay with one authorization journaled held and
//! retry once; the answer spends, releases or leaves it held; "already used" answers (and
//! refusals the chain explains) heal by moving to the next authorization (bounded).
//!
//! Responses other than the 402 (and error answers inspected for healing) stream through
//! unbuffered.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt as _;
use obol_x402::codec::headers as x402h;
use tracing::warn;

use crate::buyer::Buyer;
use crate::error::SpendError;
use crate::journal::Mark;
use crate::metrics::BuyerMetrics;
use crate::select::{self, Refusal};
use crate::upstream::{Scheme, Upstream};

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
        // A streamed paid answer's receipt comes as a trailer, sent only to a client that
        // says it takes trailers.
        builder = builder.header(name, value).header("te", "trailers");
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

/// Streams the answer back as it comes, trailers included.
fn stream_back(resp: reqwest::Response) -> Response {
    stream_back_then(resp, |_| {})
}

/// [`stream_back`], handing the answer's trailers (if any come) to `on_trailers` once.
fn stream_back_then(
    resp: reqwest::Response,
    on_trailers: impl FnOnce(&HeaderMap) + Send + 'static,
) -> Response {
    let head = response_head(&resp);
    let mut on_trailers = Some(on_trailers);
    let body = reqwest::Body::from(resp).map_frame(move |frame| {
        if let Some(trailers) = frame.trailers_ref()
            && let Some(f) = on_trailers.take()
        {
            f(trailers);
        }
        frame
    });
    head.body(Body::new(body)).unwrap_or_else(|_| bad_gateway())
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

fn receipts(headers: &HeaderMap) -> Vec<&str> {
    [x402h::PAYMENT_RESPONSE, x402h::X_PAYMENT_RESPONSE]
        .iter()
        .filter_map(|h| header_str(headers, h))
        .collect()
}

fn receipt_tx(headers: &HeaderMap) -> Option<String> {
    select::settlement_tx(&receipts(headers), header_str(headers, "x-payment-tx"))
}

/// Sends `req` to `upstream`, paying once if asked to.
///
/// Each authorization is journaled held before it is sent; then the answer decides: below 400
/// it is spent (a missing receipt is counted); 400 or more with a settlement transaction, spent;
/// "already used", spent (healed) and the next one is tried; a 402 for a reason that cannot be
/// classified, the chain is asked about the whole pool (a used one is healed and the next one
/// tried, else it is released and the refusal returned); any other answer of 400 or more
/// releases it. A connection that failed before sending releases it; an answer that never
/// came leaves it held.
pub async fn forward(
    buyer: &Arc<Buyer>,
    upstream: &Upstream,
    req: Outgoing,
) -> Result<Response, SpendError> {
    let mut first = match send(buyer, upstream, &req, None).await {
        Ok(r) => r,
        Err(e) => {
            buyer.seller_answered(&upstream.name, None, "unreachable", &e.to_string());
            return Err(e);
        }
    };
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
    let offer = match select::parse_offer(required.as_deref(), &body) {
        Ok(o) => o,
        Err(e) => {
            buyer.seller_answered(&upstream.name, Some(402), "unusable_402", &e.to_string());
            return Err(bad(e.to_string()));
        }
    };
    let Some(index) = select::pick(upstream, &offer) else {
        let detail = select::terms_mismatch(upstream, &offer);
        buyer.seller_answered(&upstream.name, Some(402), "terms_changed", &detail);
        return Err(SpendError::NoMatch {
            upstream: upstream.name.clone(),
            detail,
        });
    };
    let labels = BuyerMetrics::labels(&upstream.name, upstream.remote_model.as_deref());
    let m = &buyer.metrics;
    let mut tries = 0;
    loop {
        let auth = buyer.spend(upstream).await?;
        tries += 1;
        if let Some(detail) = select::unpayable_with(&offer.accepts[index], &auth) {
            // Signed for another facilitator than the seller's: never sent.
            buyer.settle(upstream, &auth.key, Mark::Released);
            buyer.seller_answered(&upstream.name, Some(402), "terms_changed", &detail);
            return Err(SpendError::NoMatch {
                upstream: upstream.name.clone(),
                detail,
            });
        }
        let payment = match select::payment_header(&offer, index, &auth) {
            Ok(p) => p,
            Err(e) => {
                buyer.settle(upstream, &auth.key, Mark::Released);
                return Err(bad(format!("cannot encode payment: {e}")));
            }
        };
        m.attempts.get_or_create(&labels).inc();
        let mut paid = match send(buyer, upstream, &req, Some(payment)).await {
            Ok(r) => r,
            Err(e) => {
                m.failure.get_or_create(&labels).inc();
                let SpendError::Upstream { source, .. } = e else {
                    return Err(e);
                };
                if source.is_connect() {
                    // Nothing reached the seller.
                    buyer.settle(upstream, &auth.key, Mark::Released);
                    buyer.seller_answered(&upstream.name, None, "unreachable", &source.to_string());
                    return Err(SpendError::Upstream {
                        upstream: upstream.name.clone(),
                        source,
                    });
                }
                buyer.seller_answered(&upstream.name, None, "no_answer", &source.to_string());
                return Err(SpendError::NoAnswer {
                    upstream: upstream.name.clone(),
                    source,
                });
            }
        };
        let status = paid.status();
        let tx = receipt_tx(paid.headers());
        if status.as_u16() < 400 {
            m.success.get_or_create(&labels).inc();
            if tx.is_none() {
                m.unsettled_confirmations.get_or_create(&labels).inc();
            }
            // An upto receipt at the head states what was charged (a whole answer).
            let charged = select::settled_amount(&receipts(paid.headers()));
            buyer.settle_charged(upstream, &auth.key, Mark::Spent, charged);
            buyer.seller_answered(&upstream.name, Some(status.as_u16()), "paid", "");
            if charged.is_some() || auth.scheme != Scheme::Upto {
                return Ok(stream_back(paid));
            }
            // An upto stream settles when it ended: its receipt, and what it charged, come as
            // a trailer.
            let (buyer, name, key) = (buyer.clone(), upstream.name.clone(), auth.key.clone());
            return Ok(stream_back_then(paid, move |trailers| {
                if let Some(amount) = select::settled_amount(&receipts(trailers)) {
                    buyer.add_charge(&name, &key, amount);
                }
            }));
        }
        m.failure.get_or_create(&labels).inc();
        if let Some(tx) = tx {
            // Settled on chain although the answer is an error: it was spent.
            let charged = select::settled_amount(&receipts(paid.headers()));
            buyer.settle_charged(upstream, &auth.key, Mark::Spent, charged);
            let message = format!("settled in {tx}, answered {status}");
            buyer.seller_answered(
                &upstream.name,
                Some(status.as_u16()),
                "settled_error",
                &message,
            );
            return Ok(stream_back(paid));
        }
        if status != StatusCode::PAYMENT_REQUIRED {
            // The service's own failure (or a gateway's): nothing was settled.
            buyer.settle(upstream, &auth.key, Mark::Released);
            buyer.seller_answered(&upstream.name, Some(status.as_u16()), "error", "");
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
            buyer.settle(upstream, &auth.key, Mark::Released);
            return Err(bad("paid answer too large or cut off".into()));
        };
        let mut all: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
        all.push(&body);
        let nonce_prefix: String = auth.key.chars().take(10).collect();
        match select::classify_refusal(status.as_u16(), &all) {
            Refusal::AlreadyUsed => {
                m.already_used.get_or_create(&labels).inc();
                buyer.settle(upstream, &auth.key, Mark::Healed);
                warn!(upstream = %upstream.name, nonce_prefix, tries, "Seller reports authorization already used; asking the chain about the pool");
                // State was lost: find every other used one now, so the next try is clean.
                if let Err(error) = buyer.heal(upstream, None, false).await {
                    warn!(upstream = %upstream.name, %error, "Chain check failed");
                }
            }
            Refusal::Payment | Refusal::Other => {
                let used = match buyer.heal(upstream, Some(&auth), false).await {
                    Ok(r) => r.suspect_used,
                    Err(error) => {
                        warn!(upstream = %upstream.name, %error, "Chain check failed");
                        false
                    }
                };
                if !used {
                    buyer.settle(upstream, &auth.key, Mark::Released);
                    let message = String::from_utf8_lossy(&body)
                        .chars()
                        .take(300)
                        .collect::<String>();
                    buyer.seller_answered(&upstream.name, Some(402), "refused", &message);
                    return Ok(buffered(head, body));
                }
                m.already_used.get_or_create(&labels).inc();
                warn!(upstream = %upstream.name, nonce_prefix, tries, "Seller refused an authorization the chain has used; trying the next");
            }
        }
        if tries > buyer.max_heal {
            return Err(SpendError::AlreadyUsed {
                upstream: upstream.name.clone(),
                tries,
            });
        }
    }
}

/// Asks the seller for its 402 without paying and reports what it means for `upstream`'s
/// terms (the `SellerReachable` condition is re-checked this way, not set once).
pub async fn probe(buyer: &Buyer, upstream: &Upstream) {
    let mut headers = HeaderMap::new();
    headers.insert(
        axum::http::header::ACCEPT,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let req = Outgoing {
        method: Method::GET,
        path_and_query: String::new(),
        headers,
        body: Bytes::new(),
    };
    let name = &upstream.name;
    let mut resp = match send(buyer, upstream, &req, None).await {
        Ok(r) => r,
        Err(e) => {
            buyer.seller_answered(name, None, "unreachable", &e.to_string());
            return;
        }
    };
    let status = resp.status().as_u16();
    if status != 402 {
        let message = format!("answered {status} without asking for payment");
        buyer.seller_answered(name, Some(status), "not_gated", &message);
        return;
    }
    let required = header_str(resp.headers(), x402h::PAYMENT_REQUIRED).map(str::to_owned);
    let body = read_bounded(&mut resp, MAX_INSPECT)
        .await
        .unwrap_or_default();
    match select::parse_offer(required.as_deref(), &body) {
        Err(e) => buyer.seller_answered(name, Some(402), "unusable_402", &e.to_string()),
        Ok(offer) => match select::pick(upstream, &offer) {
            Some(_) => buyer.seller_answered(name, Some(402), "payment_required", ""),
            None => {
                let detail = select::terms_mismatch(upstream, &offer);
                buyer.seller_answered(name, Some(402), "terms_changed", &detail);
            }
        },
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
