//! Gateway mode `proxy`: the verifier serves the paid traffic itself, on a listener of its own,
//! and charges only for answers the upstream actually gave and the client actually got.
//!
//! Order of a paid request: route (by the route header the HTTPRoute sets, else by path) →
//! decode and every local check → reserve the authorization → facilitator `/verify` → forward
//! to the upstream ([`forward`]) → decide on its answer ([`charge`]): settle before sending a
//! whole answer, stream a stream and settle at its end ([`body`]), or pass an error through
//! uncharged and release the reservation. The paid part runs as its own task, so a client that
//! goes away cannot cancel a settle half-way.
//!
//! A metered route (priced per token) offers `upto` (the maximum) before `exact` (the
//! fallback price) when its facilitator settles `upto` on the network. An `upto` payment is
//! checked locally ([`obol_x402::verify::verify_upto`]), its request asks a streaming upstream
//! for usage (`stream_options.include_usage`), and what is settled is the tokens the answer
//! reported, by [`charge::charge`]: the answer's JSON `usage`, or a stream's last usage event;
//! no usage → the declared fallback. `PAYMENT-RESPONSE` carries the settled `amount`.
//!
//! The gateway listener serves nothing but this: a request path can never reach the verifier's
//! own `/verify`, `/metrics` or probes, and no priced path can be shadowed by them.

pub mod body;
pub mod charge;
pub mod forward;
pub mod upstream;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri, Version};
use axum::response::Response;
use axum::routing::get;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use obol_api::metering::usage::{ask_for_stream_usage, usage_of};
use obol_api::metering::{ChargeBasis, Tariff, TokenUsage};
use obol_x402::verify::{SignatureCheck, UptoRequirement, VerifiedUpto, verify_upto};
use obol_x402::wire::{
    FacilitatorRequest, ResourceInfo, SchemePayment, SettleResponse, UptoPaymentPayload,
};
use obol_x402::{
    Facilitator, PaymentPayload, Requirement, U256, VerifiedPayment, X402Version, codec,
};
use tracing::{Instrument as _, info, info_span, warn};

use self::body::{BoxFuture, Finish, PaidBody};
use self::charge::{AfterHead, Charged, Delivery, Head, Scheme, StreamEnd, Usage};
use self::forward::X_PAYMENT_SETTLED;
use self::upstream::{Upstream, UpstreamError};
use crate::admit::{Admitted, Ctx, short_hash};
use crate::decide::{self, Forwarded, PAYMENT_RESPONSE, X_PAYMENT_RESPONSE};
use crate::discovery::{self, Document};
use crate::error::Denial;
use crate::gate::mark;
use crate::http::{X_FORWARDED_HOST, X_FORWARDED_PROTO, into_response};
use crate::matcher::path_of;
use crate::reservations::{Fingerprint, Lease, Record};
use crate::route::RouteEntry;
use crate::state::AppState;

/// What a paid answer's client may read (browsers need it to see the receipt).
const EXPOSE: &str = "PAYMENT-RESPONSE, X-PAYMENT-RESPONSE";
/// The trailers of a streamed paid answer.
const TRAILERS: &str = "payment-response, x-payment-response";

/// The gateway's state: the verifier's, plus the upstream client.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The verifier's shared state (routes, reservations, facilitators, metrics).
    pub state: AppState,
    /// The client forwarding to upstreams.
    pub upstream: Arc<Upstream>,
}

/// The gateway listener's app: the discovery documents, and every other path is gateway
/// traffic.
pub fn app(gateway: Gateway) -> Router {
    Router::new()
        .route(discovery::WELL_KNOWN_X402, get(manifest))
        .route(discovery::OPENAPI, get(openapi))
        .fallback(serve)
        .with_state(gateway)
}

async fn manifest(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    discovery_document(&gw.state, &headers, Document::Manifest)
}

async fn openapi(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    discovery_document(&gw.state, &headers, Document::OpenApi)
}

