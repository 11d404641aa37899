//! The seeds' example resources deserialize into the types, with the meaning they had there.

use obol_api::condition::{self, types};
use obol_api::price::{USDC_DECIMALS, effective_price};
use obol_api::{
    PaymentRoute, Phase, PriceModel, RegistrationPhase, RegistrationRequest, ServiceOffer,
};

fn load<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn seed_payment_route() {
    let pr: PaymentRoute = load("seed-paymentroute.yaml");
    assert_eq!(pr.spec.pattern, "/services/myapi/*");
    assert_eq!(
        pr.spec.price, "10000",
        "price is in atomic units, as in the seed"
    );
    assert_eq!(pr.spec.network, "eip155:84532");
    assert_eq!(pr.spec.facilitator_url.as_deref(), Some("https://..."));
    assert_eq!(pr.spec.price_model, Some(PriceModel::PerRequest));
    assert_eq!(pr.spec.per_mtok.as_deref(), Some("10000000"));
    assert_eq!(pr.spec.approx_tokens_per_request, Some(1000));
    let status = pr.status.as_ref().unwrap();
    assert!(!status.admitted);
    assert_eq!(status.last_admitted_generation, Some(0));
    assert!(!pr.admitted_at_current_generation());
}

#[test]
fn seed_service_offer_with_the_proposed_status() {
    let so: ServiceOffer = load("seed-serviceoffer.yaml");
    let status = so.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(status.conditions.len(), 4);
    for t in [
        types::UPSTREAM_HEALTHY,
        types::PAYMENT_GATE_READY,
        types::ROUTE_PUBLISHED,
        types::REGISTERED,
    ] {
        assert!(condition::is_true(&status.conditions, t), "{t}");
    }
    // The seed's status is Ready by the rule too: generation observed, the three gates True.
    assert!(condition::is_ready(
        so.metadata.generation,
        status.observed_generation,
        &status.conditions
    ));
    assert_eq!(so.spec.effective_path("myapi"), "/services/myapi");
    assert!(so.spec.registration_enabled());
    let price = effective_price(so.spec.price_input(), USDC_DECIMALS).unwrap();
    assert_eq!(price.atomic, 1000);
}

#[test]
fn seed_registration_request_loses_its_secret_reference() {
    // The seed puts `privateKeySecret` in the spec; the design removes it (an offer author must
    // not be able to point the registrar at any Secret). The field is ignored here, and the API
    // server prunes it because the schema does not declare it.
    let rr: RegistrationRequest = load("seed-registrationrequest.yaml");
    assert_eq!(rr.spec.chain, "base-sepolia");
    assert_eq!(
        rr.spec.registry.as_deref(),
        Some("0xEA0fE4FCF9E3017a24d9Db6e0e39B552c8648B9D")
    );
    let reserialized = serde_json::to_string(&rr.spec).unwrap();
    assert!(!reserialized.contains("privateKeySecret"), "{reserialized}");
    let status = rr.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(RegistrationPhase::Confirmed));
    assert!(RegistrationPhase::Confirmed.counts_as_registered());
    assert!(RegistrationPhase::OffChainOnly.counts_as_registered());
    assert!(!RegistrationPhase::Failed.counts_as_registered());
}

#[test]
fn minimal_offer_gets_defaults() {
    let so: ServiceOffer = serde_yaml::from_str(
        r#"
apiVersion: obol.org/v1alpha1
kind: ServiceOffer
metadata: {name: demo, namespace: default}
spec:
  upstream: {service: demo}
  payment: {network: base-sepolia, payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", price: {perRequest: "0.001"}}
"#,
    )
    .unwrap();
    // One default for the CRD and `obol sell http --port` (the Go CRD said 11434).
    assert_eq!(so.spec.upstream.port, 8080);
    assert_eq!(so.spec.upstream.health_path, "/health");
    assert_eq!(so.spec.payment.max_timeout_seconds, 300);
    assert_eq!(so.spec.upstream_namespace("default"), "default");
    assert!(!so.spec.registration_enabled());
}
