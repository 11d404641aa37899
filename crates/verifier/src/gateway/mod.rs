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
use obol_x402::verify::SignatureCheck;
use obol_x402::wire::{FacilitatorRequest, ResourceInfo};
use obol_x402::{Facilitator, PaymentPayload, Requirement, VerifiedPayment, codec};
use tracing::{Instrument as _, info, info_span, warn};

use self::body::{BoxFuture, Finish, PaidBody};
use self::charge::{AfterHead, Delivery, Head, StreamEnd, Usage};
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
    match admit_request(&gw, request) {
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

/// Everything a paid request needs once its local checks passed.
struct Paid {
    route: Arc<RouteEntry>,
    requirement: Requirement,
    resource: ResourceInfo,
    wants_html: bool,
    payload: PaymentPayload,
    verified: VerifiedPayment,
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

/// Routing and the local checks, before any network call.
fn admit_request(gw: &Gateway, request: Request) -> Result<Step, Box<Response>> {
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
    let uri = proxy
        .target
        .uri(&pq)
        .map_err(|_| refuse(state, Denial::PathNotPriced))?;
    state.metrics.requests.get_or_create(&route.labels).inc();
    let Some(requirement) = route.requirement.clone() else {
        return Ok(Step::Free(Box::new((route, request, uri))));
    };
    let fwd = Forwarded {
        proto: text(headers, X_FORWARDED_PROTO),
        host: text(headers, X_FORWARDED_HOST).or_else(|| text(headers, "host")),
        uri: &pq,
        wants_html: headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(decide::wants_html),
    };
    let header = match decide::payment_header(
        decide::PAYMENT_HEADERS
            .iter()
            .flat_map(|h| headers.get_all(*h)),
    ) {
        Ok(None) => {
            let (reply, _) = crate::gate::unpaid(state, &route, &requirement, &fwd);
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
    };
    let refuse_paid = |denial| Box::new(into_response(ctx.refuse(denial).0));
    let header = match header {
        Ok(Some(h)) => h,
        Ok(None) => return Err(refuse_paid(Denial::UnreadableHeader)),
        Err(denial) => return Err(refuse_paid(denial)),
    };
    let now = state.clock.now_unix();
    let (payload, verified) =
        decide::check_payment(&requirement, header, now).map_err(refuse_paid)?;
    Ok(Step::Paid(Box::new(Paid {
        route: route.clone(),
        requirement,
        resource,
        wants_html,
        payload,
        verified,
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
            resource,
            wants_html,
            payload,
            verified,
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
        };
        let admitted = match ctx.admit(payload, &verified, now).await {
            Ok(a) => a,
            Err(denial) => return into_response(ctx.refuse(denial).0),
        };
        let payer = verified.payer.to_checksum(None);
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
        let req = upstream_request(&gw, &route, request, uri, Some(&payer), websocket);
        let mut settlement =
            Settlement::new(gw.clone(), route.clone(), &requirement, &verified, admitted);
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
            AfterHead::SettleThenUpgrade => match settlement.settle_now().await {
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
                    Read::Whole(bytes) => match settlement.settle_now().await {
                        Ok(receipt) => {
                            let len = bytes.len();
                            let body = PaidBody::buffered(bytes.into(), Box::new(settlement));
                            paid_response(parts, body, Some(&receipt), Some(len))
                        }
                        // The refusal carries a failed settlement's PAYMENT-RESPONSE.
                        Err(denial) => into_response(ctx.refuse(denial).0),
                    },
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
    let body = PaidBody::streamed(prefix, Some(rest), idle, Box::new(settlement));
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
}

impl Settlement {
    fn new(
        gw: Gateway,
        route: Arc<RouteEntry>,
        requirement: &Requirement,
        verified: &VerifiedPayment,
        admitted: Admitted,
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
            fingerprint: Fingerprint::of(requirement),
            nonce_id: short_hash(&verified.nonce),
            signature: verified.signature.clone(),
            lease,
            kind,
            trailers: false,
        }
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
    async fn settle_now(&mut self) -> Result<String, Denial> {
        let (request, facilitator) = match &self.kind {
            Kind::Settled { receipt } => return Ok(receipt.clone()),
            Kind::Fresh {
                request,
                facilitator,
            } => (request.clone(), facilitator.clone()),
        };
        let state = self.gw.state.clone();
        let metrics = &state.metrics;
        match facilitator.settle(&request).await {
            Ok(settle) => {
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

fn receipt_trailers(receipt: &str) -> Option<HeaderMap> {
    let mut t = HeaderMap::new();
    insert_receipt(&mut t, receipt);
    (!t.is_empty()).then_some(t)
}

impl Finish for Settlement {
    fn charge(mut self: Box<Self>, usage: Usage) -> BoxFuture<Option<HeaderMap>> {
        Box::pin(async move {
            // `exact` charges what was authorized; the seam where a metered scheme decides.
            let _ = usage;
            match self.settle_now().await {
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