/// A discovery document, free, built from the current routes (503 before the first sync).
fn discovery_document(state: &AppState, headers: &HeaderMap, which: Document) -> Response {
    if !state.table.is_synced() {
        return *refuse(state, Denial::NotReady);
    }
    let base = decide::base_url(
        text(headers, X_FORWARDED_PROTO),
        text(headers, X_FORWARDED_HOST).or_else(|| text(headers, "host")),
    );
    let body = discovery::document(&state.table.snapshot(), &base, which);
    let mut r = Response::new(axum::body::Body::from(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

async fn serve(State(gw): State<Gateway>, request: Request) -> Response {
    match admit_request(&gw, request).await {
        Err(response) => *response,
        Ok(Step::Free(free)) => {
            let (route, request, uri) = *free;
            forward_free(&gw, &route, request, uri).await
        }
        Ok(Step::Paid(paid)) => {
            // The payment runs on: a client that goes away does not cancel a settle.
            let task = tokio::spawn(paid.run(gw).instrument(info_span!("paid_request")));
            task.await.unwrap_or_else(|error| {
                warn!(%error, "Paid request task failed");
                plain(StatusCode::INTERNAL_SERVER_ERROR)
            })
        }
    }
}

enum Step {
    Free(Box<(Arc<RouteEntry>, Request, Uri)>),
    Paid(Box<Paid>),
}

/// A payment that passed its local checks.
enum Payment {
    /// `exact`: settles the route's price.
    Exact {
        payload: Box<PaymentPayload>,
        verified: VerifiedPayment,
    },
    /// `upto` on a metered route: settles what the answer used.
    Upto(Box<UptoPayment>),
}

/// An `upto` payment and what it is metered against.
struct UptoPayment {
    payload: UptoPaymentPayload,
    verified: VerifiedUpto,
    requirement: UptoRequirement,
    tariff: Tariff,
}

impl Payment {
    /// The replay key, payer and deadline, in the form reservations use.
    fn verified(&self) -> VerifiedPayment {
        match self {
            Self::Exact { verified, .. } => verified.clone(),
            Self::Upto(u) => VerifiedPayment {
                version: X402Version::V2,
                network: u.verified.network,
                payer: u.verified.payer,
                amount: u.verified.authorized,
                nonce: u.verified.nonce,
                valid_before: u.verified.deadline,
                signature: u.verified.signature.clone(),
            },
        }
    }
}

/// Everything a paid request needs once its local checks passed.
struct Paid {
    route: Arc<RouteEntry>,
    requirement: Requirement,
    upto: Option<UptoRequirement>,
    resource: ResourceInfo,
    wants_html: bool,
    payment: Payment,
    now: u64,
    request: Request,
    uri: Uri,
    websocket: bool,
}

fn refuse(state: &AppState, denial: Denial) -> Box<Response> {
    state.metrics.denied(denial.metric_label());
    Box::new(into_response(decide::denied(&denial, None)))
}

fn plain(status: StatusCode) -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = status;
    r
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn route_of(state: &AppState, headers: &HeaderMap, path: &str) -> Result<Arc<RouteEntry>, Denial> {
    match headers.get(obol_api::proxy::ROUTE_HEADER) {
        Some(value) => {
            let (namespace, name) = value
                .to_str()
                .ok()
                .and_then(obol_api::proxy::parse_route_header)
                .ok_or(Denial::InvalidRouteHeader)?;
            state.table.get(namespace, name).ok_or(Denial::UnknownRoute)
        }
        None => state.table.find(path).ok_or(Denial::NoRoute),
    }
}

/// The `upto` requirement of a metered route: the route's with `amount` = the tariff's maximum,
/// settled by its facilitator's `upto` signer. `None` when the route is not metered or its
/// facilitator offers no `upto` on the network (the route then sells `exact` only).
async fn upto_requirement(
    gw: &Gateway,
    route: &RouteEntry,
    requirement: &Requirement,
) -> Option<(UptoRequirement, Tariff)> {
    let tariff = route.metering?;
    let facilitator = gw.state.facilitators.upto_signer(route).await?;
    let base = Requirement {
        amount: U256::from(tariff.maximum),
        ..requirement.clone()
    };
    Some((UptoRequirement { base, facilitator }, tariff))
}

/// Decodes the payment header and runs the local checks of its scheme, before any call to the
/// facilitator's `/verify`: `exact` against the route's price, `upto` against the maximum.
fn check_scheme_payment(
    requirement: &Requirement,
    upto: Option<&(UptoRequirement, Tariff)>,
    header: &str,
    now: u64,
) -> Result<Payment, Denial> {
    match codec::decode_scheme_payment(header)? {
        SchemePayment::Exact(mut payload) => {
            let verified = obol_x402::verify_payment(requirement, &payload, now)?;
            verified.normalize(&mut payload);
            Ok(Payment::Exact {
                payload: Box::new(payload),
                verified,
            })
        }
        SchemePayment::Upto(mut payload) => {
            let (upto, tariff) = upto.ok_or(Denial::UptoNotOffered)?;
            let verified = verify_upto(upto, &payload, now)?;
            verified.normalize(&mut payload);
            Ok(Payment::Upto(Box::new(UptoPayment {
                payload,
                verified,
                requirement: upto.clone(),
                tariff: *tariff,
            })))
        }
    }
}

/// Routing and the local checks, before any call to `/verify` (a metered route asks its
/// facilitator once for its `upto` signer, then remembers it).
async fn admit_request(gw: &Gateway, request: Request) -> Result<Step, Box<Response>> {
    let state = &gw.state;
    if !state.table.is_synced() {
        return Err(refuse(state, Denial::NotReady));
    }
    let headers = request.headers();
    let path = request.uri().path();
    let route = route_of(state, headers, path).map_err(|d| refuse(state, d))?;
    if route.proxy.is_none() {
        return Err(refuse(state, Denial::NotProxied));
    }
    let route = route
        .resolve(path_of(path), Some(request.method().as_str()))
        .map_err(|d| refuse(state, d))?;
    let Some(proxy) = &route.proxy else {
        return Err(refuse(state, Denial::NotProxied));
    };
    let websocket = forward::wants_websocket(headers);
    if websocket && !proxy.allow_websocket {
        return Err(refuse(state, Denial::WebSocketRefused));
    }
    let declared = text(headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > gw.upstream.config.max_request_bytes) {
        return Err(refuse(state, Denial::RequestTooLarge));
    }
    let pq = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    // The upstream URI is built only for a request that goes on (free, or paid and checked):
    // an unpaid request's 402 does not need it.
    let upstream_uri = || {
        proxy
            .target
            .uri(&pq)
            .map_err(|_| refuse(state, Denial::PathNotPriced))
    };
    state.metrics.requests.get_or_create(&route.labels).inc();
    let Some(requirement) = route.requirement.clone() else {
        let uri = upstream_uri()?;
        return Ok(Step::Free(Box::new((route, request, uri))));
    };
    let fwd = Forwarded {
        proto: text(headers, X_FORWARDED_PROTO),
        host: text(headers, X_FORWARDED_HOST).or_else(|| text(headers, "host")),
        uri: &pq,
        wants_html: decide::wants_html(headers),
    };
    let upto = match route.metering {
        Some(_) => upto_requirement(gw, &route, &requirement).await,
        None => None,
    };
    let header = match decide::payment_header(
        decide::PAYMENT_HEADERS
            .iter()
            .flat_map(|h| headers.get_all(*h)),
    ) {
        Ok(None) => {
            let reply = match &upto {
                None => crate::gate::unpaid(state, &route, &requirement, &fwd).0,
                Some((upto, _)) => {
                    state
                        .metrics
                        .payment_required
                        .get_or_create(&route.labels)
                        .inc();
                    let resource = decide::resource(&route, &fwd);
                    decide::payment_required_offering(
                        &requirement,
                        Some(upto),
                        &resource,
                        fwd.wants_html,
                        None,
                        route.bazaar.as_ref(),
                    )
                }
            };
            return Err(Box::new(into_response(reply)));
        }
        other => other,
    };
    let resource = decide::resource(&route, &fwd);
    let wants_html = fwd.wants_html;
    let ctx = Ctx {
        state,
        route: &route,
        requirement: &requirement,
        resource: &resource,
        wants_html,
        upto: upto.as_ref().map(|(u, _)| u),
    };
    let refuse_paid = |denial| Box::new(into_response(ctx.refuse(denial).0));
    let header = match header {
        Ok(Some(h)) => h,
        Ok(None) => return Err(refuse_paid(Denial::UnreadableHeader)),
        Err(denial) => return Err(refuse_paid(denial)),
    };
    let now = state.clock.now_unix();
    let payment =
        check_scheme_payment(&requirement, upto.as_ref(), header, now).map_err(refuse_paid)?;
    let uri = upstream_uri()?;
    Ok(Step::Paid(Box::new(Paid {
        route: route.clone(),
        requirement,
        upto: upto.map(|(u, _)| u),
        resource,
        wants_html,
        payment,
        now,
        request,
        uri,
        websocket,
    })))
}

/// The upstream-bound request.
fn upstream_request(
    gw: &Gateway,
    route: &RouteEntry,
    request: Request,
    uri: Uri,
    payer: Option<&str>,
    websocket: bool,
) -> axum::http::Request<upstream::ProxyBody> {
    let (mut parts, body) = request.into_parts();
    if let Some(proxy) = &route.proxy {
        forward::upstream_headers(
            &mut parts.headers,
            &proxy.target,
            payer,
            route.upstream_auth.as_ref().map(|a| a.header_value()),
            websocket && proxy.allow_websocket,
        );
    }
    parts.uri = uri;
    parts.version = if gw.upstream.config.http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    parts.extensions = Default::default();
    axum::http::Request::from_parts(
        parts,
        upstream::limited(body, gw.upstream.config.max_request_bytes),
    )
}

fn upstream_denial(error: &UpstreamError) -> Denial {
    match error {
        UpstreamError::Timeout(_) => Denial::UpstreamFailed { timed_out: true },
        UpstreamError::Unreachable(_) => Denial::UpstreamFailed { timed_out: false },
        UpstreamError::RequestTooLarge => Denial::RequestTooLarge,
    }
}

/// A route priced at 0: forwarded as it is, nothing to charge.
async fn forward_free(gw: &Gateway, route: &RouteEntry, request: Request, uri: Uri) -> Response {
    let req = upstream_request(gw, route, request, uri, None, false);
    match gw.upstream.send(req).await {
        Ok(answer) => pass_through(answer, false),
        Err(error) => {
            warn!(route = %route.key, %error, "Upstream failed");
            *refuse(&gw.state, upstream_denial(&error))
        }
    }
}

/// The upstream's answer as it is (hop-by-hop headers removed), streamed.
fn pass_through(answer: axum::http::Response<Incoming>, unpaid: bool) -> Response {
    let (mut parts, body) = answer.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    if unpaid {
        parts
            .headers
            .insert(X_PAYMENT_SETTLED, HeaderValue::from_static("false"));
    }
    Response::from_parts(parts, axum::body::Body::new(body))
}

/// How reading a whole answer ended.
enum Read {
    Whole(Vec<u8>),
    /// Over the buffer: what was read, and the rest to stream.
    TooLarge(Vec<u8>),
    Failed(String),
}

async fn read_whole(body: &mut Incoming, max: u64, idle: std::time::Duration) -> Read {
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Read::Failed(format!("idle for longer than {idle:?}")),
            Ok(None) => return Read::Whole(buf),
            Ok(Some(Err(e))) => return Read::Failed(e.to_string()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() as u64 > max {
                        return Read::TooLarge(buf);
                    }
                }
            }
        }
    }
}

