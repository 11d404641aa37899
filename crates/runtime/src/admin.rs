//! The admin responses every service serves the same way: readiness, and its Prometheus
//! registry as OpenMetrics text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;

/// The content type of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// The `/readyz` answer: 200 `ready` or 503 `not ready`.
pub fn readiness(ready: bool) -> Response {
    if ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    async fn body(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn readiness_is_200_or_503() {
        let ready = readiness(true);
        assert_eq!(ready.status(), StatusCode::OK);
        assert_eq!(body(ready).await, "ready\n");
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
}
