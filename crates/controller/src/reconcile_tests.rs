//! Scenario tests of the reconcile shell against a scripted API server (`tower-test`): every
//! expected call is checked (method, path, field manager, force, body) and answered; a missing
//! or an extra call makes the scenario time out.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use obol_api::ServiceOffer;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use crate::metrics::ControllerMetrics;
use crate::plan::{GatewayRef, ServiceRef, Settings};
use crate::reconcile::{Context, reconcile};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected API call.
struct Expect {
    method: Method,
    path: String,
    /// Substrings the query must contain (e.g. `fieldManager=…`, `force=true`).
    query: &'static [&'static str],
    /// Checks on the request body.
    body: fn(&Value),
    /// Status code and body of the answer; `None` echoes the request body.
    reply: Option<(u16, Value)>,
}

fn expect(method: Method, path: &str) -> Expect {
    Expect {
        method,
        path: path.to_owned(),
        query: &[],
        body: |_| {},
        reply: None,
    }
}

const SSA: &[&str] = &["fieldManager=serviceoffer-controller", "force=true"];

fn not_found() -> Option<(u16, Value)> {
    Some((
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    ))
}

async fn serve(mut handle: Handle, script: Vec<Expect>) {
    for (i, step) in script.into_iter().enumerate() {
        let (request, send) = handle.next_request().await.expect("a request");
        let uri = request.uri().clone();
        assert_eq!(request.method(), step.method, "step {i}: {uri}");
        assert_eq!(uri.path(), step.path, "step {i}");
        let query = uri.query().unwrap_or_default();
        for q in step.query {
            assert!(query.contains(q), "step {i}: {uri} lacks {q}");
        }
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (step.body)(&body);
        let (code, reply) = step.reply.unwrap_or((200, body));
        let response = Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap();
        send.send_response(response);
    }
}

fn context() -> (Arc<Context>, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let metrics = Arc::new(ControllerMetrics::register(&mut Registry::default()));
    let reporter = Reporter {
        controller: "test".into(),
        instance: None,
    };
    let ctx = Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        settings: Settings {
            verifier_url: "http://verifier:8080".into(),
            verifier_gateway: ServiceRef {
                name: "x402-verifier".into(),
                namespace: "x402".into(),
                port: 8081,
            },
            gateway: GatewayRef {
                name: "gw".into(),
                namespace: "gwns".into(),
            },
            public_base_url: "https://example.com".into(),
        },
        probe_timeout: Duration::from_millis(200),
        probe_interval: Duration::from_secs(30),
        cleanup_timeout: Duration::from_secs(60),
        offers: reflector::store().0,
        middlewares: reflector::store().0,
        payment_routes: reflector::store().0,
        http_routes: reflector::store().0,
        registrations: reflector::store().0,
        metrics,
        healthy_once: parking_lot::Mutex::default(),
    };
    (Arc::new(ctx), handle)
}