impl Paid {
    async fn run(self, gw: Gateway) -> Response {
        let Self {
            route,
            requirement,
            upto,
            resource,
            wants_html,
            payment,
            now,
            mut request,
            uri,
            websocket,
        } = self;
        let state = &gw.state;
        let ctx = Ctx {
            state,
            route: &route,
            requirement: &requirement,
            resource: &resource,
            wants_html,
            upto: upto.as_ref(),
        };
        let verified = payment.verified();
        let (admitted, metered) = match payment {
            Payment::Exact { payload, .. } => (ctx.admit(*payload, &verified, now).await, None),
            Payment::Upto(upto) => {
                // Read before reserving: a request too large is refused with nothing held.
                request = match ask_usage(request, gw.upstream.config.max_request_bytes).await {
                    Ok(r) => r,
                    Err(denial) => return into_response(ctx.refuse(denial).0),
                };
                let verify = upto.requirement.verify_request(upto.payload.clone());
                let admitted = ctx.admit_request(Ok(verify), &verified, true, now).await;
                (admitted, Some(upto))
            }
        };
        let admitted = match admitted {
            Ok(a) => a,
            Err(denial) => return into_response(ctx.refuse(denial).0),
        };
        let payer = verified.payer.to_checksum(None);
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
        let req = upstream_request(&gw, &route, request, uri, Some(&payer), websocket);
        let mut settlement = Settlement::new(
            gw.clone(),
            route.clone(),
            &requirement,
            &verified,
            admitted,
            metered,
        );
        let answer = match gw.upstream.send(req).await {
            Ok(answer) => answer,
            Err(error) => {
                warn!(route = %route.key, %error, nonce = %settlement.nonce_id, "Upstream failed: nothing charged");
                settlement.unwind().await;
                let mut r = *refuse(state, upstream_denial(&error));
                r.headers_mut()
                    .insert(X_PAYMENT_SETTLED, HeaderValue::from_static("false"));
                return r;
            }
        };
        let proxy = route.proxy.as_ref();
        let streaming: &[String] = proxy.map_or(&[], |p| &p.streaming_types);
        let delivery = Delivery {
            streaming_types: streaming,
            max_buffer: gw.upstream.config.max_buffer_bytes,
        };
        let content_length = text(answer.headers(), "content-length").and_then(|v| v.parse().ok());
        let head = Head {
            status: answer.status(),
            content_type: text(answer.headers(), "content-type"),
            content_length,
            upgrade: websocket,
        };
        let idle = gw.upstream.config.idle_timeout;
        match charge::after_head(&head, &delivery) {
            AfterHead::SettleThenUpgrade => match settlement.settle_now(None).await {
                Ok(receipt) => {
                    settlement.mark(Record::Spent).await;
                    upgraded(answer, client_upgrade, &receipt, &route)
                }
                Err(denial) => into_response(ctx.refuse(denial).0),
            },
            AfterHead::PassUnpaid => {
                info!(route = %route.key, status = head.status.as_u16(), nonce = %settlement.nonce_id, "Upstream refused: nothing charged");
                settlement.unwind().await;
                pass_through(answer, true)
            }
            AfterHead::StreamThenSettle => {
                let (parts, rest) = answer.into_parts();
                streamed(parts, None, rest, idle, settlement)
            }
            AfterHead::BufferThenSettle => {
                let (parts, mut rest) = answer.into_parts();
                match read_whole(&mut rest, delivery.max_buffer, idle).await {
                    Read::Failed(error) => {
                        warn!(route = %route.key, %error, nonce = %settlement.nonce_id, "Upstream answer broke off: nothing charged");
                        settlement.unwind().await;
                        let mut r = *refuse(state, Denial::UpstreamFailed { timed_out: false });
                        r.headers_mut()
                            .insert(X_PAYMENT_SETTLED, HeaderValue::from_static("false"));
                        r
                    }
                    Read::TooLarge(prefix) => {
                        streamed(parts, Some(prefix.into()), rest, idle, settlement)
                    }
                    Read::Whole(bytes) => {
                        match settlement.settle_now(settlement.usage_of(&bytes)).await {
                            Ok(receipt) => {
                                let len = bytes.len();
                                let body = PaidBody::buffered(bytes.into(), Box::new(settlement));
                                paid_response(parts, body, Some(&receipt), Some(len))
                            }
                            // The refusal carries a failed settlement's PAYMENT-RESPONSE.
                            Err(denial) => into_response(ctx.refuse(denial).0),
                        }
                    }
                }
            }
        }
    }
}

