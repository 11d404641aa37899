//! Scenario tests of the reconcile shell against a scripted API server (`tower-test`): every
//! expected call is checked (method, path, field manager, force, body) and answered; a missing
//! or an extra call makes the scenario time out.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use obol_api::gateway::HttpRoute;
use obol_api::traefik::Middleware;
use obol_api::{PaymentRoute, ServiceOffer};
use obol_runtime::clock::FixedClock;
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

/// Objects the watch caches hold when a scenario starts.
#[derive(Default)]
struct Cached {
    offers: Vec<ServiceOffer>,
    middlewares: Vec<Middleware>,
    payment_routes: Vec<PaymentRoute>,
    http_routes: Vec<HttpRoute>,
}

fn store_of<K>(objects: Vec<K>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    for k in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(k));
    }
    store
}

/// The clock of every scenario: 2026-12-03T12:00:00Z.
const NOW: u64 = 1_764_763_200;

fn context(cached: Cached) -> (Arc<Context>, Handle) {
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
        offers: store_of(cached.offers),
        middlewares: store_of(cached.middlewares),
        payment_routes: store_of(cached.payment_routes),
        http_routes: store_of(cached.http_routes),
        registrations: reflector::store().0,
        metrics,
        healthy_once: parking_lot::Mutex::default(),
        clock: Arc::new(FixedClock::new(NOW)),
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
    run_scenario_with(offer, Cached::default(), script).await
}

async fn run_scenario_with(
    offer: ServiceOffer,
    cached: Cached,
    script: Vec<Expect>,
) -> crate::Result<kube::runtime::controller::Action> {
    let (ctx, handle) = context(cached);
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
    let mut script = route_withdrawn_registration_remains();
    script.push(Expect {
        query: SSA,
        body: |b| assert_eq!(b["status"]["phase"], "Deleting"),
        ..expect(Method::PATCH, &format!("{OFFER}/status"))
    });
    // Deleted 59 s before the clock: the 60 s deadline has not passed.
    let mut deleting = offer(true, true, json!({}));
    deleting.metadata.deletion_timestamp = Some(at(NOW - 59));
    let err = run_scenario(deleting, script).await.unwrap_err();
    assert_eq!(err.metric_label(), "cleanup_pending");
}

fn at(unix: u64) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(i64::try_from(unix).unwrap()).unwrap(),
    )
}

/// Deletion's first calls when the RegistrationRequest outlives its delete (its registrar
/// still holds a finalizer): the route withdrawn, the request deleted, and read back.
fn route_withdrawn_registration_remains() -> Vec<Expect> {
    let rr = json!({"apiVersion": "obol.org/v1alpha1", "kind": "RegistrationRequest",
        "metadata": {"name": "so-demo-registration", "namespace": "llm", "finalizers": ["registrar"]},
        "spec": {"name": "demo", "endpoint": "https://example.com/services/demo", "chain": "eip155:84532"}});
    vec![
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
    ]
}

#[tokio::test]
async fn deletion_gives_up_waiting_at_the_deadline_and_says_so() {
    let mut script = route_withdrawn_registration_remains();
    script.extend([
        Expect {
            body: |b| {
                assert_eq!(b["type"], "Warning");
                assert_eq!(b["reason"], "RegistrationCleanupTimedOut");
            },
            ..expect(Method::POST, EVENTS)
        },
        Expect {
            body: |b| {
                assert_eq!(
                    b[1],
                    json!({"op": "remove", "path": "/metadata/finalizers/0"})
                )
            },
            ..expect(Method::PATCH, OFFER)
        },
    ]);
    // Deleted exactly the 60 s deadline before the clock.
    let mut deleting = offer(true, true, json!({}));
    deleting.metadata.deletion_timestamp = Some(at(NOW - 60));
    run_scenario(deleting, script).await.unwrap();
}

fn cached_children() -> (Middleware, PaymentRoute, HttpRoute) {
    let meta = |name: &str| json!({"name": name, "namespace": "llm", "generation": 1});
    let mw = serde_json::from_value(json!({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
        "metadata": meta("x402-demo"), "spec": {"forwardAuth": {"address": "http://verifier:8080/verify/llm/x402-demo"}}}))
    .unwrap();
    let pr = serde_json::from_value(json!({"apiVersion": "obol.org/v1alpha1", "kind": "PaymentRoute",
        "metadata": meta("x402-demo"),
        "spec": {"pattern": "/services/demo/*", "price": "1000", "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "network": "eip155:84532"},
        "status": {"admitted": true, "lastAdmittedGeneration": 1}}))
    .unwrap();
    let route = serde_json::from_value(
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": meta("so-demo"), "spec": {}}),
    )
    .unwrap();
    (mw, pr, route)
}

fn conditions_of(b: &Value) -> Vec<(String, String, String)> {
    b["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let f = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (f("type"), f("status"), f("reason"))
        })
        .collect()
}

fn has(conds: &[(String, String, String)], type_: &str, status: &str, reason: &str) -> bool {
    conds
        .iter()
        .any(|(t, s, r)| t == type_ && s == status && r == reason)
}

