use axum::http::HeaderValue;
use obol_x402::codec;
use obol_x402::facilitator::{Answer, FacilitatorError};
use obol_x402::wire::{SettleResponse, VerifyResponse};
use serde_json::Value;

use super::*;
use crate::testing::{NOW, mk_auth, mk_entry, mk_header};

fn fwd(uri: &str) -> Forwarded<'_> {
    Forwarded {
        proto: Some("https"),
        host: Some("obol.stack"),
        uri,
        wants_html: false,
    }
}

fn json(reply: &Reply) -> Value {
    match &reply.body {
        Body::Json(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("not JSON: {other:?}"),
    }
}

fn route() -> RouteEntry {
    let mut e = mk_entry("llm", "demo", "/services/demo/*");
    if let Some(r) = e.requirement.as_mut() {
        r.max_timeout_seconds = 120;
    }
    e
}

#[test]
fn resource_url_from_forwarded_headers() {
    let r = route();
    let cases = [
        (
            Some("https"),
            Some("obol.stack"),
            "https://obol.stack/services/demo/x?q=1",
        ),
        (
            Some("HTTPS"),
            Some("obol.stack"),
            "https://obol.stack/services/demo/x?q=1",
        ),
        (
            Some("http"),
            Some("h:8080"),
            "http://h:8080/services/demo/x?q=1",
        ),
        (None, Some("h"), "http://h/services/demo/x?q=1"),
        (Some("https"), None, "/services/demo/x?q=1"),
    ];
    for (proto, host, want) in cases {
        let f = Forwarded {
            proto,
            host,
            ..fwd("/services/demo/x?q=1")
        };
        let res = resource(&r, &f);
        assert_eq!(res.url, want);
        assert_eq!(
            res.description.as_deref(),
            Some("Payment required for /services/demo/x")
        );
    }
}

#[test]
fn unpaid_402_has_v2_header_and_v1_body() {
    let r = route();
    let req = r.requirement.as_ref().unwrap();
    let reply = payment_required(req, &resource(&r, &fwd("/services/demo/chat")), false, None);
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    let body = json(&reply);
    assert_eq!(body["x402Version"], 1);
    assert_eq!(body["error"], PAYMENT_REQUIRED_ERROR);
    let a = &body["accepts"][0];
    assert_eq!(a["scheme"], "exact");
    assert_eq!(a["network"], "base-sepolia");
    assert_eq!(a["maxAmountRequired"], "1000");
    assert_eq!(a["asset"], "0x036CbD53842c5426634e7929541eC2318f3dCF7e");
    assert_eq!(a["payTo"], crate::testing::PAY_TO);
    assert_eq!(a["resource"], "https://obol.stack/services/demo/chat");
    assert_eq!(a["mimeType"], "application/json");
    assert_eq!(a["maxTimeoutSeconds"], 120);
    assert_eq!(a["extra"]["name"], "USDC");
    assert_eq!(a["extra"]["version"], "2");
    assert!(body.get("reason").is_none());
    let v2 = codec::decode_payment_required(reply.header("payment-required").unwrap()).unwrap();
    assert_eq!(v2.resource.url, "https://obol.stack/services/demo/chat");
    let accepted = v2.accepts[0].parsed().unwrap();
    assert_eq!(accepted.network.as_str(), "eip155:84532");
    assert_eq!(accepted.max_timeout_seconds, 120);
    assert_eq!(accepted, &req.to_v2());
}

#[test]
fn html_paywall_is_still_402_and_escaped() {
    let r = route();
    let req = r.requirement.as_ref().unwrap();
    let f = Forwarded {
        host: Some("evil\"><script>x</script>"),
        wants_html: true,
        ..fwd("/services/demo")
    };
    let reply = payment_required(req, &resource(&r, &f), true, None);
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(reply.header("payment-required").is_some());
    let Body::Html(page) = &reply.body else {
        panic!("not HTML")
    };
    assert!(page.contains("0.001 USDC"), "{page}");
    assert!(page.contains("eip155:84532"));
    assert!(!page.contains("<script>x"), "{page}");
    assert!(page.contains("id=\"x402-offer\""));
    assert!(reply.header("content-security-policy").is_some());
}

#[test]
fn refusals_carry_machine_readable_reasons() {
    let r = route();
    let req = r.requirement.as_ref().unwrap();
    let res = resource(&r, &fwd("/services/demo"));
    let reply = refused(req, &res, false, &Denial::Replayed);
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    let body = json(&reply);
    assert_eq!(body["reason"], "replayed");
    assert_eq!(body["extensions"]["paymentFailure"]["reason"], "replayed");
    assert!(
        body["extensions"]["paymentFailure"]["hint"]
            .as_str()
            .unwrap()
            .contains("fresh nonce")
    );
    assert_eq!(body["error"], "invalid_exact_evm_nonce_already_used");
    assert_eq!(body["accepts"][0]["maxAmountRequired"], "1000");
    assert!(body["accepts"][0].get("outputSchema").is_none());
    let v2 = codec::decode_payment_required(reply.header("payment-required").unwrap()).unwrap();
    assert_eq!(
        v2.error.as_deref(),
        Some("invalid_exact_evm_nonce_already_used")
    );
    assert!(v2.extensions.is_none(), "the failure stays in the body");

    let down = FacilitatorError::Unreachable {
        endpoint: obol_x402::facilitator::Endpoint::Verify,
        timed_out: true,
        source: "boom".into(),
    };
    let reply = refused(req, &res, false, &Denial::from_facilitator(&down, None));
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("5"));
    let body = json(&reply);
    assert_eq!(body["reason"], "facilitator_unreachable");
    assert_eq!(body["retriable"], true);
    assert_eq!(body["error"], "The payment facilitator is unavailable.");
    assert!(
        body["detail"].as_str().unwrap().contains("timed out"),
        "{body}"
    );
    assert!(body["hint"].as_str().unwrap().contains("Retry"), "{body}");

    let reply = denied(&Denial::MissingForwardedUri, None);
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(json(&reply)["reason"], "missing_forwarded_uri");
    assert_eq!(json(&reply)["retriable"], false);
    assert!(reply.header("retry-after").is_none());
    let reply = denied(&Denial::UnknownRoute, None);
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// Every refusal that is not a 402 has the whole shape, with a reason from the table.
#[test]
fn refusal_bodies_have_every_field() {
    for denial in [
        Denial::MissingForwardedUri,
        Denial::InvalidForwardedHeader("X-Forwarded-Uri"),
        Denial::UriTooLong {
            len: 9000,
            max: 8192,
        },
        Denial::NotReady,
        Denial::UnknownRoute,
        Denial::PathNotPriced,
        Denial::Busy,
    ] {
        let reply = denied(&denial, None);
        let body = json(&reply);
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 5, "{body}");
        for key in ["error", "reason", "detail", "hint", "retriable"] {
            assert!(body.get(key).is_some(), "{key} missing: {body}");
        }
        let reason = obol_x402::Reason::from_code(body["reason"].as_str().unwrap()).unwrap();
        assert_eq!(reply.status.as_u16(), reason.status(), "{body}");
        assert_eq!(body["retriable"], reason.retriable());
    }
}

