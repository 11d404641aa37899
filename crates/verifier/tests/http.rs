//! The app through its router (`oneshot`, no socket): the Go verifier's acceptance cases
//! (obol-reference.md §9, V1–V13 and F-cases as they apply) and the gate's state machine.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use obol_verifier::RouteTable;
use support::*;

const FWD: [(&str, &str); 3] = [
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "obol.stack"),
    ("x-forwarded-uri", "/services/demo/v1/chat"),
];

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    FWD.iter().copied().chain(extra.iter().copied()).collect()
}

#[tokio::test]
async fn v1_missing_forwarded_uri_is_403() {
    let h = Harness::demo();
    let r = h.get("/verify", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.reason().as_deref(), Some("missing_forwarded_uri"));
    let r = h.get("/verify/demo/demo", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn v2_v6_unmatched_paths_are_free_and_priced_paths_are_not() {
    let h = Harness::new(vec![
        entry("a", "rpc", &spec("/rpc/*", "100")),
        entry("a", "inference", &spec("/inference-*/v1/*", "1000")),
    ]);
    for (uri, want) in [
        ("/health", StatusCode::OK),
        ("/rpc/mainnet", StatusCode::PAYMENT_REQUIRED),
        (
            "/inference-prod/v1/chat/completions",
            StatusCode::PAYMENT_REQUIRED,
        ),
        ("/dashboard", StatusCode::OK),
        // The Go fail-open case: the query string no longer makes a priced path free.
        ("/rpc/mainnet?free=1", StatusCode::PAYMENT_REQUIRED),
        ("/rpc?x", StatusCode::PAYMENT_REQUIRED),
    ] {
        let r = h.get("/verify", &[("x-forwarded-uri", uri)]).await;
        assert_eq!(r.status, want, "{uri}");
    }
    assert_eq!(h.facilitator.calls(), (0, 0));
}

#[tokio::test]
async fn v3_unpaid_402_carries_header_and_v1_body() {
    let h = Harness::demo();
    let r = h.get("/verify/demo/demo", &FWD).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["x402Version"], 1);
    assert_eq!(body["accepts"][0]["maxAmountRequired"], "1000");
    assert_eq!(
        body["accepts"][0]["resource"],
        "https://obol.stack/services/demo/v1/chat"
    );
    let v2 =
        obol_x402::codec::decode_payment_required(r.header("payment-required").unwrap()).unwrap();
    assert_eq!(v2.resource.url, "https://obol.stack/services/demo/v1/chat");
    assert_eq!(h.facilitator.calls(), (0, 0));
}

#[tokio::test]
async fn browsers_get_an_html_402() {
    let h = Harness::demo();
    let r = h
        .get("/verify/demo/demo", &with(&[("accept", "text/html,*/*")]))
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.header("payment-required").is_some());
    assert!(
        r.header("content-security-policy")
            .is_some_and(|csp| csp.starts_with("default-src 'none'; "))
    );
    assert!(r.text().contains("Payment required"));
}

