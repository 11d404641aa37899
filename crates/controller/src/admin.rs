//! The admin endpoints: `/healthz` (the process runs), `/readyz` (the watches have synced on
//! the leader), `/metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;

use axum::response::Response;
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::error::{Error, Result};

/// Shared state of the admin server.
#[derive(Clone)]
pub struct Admin {
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
}

impl Admin {
    /// Serves `registry`; not ready until [`Admin::set_ready`].
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
            ready: Arc::default(),
        }
    }

    /// Marks the controller ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// The router (also used by tests with `oneshot`).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// Binds `addr` and returns the bound address and the serving future.
    pub async fn bind(
        &self,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, impl Future<Output = Result<()>> + use<>)> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(Error::Admin)?;
        let bound = listener.local_addr().map_err(Error::Admin)?;
        let router = self.router();
        Ok((bound, async move {
            axum::serve(listener, router).await.map_err(Error::Admin)
        }))
    }
}

async fn readyz(State(admin): State<Admin>) -> Response {
    obol_runtime::admin::readiness(admin.ready.load(Ordering::Acquire))
}

async fn metrics(State(admin): State<Admin>) -> Response {
    obol_runtime::admin::metrics(&admin.registry)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use axum::http::StatusCode;

    use super::*;
    use crate::metrics::ControllerMetrics;

    async fn get(admin: &Admin, path: &str) -> (StatusCode, String) {
        let request = http::Request::get(path).body(Body::empty()).unwrap();
        let response = admin.router().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn probes_and_metrics() {
        let mut registry = Registry::default();
        let metrics = ControllerMetrics::register(&mut registry);
        metrics.leader.set(1);
        metrics.errors.get_or_create(&vec![("error", "kube")]).inc();
        let admin = Admin::new(registry);
        assert_eq!(get(&admin, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(&admin, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        admin.set_ready(true);
        assert_eq!(get(&admin, "/readyz").await.0, StatusCode::OK);
        let (status, body) = get(&admin, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("obol_controller_leader 1"), "{body}");
        assert!(
            body.contains("obol_controller_reconcile_errors_total{error=\"kube\"} 1"),
            "{body}"
        );
    }
}
