//! Gateway mode `proxy` through a real socket: a scripted upstream on loopback, the gateway
//! listener, a scripted facilitator. Charged only for answers delivered; streams settled at
//! their end; errors passed through uncharged; one payment, one upstream request.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod gateway_support;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use gateway_support::*;
use http_body_util::BodyExt as _;
use obol_api::ProxyTarget;
use support::*;

struct Setup {
    gw: SocketAddr,
    up: Arc<UpstreamScript>,
    h: Harness,
}

async fn setup() -> Setup {
    let (addr, up) = upstream().await;
    let h = Harness::new(vec![demo_proxy_entry(addr)]);
    let gw = gateway(h.state.clone(), test_config()).await;
    Setup { gw, up, h }
}

impl Setup {
    fn pay(&self, nonce: u8) -> String {
        header(&self.h.requirement("demo", "demo"), nonce, 2)
    }

    async fn paid(&self, path: &str, nonce: u8) -> Answer {
        get(self.gw, path, &[("payment-signature", &self.pay(nonce))]).await
    }
}

#[tokio::test]
async fn a_whole_answer_is_settled_then_sent_with_its_receipt() {
    let s = setup().await;
    let pay = s.pay(1);
    let r = get(
        s.gw,
        "/services/demo/json?bytes=1024",
        &[
            ("payment-signature", &pay),
            ("x-payment-payer", "0xforged"),
            ("x-verified-by", "me"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().len() > 1024);
    assert_eq!(r.receipt_tx(false).as_deref(), Some(TX));
    assert!(
        r.header("x-payment-response").is_some(),
        "v1 clients read this one"
    );
    assert_eq!(s.h.facilitator.calls(), (1, 1));
    // The upstream got the path without the offer's prefix, the payer set by the verifier
    // and none of the payment or forged headers.
    assert_eq!(s.up.hits("/json"), 1);
    let seen = s.up.seen.lock()[0].clone();
    assert_eq!(
        seen.get("x-payment-payer").unwrap(),
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    );
    for gone in [
        "payment-signature",
        "x-payment",
        "x-verified-by",
        "x-obol-payment-route",
    ] {
        assert!(seen.get(gone).is_none(), "{gone} reached the upstream");
    }
    // Served once: the same payment again is a replay and never reaches the upstream.
    let again = get(s.gw, "/services/demo/json", &[("payment-signature", &pay)]).await;
    assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(s.up.total(), 1);
}

#[tokio::test]
async fn an_upstream_error_is_passed_through_uncharged_and_the_payment_stays_usable() {
    let s = setup().await;
    s.up.failing.store(true, Ordering::SeqCst);
    let r = s.paid("/services/demo/flaky", 2).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.text(), "upstream broke");
    assert_eq!(r.header("x-payment-settled"), Some("false"));
    assert_eq!(s.h.facilitator.calls(), (1, 0), "verified, never settled");
    let r = s.paid("/services/demo/teapot", 2).await;
    assert_eq!(r.status, StatusCode::IM_A_TEAPOT);
    // The upstream is healthy again: the same authorization now pays, once.
    s.up.failing.store(false, Ordering::SeqCst);
    let r = s.paid("/services/demo/flaky", 2).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.receipt_tx(false).as_deref(), Some(TX));
    assert_eq!(s.h.facilitator.calls(), (3, 1));
}