fn streamed(
    parts: axum::http::response::Parts,
    prefix: Option<axum::body::Bytes>,
    rest: Incoming,
    idle: std::time::Duration,
    mut settlement: Settlement,
) -> Response {
    settlement.trailers = true;
    // A payment settled before (a re-serve) has its receipt already: in the head too.
    let receipt = match &settlement.kind {
        Kind::Settled { receipt } => Some(receipt.clone()),
        Kind::Fresh { .. } => None,
    };
    let metered = settlement.metered.is_some();
    let mut body = PaidBody::streamed(prefix, Some(rest), idle, Box::new(settlement));
    if metered {
        body = body.metered();
    }
    paid_response(parts, body, receipt.as_deref(), None)
}

/// A WebSocket upgrade the upstream accepted and that was paid for: switch protocols with the
/// receipt, then relay bytes both ways until either side closes.
fn upgraded(
    mut answer: axum::http::Response<Incoming>,
    client: Option<hyper::upgrade::OnUpgrade>,
    receipt: &str,
    route: &RouteEntry,
) -> Response {
    let upstream = hyper::upgrade::on(&mut answer);
    let (mut parts, _) = answer.into_parts();
    parts.version = Version::HTTP_11;
    insert_receipt(&mut parts.headers, receipt);
    let key = route.key.clone();
    tokio::spawn(
        async move {
            let Some(client) = client else { return };
            match tokio::try_join!(client, upstream) {
                Ok((client, upstream)) => {
                    let mut client = hyper_util::rt::TokioIo::new(client);
                    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(error) => warn!(route = %key, %error, "WebSocket upgrade failed after payment"),
            }
        }
        .instrument(info_span!("websocket")),
    );
    Response::from_parts(parts, axum::body::Body::empty())
}

fn insert_receipt(headers: &mut HeaderMap, receipt: &str) {
    if let Ok(v) = HeaderValue::from_str(receipt) {
        headers.insert(PAYMENT_RESPONSE, v.clone());
        headers.insert(X_PAYMENT_RESPONSE, v);
    }
}

/// A paid answer: the upstream's head with the receipt (a whole answer) or the announcement
/// of the receipt trailers (a stream).
fn paid_response(
    mut parts: axum::http::response::Parts,
    body: PaidBody,
    receipt: Option<&str>,
    whole: Option<usize>,
) -> Response {
    forward::strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    let h = &mut parts.headers;
    match (receipt, whole) {
        (Some(receipt), Some(len)) => {
            insert_receipt(h, receipt);
            if len as u64 <= body::SMALL_ANSWER {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            } else {
                h.remove(header::CONTENT_LENGTH);
            }
        }
        _ => {
            // A stream: chunked, so the receipt can follow as a trailer.
            h.remove(header::CONTENT_LENGTH);
            h.insert(header::TRAILER, HeaderValue::from_static(TRAILERS));
            if let Some(receipt) = receipt {
                insert_receipt(h, receipt);
            }
        }
    }
    h.append(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE),
    );
    Response::from_parts(parts, axum::body::Body::new(body))
}

