//! The generated CRDs on the real API server: accepted, validating, defaulting, pruning, and
//! showing their printer columns in kubectl.

use std::process::Command;

use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, CustomResourceExt};
use obol_api::{PaymentRoute, RegistrationRequest, ServiceOffer};
use obol_testenv::TestEnv;
use serde_json::{Value, json};

const WALLET: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

fn dynamic<K: CustomResourceExt>(env: &TestEnv, ns: &str) -> Api<DynamicObject> {
    let crd = K::crd();
    let ar = ApiResource {
        group: crd.spec.group.clone(),
        version: crd.spec.versions[0].name.clone(),
        api_version: K::api_resource().api_version,
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    };
    Api::namespaced_with(env.client(), ns, &ar)
}

fn offer_json(name: &str, patch: impl FnOnce(&mut Value)) -> DynamicObject {
    let mut v = json!({
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": name},
        "spec": {
            "upstream": {"service": "demo"},
            "payment": {"network": "base-sepolia", "payTo": WALLET, "price": {"perRequest": "0.001"}}
        }
    });
    patch(&mut v);
    serde_json::from_value(v).expect("a ServiceOffer object")
}

fn set(v: &mut Value, pointer: &str, value: Value) {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = value;
}

#[tokio::test]
async fn service_offer_schema_rejects_bad_values() {
    let env = TestEnv::get().await;
    let ns = env.namespace("crdval").await;
    let api = dynamic::<ServiceOffer>(&env, ns.name());
    // (case, JSON pointer, bad value, field the server names)
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "short wallet",
            "/spec/payment/payTo",
            json!("0x1234"),
            "payTo",
        ),
        (
            "wallet without 0x",
            "/spec/payment/payTo",
            json!(WALLET.trim_start_matches("0x")),
            "payTo",
        ),
        (
            "non-hex wallet",
            "/spec/payment/payTo",
            json!("0xZZ997970C51812dc3A010C7d01b50e0d17dc79C8"),
            "payTo",
        ),
        (
            "path without slash",
            "/spec/upstream",
            json!({"service": "demo"}),
            "",
        ),
        (
            "price not a number",
            "/spec/payment/price",
            json!({"perRequest": "abc"}),
            "perRequest",
        ),
        (
            "negative price",
            "/spec/payment/price",
            json!({"perRequest": "-1"}),
            "perRequest",
        ),
        (
            "price as a JSON number",
            "/spec/payment/price",
            json!({"perRequest": 0.001}),
            "perRequest",
        ),
        (
            "port too large",
            "/spec/upstream",
            json!({"service": "demo", "port": 70000}),
            "port",
        ),
        (
            "port zero",
            "/spec/upstream",
            json!({"service": "demo", "port": 0}),
            "port",
        ),
        (
            "unknown type",
            "/spec/upstream",
            json!({"service": "demo"}),
            "",
        ),
        (
            "bad network",
            "/spec/payment/network",
            json!("Base Sepolia"),
            "network",
        ),
        (
            "unknown scheme",
            "/spec/payment/network",
            json!("base-sepolia"),
            "",
        ),
    ];
    let mut failures = vec![];
    for (i, (case, pointer, value, field)) in cases.into_iter().enumerate() {
        let obj = offer_json(&format!("bad-{i}"), |v| {
            set(v, pointer, value);
            match case {
                "path without slash" => v["spec"]["path"] = json!("services/demo"),
                "unknown type" => v["spec"]["type"] = json!("bogus"),
                "unknown scheme" => v["spec"]["payment"]["scheme"] = json!("upto"),
                _ => {}
            }
        });
        let field = match case {
            "path without slash" => "path",
            "unknown type" => "type",
            "unknown scheme" => "scheme",
            _ => field,
        };
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => failures.push(format!("{case}: accepted")),
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(field) => {}
            Err(e) => failures.push(format!("{case}: unexpected error {e}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn service_offer_gets_server_side_defaults() {
    let env = TestEnv::get().await;
    let ns = env.namespace("crddef").await;
    let api = dynamic::<ServiceOffer>(&env, ns.name());
    api.create(&PostParams::default(), &offer_json("minimal", |_| {}))
        .await
        .unwrap();
    let typed: Api<ServiceOffer> = Api::namespaced(env.client(), ns.name());
    let so = typed.get("minimal").await.unwrap();
    // One default for the CRD and `obol sell http --port` (the Go CRD said 11434).
    assert_eq!(so.spec.upstream.port, 8080);
    assert_eq!(so.spec.upstream.health_path, "/health");
    assert_eq!(so.spec.payment.max_timeout_seconds, 300);
    assert_eq!(so.spec.type_, obol_api::service_offer::OfferType::Http);
    assert_eq!(
        so.spec.payment.scheme,
        obol_api::service_offer::Scheme::Exact
    );
}

#[tokio::test]
async fn payment_route_and_registration_request_schemas() {
    let env = TestEnv::get().await;
    let ns = env.namespace("crdpr").await;
    let prs = dynamic::<PaymentRoute>(&env, ns.name());
    let pr = |name: &str, price: Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "obol.org/v1alpha1", "kind": "PaymentRoute",
            "metadata": {"name": name},
            "spec": {"pattern": "/services/x/*", "price": price, "payTo": WALLET, "network": "eip155:84532"}
        }))
        .unwrap()
    };
    prs.create(&PostParams::default(), &pr("atomic", json!("1000")))
        .await
        .unwrap();
    for (name, price) in [
        ("decimal", json!("0.001")),
        ("number", json!(1000)),
        ("neg", json!("-1")),
    ] {
        let err = prs
            .create(&PostParams::default(), &pr(name, price))
            .await
            .unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 422),
            "{name}: {err}"
        );
    }

    // The seed's secret reference is not part of the schema: the server prunes it.
    let rrs = dynamic::<RegistrationRequest>(&env, ns.name());
    let rr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1", "kind": "RegistrationRequest",
        "metadata": {"name": "so-x-registration"},
        "spec": {"name": "x", "endpoint": "https://example.com/services/x", "chain": "base-sepolia",
                 "privateKeySecret": {"name": "remote-signer-key", "key": "keystore.json"}}
    }))
    .unwrap();
    let stored = rrs.create(&PostParams::default(), &rr).await.unwrap();
    assert!(
        stored.data["spec"].get("privateKeySecret").is_none(),
        "{}",
        stored.data
    );
    assert_eq!(stored.data["spec"]["name"], "x");
}