#[tokio::test]
async fn v4_paid_request_is_verified_settled_and_let_through() {
    let mut s = spec("/services/demo/*", "1000");
    s.upstream_auth = Some("Bearer sk-litellm-key".into());
    let h = Harness::new(vec![entry("demo", "demo", &s)]);
    let req = h.requirement("demo", "demo");
    for (version, name, nonce) in [
        (1, "x-payment", 1),
        (2, "payment-signature", 2),
        (2, "x-payment", 3),
    ] {
        let r = h
            .get(
                "/verify/demo/demo",
                &with(&[(name, &header(&req, nonce, version))]),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "v{version} {name}: {}", r.text());
        assert_eq!(
            r.header("x-payment-payer"),
            Some("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
        );
        assert_eq!(r.header("x-payment-tx"), Some(TX));
        assert_eq!(r.header("authorization"), Some("Bearer sk-litellm-key"));
    }
    assert_eq!(h.facilitator.calls(), (3, 3));
    // F6: the facilitator gets the payload as a JSON object.
    let sent = h.facilitator.last_request.lock().clone().unwrap();
    assert!(sent["paymentPayload"].is_object(), "{sent}");
    assert_eq!(sent["x402Version"], 2);
}

#[tokio::test]
async fn v5_facilitator_refusal_is_402_without_settle() {
    let h = Harness::demo();
    *h.facilitator.verify.lock() = Script::No("insufficient_funds");
    let req = h.requirement("demo", "demo");
    let r = h
        .get(
            "/verify/demo/demo",
            &with(&[("x-payment", &header(&req, 1, 1))]),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.reason().as_deref(), Some("payment_invalid"));
    r.assert_refusal_shape("verify refused");
    assert_eq!(r.json()["error"], "insufficient_funds");
    assert!(r.detail().contains("insufficient_funds"), "{}", r.detail());
    assert!(r.header("authorization").is_none());
    assert_eq!(h.facilitator.calls(), (1, 0));
}

#[tokio::test]
async fn replayed_nonce_is_refused_without_asking_the_facilitator() {
    let h = Harness::demo();
    let req = h.requirement("demo", "demo");
    let pay = header(&req, 7, 2);
    let first = h
        .get("/verify/demo/demo", &with(&[("payment-signature", &pay)]))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let again = h
        .get("/verify/demo/demo", &with(&[("payment-signature", &pay)]))
        .await;
    assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(again.reason().as_deref(), Some("replayed"));
    again.assert_refusal_shape("replayed");
    assert_eq!(h.facilitator.calls(), (1, 1));
}

#[tokio::test]
async fn concurrent_copies_of_one_payment_pass_once() {
    let h = Arc::new(Harness::demo());
    let req = h.requirement("demo", "demo");
    let pay = header(&req, 9, 1);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (h, pay) = (h.clone(), pay.clone());
        tasks.push(tokio::spawn(async move {
            h.get("/verify/demo/demo", &with(&[("x-payment", &pay)]))
                .await
                .status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(h.facilitator.calls().1, 1);
}

#[tokio::test]
async fn facilitator_outage_is_503_and_the_nonce_stays_usable_until_settle() {
    let h = Harness::demo();
    let req = h.requirement("demo", "demo");
    let pay = header(&req, 4, 2);
    let headers = with(&[("payment-signature", &pay)]);
    let call = || h.get("/verify/demo/demo", &headers);
    *h.facilitator.verify.lock() = Script::Unreachable;
    let r = call().await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.reason().as_deref(), Some("facilitator_unreachable"));
    r.assert_refusal_shape("verify unreachable");
    *h.facilitator.verify.lock() = Script::Malformed;
    assert_eq!(call().await.status, StatusCode::SERVICE_UNAVAILABLE);
    // Verify never passed: nothing moved, the same authorization may be retried.
    *h.facilitator.verify.lock() = Script::Yes;
    *h.facilitator.settle.lock() = Script::Unreachable;
    // Timed out after /settle was sent: the outcome is unknown, not retriable.
    let r = call().await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.reason().as_deref(), Some("settlement_failed"));
    assert_eq!(r.json()["retriable"], false);
    r.assert_refusal_shape("settle unknown");
    // Settlement may have happened: the nonce is burned.
    *h.facilitator.settle.lock() = Script::Yes;
    let r = call().await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.reason().as_deref(), Some("replayed"));
    assert_eq!(h.facilitator.calls(), (3, 1));
}

#[tokio::test]
async fn settlement_failed_with_a_transaction_is_502_with_the_receipt() {
    let h = Harness::demo();
    *h.facilitator.settle.lock() = Script::No("invalid_exact_evm_transaction_failed");
    let req = h.requirement("demo", "demo");
    let pay = header(&req, 5, 1);
    let r = h
        .get("/verify/demo/demo", &with(&[("x-payment", &pay)]))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.reason().as_deref(), Some("settlement_failed"));
    assert_eq!(r.json()["retriable"], false);
    r.assert_refusal_shape("settlement failed");
    assert_eq!(r.header("x-payment-tx"), Some(TX));
    for name in ["payment-response", "x-payment-response"] {
        let receipt = obol_x402::codec::decode_settle_response(r.header(name).unwrap()).unwrap();
        assert!(!receipt.success, "{name}");
        assert_eq!(receipt.transaction, TX, "{name}");
    }
    // The transaction may have moved funds: the authorization stays spent.
    *h.facilitator.settle.lock() = Script::Yes;
    let again = h
        .get("/verify/demo/demo", &with(&[("x-payment", &pay)]))
        .await;
    assert_eq!(again.reason().as_deref(), Some("replayed"));
}