/// What is settled, and how, for one paid request.
enum Kind {
    /// Verified, not settled.
    Fresh {
        request: Box<FacilitatorRequest>,
        facilitator: Arc<dyn Facilitator>,
    },
    /// Settled (now or before): `receipt` is its `PAYMENT-RESPONSE`.
    Settled { receipt: String },
}

/// A paid request's reservation and what to do with it at each ending.
struct Settlement {
    gw: Gateway,
    route: Arc<RouteEntry>,
    fingerprint: Fingerprint,
    nonce_id: String,
    signature: SignatureCheck,
    lease: Lease,
    kind: Kind,
    /// The answer is streamed: the receipt goes in the trailers.
    trailers: bool,
    /// An `upto` payment: settled for what the answer used.
    metered: Option<Box<UptoPayment>>,
}

impl Settlement {
    fn new(
        gw: Gateway,
        route: Arc<RouteEntry>,
        requirement: &Requirement,
        verified: &VerifiedPayment,
        admitted: Admitted,
        metered: Option<Box<UptoPayment>>,
    ) -> Self {
        let (lease, kind) = match admitted {
            Admitted::Fresh {
                lease,
                request,
                facilitator,
            } => (
                lease,
                Kind::Fresh {
                    request,
                    facilitator,
                },
            ),
            Admitted::Reserve { lease, receipt } => (lease, Kind::Settled { receipt }),
        };
        Self {
            gw,
            route,
            // What the reservation was taken under (see `Ctx::admit_request`).
            fingerprint: Fingerprint::of(
                metered
                    .as_ref()
                    .map_or(requirement, |u| &u.requirement.base),
            ),
            nonce_id: short_hash(&verified.nonce),
            signature: verified.signature.clone(),
            lease,
            kind,
            trailers: false,
            metered,
        }
    }

