//! Reservations through the ForwardAuth router: a payment that is in flight, a store that is
//! down, and "paid but not served" recovered from chain evidence without a second charge.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use obol_verifier::reservations::{Fingerprint, Hold, Key, Reservations};
use support::*;

const FWD: [(&str, &str); 3] = [
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "obol.stack"),
    ("x-forwarded-uri", "/services/demo/v1/chat"),
];

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    FWD.iter().copied().chain(extra.iter().copied()).collect()
}

fn with_evidence(answer: Result<Option<String>, String>) -> (Harness, Arc<FakeEvidence>) {
    let evidence = Arc::new(FakeEvidence::default());
    *evidence.answer.lock() = Some(answer);
    let e = evidence.clone();
    let h = Harness::custom(table(vec![demo_entry()]), move |s| s.with_evidence(e));
    (h, evidence)
}

fn receipt_tx(r: &Reply) -> String {
    let header = r
        .header("payment-response")
        .or_else(|| r.header("x-payment-response"))
        .expect("a receipt");
    obol_x402::codec::decode_settle_response(header)
        .expect("a settle response")
        .transaction
}

#[tokio::test]
async fn settled_on_chain_but_never_let_through_passes_once_without_a_second_settle() {
    let (h, evidence) = with_evidence(Ok(Some(TX.into())));
    *h.facilitator.verify.lock() = Script::No("invalid_exact_evm_nonce_already_used");
    let req = h.requirement("demo", "demo");
    let pay = header(&req, 1, 2);
    let r = h
        .get("/verify/demo/demo", &with(&[("payment-signature", &pay)]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(receipt_tx(&r), TX);
    assert_eq!(r.header("x-payment-tx"), Some(TX));
    assert_eq!(h.facilitator.calls(), (1, 0), "never settled twice");
    // Served once: the same payment again is a replay.
    let again = h
        .get("/verify/demo/demo", &with(&[("payment-signature", &pay)]))
        .await;
    assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(again.reason().as_deref(), Some("replayed"));
    assert_eq!(evidence.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_used_authorization_the_chain_does_not_show_here_is_refused_and_released() {
    let (h, _) = with_evidence(Ok(None));
    *h.facilitator.verify.lock() = Script::No("invalid_exact_evm_nonce_already_used");
    let req = h.requirement("demo", "demo");
    let pay = header(&req, 2, 2);
    let r = h
        .get("/verify/demo/demo", &with(&[("payment-signature", &pay)]))
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.reason().as_deref(), Some("replayed"));
    // Nothing was taken here: the reservation was given back.
    *h.facilitator.verify.lock() = Script::Yes;
    let r = h
        .get("/verify/demo/demo", &with(&[("payment-signature", &pay)]))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_settle_is_served_once_when_the_chain_shows_it() {
    let (h, evidence) = with_evidence(Ok(Some(TX.into())));
    *h.facilitator.settle.lock() = Script::Unreachable;
    let req = h.requirement("demo", "demo");
    let pay = header(&req, 3, 1);
    let r = h
        .get("/verify/demo/demo", &with(&[("x-payment", &pay)]))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.reason().as_deref(), Some("settlement_failed"));
    // The retry: the record says "unknown", the chain says settled here: let through, no call.
    let r = h
        .get("/verify/demo/demo", &with(&[("x-payment", &pay)]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(receipt_tx(&r), TX);
    assert_eq!(h.facilitator.calls(), (1, 1));
    assert_eq!(evidence.calls.load(Ordering::SeqCst), 1);
    let r = h
        .get("/verify/demo/demo", &with(&[("x-payment", &pay)]))
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
}

#[tokio::test]
async fn a_chain_that_cannot_be_asked_is_503_not_a_refusal() {
    let (h, _) = with_evidence(Err("connection refused".into()));
    *h.facilitator.settle.lock() = Script::Unreachable;
    let req = h.requirement("demo", "demo");
    let pay = header(&req, 4, 2);
    let headers = with(&[("payment-signature", &pay)]);
    // The settle timed out after it was sent: its outcome is unknown (502, kept burned).
    assert_eq!(
        h.get("/verify/demo/demo", &headers).await.status,
        StatusCode::BAD_GATEWAY
    );
    let r = h.get("/verify/demo/demo", &headers).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.reason().as_deref(), Some("chain_unavailable"));
    assert_eq!(r.header("retry-after"), Some("5"));
}

#[tokio::test]
async fn a_payment_another_request_holds_is_409_with_retry_after() {
    let h = Harness::demo();
    let req = h.requirement("demo", "demo");
    let payer = key().address();
    let nonce = obol_x402::B256::repeat_byte(5);
    let hold = h
        .state
        .reservations
        .hold(
            Key::new(payer, nonce),
            NOW + 60,
            NOW,
            NOW + 30,
            Fingerprint::of(&req),
        )
        .await
        .unwrap();
    assert!(matches!(hold, Hold::Taken(_)));
    let r = h
        .get(
            "/verify/demo/demo",
            &with(&[("x-payment", &header(&req, 5, 1))]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.reason().as_deref(), Some("in_flight"));
    assert_eq!(r.header("retry-after"), Some("30"));
    assert_eq!(h.facilitator.calls(), (0, 0));
}

#[tokio::test]
async fn a_reservation_store_that_is_down_refuses_paid_requests_only() {
    let h = Harness::custom(table(vec![demo_entry()]), |s| {
        s.with_reservations(Reservations::new(Arc::new(DownStore), 60))
    });
    let req = h.requirement("demo", "demo");
    let r = h
        .get(
            "/verify/demo/demo",
            &with(&[("x-payment", &header(&req, 6, 1))]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.reason().as_deref(), Some("reservations_unavailable"));
    assert_eq!(h.facilitator.calls(), (0, 0), "never verified unreserved");
    // Unpaid requests still get their 402.
    let r = h.get("/verify/demo/demo", &FWD).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
}
