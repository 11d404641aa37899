use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector;
use kube::runtime::watcher;
use obol_api::{RegistrationPhase, RegistrationRequestStatus};
use tower::ServiceExt as _;

use super::*;

fn mk_rr(
    ns: &str,
    name: &str,
    created: &str,
    phase: RegistrationPhase,
    agent_id: Option<u64>,
) -> RegistrationRequest {
    let mut spec = crate::document::tests::mk_spec();
    spec.name = name.to_owned();
    spec.endpoint = format!("https://example.com/services/{name}");
    spec.services.clear();
    spec.skills.clear();
    spec.domains.clear();
    let mut rr = RegistrationRequest::new(name, spec);
    rr.metadata.namespace = Some(ns.to_owned());
    rr.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
    rr.status = Some(RegistrationRequestStatus {
        phase: Some(phase),
        agent_id: agent_id.map(|i| i.to_string()),
        ..Default::default()
    });
    rr
}

fn served(objects: Vec<RegistrationRequest>) -> Served {
    let (store, mut writer) = reflector::store();
    for rr in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(rr));
    }
    Served::new(store, Registry::default())
}

async fn get(s: &Served, path: &str) -> (StatusCode, String) {
    let res = s
        .router()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn well_known_aggregates_registered_requests_oldest_first() {
    let s = served(vec![
        mk_rr(
            "b",
            "newer",
            "2026-01-02T00:00:00Z",
            RegistrationPhase::Confirmed,
            Some(9),
        ),
        mk_rr(
            "a",
            "older",
            "2026-01-01T00:00:00Z",
            RegistrationPhase::OffChainOnly,
            None,
        ),
        mk_rr(
            "c",
            "pending",
            "2025-01-01T00:00:00Z",
            RegistrationPhase::Pending,
            None,
        ),
        mk_rr(
            "d",
            "failed",
            "2025-01-01T00:00:00Z",
            RegistrationPhase::Failed,
            None,
        ),
    ]);
    let (status, body) = get(&s, "/.well-known/agent-registration.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["name"], "older");
    let endpoints: Vec<_> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["endpoint"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        endpoints,
        [
            "https://example.com/services/older",
            "https://example.com/services/newer"
        ]
    );
    assert_eq!(doc["registrations"][0]["agentId"], 9);
}

#[tokio::test]
async fn nothing_registered_is_404() {
    let s = served(vec![mk_rr(
        "a",
        "p",
        "2026-01-01T00:00:00Z",
        RegistrationPhase::Pending,
        None,
    )]);
    assert_eq!(
        get(&s, "/.well-known/agent-registration.json").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn each_request_has_its_document_and_retired_ones_their_tombstone() {
    let s = served(vec![
        mk_rr(
            "llm",
            "live",
            "2026-01-01T00:00:00Z",
            RegistrationPhase::Confirmed,
            Some(0),
        ),
        mk_rr(
            "llm",
            "gone",
            "2026-01-01T00:00:00Z",
            RegistrationPhase::Tombstoned,
            Some(1),
        ),
    ]);
    let (status, body) = get(&s, "/registrations/llm/live.json").await;
    assert_eq!(status, StatusCode::OK);
    let live: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            live["active"].as_bool(),
            live["registrations"][0]["agentId"].as_u64()
        ),
        (Some(true), Some(0))
    );
    let (_, body) = get(&s, "/registrations/llm/gone.json").await;
    let dead: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(dead["active"], false);
    assert_eq!(dead["x402Support"], false);
    for missing in [
        "/registrations/llm/nope.json",
        "/registrations/other/live.json",
        "/registrations/llm/live",
    ] {
        assert_eq!(get(&s, missing).await.0, StatusCode::NOT_FOUND, "{missing}");
    }
}

#[tokio::test]
async fn admin_endpoints() {
    let s = served(vec![]);
    assert_eq!(get(&s, "/healthz").await.0, StatusCode::OK);
    assert_eq!(get(&s, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    s.set_ready(true);
    assert_eq!(get(&s, "/readyz").await.0, StatusCode::OK);
    let (status, body) = get(&s, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("# EOF"), "{body}");
}