    /// The tokens a whole answer reports, when they are charged for (an `upto` payment).
    fn usage_of(&self, body: &[u8]) -> Option<TokenUsage> {
        self.metered.as_ref().and_then(|_| usage_of(body))
    }

    /// What to settle for an answer that reported `tokens` (or none): `None` for `exact` (the
    /// verified `/verify` body settles the authorized amount as it is); for `upto`, the
    /// metered charge and its `/settle` body.
    fn decide(&self, tokens: Option<TokenUsage>) -> Option<Decided> {
        let upto = self.metered.as_ref()?;
        let usage = Usage { bytes: 0, tokens };
        let charged = charge::charge(Scheme::Upto(upto.tariff), upto.verified.authorized, usage);
        let request = upto
            .requirement
            .settle_request(upto.payload.clone(), charged.amount);
        Some(Decided { charged, request })
    }

    async fn mark(&mut self, record: Record) {
        mark(
            &self.gw.state,
            &self.route,
            &mut self.lease,
            record,
            &self.nonce_id,
        )
        .await;
    }

    /// Nothing was served: a fresh reservation is given back; a payment settled before is
    /// kept, undelivered, to be served once more.
    async fn unwind(&mut self) {
        match &self.kind {
            Kind::Fresh { .. } => {
                if let Err(error) = self.gw.state.reservations.release(&self.lease).await {
                    warn!(route = %self.route.key, %error, nonce = %self.nonce_id, "Cannot release a reservation; it expires by itself");
                }
            }
            Kind::Settled { receipt } => {
                let record = Record::Undelivered {
                    fingerprint: self.fingerprint,
                    receipt: receipt.clone(),
                };
                self.mark(record).await;
            }
        }
    }

