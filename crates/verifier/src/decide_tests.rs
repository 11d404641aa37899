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
fn wants_html_table() {
    for (accept, want) in [
        ("text/html,application/xhtml+xml;q=0.9", true),
        ("application/xhtml+xml", true),
        ("TEXT/HTML", true),
        ("application/json", false),
        ("*/*", false),
        ("", false),
    ] {
        assert_eq!(wants_html(accept), want, "{accept}");
    }
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
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("maxAmountRequired"));
}

#[test]
fn refusals_carry_machine_readable_reasons() {
    let r = route();
    let req = r.requirement.as_ref().unwrap();
    let res = resource(&r, &fwd("/services/demo"));
    let reply = refused(req, &res, false, &Denial::Replayed);
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    let body = json(&reply);
    assert_eq!(body["reason"], "nonce_already_used");
    assert_eq!(body["error"], "invalid_exact_evm_nonce_already_used");
    assert_eq!(body["accepts"][0]["maxAmountRequired"], "1000");
    let v2 = codec::decode_payment_required(reply.header("payment-required").unwrap()).unwrap();
    assert_eq!(
        v2.error.as_deref(),
        Some("invalid_exact_evm_nonce_already_used")
    );

    let unavailable = Denial::FacilitatorUnavailable {
        endpoint: obol_x402::facilitator::Endpoint::Verify,
        label: "timeout",
        transaction: None,
    };
    let reply = refused(req, &res, false, &unavailable);
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("5"));
    assert_eq!(json(&reply)["error"], "facilitator_unavailable");

    let reply = denied(&Denial::MissingForwardedUri);
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(json(&reply)["error"], "missing_forwarded_uri");
    assert!(reply.header("retry-after").is_none());
    let reply = denied(&Denial::UnknownRoute);
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
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
        assert_eq!(err.status(), StatusCode::PAYMENT_REQUIRED);
    }
    let err = check_payment(req, "!!!", NOW).unwrap_err();
    assert_eq!(err.metric_label(), "invalid_base64");
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
    let verify_no = FacilitatorError::Rejected {
        endpoint: obol_x402::facilitator::Endpoint::Verify,
        status: 200,
        answer: Box::new(Answer::Verify(VerifyResponse {
            is_valid: false,
            invalid_reason: Some("insufficient_funds".into()),
            invalid_message: None,
            invalid_reason_details: None,
            payer: None,
            extensions: None,
        })),
    };
    let d = Denial::from_facilitator(&verify_no);
    assert_eq!(d.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(d.x402_error(), "insufficient_funds");
    let mut failed = settle_ok();
    failed.success = false;
    failed.error_reason = Some("transaction_failed".into());
    let settle_no = FacilitatorError::Rejected {
        endpoint: obol_x402::facilitator::Endpoint::Settle,
        status: 200,
        answer: Box::new(Answer::Settle(failed)),
    };
    let d = Denial::from_facilitator(&settle_no);
    assert_eq!(d.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(d.transaction(), Some("0xabc"));
    let down = FacilitatorError::Unreachable {
        endpoint: obol_x402::facilitator::Endpoint::Settle,
        timed_out: true,
        source: "boom".into(),
    };
    assert_eq!(
        Denial::from_facilitator(&down).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let bad = FacilitatorError::Malformed {
        endpoint: obol_x402::facilitator::Endpoint::Verify,
        status: 502,
        detail: "html".into(),
    };
    assert_eq!(
        Denial::from_facilitator(&bad).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}