#[tokio::test]
async fn kubectl_shows_the_printer_columns() {
    let env = TestEnv::get().await;
    let ns = env.namespace("columns").await;
    dynamic::<ServiceOffer>(&env, ns.name())
        .create(&PostParams::default(), &offer_json("shown", |_| {}))
        .await
        .unwrap();
    let pr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1", "kind": "PaymentRoute", "metadata": {"name": "x402-shown"},
        "spec": {"pattern": "/services/shown/*", "price": "1000", "payTo": WALLET, "network": "eip155:84532"}
    }))
    .unwrap();
    dynamic::<PaymentRoute>(&env, ns.name())
        .create(&PostParams::default(), &pr)
        .await
        .unwrap();
    let rr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1", "kind": "RegistrationRequest", "metadata": {"name": "so-shown-registration"},
        "spec": {"name": "shown", "endpoint": "https://example.com/services/shown", "chain": "base-sepolia"}
    }))
    .unwrap();
    dynamic::<RegistrationRequest>(&env, ns.name())
        .create(&PostParams::default(), &rr)
        .await
        .unwrap();

    let out = Command::new("kubectl")
        .args(["get", "so,pr,rr", "-A"])
        .env("KUBECONFIG", env.kubeconfig_path())
        .output()
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = |first: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.starts_with("NAMESPACE") && l.contains(first))
            .unwrap_or_else(|| panic!("no {first} table in:\n{stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        header("TYPE"),
        [
            "NAMESPACE",
            "NAME",
            "TYPE",
            "PRICE",
            "NETWORK",
            "PHASE",
            "READY",
            "AGE"
        ]
    );
    assert_eq!(
        header("PATTERN"),
        [
            "NAMESPACE",
            "NAME",
            "PATTERN",
            "PRICE",
            "NETWORK",
            "ADMITTED",
            "AGE"
        ]
    );
    assert_eq!(
        header("AGENTID"),
        ["NAMESPACE", "NAME", "PHASE", "AGENTID", "AGE"]
    );
    let row = stdout
        .lines()
        .find(|l| l.contains("serviceoffer.obol.org/shown"))
        .unwrap_or_else(|| panic!("no row for the offer:\n{stdout}"));
    assert!(
        row.contains("http") && row.contains("0.001") && row.contains("base-sepolia"),
        "{row}"
    );
    let row = stdout.lines().find(|l| l.contains("x402-shown")).unwrap();
    assert!(
        row.contains("/services/shown/*") && row.contains("1000"),
        "{row}"
    );
}
