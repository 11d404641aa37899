//! Gateway-mode fixtures: a scripted upstream on loopback, the gateway listener served on
//! loopback, and an HTTP/1.1 client that reads trailers.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

pub mod metered;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use obol_api::{PaymentRouteSpec, ProxyTarget};
use obol_verifier::gateway::upstream::{Upstream, UpstreamConfig};
use obol_verifier::gateway::{Gateway, app};
use obol_verifier::{AppState, RouteEntry};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// What the scripted upstream does and saw.
#[derive(Debug, Default)]
pub struct UpstreamScript {
    /// Requests that reached it, by path.
    pub hits: Mutex<HashMap<String, usize>>,
    /// Every request's headers, in order.
    pub seen: Mutex<Vec<HeaderMap>>,
    /// `/flaky` answers 500 while set.
    pub failing: AtomicBool,
    /// `/sse` waits for this before it ends.
    pub release: Notify,
    /// `/sse` events sent so far.
    pub events_sent: AtomicUsize,
}

impl UpstreamScript {
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().get(path).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.hits.lock().values().sum()
    }
}

async fn upstream_handler(State(s): State<Arc<UpstreamScript>>, mut req: Request) -> Response {
    let path = req.uri().path().to_owned();
    *s.hits.lock().entry(path.clone()).or_default() += 1;
    s.seen.lock().push(req.headers().clone());
    let query = req.uri().query().unwrap_or_default().to_owned();
    let n = |key: &str, default: usize| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    match path.as_str() {
        "/json" => (
            [("content-type", "application/json")],
            format!("{{\"answer\":\"{}\"}}", "x".repeat(n("bytes", 1000))),
        )
            .into_response(),
        "/flaky" if s.failing.load(Ordering::SeqCst) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "upstream broke").into_response()
        }
        "/flaky" => ([("content-type", "application/json")], "{\"ok\":true}").into_response(),
        "/teapot" => (StatusCode::IM_A_TEAPOT, "no").into_response(),
        "/empty" => StatusCode::NO_CONTENT.into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late".into_response()
        }
        "/big" => {
            let bytes = n("bytes", 1 << 20);
            (
                [("content-type", "application/octet-stream")],
                vec![b'b'; bytes],
            )
                .into_response()
        }
        "/sse" => {
            let events = n("events", 200);
            let wait = query.contains("wait");
            let gap = Duration::from_millis(n("gap_ms", 0) as u64);
            let s = s.clone();
            let stream = async_stream(s, events, wait, gap);
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        "/ndjson" => Response::builder()
            .header("content-type", "application/x-ndjson")
            .body(Body::from("{\"a\":1}\n{\"a\":2}\n"))
            .unwrap(),
        "/ws" if req.headers().contains_key("upgrade") => {
            // Not WebSocket framing: the gateway relays bytes, so an echo shows the relay.
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = on.await {
                    let mut io = TokioIo::new(upgraded);
                    let (mut r, mut w) = tokio::io::split(&mut io);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("upgrade", "websocket")
                .header("connection", "upgrade")
                .header("sec-websocket-accept", "scripted")
                .body(Body::empty())
                .unwrap()
        }
        "/echo" => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            ([("content-type", "application/octet-stream")], body).into_response()
        }
        _ => (StatusCode::OK, format!("path {path}")).into_response(),
    }
}

/// `events` SSE events (`gap` apart when not zero), then the end, or (with `wait`) nothing
/// more until `release` is notified.
fn async_stream(
    s: Arc<UpstreamScript>,
    events: usize,
    wait: bool,
    gap: Duration,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
    futures::stream::unfold(0usize, move |i| {
        let s = s.clone();
        async move {
            if i < events {
                if i > 0 && !gap.is_zero() {
                    tokio::time::sleep(gap).await;
                }
                s.events_sent.fetch_add(1, Ordering::SeqCst);
                // A small pause now and then, so events really arrive one by one.
                if i % 50 == 49 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Some((Ok(Bytes::from(format!("data: event {i}\n\n"))), i + 1))
            } else if i == events && wait {
                s.release.notified().await;
                None
            } else {
                None
            }
        }
    })
}

/// Serves `router` on a loopback port until the test ends.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// The scripted upstream on loopback.
pub async fn upstream() -> (SocketAddr, Arc<UpstreamScript>) {
    let script = Arc::new(UpstreamScript::default());
    let router = Router::new()
        .fallback(upstream_handler)
        .with_state(script.clone());
    (serve(router).await, script)
}

/// A proxy-mode spec for `/services/demo/*` at 1000 atomic units to `upstream`.
pub fn proxy_spec(upstream: SocketAddr) -> PaymentRouteSpec {
    let mut spec = crate::support::spec("/services/demo/*", "1000");
    spec.proxy = Some(ProxyTarget {
        upstream: format!("http://{upstream}"),
        strip_prefix: Some("/services/demo".into()),
        streaming_content_types: vec![],
        allow_web_socket: false,
    });
    spec
}

/// Short budgets for tests.
pub fn test_config() -> UpstreamConfig {
    UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        head_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        max_request_bytes: 64 << 10,
        max_buffer_bytes: 16 << 20,
        ..UpstreamConfig::default()
    }
}

/// The gateway listener for `state` on loopback.
pub async fn gateway(state: AppState, config: UpstreamConfig) -> SocketAddr {
    let gw = Gateway {
        state,
        upstream: Arc::new(Upstream::new(config)),
    };
    serve(app(gw)).await
}

/// An answer read whole, trailers included.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The transaction of the receipt in the head (or, with `trailer`, in the trailers).
    pub fn receipt_tx(&self, trailer: bool) -> Option<String> {
        let map = if trailer {
            self.trailers.as_ref()?
        } else {
            &self.headers
        };
        let v = map.get("payment-response")?.to_str().ok()?;
        Some(
            obol_x402::codec::decode_settle_response(v)
                .ok()?
                .transaction,
        )
    }
}

/// Sends a request on a fresh HTTP/1.1 connection (with `TE: trailers`) and returns the head
/// and the body still to read.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> hyper::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "obol.stack")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    sender
        .send_request(
            req.body(http_body_util::Full::new(Bytes::from(body)))
                .unwrap(),
        )
        .await
        .unwrap()
}

/// Sends a WebSocket upgrade request and, when the answer is 101, returns the upgraded
/// connection too.
pub async fn upgrade(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (
    hyper::Response<Incoming>,
    Option<TokioIo<hyper::upgrade::Upgraded>>,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut req = hyper::Request::builder()
        .uri(path)
        .header("host", "obol.stack")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut response = sender
        .send_request(req.body(http_body_util::Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return (response, None);
    }
    let upgraded = hyper::upgrade::on(&mut response).await.unwrap();
    (response, Some(TokioIo::new(upgraded)))
}

/// Reads an answer whole.
pub async fn read(response: hyper::Response<Incoming>) -> Answer {
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(d) => bytes.extend_from_slice(&d),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: bytes,
        trailers,
    }
}

/// GET `path` with `headers`, read whole.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    read(send(addr, "GET", path, headers, vec![]).await).await
}

/// A proxy-mode route entry `demo/demo` to `upstream`.
pub fn demo_proxy_entry(upstream: SocketAddr) -> RouteEntry {
    crate::support::entry("demo", "demo", &proxy_spec(upstream))
}