#[tokio::test]
async fn v7_a_reload_prices_a_free_path() {
    let h = Harness::new(vec![]);
    let uri = [("x-forwarded-uri", "/api/data")];
    assert_eq!(h.get("/verify", &uri).await.status, StatusCode::OK);
    h.state
        .table
        .apply(entry("a", "api", &spec("/api/*", "5000")));
    assert_eq!(
        h.get("/verify", &uri).await.status,
        StatusCode::PAYMENT_REQUIRED
    );
    h.state
        .table
        .delete(&obol_verifier::RouteKey::new("a", "api"));
    assert_eq!(h.get("/verify", &uri).await.status, StatusCode::OK);
}

#[tokio::test]
async fn v8_probes_and_fail_closed_before_sync() {
    let h = Harness::with_table(Arc::new(RouteTable::new()));
    assert_eq!(h.get("/healthz", &[]).await.text(), "{\"status\":\"ok\"}\n");
    let r = h.get("/readyz", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    for uri in ["/verify", "/verify/demo/demo"] {
        let r = h.get(uri, &FWD).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(r.reason().as_deref(), Some("not_ready"));
    }
    h.state.table.reset([]);
    assert_eq!(h.get("/readyz", &[]).await.status, StatusCode::OK);
    let r = h.get("/verify/demo/demo", &FWD).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.reason().as_deref(), Some("unknown_route"));
    assert_eq!(r.header("retry-after"), Some("5"));
}