#[tokio::test]
async fn an_upstream_that_is_down_or_too_slow_costs_nothing() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let h = Harness::new(vec![demo_proxy_entry(dead_addr)]);
    let gw = gateway(h.state.clone(), test_config()).await;
    let pay = header(&h.requirement("demo", "demo"), 3, 2);
    let r = get(gw, "/services/demo/x", &[("payment-signature", &pay)]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["reason"], "upstream_failed");
    assert_eq!(r.header("x-payment-settled"), Some("false"));

    let s = setup().await;
    let r = s.paid("/services/demo/slow", 4).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.json()["reason"], "upstream_failed");
    assert_eq!(s.h.facilitator.calls(), (1, 0));
    // Released: the same payment works on a path that answers.
    let r = s.paid("/services/demo/json", 4).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_stream_arrives_whole_before_settlement_and_its_trailer_carries_the_receipt() {
    let s = setup().await;
    let response = send(
        s.gw,
        "GET",
        "/services/demo/sse?events=200&wait",
        &[("payment-signature", &s.pay(5))],
        vec![],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("trailer").unwrap(),
        "payment-response, x-payment-response"
    );
    assert!(response.headers().get("content-length").is_none());
    let mut body = response.into_body();
    let mut text = String::new();
    while text.matches("data: ").count() < 200 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("events flow without waiting for the end")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(frame.data_ref().unwrap()));
    }
    assert!(text.contains("data: event 199\n\n"));
    assert_eq!(
        s.h.facilitator.calls(),
        (1, 0),
        "nothing settled before the end"
    );
    s.up.release.notify_one();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        if let Ok(t) = frame.unwrap().into_trailers() {
            trailers = Some(t);
        }
    }
    let trailers = trailers.expect("the receipt trailer");
    let receipt = trailers.get("payment-response").unwrap().to_str().unwrap();
    assert_eq!(
        obol_x402::codec::decode_settle_response(receipt)
            .unwrap()
            .transaction,
        TX
    );
    assert_eq!(s.h.facilitator.calls(), (1, 1), "settled exactly once");
}

