//! Route tables (`spec.routes[]`) in both gateway modes: ForwardAuth through the router
//! (`oneshot`), proxy through the gateway listener on loopback with a scripted upstream. A free
//! route passes unpaid, a route's price overrides the offer's in the 402 and in the check, an
//! unlisted path is 404 (never a free pass), a path listed for other methods is 405.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod gateway_support;
mod support;

use axum::http::StatusCode;
use gateway_support::*;
use obol_api::PaymentRouteSpec;
use obol_api::routes::{Gate, RouteRule};
use obol_x402::Requirement;
use support::*;

fn rule(pattern: &str, gate: Gate, price: Option<&str>, methods: &[&str]) -> RouteRule {
    RouteRule {
        pattern: pattern.into(),
        gate,
        price: price.map(str::to_owned),
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        summary: None,
        input_schema: None,
        output_schema: None,
    }
}

/// The demo offer's table, declared least specific first: the verifier orders it itself.
fn with_table(mut spec: PaymentRouteSpec) -> PaymentRouteSpec {
    spec.routes = vec![
        rule("/services/demo/v1/*", Gate::Paid, None, &[]),
        rule("/services/demo/health", Gate::Free, None, &[]),
        rule(
            "/services/demo/v1/chat/completions",
            Gate::Paid,
            Some("5000"),
            &["POST"],
        ),
        rule("/services/demo/admin", Gate::Paid, None, &["DELETE"]),
    ];
    spec
}

/// The requirement of the rule whose pattern is `pattern`.
fn rule_requirement(h: &Harness, pattern: &str) -> Requirement {
    let route = h.state.table.get("demo", "demo").unwrap();
    let rule = route.rules.iter().find(|r| r.entry.pattern == pattern);
    rule.unwrap().entry.requirement.clone().unwrap()
}

/// `maxAmountRequired` of a v1 402 body.
fn amount(body: &serde_json::Value) -> &str {
    body["accepts"][0]["maxAmountRequired"].as_str().unwrap()
}

const CHAT: &str = "/services/demo/v1/chat/completions";