/// The resource URL in a 402 is bounded: the path is kept, a long query is cut, and a long
/// `X-Forwarded-Host` is not echoed.
#[test]
fn resource_url_is_capped() {
    let r = route();
    let query = format!("?q={}", "x".repeat(4000));
    let long_path = format!("/services/demo/{}", "p".repeat(3000));
    let host = "h".repeat(300);
    let cases: Vec<(String, Option<&str>, String)> = vec![
        (
            "/services/demo/a?b=1".into(),
            Some("obol.stack"),
            "https://obol.stack/services/demo/a?b=1".into(),
        ),
        (
            format!("/services/demo/a{query}"),
            Some("obol.stack"),
            "https://obol.stack/services/demo/a".into(),
        ),
        (
            format!("{long_path}{query}"),
            Some("obol.stack"),
            format!("https://obol.stack{long_path}"),
        ),
        (
            "/services/demo/a?b".into(),
            Some(&host),
            "/services/demo/a?b".into(),
        ),
    ];
    for (uri, host, want) in cases {
        let f = Forwarded {
            proto: Some("https"),
            host,
            uri: &uri,
            wants_html: false,
        };
        let res = resource(&r, &f);
        assert_eq!(res.url, want, "{}", &uri[..40.min(uri.len())]);
        let description = res.description.unwrap();
        assert!(!description.contains('?'), "{description}");
    }
}