/// The idle budget (2 s here) is per wait, not per stream: a stream whose events come 0.6 s
/// apart for 3 s arrives whole and is charged once.
#[tokio::test]
async fn a_stream_with_pauses_shorter_than_the_idle_budget_is_not_cut() {
    let s = setup().await;
    let response = send(
        s.gw,
        "GET",
        "/services/demo/sse?events=6&gap_ms=600",
        &[("payment-signature", &s.pay(11))],
        vec![],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut text = String::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("no idle cut");
        match frame.into_data() {
            Ok(data) => text.push_str(&String::from_utf8_lossy(&data)),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    assert_eq!(text.matches("data: ").count(), 6, "{text}");
    assert!(
        trailers
            .expect("the receipt")
            .contains_key("payment-response")
    );
    assert_eq!(s.h.facilitator.calls(), (1, 1), "settled once");
}

/// An upstream that goes quiet mid-stream for longer than the idle budget: the stream ends
/// with an error, nothing is charged, and the payment is usable again.
#[tokio::test]
async fn an_upstream_that_goes_quiet_mid_stream_costs_nothing() {
    let s = setup().await;
    let response = send(
        s.gw,
        "GET",
        "/services/demo/sse?events=3&wait",
        &[("payment-signature", &s.pay(12))],
        vec![],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut events = 0;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(frame)) = body.frame().await {
            let data = frame.into_data().unwrap_or_default();
            events += String::from_utf8_lossy(&data).matches("data: ").count();
        }
    })
    .await;
    assert!(ended.is_ok(), "the idle budget ends the stream");
    assert_eq!(events, 3);
    assert_eq!(s.h.facilitator.calls().1, 0, "nothing settled");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.paid("/services/demo/json", 12).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
        assert!(tokio::time::Instant::now() < deadline, "never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        s.h.facilitator.calls().1,
        1,
        "only the later answer was settled"
    );
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_not_charged_and_keeps_its_payment() {
    let s = setup().await;
    let response = send(
        s.gw,
        "GET",
        "/services/demo/sse?events=100000",
        &[("payment-signature", &s.pay(6))],
        vec![],
    )
    .await;
    let mut body = response.into_body();
    let mut events = 0;
    while events < 10 {
        let frame = body.frame().await.unwrap().unwrap();
        events += String::from_utf8_lossy(frame.data_ref().unwrap())
            .matches("data: ")
            .count();
    }
    drop(body); // the connection closes
    // The upstream keeps producing until the gateway notices and stops reading it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.paid("/services/demo/json", 6).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
        assert!(tokio::time::Instant::now() < deadline, "never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s.up.events_sent.load(Ordering::SeqCst) < 100_000);
    assert_eq!(
        s.h.facilitator.calls().1,
        1,
        "only the later whole answer was settled"
    );
}

#[tokio::test]
async fn thirty_two_copies_of_one_payment_reach_the_upstream_once() {
    let s = Arc::new(setup().await);
    let pay = s.pay(7);
    let mut tasks = vec![];
    for _ in 0..32 {
        let (gw, pay) = (s.gw, pay.clone());
        tasks.push(tokio::spawn(async move {
            get(gw, "/services/demo/json", &[("payment-signature", &pay)])
                .await
                .status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        if status == StatusCode::OK {
            ok += 1;
        } else {
            assert!(
                [StatusCode::CONFLICT, StatusCode::PAYMENT_REQUIRED].contains(&status),
                "{status}"
            );
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.up.hits("/json"), 1);
    assert_eq!(s.h.facilitator.calls().1, 1);
}

#[tokio::test]
async fn a_settle_the_facilitator_cannot_do_withholds_the_answer_and_releases_the_payment() {
    let s = setup().await;
    *s.h.facilitator.settle.lock() = Script::NoTx("insufficient funds for gas");
    let r = s.paid("/services/demo/json", 8).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["reason"], "settlement_failed");
    assert!(
        !r.text().contains("xxxx"),
        "the answer is not delivered unpaid"
    );
    assert!(r.header("retry-after").is_some());
    // Nothing moved: the same authorization may be retried.
    *s.h.facilitator.settle.lock() = Script::Yes;
    assert_eq!(
        s.paid("/services/demo/json", 8).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_settle_with_an_unknown_outcome_withholds_the_answer_and_burns_the_nonce() {
    let s = setup().await;
    *s.h.facilitator.settle.lock() = Script::Unreachable;
    let r = s.paid("/services/demo/json", 9).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["reason"], "settlement_failed");
    assert!(!r.text().contains("xxxx"));
    *s.h.facilitator.settle.lock() = Script::Yes;
    let r = s.paid("/services/demo/json", 9).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text());
    assert_eq!(r.json()["reason"], "replayed");
    // A refusal that blames the payer is a 402 and releases nothing it should not.
    *s.h.facilitator.settle.lock() = Script::NoTx("insufficient_funds");
    let r = s.paid("/services/demo/json", 10).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
}

#[tokio::test]
async fn an_answer_the_client_never_got_is_served_again_without_a_second_charge() {
    let s = setup().await;
    let pay = s.pay(11);
    // 12 MiB, settled, then the client reads the head only and goes away.
    let response = send(
        s.gw,
        "GET",
        "/services/demo/big?bytes=12582912",
        &[("payment-signature", &pay)],
        vec![],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tx = response.headers().get("payment-response").cloned().unwrap();
    drop(response);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = get(
            s.gw,
            "/services/demo/big?bytes=12582912",
            &[("payment-signature", &pay)],
        )
        .await;
        if r.status != StatusCode::CONFLICT {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "never undelivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.body.len(), 12_582_912);
    assert_eq!(
        r.headers.get("payment-response"),
        Some(&tx),
        "the same receipt"
    );
    assert_eq!(s.h.facilitator.calls(), (1, 1), "never settled twice");
    assert_eq!(s.up.hits("/big"), 2);
    // Delivered now: a third presentation is a replay.
    let r = get(s.gw, "/services/demo/big", &[("payment-signature", &pay)]).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
}

#[tokio::test]
async fn answers_larger_than_the_buffer_and_declared_streams_are_settled_at_their_end() {
    let (addr, up) = upstream().await;
    let mut spec = gateway_support::proxy_spec(addr);
    spec.proxy.as_mut().unwrap().streaming_content_types = vec!["application/x-ndjson".into()];
    let h = Harness::new(vec![entry("demo", "demo", &spec)]);
    let config = obol_verifier::gateway::upstream::UpstreamConfig {
        max_buffer_bytes: 1000,
        ..test_config()
    };
    let gw = gateway(h.state.clone(), config).await;
    let req = h.requirement("demo", "demo");
    let r = get(
        gw,
        "/services/demo/big?bytes=5000",
        &[("payment-signature", &header(&req, 12, 2))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 5000);
    assert!(r.header("payment-response").is_none());
    assert_eq!(r.receipt_tx(true).as_deref(), Some(TX));
    let r = get(
        gw,
        "/services/demo/ndjson",
        &[("payment-signature", &header(&req, 13, 2))],
    )
    .await;
    assert_eq!(r.text(), "{\"a\":1}\n{\"a\":2}\n");
    assert_eq!(r.receipt_tx(true).as_deref(), Some(TX));
    assert_eq!(h.facilitator.calls(), (2, 2));
    assert_eq!(up.total(), 2);
}

#[tokio::test]
async fn requests_that_are_not_for_sale_are_refused_before_any_payment() {
    let s = setup().await;
    let pay = s.pay(14);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, StatusCode, &'a str);
    let cases: [Case<'_>; 5] = [
        ("/elsewhere", vec![], StatusCode::NOT_FOUND, "no_route"),
        (
            "/services/demo/x",
            vec![("x-obol-payment-route", "demo/other")],
            StatusCode::SERVICE_UNAVAILABLE,
            "unknown_route",
        ),
        (
            "/services/demo/x",
            vec![("x-obol-payment-route", "nonsense")],
            StatusCode::BAD_REQUEST,
            "invalid_route_header",
        ),
        (
            "/other/x",
            vec![("x-obol-payment-route", "demo/demo")],
            StatusCode::FORBIDDEN,
            "no_paid_rule",
        ),
        (
            "/services/demo/ws",
            vec![("upgrade", "websocket"), ("connection", "upgrade")],
            StatusCode::FORBIDDEN,
            "websocket_refused",
        ),
    ];
    for (path, mut headers, status, reason) in cases {
        headers.push(("payment-signature", &pay));
        let r = get(s.gw, path, &headers).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(r.json()["reason"], reason, "{path}");
    }
    let big = vec![b'x'; 100 << 10];
    let r = read(
        send(
            s.gw,
            "POST",
            "/services/demo/echo",
            &[("payment-signature", &pay)],
            big,
        )
        .await,
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.h.facilitator.calls(), (0, 0));
    assert_eq!(s.up.total(), 0);
    // The route header selects exactly; without it the path does.
    let r = get(
        s.gw,
        "/services/demo/json",
        &[
            ("x-obol-payment-route", "demo/demo"),
            ("payment-signature", &pay),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn unpaid_requests_get_the_402_and_free_routes_are_forwarded() {
    let (addr, up) = upstream().await;
    let mut free = spec("/free/*", "0");
    free.proxy = Some(ProxyTarget {
        upstream: format!("http://{addr}"),
        strip_prefix: Some("/free".into()),
        ..Default::default()
    });
    let fa_only = spec("/fa/*", "1000");
    let h = Harness::new(vec![
        demo_proxy_entry(addr),
        entry("demo", "free", &free),
        entry("demo", "fa", &fa_only),
    ]);
    let gw = gateway(h.state.clone(), test_config()).await;
    let r = get(gw, "/services/demo/json", &[("x-forwarded-proto", "https")]).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        r.json()["accepts"][0]["resource"],
        "https://obol.stack/services/demo/json"
    );
    assert!(r.header("payment-required").is_some());
    let r = get(gw, "/free/hello", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "path /hello");
    let r = get(gw, "/fa/x", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["reason"], "not_proxied");
    assert_eq!(up.total(), 1);
    assert_eq!(h.facilitator.calls(), (0, 0));
}

#[tokio::test]
async fn a_request_body_is_streamed_to_the_upstream() {
    let s = setup().await;
    let r = read(
        send(
            s.gw,
            "POST",
            "/services/demo/echo",
            &[("payment-signature", &s.pay(15))],
            b"{\"prompt\":\"hi\"}".to_vec(),
        )
        .await,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "{\"prompt\":\"hi\"}");
}

#[tokio::test]
async fn an_allowed_websocket_is_settled_when_the_upstream_accepts_the_upgrade() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (addr, up) = upstream().await;
    let mut spec = gateway_support::proxy_spec(addr);
    spec.proxy.as_mut().unwrap().allow_web_socket = true;
    let h = Harness::new(vec![entry("demo", "demo", &spec)]);
    let gw = gateway(h.state.clone(), test_config()).await;
    let req = h.requirement("demo", "demo");
    let pay = header(&req, 16, 2);
    let (response, io) = upgrade(gw, "/services/demo/ws", &[("payment-signature", &pay)]).await;
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let receipt = response
        .headers()
        .get("payment-response")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        obol_x402::codec::decode_settle_response(receipt)
            .unwrap()
            .transaction,
        TX
    );
    assert_eq!(h.facilitator.calls(), (1, 1), "settled at the upgrade");
    let mut io = io.unwrap();
    io.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping", "bytes relayed both ways");
    // The upstream refusing the upgrade costs nothing.
    let (response, io) = upgrade(
        gw,
        "/services/demo/teapot",
        &[("payment-signature", &header(&req, 17, 2))],
    )
    .await;
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert!(io.is_none());
    assert_eq!(h.facilitator.calls(), (2, 1));
    assert_eq!(up.hits("/ws"), 1);
}

/// The structured refusal of a gateway answer: `{error, reason, detail, hint, retriable}`, the
/// status of its code (a timeout's `upstream_failed` is 504), `Retry-After` on a 503.
fn refusal_code(name: &str, r: &Answer) -> obol_x402::Reason {
    let j = r.json();
    let code = j["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no reason: {j}"));
    let reason = obol_x402::Reason::from_code(code)
        .unwrap_or_else(|| panic!("{name}: {code} is not in the table"));
    for key in ["error", "detail", "hint"] {
        assert!(
            j[key].as_str().is_some_and(|v| !v.is_empty()),
            "{name}: {key}: {j}"
        );
    }
    assert!(j["retriable"].is_boolean(), "{name}: {j}");
    let status = r.status.as_u16();
    assert!(
        status == reason.status() || (reason == obol_x402::Reason::UpstreamFailed && status == 504),
        "{name}: {code} answered {status}"
    );
    if r.status == StatusCode::SERVICE_UNAVAILABLE {
        assert!(r.header("retry-after").is_some(), "{name}: Retry-After");
    }
    reason
}

#[tokio::test]
async fn every_gateway_only_reason_code_is_produced_through_the_listener() {
    let mut seen = std::collections::BTreeSet::new();
    let mut record = |name: &str, r: &Answer| {
        seen.insert(refusal_code(name, r));
    };
    let s = setup().await;
    let pay = s.pay(30);
    let paid = |extra: &[(&'static str, &'static str)]| {
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        headers.push(("payment-signature", pay.as_str()));
        headers
    };
    record("no route", &get(s.gw, "/elsewhere", &paid(&[])).await);
    record(
        "bad route header",
        &get(
            s.gw,
            "/services/demo/x",
            &paid(&[("x-obol-payment-route", "nonsense")]),
        )
        .await,
    );
    record(
        "websocket",
        &get(
            s.gw,
            "/services/demo/ws",
            &paid(&[("upgrade", "websocket"), ("connection", "upgrade")]),
        )
        .await,
    );
    let big = vec![b'x'; 100 << 10];
    record(
        "request too large",
        &read(send(s.gw, "POST", "/services/demo/echo", &paid(&[]), big).await).await,
    );
    record(
        "upstream too slow",
        &get(s.gw, "/services/demo/slow", &paid(&[])).await,
    );
    // A ForwardAuth-only route on the gateway listener.
    let (addr, _up) = upstream().await;
    let h = Harness::new(vec![
        demo_proxy_entry(addr),
        entry("demo", "fa", &spec("/fa/*", "1000")),
    ]);
    let gw = gateway(h.state.clone(), test_config()).await;
    record("not proxied", &get(gw, "/fa/x", &[]).await);
    assert_eq!(s.h.facilitator.calls().1, 0, "nothing was settled");

    let missing: Vec<&str> = GATEWAY_ONLY
        .iter()
        .filter(|r| !seen.contains(r))
        .map(|r| r.code())
        .collect();
    assert!(
        missing.is_empty(),
        "no gateway scenario produces {missing:?}"
    );
    for (code, why) in NEVER_ANSWERED {
        assert!(!seen.contains(code), "{} is produced ({why})", code.code());
    }
}
