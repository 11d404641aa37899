//! At least 40 bad or hostile inputs through the router, each with the status (and reason)
//! it must get. None may panic, none may get a 500, and none may get a 200 on a priced route
//! without a settled payment.

mod cases;
#[path = "../support/mod.rs"]
mod support;

use axum::http::StatusCode;
use cases::{Setup, URI, cases};
use support::*;

#[tokio::test]
async fn hostile_inputs_table() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in cases {
        let h = Harness::demo();
        match c.setup {
            Setup::None => {}
            Setup::SettledBefore => {
                let first = h
                    .get(c.path, &[URI, ("x-payment", c.headers[0].1.as_str())])
                    .await;
                assert_eq!(first.status, StatusCode::OK, "{}: first use", c.name);
            }
            Setup::VerifyNo => *h.facilitator.verify.lock() = Script::No("insufficient_funds"),
            Setup::VerifyNoSignature => {
                *h.facilitator.verify.lock() = Script::No("invalid_exact_evm_signature")
            }
            Setup::VerifyDown => *h.facilitator.verify.lock() = Script::Unreachable,
            Setup::VerifyMalformed => *h.facilitator.verify.lock() = Script::Malformed,
            Setup::SettleNo => *h.facilitator.settle.lock() = Script::No("transaction_failed"),
        }
        let mut headers: Vec<(&str, &str)> = vec![URI];
        headers.extend(c.headers.iter().map(|(k, v)| (*k, v.as_str())));
        let r = h.get(c.path, &headers).await;
        let label = h.denial_label().await;
        if r.status != c.status || (c.reason.is_some() && label.as_deref() != c.reason) {
            failures.push(format!(
                "{}: got {} {:?}, want {} {:?}",
                c.name, r.status, label, c.status, c.reason
            ));
        }
        if c.setup == Setup::VerifyNoSignature {
            assert_eq!(
                h.facilitator.calls().0,
                1,
                "{}: left to the facilitator",
                c.name
            );
            let hint = r.json()["extensions"]["paymentFailure"]["hint"].clone();
            assert!(
                hint.as_str().is_some_and(|h| h.contains(r#"name "USDC""#)),
                "{}: the hint names the domain: {hint}",
                c.name
            );
        }
        if c.reason.is_some() {
            r.assert_refusal_shape(c.name);
        }
        assert_ne!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", c.name);
        if r.status == StatusCode::OK {
            assert!(
                r.header("x-payment-tx").is_some(),
                "{}: 200 without settlement",
                c.name
            );
        }
        if r.status == StatusCode::PAYMENT_REQUIRED {
            assert!(
                r.header("payment-required").is_some(),
                "{}: 402 without requirements",
                c.name
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Headers the HTTP layer itself would refuse, fed straight to the router.
#[tokio::test]
async fn hostile_forwarded_headers() {
    let h = Harness::demo();
    let bad = axum::http::HeaderValue::from_bytes(b"/services/demo/\xff").expect("test fixture");
    let request = axum::http::Request::get("/verify")
        .header("x-forwarded-uri", bad.clone())
        .body(axum::body::Body::empty())
        .expect("test fixture");
    let r = h.call(request).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let request = axum::http::Request::get("/verify/demo/demo")
        .header("x-forwarded-uri", "/services/demo/x")
        .header(
            "x-payment",
            axum::http::HeaderValue::from_bytes(b"abc\xe9").expect("test fixture"),
        )
        .body(axum::body::Body::empty())
        .expect("test fixture");
    let r = h.call(request).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.reason().as_deref(), Some("invalid_payment_header"));
    let metrics = h.get("/metrics", &[]).await.text();
    assert!(
        metrics
            .contains(r#"obol_x402_verifier_denials_total{reason="unreadable_payment_header"} 1"#),
        "{metrics}"
    );
    // A 64 KiB path of slashes: refused as too long before any lookup, no panic.
    let long = "/".repeat(64 * 1024);
    for path in ["/verify", "/verify/demo/demo"] {
        let r = h.get(path, &[("x-forwarded-uri", &long)]).await;
        assert_eq!(r.status, StatusCode::URI_TOO_LONG, "{path}");
        assert_eq!(r.reason().as_deref(), Some("uri_too_long"));
        assert!(r.body.len() < 1024, "nothing of the URI is echoed");
    }
    assert_eq!(h.facilitator.calls(), (0, 0));
}
