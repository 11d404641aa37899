//! Golden wire fixtures (the examples of x402.md §2-3, compact JSON in spec key order): each is
//! parsed into its type and re-serialized byte for byte, directly and through the header codec.
//!
//! A failure here means the wire format drifted; fix the types, not the fixtures (they are the
//! protocol's own examples).

use obol_x402::codec;
use obol_x402::wire::{PaymentPayload, PaymentRequired, PaymentRequiredV1, PaymentRequiredV2};
use serde::Serialize;
use serde::de::DeserializeOwned;

const V1_PAYMENT_REQUIRED: &str = include_str!("fixtures/v1_payment_required.json");
const V1_X_PAYMENT: &str = include_str!("fixtures/v1_x_payment.json");
const V2_PAYMENT_REQUIRED: &str = include_str!("fixtures/v2_payment_required.json");
const V2_PAYMENT_SIGNATURE: &str = include_str!("fixtures/v2_payment_signature.json");

fn round_trip<T: Serialize + DeserializeOwned>(name: &str, fixture: &str) -> T {
    let json = fixture.trim_end();
    let parsed: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        serde_json::to_string(&parsed).expect("serializes"),
        json,
        "{name} re-serialized"
    );
    parsed
}

#[test]
fn v1_402_body() {
    // The spec example writes `"outputSchema":null`, which the official v1 client refuses: it
    // is read, and written back without the null.
    let fixture = V1_PAYMENT_REQUIRED.trim_end();
    let without_null = fixture.replace(r#""outputSchema":null,"#, "");
    assert_ne!(without_null, fixture);
    let body: PaymentRequiredV1 = serde_json::from_str(fixture).expect("parses");
    assert_eq!(
        serde_json::to_string(&body).expect("serializes"),
        without_null
    );
    let body: PaymentRequiredV1 = round_trip("v1 402 body", &without_null);
    assert_eq!(body.accepts.len(), 1);
    let parsed = codec::parse_payment_required_body(V1_PAYMENT_REQUIRED.as_bytes()).unwrap();
    assert_eq!(parsed, PaymentRequired::V1(body));
}

#[test]
fn v1_x_payment() {
    let payload: PaymentPayload = round_trip("X-PAYMENT", V1_X_PAYMENT);
    assert!(matches!(payload, PaymentPayload::V1(_)));
    let header = codec::encode_header(&payload).unwrap();
    assert_eq!(codec::decode_payment_payload(&header).unwrap(), payload);
}

#[test]
fn v2_payment_required() {
    let required: PaymentRequiredV2 = round_trip("PAYMENT-REQUIRED", V2_PAYMENT_REQUIRED);
    let header = codec::encode_header(&required).unwrap();
    assert_eq!(header.len(), 584, "x402.md §10.4 header length");
    assert_eq!(codec::decode_payment_required(&header).unwrap(), required);
}

#[test]
fn v2_payment_signature() {
    let payload: PaymentPayload = round_trip("PAYMENT-SIGNATURE", V2_PAYMENT_SIGNATURE);
    let PaymentPayload::V2(v2) = &payload else {
        panic!("expected a v2 payload")
    };
    assert_eq!(v2.accepted.network.as_str(), "eip155:84532");
    let header = codec::encode_header(&payload).unwrap();
    assert_eq!(header.len(), 1088, "x402.md §10.4 header length");
    assert_eq!(codec::decode_payment_payload(&header).unwrap(), payload);
}
