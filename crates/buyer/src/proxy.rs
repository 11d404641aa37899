//! The HTTP API (obol-reference §6.1): OpenAI-compatible routes, `/upstream/<name>/…`,
//! `/status`, `/healthz`, `/metrics`, `/admin/reload`.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use crate::buyer::Buyer;
use crate::forward::{self, Outgoing};
use crate::metrics::BuyerMetrics;
use crate::upstream::normalize_model;

/// Largest request body buffered for replay.
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// The buyer's router.
pub fn router(buyer: Arc<Buyer>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/admin/reload", post(reload))
        .route("/v1/chat/completions", post(by_model))
        .route("/chat/completions", post(by_model))
        .route("/v1/responses", post(by_model))
        .route("/responses", post(by_model))
        .route("/upstream/{name}", any(by_name))
        .route("/upstream/{name}/", any(by_name))
        .route("/upstream/{name}/{*rest}", any(by_name))
        .with_state(buyer.clone())
        .merge(admin(buyer).router())
}

/// `/healthz` (`ok`, as the Go buyer answers), `/readyz` and `/metrics`. Served only once the
/// journal is recovered, so the buyer is always ready.
fn admin(buyer: Arc<Buyer>) -> obol_runtime::admin::Admin {
    let metrics = move || {
        buyer.metrics.observe_syncs(buyer.journal.syncs());
        buyer.metrics.encode()
    };
    obol_runtime::admin::Admin::new(metrics, || true).healthz_body("ok")
}

async fn status(State(b): State<Arc<Buyer>>) -> Response {
    let status = b.pool.lock().status();
    axum::Json(status).into_response()
}

async fn reload(State(b): State<Arc<Buyer>>) -> Response {
    let status = if b.trigger_reload() {
        "reload triggered"
    } else {
        "reload already pending"
    };
    axum::Json(json!({ "status": status })).into_response()
}

fn not_found(message: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_REQUEST_BODY)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response())
}

async fn by_model(State(b): State<Arc<Buyer>>, req: Request) -> Response {
    const MISS: &str = "no purchased upstream mapped for requested model";
    let (parts, body) = req.into_parts();
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(mut doc) = serde_json::from_slice::<Value>(&body) else {
        return not_found(MISS);
    };
    let Some(model) = doc
        .get("model")
        .and_then(Value::as_str)
        .map(normalize_model)
    else {
        return not_found(MISS);
    };
    let Some(upstream) = b.pool.lock().route_model(&model) else {
        return not_found(MISS);
    };
    let labels = BuyerMetrics::labels(&upstream.name, upstream.remote_model.as_deref());
    b.metrics.requests.get_or_create(&labels).inc();
    doc["model"] = Value::String(model);
    let body = serde_json::to_vec(&doc).map(Bytes::from).unwrap_or(body);
    let out = Outgoing {
        method: parts.method,
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: forward::forwardable(&parts.headers),
        body,
    };
    run(&b, &upstream, out).await
}

async fn by_name(
    State(b): State<Arc<Buyer>>,
    Path(params): Path<Vec<(String, String)>>,
    req: Request,
) -> Response {
    let Some(name) = params
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone())
    else {
        return not_found("unknown upstream");
    };
    let Some(upstream) = b.pool.lock().upstream(&name) else {
        return not_found("unknown upstream");
    };
    let (parts, body) = req.into_parts();
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let prefix = format!("/upstream/{name}");
    let path = parts.uri.path().strip_prefix(&prefix).unwrap_or_default();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let out = Outgoing {
        method: parts.method,
        path_and_query: format!("{path}{query}"),
        headers: forward::forwardable(&parts.headers),
        body,
    };
    run(&b, &upstream, out).await
}

async fn run(b: &Arc<Buyer>, upstream: &crate::upstream::Upstream, out: Outgoing) -> Response {
    match forward::forward(b, upstream, out).await {
        Ok(r) => r,
        Err(e) => {
            let reason = e.metric_label();
            b.metrics
                .spend_errors
                .get_or_create(&crate::metrics::ReasonLabels {
                    reason: reason.to_owned(),
                })
                .inc();
            tracing::warn!(upstream = %upstream.name, error = %e, reason, "Request failed");
            e.into_response()
        }
    }
}