#[tokio::test]
async fn forward_auth_serves_the_table() {
    let h = Harness::new(vec![entry(
        "demo",
        "demo",
        &with_table(spec("/services/demo/*", "1000")),
    )]);
    let verify = |uri: &'static str, method: &'static str, extra: Vec<(&'static str, String)>| {
        let h = &h;
        async move {
            let mut headers = vec![("x-forwarded-uri", uri), ("x-forwarded-method", method)];
            headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
            h.get("/verify/demo/demo", &headers).await
        }
    };
    // Free: 200 without payment, nothing asked of the facilitator.
    let r = verify("/services/demo/health", "GET", vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
    // The route's own price in the 402; the offer's for the route that has none.
    let r = verify(CHAT, "POST", vec![]).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(amount(&r.json()), "5000");
    let r = verify("/services/demo/v1/models", "GET", vec![]).await;
    assert_eq!(amount(&r.json()), "1000");
    // The chat route serves POST only: a GET falls to the next most specific, /v1/*.
    let r = verify(CHAT, "GET", vec![]).await;
    assert_eq!(amount(&r.json()), "1000");
    // Unlisted under the prefix: 404, not a free pass.
    for uri in [
        "/services/demo/other",
        "/services/demo",
        "/services/demo/health/x",
    ] {
        let r = verify(uri, "GET", vec![]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.reason().as_deref(), Some("route_not_listed"), "{uri}");
        r.assert_refusal_shape(uri);
    }
    // Listed for DELETE only.
    let r = verify("/services/demo/admin", "GET", vec![]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("DELETE"));
    r.assert_refusal_shape("admin");
    // No method forwarded: only routes open to every method serve.
    let r = h
        .get(
            "/verify/demo/demo",
            &[("x-forwarded-uri", "/services/demo/admin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h.facilitator.calls(), (0, 0));
    // The check uses the route's price: the offer's price does not pay for the chat route.
    let offer_price = rule_requirement(&h, "/services/demo/v1/*");
    let r = verify(
        CHAT,
        "POST",
        vec![("payment-signature", header(&offer_price, 1, 2))],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.reason().as_deref(), Some("no_matching_requirement"));
    let chat_price = rule_requirement(&h, CHAT);
    let r = verify(
        CHAT,
        "POST",
        vec![("payment-signature", header(&chat_price, 2, 2))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(h.facilitator.calls(), (1, 1));
    // By path (no route named), the same table decides.
    let r = h
        .get("/verify", &[("x-forwarded-uri", "/services/demo/nope")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .get("/verify", &[("x-forwarded-uri", "/services/demo/health")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn proxy_mode_serves_the_table() {
    let (addr, up) = upstream().await;
    let h = Harness::new(vec![entry("demo", "demo", &with_table(proxy_spec(addr)))]);
    let gw = gateway(h.state.clone(), test_config()).await;
    let route = ("x-obol-payment-route", "demo/demo");
    // Free: forwarded without payment, prefix stripped.
    let r = get(gw, "/services/demo/health", &[route]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "path /health");
    assert_eq!(up.hits("/health"), 1);
    // Paid with the route's price.
    let r = read(send(gw, "POST", CHAT, &[route], vec![]).await).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(amount(&r.json()), "5000");
    let r = get(gw, "/services/demo/v1/models", &[route]).await;
    assert_eq!(amount(&r.json()), "1000");
    // Unlisted: 404, the upstream never asked; with or without the route header.
    for headers in [&[route][..], &[][..]] {
        let r = get(gw, "/services/demo/elsewhere", headers).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
        assert_eq!(r.json()["reason"], "route_not_listed");
    }
    let r = get(gw, "/services/demo/admin", &[route]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("DELETE"));
    assert_eq!(up.hits("/elsewhere") + up.hits("/admin"), 0);
    assert_eq!(h.facilitator.calls(), (0, 0));
    // Paid at the route's price: forwarded and settled.
    let pay = header(&rule_requirement(&h, CHAT), 1, 2);
    let r = read(
        send(
            gw,
            "POST",
            CHAT,
            &[route, ("payment-signature", &pay)],
            vec![],
        )
        .await,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(up.hits("/v1/chat/completions"), 1);
    assert_eq!(h.facilitator.calls(), (1, 1));
}

#[tokio::test]
async fn discovery_is_free_and_current_and_every_402_points_at_it() {
    let (addr, up) = upstream().await;
    let mut spec = with_table(proxy_spec(addr));
    let chat = spec.routes.iter_mut().find(|r| r.pattern == CHAT).unwrap();
    chat.input_schema = Some(serde_json::json!({
        "type": "object", "examples": [{"model": "m", "messages": []}],
    }));
    let h = Harness::new(vec![entry("demo", "demo", &spec)]);
    let gw = gateway(h.state.clone(), test_config()).await;
    let forwarded = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.example"),
    ];

    let r = get(gw, obol_api::routes::WELL_KNOWN_X402, &forwarded).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let manifest = r.json();
    let resources: Vec<&str> = manifest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["resource"].as_str().unwrap())
        .collect();
    assert!(
        resources.contains(&"https://shop.example/services/demo/v1/chat/completions"),
        "{resources:?}"
    );
    let r = get(gw, obol_api::routes::OPENAPI, &forwarded).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["paths"]["/services/demo/v1/chat/completions"]["post"]["x-x402"]["accepts"][0]["amount"],
        "5000"
    );

    // Every 402 names the catalog; a route with schemas carries its Bazaar description in the
    // body and in PAYMENT-REQUIRED.
    let route = ("x-obol-payment-route", "demo/demo");
    let r = read(send(gw, "POST", CHAT, &[route], vec![]).await).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.header("link"), Some(obol_api::routes::CATALOG_LINK));
    let body = r.json();
    assert_eq!(
        body["extensions"]["bazaar"]["info"]["input"]["body"]["model"],
        "m"
    );
    let v2 =
        obol_x402::codec::decode_payment_required(r.header("payment-required").unwrap()).unwrap();
    let ext = v2.extensions.expect("extensions in PAYMENT-REQUIRED");
    assert_eq!(
        ext["bazaar"]["schema"]["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let r = get(gw, "/services/demo/v1/models", &[route]).await;
    assert_eq!(r.header("link"), Some(obol_api::routes::CATALOG_LINK));
    assert!(
        r.json().get("extensions").is_none(),
        "no schemas, no Bazaar"
    );
    // The ForwardAuth 402 too.
    let r = h
        .get(
            "/verify/demo/demo",
            &[("x-forwarded-uri", "/services/demo/v1/models")],
        )
        .await;
    assert_eq!(r.header("link"), Some(obol_api::routes::CATALOG_LINK));

    // A change shows on the next request.
    h.state.table.apply(entry(
        "demo",
        "other",
        &support::spec("/services/other/*", "7"),
    ));
    let manifest = get(gw, obol_api::routes::WELL_KNOWN_X402, &forwarded)
        .await
        .json();
    assert!(
        manifest.to_string().contains("/services/other/:rest"),
        "{manifest}"
    );
    assert_eq!(h.facilitator.calls(), (0, 0));
    assert_eq!(up.total(), 0, "discovery never reaches an upstream");
}

/// The discovery documents read by unmodified third-party code (`tools/x402-peers/discovery.cjs`):
/// `/openapi.json` passes the OpenAPI 3.1 schema validator from npm, and the official x402
/// client decodes the 402 whose Bazaar extension the official extensions package validates and
/// extracts as a facilitator would.
#[tokio::test]
async fn third_party_code_reads_the_openapi_document_and_the_bazaar_402() {
    let (addr, _up) = upstream().await;
    let mut spec = with_table(proxy_spec(addr));
    let chat = spec.routes.iter_mut().find(|r| r.pattern == CHAT).unwrap();
    chat.summary = Some("Chat completions".into());
    chat.input_schema = Some(serde_json::json!({
        "type": "object",
        "properties": {"model": {"type": "string"}, "messages": {"type": "array"}},
        "required": ["model", "messages"],
        "examples": [{"model": "m", "messages": []}],
    }));
    chat.output_schema = Some(serde_json::json!({
        "type": "object", "properties": {"choices": {"type": "array"}},
    }));
    let h = Harness::new(vec![entry("demo", "demo", &spec)]);
    let gw = gateway(h.state.clone(), test_config()).await;
    let forwarded = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.example"),
    ];
    let openapi = get(gw, obol_api::routes::OPENAPI, &forwarded).await.json();
    let route = ("x-obol-payment-route", "demo/demo");
    let r = read(
        send(
            gw,
            "POST",
            CHAT,
            &[route, forwarded[0], forwarded[1]],
            vec![],
        )
        .await,
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    let mut broken = openapi.clone();
    broken.as_object_mut().unwrap().remove("info");
    let input = serde_json::json!({
        "openapi": openapi,
        "broken": broken,
        "headers": {"PAYMENT-REQUIRED": r.header("payment-required").unwrap()},
        "body": r.json(),
    });
    let peers = obol_testenv::tools::x402_peers();
    let out = obol_devstack::facilitator::run_node_script(
        &peers,
        &obol_testenv::repo_root().join("tools/x402-peers/discovery.cjs"),
        &[],
        input.to_string().as_bytes(),
    )
    .await
    .unwrap();
    let seen: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(seen["openapi"]["valid"], true, "{seen:#}");
    assert_eq!(seen["openapi"]["version"], "3.1");
    assert_eq!(seen["broken"]["valid"], false, "the validator can refuse");
    let required = &seen["paymentRequired"];
    assert_eq!(required["x402Version"], 2);
    assert_eq!(
        required["resource"]["url"],
        "https://shop.example/services/demo/v1/chat/completions"
    );
    assert_eq!(required["accepts"][0]["amount"], "5000");
    let bazaar = &seen["bazaar"];
    assert_eq!(bazaar["present"], true, "{seen:#}");
    assert_eq!(bazaar["extracted"]["valid"], true, "{seen:#}");
    assert_eq!(bazaar["spec"]["valid"], true, "{seen:#}");
    let info = &bazaar["extracted"]["info"]["input"];
    assert_eq!(info["type"], "http");
    assert_eq!(info["method"], "POST");
    assert_eq!(info["bodyType"], "json");
    assert_eq!(info["body"]["model"], "m");
    let discovered = &seen["discovered"];
    assert_eq!(discovered["method"], "POST", "{seen:#}");
    assert_eq!(
        discovered["resourceUrl"],
        "https://shop.example/services/demo/v1/chat/completions"
    );
    assert_eq!(discovered["description"], "Chat completions");
    assert_eq!(h.facilitator.calls(), (0, 0));
}