    /// Settles a fresh payment (a settled one returns its receipt). On success the record is
    /// `Delivering` until the body ends; on failure the refusal, after releasing the
    /// authorization when nothing was sent on chain, or keeping it used when funds may have
    /// moved (logged for an operator to reconcile).
    async fn settle_now(&mut self, tokens: Option<TokenUsage>) -> Result<String, Denial> {
        let (request, facilitator) = match &self.kind {
            Kind::Settled { receipt } => return Ok(receipt.clone()),
            Kind::Fresh {
                request,
                facilitator,
            } => (request.clone(), facilitator.clone()),
        };
        let state = self.gw.state.clone();
        let metrics = &state.metrics;
        let decided = self.decide(tokens);
        let outcome = match &decided {
            None => facilitator.settle(&request).await,
            // Nothing used: nothing to move, no transaction to pay gas for.
            Some(d) if d.charged.amount.is_zero() => Ok(self.unsettled_receipt()),
            Some(d) => facilitator.settle(&d.request).await,
        };
        match outcome {
            Ok(mut settle) => {
                if let (Some(d), Some(upto)) = (&decided, &self.metered) {
                    // The settled amount, stated by us when the facilitator did not.
                    settle
                        .amount
                        .get_or_insert_with(|| d.charged.amount.to_string());
                    info!(route = %self.route.key, nonce = %self.nonce_id, amount = %d.charged.amount, authorized = %upto.verified.authorized, basis = ?d.charged.basis, capped = d.charged.capped, "Metered charge");
                    let basis = d.charged.basis.unwrap_or(ChargeBasis::Fallback);
                    let tokens = match basis {
                        ChargeBasis::Usage(u) => Some(u),
                        ChargeBasis::Fallback => None,
                    };
                    // The client reads what it was charged for, and whether it was capped.
                    let report = obol_api::metering::receipt_report(
                        &obol_api::metering::Charge {
                            amount: u128::try_from(d.charged.amount).unwrap_or(u128::MAX),
                            basis,
                            capped: d.charged.capped,
                        },
                        upto.tariff.maximum,
                    );
                    settle
                        .extensions
                        .get_or_insert_with(Default::default)
                        .insert(obol_api::metering::RECEIPT_EXTENSION.to_owned(), report);
                    let authorized = u128::try_from(upto.verified.authorized).unwrap_or(u128::MAX);
                    metrics.metered(
                        &self.route.labels,
                        tokens,
                        u128::try_from(d.charged.amount).unwrap_or(u128::MAX),
                        upto.tariff.maximum.min(authorized),
                        d.charged.capped,
                    );
                }
                let receipt = codec::encode_header(&settle).unwrap_or_default();
                let deadline = state.clock.now_unix().saturating_add(state.hold_secs);
                let record = Record::Delivering {
                    token: self.lease.token,
                    deadline,
                    fingerprint: self.fingerprint,
                    receipt: receipt.clone(),
                };
                self.mark(record).await;
                metrics
                    .payment_verified
                    .get_or_create(&self.route.labels)
                    .inc();
                metrics
                    .charged_requests
                    .get_or_create(&self.route.labels)
                    .inc();
                info!(route = %self.route.key, nonce = %self.nonce_id, tx = settle.transaction().unwrap_or(""), "Payment settled");
                self.kind = Kind::Settled {
                    receipt: receipt.clone(),
                };
                Ok(receipt)
            }
            Err(error) => {
                metrics.facilitator_error(error.metric_label());
                let denial = Denial::from_facilitator(&error, Some(&self.signature));
                if denial.releases_authorization() {
                    warn!(route = %self.route.key, reason = denial.metric_label(), nonce = %self.nonce_id, "Not settled, nothing sent on chain: answer withheld, nothing charged");
                    self.unwind().await;
                } else {
                    let tx = denial
                        .failed_settlement()
                        .map(|s| s.transaction)
                        .unwrap_or_default();
                    warn!(route = %self.route.key, reason = denial.metric_label(), nonce = %self.nonce_id, tx, "Settlement outcome unknown: answer withheld, authorization kept used; reconcile on chain");
                    self.mark(Record::Unknown {
                        fingerprint: self.fingerprint,
                    })
                    .await;
                }
                Err(denial)
            }
        }
    }
}