/// The payment gate cannot be applied (the API server fails the PaymentRoute): the published
/// route is withdrawn, no HTTPRoute is applied, the status says why and the reconcile fails
/// (it backs off and retries). The upstream answered healthily before, and the PaymentRoute
/// of the old price is admitted, so only the failed apply of the new one holds the route back:
/// fail closed rather than keep selling on a gate this reconcile could not write.
#[tokio::test]
async fn a_failed_gate_apply_withdraws_the_published_route_and_applies_none() {
    let (_, mut old_price, route) = cached_children();
    old_price.spec.price = "2000".into();
    let cached = Cached {
        payment_routes: vec![old_price],
        http_routes: vec![route],
        ..Cached::default()
    };
    let mut live = offer(true, false, json!({}));
    live.status = Some(serde_json::from_value(json!({"conditions": [
        {"type": "UpstreamHealthy", "status": "True", "reason": "HealthCheckPassed", "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"},
        {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}
    ]})).unwrap());
    let script = vec![
        Expect {
            reply: not_found(),
            ..expect(Method::GET, "/api/v1/namespaces/llm/services/up")
        },
        Expect {
            query: SSA,
            ..expect(
                Method::PATCH,
                "/apis/traefik.io/v1alpha1/namespaces/llm/middlewares/x402-demo",
            )
        },
        Expect {
            query: SSA,
            reply: Some((
                500,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcd unavailable"}),
            )),
            ..expect(
                Method::PATCH,
                "/apis/obol.org/v1alpha1/namespaces/llm/paymentroutes/x402-demo",
            )
        },
        // Withdrawn before anything else happens; no PATCH of the HTTPRoute anywhere.
        Expect {
            reply: not_found(),
            ..expect(
                Method::DELETE,
                "/apis/gateway.networking.k8s.io/v1/namespaces/llm/httproutes/so-demo",
            )
        },
        Expect {
            body: |b| {
                assert_eq!(b["reason"], "ApplyFailed");
                assert!(
                    b["note"]
                        .as_str()
                        .unwrap()
                        .contains("applying PaymentRoute")
                );
            },
            ..expect(Method::POST, EVENTS)
        },
        Expect {
            query: SSA,
            body: |b| {
                let conds = conditions_of(b);
                assert!(
                    has(&conds, "PaymentGateReady", "False", "ApplyFailed"),
                    "{conds:?}"
                );
                assert!(
                    has(&conds, "RoutePublished", "False", "WaitingForPaymentGate"),
                    "{conds:?}"
                );
                assert!(
                    conds.iter().any(|(t, s, _)| t == "Ready" && s == "False"),
                    "{conds:?}"
                );
            },
            ..expect(Method::PATCH, &format!("{OFFER}/status"))
        },
        expect(Method::POST, EVENTS),
    ];
    let err = run_scenario_with(live, cached, script).await.unwrap_err();
    assert_eq!(err.metric_label(), "kube");
}

/// An older offer owns the path: the route goes first, then the PaymentRoute and the
/// Middleware; nothing is applied; both gate conditions name the owner.
#[tokio::test]
async fn a_path_conflict_withdraws_the_route_before_the_gate() {
    let (mw, pr, route) = cached_children();
    let mut older = offer(true, false, json!({"path": "/shared"}));
    older.metadata.name = Some("older".into());
    older.metadata.uid = Some("u-0".into());
    older.metadata.creation_timestamp = Some(at(NOW - 3600));
    let mut me = offer(true, false, json!({"path": "/shared"}));
    me.metadata.creation_timestamp = Some(at(NOW - 60));
    let cached = Cached {
        offers: vec![older, me.clone()],
        middlewares: vec![mw],
        payment_routes: vec![pr],
        http_routes: vec![route],
    };
    let delete = |path: &str| Expect {
        reply: not_found(),
        ..expect(Method::DELETE, path)
    };
    let script = vec![
        Expect {
            reply: not_found(),
            ..expect(Method::GET, "/api/v1/namespaces/llm/services/up")
        },
        delete("/apis/gateway.networking.k8s.io/v1/namespaces/llm/httproutes/so-demo"),
        delete("/apis/obol.org/v1alpha1/namespaces/llm/paymentroutes/x402-demo"),
        delete("/apis/traefik.io/v1alpha1/namespaces/llm/middlewares/x402-demo"),
        Expect {
            query: SSA,
            body: |b| {
                let conds = conditions_of(b);
                assert!(
                    has(&conds, "PaymentGateReady", "False", "PathConflict"),
                    "{conds:?}"
                );
                assert!(
                    has(&conds, "RoutePublished", "False", "PathConflict"),
                    "{conds:?}"
                );
                let message = b["status"]["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["type"] == "RoutePublished")
                    .unwrap()["message"]
                    .clone();
                assert_eq!(
                    message,
                    "Path /shared is owned by the older offer llm/older"
                );
            },
            ..expect(Method::PATCH, &format!("{OFFER}/status"))
        },
        Expect {
            body: |b| assert_eq!(b["type"], "Warning"),
            ..expect(Method::POST, EVENTS)
        },
    ];
    run_scenario_with(me, cached, script).await.unwrap();
}