#[tokio::test]
async fn v10_v11_each_route_has_its_own_pay_to_and_network() {
    let mut custom = spec("/services/custom/*", "1000");
    custom.pay_to = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into();
    custom.network = "base".into();
    custom.max_timeout_seconds = Some(300);
    let h = Harness::new(vec![
        entry("a", "rpc", &spec("/rpc/*", "1000")),
        entry("a", "custom", &custom),
    ]);
    let r = h
        .get("/verify", &[("x-forwarded-uri", "/services/custom/x")])
        .await;
    let a = &r.json()["accepts"][0];
    assert_eq!(a["payTo"], "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    assert_eq!(a["network"], "base");
    assert_eq!(a["maxTimeoutSeconds"], 300);
    let v2 =
        obol_x402::codec::decode_payment_required(r.header("payment-required").unwrap()).unwrap();
    assert_eq!(
        v2.accepts[0].parsed().unwrap().network.as_str(),
        "eip155:8453"
    );
    let r = h.get("/verify", &[("x-forwarded-uri", "/rpc/x")]).await;
    assert_eq!(r.json()["accepts"][0]["payTo"], PAY_TO);
    // A valid payment to the custom route's own wallet on base goes through.
    let req = h.requirement("a", "custom");
    let r = h
        .get(
            "/verify",
            &[
                ("x-forwarded-uri", "/services/custom/x"),
                ("x-payment", &header(&req, 1, 1)),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn v12_v13_metrics_with_go_names_and_no_payer_labels() {
    let h = Harness::demo();
    let req = h.requirement("demo", "demo");
    h.get("/verify/demo/demo", &FWD).await;
    h.get(
        "/verify/demo/demo",
        &with(&[("x-payment", &header(&req, 1, 1))]),
    )
    .await;
    h.get(
        "/verify/demo/demo",
        &with(&[("x-payment", &header(&req, 1, 1))]),
    )
    .await;
    h.get("/verify", &[("x-forwarded-uri", "/free")]).await;
    let r = h.get("/metrics", &[]).await;
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text();
    let labels = r#"{route="/services/demo/*",offer_namespace="demo",offer_name="demo",chain="eip155:84532"}"#;
    for (name, n) in [
        ("requests", 3),
        ("payment_required", 1),
        ("payment_verified", 1),
        ("charged_requests", 1),
        ("payment_failed", 1),
    ] {
        let line = format!("obol_x402_verifier_{name}_total{labels} {n}");
        assert!(text.contains(&line), "missing {line}\n{text}");
    }
    assert!(text.contains("obol_x402_verifier_request_duration_seconds_bucket"));
    let payer = "70997970c51812dc3a010c7d01b50e0d17dc79c8";
    assert!(
        !text.to_ascii_lowercase().contains(payer),
        "payer leaked into metrics"
    );
    assert!(!text.contains("0101010101"), "nonce leaked into metrics");
}

#[tokio::test]
async fn zero_price_route_is_free_but_still_gets_upstream_auth() {
    let mut s = spec("/free/*", "0");
    s.upstream_auth = Some("Bearer up".into());
    let h = Harness::new(vec![entry("a", "free", &s)]);
    let r = h
        .get("/verify/a/free", &[("x-forwarded-uri", "/free/x")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("authorization"), Some("Bearer up"));
}

#[tokio::test]
async fn route_with_its_own_facilitator_fails_closed_without_a_client() {
    let mut s = spec("/own/*", "10");
    s.facilitator_url = Some("http://127.0.0.1:9/".into());
    let h = Harness::new(vec![entry("a", "own", &s)]);
    let req = h.requirement("a", "own");
    let r = h
        .get(
            "/verify/a/own",
            &[
                ("x-forwarded-uri", "/own/x"),
                ("x-payment", &header(&req, 1, 1)),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.facilitator.calls(), (0, 0));
}

#[tokio::test]
async fn a_path_no_paid_rule_covers_is_403_and_query_or_fragment_change_nothing() {
    let h = Harness::new(vec![entry(
        "demo",
        "demo",
        &spec("/services/demo/v1/*", "1000"),
    )]);
    for (uri, want) in [
        ("/services/demo/v1/chat", StatusCode::PAYMENT_REQUIRED),
        ("/services/demo/v1", StatusCode::PAYMENT_REQUIRED),
        (
            "/services/demo/v1?next=/services/demo/v2",
            StatusCode::PAYMENT_REQUIRED,
        ),
        ("/services/demo/v1#/v2", StatusCode::PAYMENT_REQUIRED),
        // Under the offer's prefix, outside its paid pattern: refused, never free.
        ("/services/demo/v2", StatusCode::FORBIDDEN),
        (
            "/services/demo/v2?x=/services/demo/v1/",
            StatusCode::FORBIDDEN,
        ),
        (
            "/services/demo/v2#/services/demo/v1/",
            StatusCode::FORBIDDEN,
        ),
        ("/services/demo", StatusCode::FORBIDDEN),
    ] {
        let r = h
            .get("/verify/demo/demo", &[("x-forwarded-uri", uri)])
            .await;
        assert_eq!(r.status, want, "{uri}");
        if want == StatusCode::FORBIDDEN {
            assert_eq!(r.reason().as_deref(), Some("no_paid_rule"), "{uri}");
            r.assert_refusal_shape(uri);
        }
    }
    assert_eq!(h.facilitator.calls(), (0, 0));
}

/// Every reason in the table is produced through the router, by this test or (the list
/// `ELSEWHERE`) by the test files named there.
#[tokio::test]
async fn every_reason_code_is_produced_through_the_router() {
    use obol_x402::Reason;
    // The gateway listener's own codes are produced by tests/gateway.rs (GATEWAY_ONLY); the
    // codes no answer carries are listed with why (NEVER_ANSWERED). Every other code here.
    let mut seen = std::collections::BTreeSet::new();
    let mut record = |name: &str, r: &support::Reply| {
        r.assert_refusal_shape(name);
        let code = r.reason().unwrap();
        seen.insert(Reason::from_code(&code).unwrap());
    };
    let h = Harness::demo();
    let req = h.requirement("demo", "demo");
    let pay = |nonce: u8, version: u8| header(&req, nonce, version);
    let get = |headers: Vec<(&'static str, String)>| {
        let h = &h;
        async move {
            let owned: Vec<(&str, &str)> = FWD
                .iter()
                .copied()
                .chain(headers.iter().map(|(k, v)| (*k, v.as_str())))
                .collect();
            h.get("/verify/demo/demo", &owned).await
        }
    };
    record("bad header", &get(vec![("x-payment", "!!!".into())]).await);
    let mut wrong_amount = payload_json(&req, auth(&req, 1), 2, &key());
    wrong_amount["accepted"]["amount"] = "1".into();
    record(
        "wrong amount",
        &get(vec![("payment-signature", encode(&wrong_amount))]).await,
    );
    let mut expired = auth(&req, 2);
    expired.valid_before = NOW - 1;
    record(
        "expired",
        &get(vec![(
            "payment-signature",
            encode(&payload_json(&req, expired, 2, &key())),
        )])
        .await,
    );
    assert_eq!(
        get(vec![("payment-signature", pay(3, 2))]).await.status,
        StatusCode::OK
    );
    record(
        "replayed",
        &get(vec![("payment-signature", pay(3, 2))]).await,
    );
    *h.facilitator.verify.lock() = Script::Unreachable;
    record(
        "facilitator down",
        &get(vec![("payment-signature", pay(4, 2))]).await,
    );
    *h.facilitator.verify.lock() = Script::Yes;
    *h.facilitator.settle.lock() =
        Script::NoTx("invalid_exact_evm_payload_authorization_valid_before");
    let r = get(vec![("payment-signature", pay(5, 2))]).await;
    assert_eq!(r.reason().as_deref(), Some("settlement_rejected"));
    record("settle refused", &r);
    // Refused before anything was sent: the same authorization is usable again.
    *h.facilitator.settle.lock() = Script::Yes;
    assert_eq!(
        get(vec![("payment-signature", pay(5, 2))]).await.status,
        StatusCode::OK
    );
    *h.facilitator.settle.lock() = Script::NoTx("invalid_exact_evm_transaction_failed");
    let r = get(vec![("payment-signature", pay(6, 2))]).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_GATEWAY,
        "unknown outcome: {}",
        r.text()
    );
    record("settle unknown", &r);
    *h.facilitator.settle.lock() = Script::Yes;
    record(
        "no paid rule",
        &h.get("/verify/demo/demo", &[("x-forwarded-uri", "/elsewhere")])
            .await,
    );
    record("missing uri", &h.get("/verify/demo/demo", &[]).await);
    let long = format!("/services/demo/{}", "a".repeat(9000));
    record(
        "uri too long",
        &h.get("/verify/demo/demo", &[("x-forwarded-uri", &long)])
            .await,
    );
    record("unknown route", &h.get("/verify/demo/nope", &FWD).await);
    let bad = axum::http::HeaderValue::from_bytes(b"/services/demo/\xff").unwrap();
    let request = axum::http::Request::get("/verify/demo/demo")
        .header("x-forwarded-uri", bad)
        .body(axum::body::Body::empty())
        .unwrap();
    record("bad forwarded header", &h.call(request).await);

    let cold = Harness::with_table(Arc::new(RouteTable::new()));
    record("not ready", &cold.get("/verify/demo/demo", &FWD).await);

    // A reservation table full of payments in flight: busy, never "let it through".
    use obol_verifier::reservations::{Fingerprint, Key, Reservations, memory::MemoryStore};
    let busy = Harness::custom(table(vec![demo_entry()]), |s| {
        let store = MemoryStore::new(1, s.clock.clone());
        s.with_reservations(Reservations::new(Arc::new(store), 3600))
    });
    let other = Key::new(obol_x402::Address::repeat_byte(9), obol_x402::B256::ZERO);
    busy.state
        .reservations
        .hold(other, NOW + 60, NOW, NOW + 30, Fingerprint::of(&req))
        .await
        .unwrap();
    let payment = pay(7, 2);
    let r = busy
        .get(
            "/verify/demo/demo",
            &with(&[("payment-signature", &payment)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    record("busy", &r);
    assert_eq!(busy.facilitator.calls(), (0, 0));
    // The same authorization while another request holds it: 409 in_flight.
    let held = Key::new(key().address(), obol_x402::B256::repeat_byte(8));
    h.state
        .reservations
        .hold(held, NOW + 60, NOW, NOW + 30, Fingerprint::of(&req))
        .await
        .unwrap();
    let r = get(vec![("payment-signature", pay(8, 2))]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    record("in flight", &r);

    // The reservation store down: 503, nothing verified.
    let down = Harness::custom(table(vec![demo_entry()]), |s| {
        s.with_reservations(Reservations::new(Arc::new(DownStore), 60))
    });
    let payment = pay(9, 2);
    let r = down
        .get(
            "/verify/demo/demo",
            &with(&[("payment-signature", &payment)]),
        )
        .await;
    record("reservations down", &r);
    assert_eq!(down.facilitator.calls(), (0, 0));
    // A settle whose outcome is unknown, retried while the chain cannot be asked: 503.
    let evidence = Arc::new(FakeEvidence::default());
    *evidence.answer.lock() = Some(Err("connection refused".into()));
    let chainless = Harness::custom(table(vec![demo_entry()]), move |s| {
        s.with_evidence(evidence)
    });
    *chainless.facilitator.settle.lock() = Script::Unreachable;
    let payment = pay(10, 2);
    let headers = with(&[("payment-signature", &payment)]);
    assert_eq!(
        chainless.get("/verify/demo/demo", &headers).await.status,
        StatusCode::BAD_GATEWAY
    );
    record(
        "chain down",
        &chainless.get("/verify/demo/demo", &headers).await,
    );
    // A route table: a path it does not list is 404, a path listed for other methods 405.
    let mut listed = spec("/services/demo/*", "1000");
    listed.routes = vec![obol_api::routes::RouteRule {
        pattern: "/services/demo/admin".into(),
        gate: obol_api::routes::Gate::Paid,
        price: None,
        methods: vec!["DELETE".into()],
        summary: None,
        input_schema: None,
        output_schema: None,
    }];
    let tabled = Harness::new(vec![entry("demo", "demo", &listed)]);
    for (uri, name) in [
        ("/services/demo/other", "not listed"),
        ("/services/demo/admin", "other method"),
    ] {
        let r = tabled
            .get(
                "/verify/demo/demo",
                &[("x-forwarded-uri", uri), ("x-forwarded-method", "GET")],
            )
            .await;
        record(name, &r);
    }

    for (code, why) in NEVER_ANSWERED {
        assert!(!seen.contains(code), "{} is produced ({why})", code.code());
        assert!(!GATEWAY_ONLY.contains(code));
    }
    let missing: Vec<&str> = Reason::ALL
        .iter()
        .filter(|r| {
            !seen.contains(r)
                && !GATEWAY_ONLY.contains(r)
                && !NEVER_ANSWERED.iter().any(|(code, _)| code == *r)
        })
        .map(|r| r.code())
        .collect();
    assert!(missing.is_empty(), "no test produces {missing:?}");
}