/// What one answer is charged and the `/settle` body that charges it.
struct Decided {
    charged: Charged,
    request: FacilitatorRequest,
}

impl Settlement {
    /// The receipt of a metered answer charged 0: success, no transaction.
    fn unsettled_receipt(&self) -> SettleResponse {
        let upto = self.metered.as_ref();
        SettleResponse {
            success: true,
            error_reason: None,
            error_message: None,
            transaction: String::new(),
            network: self.route.labels.chain.clone(),
            payer: upto.map(|u| u.verified.payer.to_checksum(None)),
            amount: Some("0".to_owned()),
            extensions: None,
        }
    }
}

/// An `upto` request's body, read whole (at most `max` bytes) and, when it is a streaming chat
/// request that does not ask for usage, rewritten to ask for it
/// (`stream_options.include_usage`): the usage is only ever read from the upstream's answer.
async fn ask_usage(request: Request, max: u64) -> Result<Request, Denial> {
    let (mut parts, body) = request.into_parts();
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Denial::RequestTooLarge)?;
    let bytes = match ask_for_stream_usage(&bytes) {
        Some(rewritten) => axum::body::Bytes::from(rewritten),
        None => bytes,
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

fn receipt_trailers(receipt: &str) -> Option<HeaderMap> {
    let mut t = HeaderMap::new();
    insert_receipt(&mut t, receipt);
    (!t.is_empty()).then_some(t)
}

impl Finish for Settlement {
    fn charge(mut self: Box<Self>, usage: Usage) -> BoxFuture<Option<HeaderMap>> {
        Box::pin(async move {
            // `exact` charges what was authorized; `upto` what the stream reported it used.
            match self.settle_now(usage.tokens).await {
                Ok(receipt) => {
                    self.mark(Record::Spent).await;
                    // A whole answer carried its receipt in the head already.
                    self.trailers.then(|| receipt_trailers(&receipt)).flatten()
                }
                Err(denial) => {
                    warn!(route = %self.route.key, reason = denial.metric_label(), nonce = %self.nonce_id, "Stream delivered but not settled");
                    denial
                        .failed_settlement()
                        .and_then(|s| codec::encode_header(&s).ok())
                        .and_then(|r| receipt_trailers(&r))
                }
            }
        })
    }

    fn abandon(mut self: Box<Self>, end: StreamEnd) -> BoxFuture<()> {
        Box::pin(async move {
            info!(route = %self.route.key, ?end, nonce = %self.nonce_id, "Answer not delivered: nothing charged");
            self.unwind().await;
        })
    }
}

/// A header name for tests and tools.
pub fn route_header() -> HeaderName {
    HeaderName::from_static(obol_api::proxy::ROUTE_HEADER)
}