#[test]
fn payment_header_selection() {
    let a = HeaderValue::from_static("abc");
    let b = HeaderValue::from_static("xyz");
    let bad = HeaderValue::from_bytes(b"caf\xe9").unwrap();
    assert_eq!(payment_header([]).unwrap(), None);
    assert_eq!(payment_header([&a]).unwrap(), Some("abc"));
    assert_eq!(payment_header([&a, &a]).unwrap(), Some("abc"));
    assert!(matches!(
        payment_header([&a, &b]),
        Err(Denial::ConflictingHeaders)
    ));
    assert!(matches!(
        payment_header([&bad]),
        Err(Denial::UnreadableHeader)
    ));
}

#[test]
fn local_checks_before_any_network_call() {
    let r = route();
    let req = r.requirement.as_ref().unwrap();
    for version in [1, 2] {
        let header = mk_header(req, mk_auth(req, 1), version);
        let (payload, verified) = check_payment(req, &header, NOW).unwrap();
        assert_eq!(payload.version().as_u8(), version);
        assert_eq!(verified.payer, crate::testing::key().address());
        // Expired at a later time.
        let err = check_payment(req, &header, NOW + 3600).unwrap_err();
        assert_eq!(err.metric_label(), "expired");
        assert_eq!(err.reason(), obol_x402::Reason::PaymentInvalid);
        assert_eq!(err.status(), StatusCode::PAYMENT_REQUIRED);
    }
    let err = check_payment(req, "!!!", NOW).unwrap_err();
    assert_eq!(err.metric_label(), "invalid_base64");
    assert_eq!(err.reason(), obol_x402::Reason::InvalidPaymentHeader);
    assert_eq!(err.status(), StatusCode::PAYMENT_REQUIRED);
}

fn settle_ok() -> SettleResponse {
    serde_json::from_str(
        r#"{"success":true,"transaction":"0xabc","network":"eip155:84532","payer":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}"#,
    )
    .unwrap()
}

#[test]
fn paid_reply_hands_payer_tx_and_upstream_auth() {
    let mut r = route();
    r.upstream_auth = Some(crate::route::UpstreamAuth::new("Bearer sk-up").unwrap());
    let req = r.requirement.clone().unwrap();
    for version in [1u8, 2] {
        let header = mk_header(&req, mk_auth(&req, 1), version);
        let (_, verified) = check_payment(&req, &header, NOW).unwrap();
        let reply = paid(&r, &verified, &settle_ok());
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.header("x-payment-payer"),
            Some("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
        );
        assert_eq!(reply.header("x-payment-tx"), Some("0xabc"));
        assert_eq!(reply.header("authorization"), Some("Bearer sk-up"));
        let name = if version == 1 {
            "x-payment-response"
        } else {
            "payment-response"
        };
        let settle = codec::decode_settle_response(reply.header(name).unwrap()).unwrap();
        assert!(settle.success);
    }
    assert!(free(None).headers.is_empty());
    assert_eq!(free(Some(&r)).header("authorization"), Some("Bearer sk-up"));
}

