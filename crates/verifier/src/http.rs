//! The axum app: ForwardAuth endpoints, probes and metrics. [`app`] builds it so tests can
//! drive it with `Router::oneshot`, without a socket.

use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::any;

use crate::decide::{self, Body, Forwarded, PAYMENT_HEADERS, Reply};
use crate::error::Denial;
use crate::gate::gate;
use crate::matcher::path_of;
use crate::metrics::{Outcome, OutcomeLabels};
use crate::state::AppState;

/// `X-Forwarded-Uri`.
pub const X_FORWARDED_URI: &str = "x-forwarded-uri";
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: &str = "x-forwarded-host";
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
/// `X-Forwarded-Method` (Traefik's ForwardAuth sends the client's method in it).
pub const X_FORWARDED_METHOD: &str = "x-forwarded-method";

/// The verifier's router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/verify", any(verify_by_path))
        .route(obol_api::traefik::VERIFY_ROUTE, any(verify_exact))
        .with_state(state.clone())
        .merge(admin(state).router())
}

/// `/healthz`, `/readyz` (the route source has synced) and `/metrics`.
fn admin(state: AppState) -> obol_runtime::admin::Admin {
    let table = state.table.clone();
    obol_runtime::admin::Admin::new(
        move || {
            state.metrics.routes.set(state.table.len() as i64);
            obol_runtime::admin::encode(&state.registry)
        },
        move || table.is_synced(),
    )
}

/// ForwardAuth for one named route: the Middleware's address names the PaymentRoute, so the
/// lookup is exact and a route that is not loaded fails closed.
async fn verify_exact(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    let start = Instant::now();
    // Borrowed from the request: the `HeaderMap` extractor would copy every header.
    let headers = request.headers();
    let (reply, outcome) = match forwarded(headers) {
        Err(denial) => refuse(&state, denial),
        Ok(_) if !state.table.is_synced() => refuse(&state, Denial::NotReady),
        Ok(fwd) => match state.table.get(&namespace, &name) {
            None => refuse(&state, Denial::UnknownRoute),
            // The Middleware sits on the offer's published prefix only: a path there that
            // the route's pattern (or table) does not cover is refused, never let through
            // for free.
            Some(route) => match route.resolve(path_of(fwd.uri), method(headers)) {
                Err(denial) => refuse(&state, denial),
                Ok(route) => gate(&state, &route, &fwd, payment(headers)).await,
            },
        },
    };
    finish(&state, start, reply, outcome)
}

/// ForwardAuth by path: the first route matching `X-Forwarded-Uri` (query string cut off);
/// an unmatched path is not priced.
async fn verify_by_path(State(state): State<AppState>, request: Request) -> Response {
    let start = Instant::now();
    let headers = request.headers();
    let (reply, outcome) = match forwarded(headers) {
        Err(denial) => refuse(&state, denial),
        Ok(_) if !state.table.is_synced() => refuse(&state, Denial::NotReady),
        Ok(fwd) => match state.table.find(path_of(fwd.uri)) {
            None => (decide::free(None), Outcome::Free),
            Some(route) => match route.resolve(path_of(fwd.uri), method(headers)) {
                Err(denial) => refuse(&state, denial),
                Ok(route) => gate(&state, &route, &fwd, payment(headers)).await,
            },
        },
    };
    finish(&state, start, reply, outcome)
}

fn refuse(state: &AppState, denial: Denial) -> (Reply, Outcome) {
    state.metrics.denied(denial.metric_label());
    let reply = decide::denied(&denial, None);
    let outcome = Outcome::of_refusal(reply.status);
    (reply, outcome)
}

fn finish(state: &AppState, start: Instant, reply: Reply, outcome: Outcome) -> Response {
    state
        .metrics
        .request_duration
        .get_or_create(&OutcomeLabels { outcome })
        .observe(start.elapsed().as_secs_f64());
    into_response(reply)
}

/// Reads the forwarded request; `X-Forwarded-Uri` is required and at most
/// [`decide::MAX_URI_LEN`] long.
fn forwarded(headers: &HeaderMap) -> Result<Forwarded<'_>, Denial> {
    let uri = headers
        .get(X_FORWARDED_URI)
        .ok_or(Denial::MissingForwardedUri)?
        .to_str()
        .map_err(|_| Denial::InvalidForwardedHeader("X-Forwarded-Uri"))?;
    if uri.len() > decide::MAX_URI_LEN {
        return Err(Denial::UriTooLong {
            len: uri.len(),
            max: decide::MAX_URI_LEN,
        });
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    Ok(Forwarded {
        proto: text(X_FORWARDED_PROTO),
        host: text(X_FORWARDED_HOST),
        uri,
        wants_html: decide::wants_html(headers),
    })
}

fn method(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(X_FORWARDED_METHOD)
        .and_then(|v| v.to_str().ok())
}

fn payment(headers: &HeaderMap) -> Result<Option<&str>, Denial> {
    decide::payment_header(PAYMENT_HEADERS.iter().flat_map(|h| headers.get_all(*h)))
}

/// Turns a decided reply into a response.
pub fn into_response(reply: Reply) -> Response {
    let (content_type, body) = match reply.body {
        Body::Empty => (None, axum::body::Body::empty()),
        Body::Json(bytes) => (Some("application/json"), bytes.into()),
        Body::Html(text) => (Some("text/html; charset=utf-8"), text.into()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let h = response.headers_mut();
    if let Some(ct) = content_type {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    for (name, value) in reply.headers {
        h.append(name, value);
    }
    response
}
