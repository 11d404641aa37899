//! The registrar's HTTP server: the registration documents and the admin endpoints.
//!
//! | Path | Answer |
//! |---|---|
//! | `GET /.well-known/agent-registration.json` | the aggregated document of every registered request (oldest first); 404 when none |
//! | `GET /registrations/{namespace}/{name}.json` | one request's document (the tombstone once retired) |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 once the RegistrationRequest cache has synced |
//! | `GET /metrics` | Prometheus text |
//!
//! (The last three are [`obol_runtime::admin`]'s.)

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::ResourceExt as _;
use kube::runtime::reflector::Store;
use obol_api::RegistrationRequest;
use obol_runtime::admin::{Admin, Ready};
use prometheus_client::registry::Registry;

use crate::document;
use crate::request;

/// Shared state of the server.
#[derive(Clone)]
pub struct Served {
    store: Store<RegistrationRequest>,
    admin: Admin,
    ready: Ready,
}

impl Served {
    /// Serves documents from `store` and metrics from `registry`; not ready until
    /// [`Served::set_ready`].
    pub fn new(store: Store<RegistrationRequest>, registry: Registry) -> Self {
        let ready = Ready::default();
        Self {
            store,
            admin: Admin::with_registry(registry, ready.clone()),
            ready,
        }
    }

    /// Marks the cache synced (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(ready);
    }

    /// The router (tests call it with `oneshot`).
    pub fn router(&self) -> Router {
        Router::new()
            .route(obol_api::routes::AGENT_REGISTRATION, get(well_known))
            .route("/registrations/{namespace}/{file}", get(one))
            .with_state(self.clone())
            .merge(self.admin.router())
    }
}

fn json(doc: &document::RegistrationDocument) -> Response {
    let body = serde_json::to_string_pretty(doc).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// The requests the aggregate announces: registered (on chain or off chain only), not
/// retired, oldest first (ties by namespace, then name).
pub fn announced(mut all: Vec<Arc<RegistrationRequest>>) -> Vec<Arc<RegistrationRequest>> {
    all.retain(|rr| {
        !request::is_retired(rr)
            && rr
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| p.counts_as_registered())
    });
    all.sort_by(|a, b| {
        let key = |rr: &RegistrationRequest| {
            (
                rr.metadata.creation_timestamp.as_ref().map(|t| t.0),
                rr.namespace(),
                rr.name_any(),
            )
        };
        key(a).cmp(&key(b))
    });
    all
}

async fn well_known(State(s): State<Served>) -> Response {
    let docs: Vec<_> = announced(s.store.state())
        .iter()
        .filter_map(|rr| request::served_document(rr).ok())
        .collect();
    match document::aggregate(&docs) {
        Some(doc) => json(&doc),
        None => not_found(),
    }
}

async fn one(State(s): State<Served>, Path((namespace, file)): Path<(String, String)>) -> Response {
    let Some(name) = file.strip_suffix(".json") else {
        return not_found();
    };
    let found =
        s.store.state().into_iter().find(|rr| {
            rr.namespace().as_deref() == Some(namespace.as_str()) && rr.name_any() == name
        });
    match found.map(|rr| request::served_document(&rr)) {
        Some(Ok(doc)) => json(&doc),
        _ => not_found(),
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