fn offer(finalized: bool, deleting: bool, spec_patch: Value) -> ServiceOffer {
    let mut spec = json!({
        "upstream": {"service": "up", "port": 8080, "healthPath": "/health"},
        "payment": {"network": "base-sepolia", "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "price": {"perRequest": "0.001"}},
    });
    if let (Some(s), Some(p)) = (spec.as_object_mut(), spec_patch.as_object()) {
        s.extend(p.clone());
    }
    let mut meta = json!({"name": "demo", "namespace": "llm", "uid": "u-1", "generation": 1, "resourceVersion": "7"});
    if finalized {
        meta["finalizers"] = json!([obol_api::FINALIZER]);
    }
    if deleting {
        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    serde_json::from_value(json!({"apiVersion": "obol.org/v1alpha1", "kind": "ServiceOffer", "metadata": meta, "spec": spec})).unwrap()
}

async fn run_scenario(
    offer: ServiceOffer,
    script: Vec<Expect>,
) -> crate::Result<kube::runtime::controller::Action> {
    let (ctx, handle) = context();
    let offer_json = serde_json::to_value(&offer).unwrap();
    let script = script
        .into_iter()
        .map(|mut e| {
            if e.reply.is_none() && e.path.contains("/serviceoffers/demo") {
                e.reply = Some((200, offer_json.clone()));
            }
            e
        })
        .collect();
    let both = async { tokio::join!(reconcile(Arc::new(offer), ctx), serve(handle, script)).0 };
    tokio::time::timeout(Duration::from_secs(5), both)
        .await
        .expect("scenario timed out: a call is missing or unexpected")
}

const OFFER: &str = "/apis/obol.org/v1alpha1/namespaces/llm/serviceoffers/demo";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/llm/events";

#[tokio::test]
async fn a_new_offer_gets_the_finalizer_first() {
    let script = vec![Expect {
        body: |b| {
            // kube-runtime's JSON patch: test the (missing) list against null, then add it.
            assert_eq!(
                b[0],
                json!({"op": "test", "path": "/metadata/finalizers", "value": null})
            );
            assert_eq!(b[1]["op"], "add");
            assert_eq!(b[1]["value"], json!([obol_api::FINALIZER]));
        },
        ..expect(Method::PATCH, OFFER)
    }];
    run_scenario(offer(false, false, json!({})), script)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_valid_offer_applies_gate_children_and_withholds_the_route() {
    let status_body: fn(&Value) = |b| {
        assert_eq!(b["kind"], "ServiceOffer");
        assert_eq!(b["status"]["phase"], "Reconciling");
        assert_eq!(b["status"]["observedGeneration"], 1);
        let conds = b["status"]["conditions"].as_array().unwrap();
        let reason = |t: &str| conds.iter().find(|c| c["type"] == t).unwrap()["reason"].clone();
        assert_eq!(reason("UpstreamHealthy"), "MissingService");
        assert_eq!(reason("PaymentGateReady"), "AdmissionPending");
        assert_eq!(reason("RoutePublished"), "WaitingForPaymentGate");
        assert_eq!(reason("Registered"), "Disabled");
        assert!(
            b.get("spec").is_none(),
            "a status apply carries only status"
        );
    };
    let mut script = vec![
        Expect {
            reply: not_found(),
            ..expect(Method::GET, "/api/v1/namespaces/llm/services/up")
        },
        Expect {
            query: SSA,
            body: |b| {
                assert_eq!(
                    b["spec"]["forwardAuth"]["address"],
                    "http://verifier:8080/verify/llm/x402-demo"
                )
            },
            ..expect(
                Method::PATCH,
                "/apis/traefik.io/v1alpha1/namespaces/llm/middlewares/x402-demo",
            )
        },
        Expect {
            query: SSA,
            body: |b| {
                assert_eq!(b["spec"]["price"], "1000");
                assert_eq!(b["metadata"]["ownerReferences"][0]["uid"], "u-1");
            },
            ..expect(
                Method::PATCH,
                "/apis/obol.org/v1alpha1/namespaces/llm/paymentroutes/x402-demo",
            )
        },
        Expect {
            query: SSA,
            body: status_body,
            ..expect(Method::PATCH, &format!("{OFFER}/status"))
        },
    ];
    // One Event for the write, listing every condition that appeared.
    script.push(Expect {
        body: |b| {
            assert_eq!(b["type"], "Warning");
            assert_eq!(b["reason"], "MissingService");
            assert!(
                b["note"]
                    .as_str()
                    .unwrap()
                    .contains("Ready=False (Reconciling)")
            );
        },
        ..expect(Method::POST, EVENTS)
    });
    let action = run_scenario(offer(true, false, json!({})), script)
        .await
        .unwrap();
    let want = crate::reconcile::jittered(Duration::from_secs(30), "u-1");
    assert_eq!(action, kube::runtime::controller::Action::requeue(want));
    assert!((Duration::from_secs(27)..=Duration::from_secs(33)).contains(&want));
}

#[tokio::test]
async fn an_invalid_offer_writes_failed_once_and_waits_for_a_change() {
    let mut script = vec![Expect {
        query: SSA,
        body: |b| {
            assert_eq!(b["status"]["phase"], "Failed");
            let conds = b["status"]["conditions"].as_array().unwrap();
            let ready = conds.iter().find(|c| c["type"] == "Ready").unwrap();
            assert_eq!(ready["reason"], "InvalidSpec");
            assert!(
                ready["message"]
                    .as_str()
                    .unwrap()
                    .contains("unknown network")
            );
        },
        ..expect(Method::PATCH, &format!("{OFFER}/status"))
    }];
    // One Warning Event (Ready=False/InvalidSpec); the Unknown conditions make none.
    script.push(expect(Method::POST, EVENTS));
    let bad = offer(
        true,
        false,
        json!({"payment": {"network": "nowhere", "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "price": {"perRequest": "0.001"}}}),
    );
    let action = run_scenario(bad, script).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
}

#[tokio::test]
async fn deletion_withdraws_the_route_and_registration_then_releases() {
    let script = vec![
        Expect {
            reply: not_found(),
            ..expect(
                Method::DELETE,
                "/apis/gateway.networking.k8s.io/v1/namespaces/llm/httproutes/so-demo",
            )
        },
        Expect {
            reply: not_found(),
            ..expect(
                Method::DELETE,
                "/apis/obol.org/v1alpha1/namespaces/llm/registrationrequests/so-demo-registration",
            )
        },
        Expect {
            reply: not_found(),
            ..expect(
                Method::GET,
                "/apis/obol.org/v1alpha1/namespaces/llm/registrationrequests/so-demo-registration",
            )
        },
        Expect {
            body: |b| {
                assert_eq!(
                    b[0],
                    json!({"op": "test", "path": "/metadata/finalizers/0", "value": obol_api::FINALIZER})
                );
                assert_eq!(
                    b[1],
                    json!({"op": "remove", "path": "/metadata/finalizers/0"})
                );
            },
            ..expect(Method::PATCH, OFFER)
        },
    ];
    run_scenario(offer(true, true, json!({})), script)
        .await
        .unwrap();
}

#[tokio::test]
async fn deletion_keeps_the_finalizer_while_the_registration_exists() {
    let rr = json!({"apiVersion": "obol.org/v1alpha1", "kind": "RegistrationRequest",
        "metadata": {"name": "so-demo-registration", "namespace": "llm", "finalizers": ["registrar"]},
        "spec": {"name": "demo", "endpoint": "https://example.com/services/demo", "chain": "eip155:84532"}});
    let script = vec![
        Expect {
            reply: not_found(),
            ..expect(
                Method::DELETE,
                "/apis/gateway.networking.k8s.io/v1/namespaces/llm/httproutes/so-demo",
            )
        },
        Expect {
            reply: Some((200, rr.clone())),
            ..expect(
                Method::DELETE,
                "/apis/obol.org/v1alpha1/namespaces/llm/registrationrequests/so-demo-registration",
            )
        },
        Expect {
            reply: Some((200, rr)),
            ..expect(
                Method::GET,
                "/apis/obol.org/v1alpha1/namespaces/llm/registrationrequests/so-demo-registration",
            )
        },
        Expect {
            query: SSA,
            body: |b| assert_eq!(b["status"]["phase"], "Deleting"),
            ..expect(Method::PATCH, &format!("{OFFER}/status"))
        },
    ];
    // A recent deletionTimestamp: the deadline has not passed.
    let mut deleting = offer(true, true, json!({}));
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    let err = run_scenario(deleting, script).await.unwrap_err();
    assert_eq!(err.metric_label(), "cleanup_pending");
}