#[test]
fn facilitator_outcomes_map_to_statuses() {
    use obol_x402::Reason;
    use obol_x402::facilitator::Endpoint;
    let verify_no = |code: &str| FacilitatorError::Rejected {
        endpoint: Endpoint::Verify,
        status: 200,
        answer: Box::new(Answer::Verify(VerifyResponse {
            is_valid: false,
            invalid_reason: Some(code.into()),
            invalid_message: Some("the facilitator's own words".into()),
            invalid_reason_details: None,
            payer: None,
            extensions: None,
        })),
    };
    let d = Denial::from_facilitator(&verify_no("insufficient_funds"), None);
    assert_eq!(d.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(d.reason(), Reason::PaymentInvalid);
    assert_eq!(d.x402_error(), "insufficient_funds");
    assert!(
        d.refusal(None)
            .detail
            .contains("the facilitator's own words")
    );
    assert!(d.releases_authorization());
    let used = Denial::from_facilitator(&verify_no("invalid_exact_evm_nonce_already_used"), None);
    assert_eq!(used.reason(), Reason::Replayed);

    let mut failed = settle_ok();
    failed.success = false;
    failed.error_reason = Some("invalid_exact_evm_transaction_failed".into());
    let settle_no = FacilitatorError::Rejected {
        endpoint: Endpoint::Settle,
        status: 200,
        answer: Box::new(Answer::Settle(failed)),
    };
    let d = Denial::from_facilitator(&settle_no, None);
    // A transaction was sent: 502, not retriable, the nonce stays burned, the receipt is sent.
    assert_eq!(d.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(d.reason(), Reason::SettlementFailed);
    assert!(!d.refusal(None).retriable);
    assert!(!d.releases_authorization());
    assert_eq!(
        d.failed_settlement().map(|s| s.transaction),
        Some("0xabc".to_owned())
    );
    let reply = denied(&d, None);
    assert_eq!(reply.header("x-payment-tx"), Some("0xabc"));
    for name in ["payment-response", "x-payment-response"] {
        let receipt = codec::decode_settle_response(reply.header(name).unwrap()).unwrap();
        assert!(!receipt.success && receipt.transaction == "0xabc", "{name}");
    }
    assert_eq!(json(&reply)["retriable"], false);

    let down = FacilitatorError::Unreachable {
        endpoint: Endpoint::Settle,
        timed_out: true,
        source: "boom".into(),
    };
    let d = Denial::from_facilitator(&down, None);
    assert_eq!(
        d.status(),
        StatusCode::BAD_GATEWAY,
        "timed out after sending: unknown"
    );
    assert!(!d.releases_authorization());
    let bad = FacilitatorError::Malformed {
        endpoint: Endpoint::Verify,
        status: 502,
        detail: "html".into(),
    };
    let d = Denial::from_facilitator(&bad, None);
    assert_eq!(d.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(d.reason(), Reason::FacilitatorUnreachable);
}

/// A facilitator refusing a signature that was not proven locally: the refusal names the
/// route's EIP-712 domain and what the signature recovers to under it.
#[test]
fn signature_refusals_name_the_domain() {
    use obol_x402::facilitator::Endpoint;
    use obol_x402::verify::{DeferredSignature, SignatureCheck};
    let r = route();
    let req = r.requirement.as_ref().unwrap();
    let no = FacilitatorError::Rejected {
        endpoint: Endpoint::Verify,
        status: 200,
        answer: Box::new(Answer::Verify(VerifyResponse {
            is_valid: false,
            invalid_reason: Some("invalid_exact_evm_signature".into()),
            invalid_message: None,
            invalid_reason_details: None,
            payer: None,
            extensions: None,
        })),
    };
    let other = obol_x402::Address::repeat_byte(0x11);
    let deferred = SignatureCheck::Deferred(DeferredSignature::NotFrom {
        recovered: Some(other),
    });
    let refusal = Denial::from_facilitator(&no, Some(&deferred)).refusal(Some(req));
    assert_eq!(refusal.reason, obol_x402::Reason::PaymentInvalid);
    assert!(
        refusal.hint.contains(r#"name "USDC", version "2""#),
        "{}",
        refusal.hint
    );
    assert!(
        refusal.detail.contains(&other.to_checksum(None)),
        "{}",
        refusal.detail
    );
    // Proven locally, yet "invalid signature": the facilitator could not check (its RPC).
    let refusal = Denial::from_facilitator(&no, Some(&SignatureCheck::Proven)).refusal(Some(req));
    assert_eq!(refusal.reason, obol_x402::Reason::FacilitatorUnreachable);
    assert_eq!(refusal.status(), 503);
}
