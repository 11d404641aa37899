//! The admin endpoints every service serves the same way, on its `--listen` address:
//!
//! | Path | Answer |
//! |---|---|
//! | `GET /healthz` | 200 `{"status":"ok"}` while the process runs |
//! | `GET /readyz` | 200 `{"status":"ready"}` once the service is ready, else 503 `not ready` |
//! | `GET /metrics` | the service's Prometheus registry as OpenMetrics text |
//!
//! (The bodies are the Go verifier's, obol-reference §5.) And the one way a service serves HTTP:
//! [`serve`] drains on shutdown, optionally within a grace period.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The content type of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `/healthz` body.
pub const HEALTHY: &str = "{\"status\":\"ok\"}\n";
/// The `/readyz` body when ready (200).
pub const READY: &str = "{\"status\":\"ready\"}\n";
/// The `/readyz` body when not ready (503).
pub const NOT_READY: &str = "not ready\n";

/// `registry` as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// The `/metrics` answer for already encoded `text`.
pub fn metrics_text(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS))],
        text,
    )
        .into_response()
}

/// The `/metrics` answer: `registry` as OpenMetrics text.
pub fn metrics(registry: &Registry) -> Response {
    metrics_text(encode(registry))
}

fn json(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The `/readyz` answer: 200 [`READY`] or 503 [`NOT_READY`].
pub fn readiness(ready: bool) -> Response {
    if ready {
        json(StatusCode::OK, READY)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, NOT_READY).into_response()
    }
}

/// The `/healthz` answer: 200 [`HEALTHY`].
pub fn liveness() -> Response {
    json(StatusCode::OK, HEALTHY)
}

/// A readiness flag a service flips (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Ready(Arc<AtomicBool>);

impl Ready {
    /// Marks the service ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the service is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

type Text = Arc<dyn Fn() -> String + Send + Sync>;
type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// The admin routes of one service: where its metrics and its readiness come from.
#[derive(Clone)]
pub struct Admin {
    metrics: Text,
    ready: Check,
    healthz: Option<&'static str>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    /// Metrics from `metrics` (called on every scrape, so it may refresh gauges first) and
    /// readiness from `ready`.
    pub fn new(
        metrics: impl Fn() -> String + Send + Sync + 'static,
        ready: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            metrics: Arc::new(metrics),
            ready: Arc::new(ready),
            healthz: None,
        }
    }

    /// Metrics from `registry`, readiness from the flag `ready`.
    pub fn with_registry(registry: Registry, ready: Ready) -> Self {
        let registry = Arc::new(registry);
        Self::new(move || encode(&registry), move || ready.get())
    }

    /// Another plain-text `/healthz` body (the buyer answers `ok`, as the Go buyer does).
    #[must_use]
    pub fn healthz_body(mut self, body: &'static str) -> Self {
        self.healthz = Some(body);
        self
    }

    /// `/healthz`, `/readyz` and `/metrics`, to merge into the service's router.
    pub fn router(&self) -> Router {
        let (metrics, ready, healthz) = (self.metrics.clone(), self.ready.clone(), self.healthz);
        Router::new()
            .route(
                "/healthz",
                get(move || async move {
                    match healthz {
                        Some(body) => body.into_response(),
                        None => liveness(),
                    }
                }),
            )
            .route("/readyz", get(move || async move { readiness(ready()) }))
            .route(
                "/metrics",
                get(move || async move { metrics_text(metrics()) }),
            )
    }
}

/// Binds `addr` and serves `router` in a task of its own until the process ends; returns the
/// bound address. For services whose main work is not serving (the controller, the registrar).
pub async fn spawn(addr: SocketAddr, router: Router) -> std::io::Result<SocketAddr> {
    use tracing::Instrument as _;
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let serving = async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(%error, "HTTP server stopped");
        }
    };
    tokio::spawn(serving.instrument(tracing::info_span!("http", %bound)));
    Ok(bound)
}

/// Serves `router` on `listener` until `drain` resolves, then lets requests in flight finish:
/// all of them, or with `grace`, those that finish within it (the rest are dropped).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    drain: impl Future<Output = ()> + Send + 'static,
    grace: Option<Duration>,
) -> std::io::Result<()> {
    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            drain.await;
            let _ = draining_tx.send(());
        })
        .into_future();
    let deadline = async move {
        match (draining_rx.await, grace) {
            (Ok(()), Some(grace)) => tokio::time::sleep(grace).await,
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        served = server => served,
        () = deadline => {
            tracing::warn!("Shutdown grace period over; dropping open connections");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt as _;

    use super::*;

    async fn body(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        (response.status(), body(response).await)
    }

    #[tokio::test]
    async fn readiness_is_200_or_503() {
        let ready = readiness(true);
        assert_eq!(ready.status(), StatusCode::OK);
        assert_eq!(ready.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(body(ready).await, "{\"status\":\"ready\"}\n");
        let not = readiness(false);
        assert_eq!(not.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(not).await, "not ready\n");
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text_of_the_registry() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("obol_test_requests", "Requests", counter.clone());
        counter.inc_by(3);
        let response = metrics(&registry);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], OPENMETRICS);
        let text = body(response).await;
        assert!(text.contains("obol_test_requests_total 3"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn the_admin_routes_follow_the_flag_and_the_registry() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("obol_test_scrapes", "Scrapes", counter.clone());
        counter.inc();
        let ready = Ready::default();
        let router = Admin::with_registry(registry, ready.clone()).router();
        assert_eq!(
            get(&router, "/healthz").await,
            (StatusCode::OK, HEALTHY.into())
        );
        assert_eq!(
            get(&router, "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, NOT_READY.into())
        );
        ready.set(true);
        assert_eq!(
            get(&router, "/readyz").await,
            (StatusCode::OK, READY.into())
        );
        let (status, text) = get(&router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("obol_test_scrapes_total 1"), "{text}");
    }

    #[tokio::test]
    async fn metrics_are_computed_per_scrape_and_healthz_may_differ() {
        let scrapes = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = scrapes.clone();
        let admin = Admin::new(
            move || format!("scrape {}\n", seen.fetch_add(1, Ordering::SeqCst)),
            || true,
        )
        .healthz_body("ok");
        let router = admin.router();
        assert_eq!(get(&router, "/metrics").await.1, "scrape 0\n");
        assert_eq!(get(&router, "/metrics").await.1, "scrape 1\n");
        assert_eq!(
            get(&router, "/healthz").await,
            (StatusCode::OK, "ok".into())
        );
    }

    #[tokio::test]
    async fn serve_drains_then_drops_what_outlives_the_grace() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(600)).await;
                "late"
            }),
        );
        let (trigger, shutdown) = crate::shutdown::Shutdown::manual();
        let grace = Duration::from_millis(200);
        let server = tokio::spawn(serve(listener, router, shutdown.requested(), Some(grace)));
        // A request in flight keeps a graceful server open.
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.trigger();
        let ended = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the grace period ends the server");
        ended.unwrap().unwrap();
    }
}
