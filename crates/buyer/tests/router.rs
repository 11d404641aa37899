//! obol-reference §9 buyer cases B1-B9 through the router, against an in-process stub seller.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::sync::atomic::Ordering;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

const CHAT: Option<Value> = None;

fn chat(model: &str) -> Option<Value> {
    Some(json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
}

#[tokio::test]
async fn b1_healthz_and_status() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("b1");
    let cfg = upstream_json(
        &seller.url("/services/test"),
        None,
        "base-sepolia",
        USDC_BASE_SEPOLIA,
    );
    write_upstream(&dir, "test", &cfg, &fake_auths(0, 2));
    let t = mk_buyer(&dir, 4).await;
    let (code, _, body) = call(&t.app, Method::GET, "/healthz", None).await;
    assert_eq!((code, &body[..]), (StatusCode::OK, &b"ok"[..]));
    let s = status(&t.app).await;
    assert_eq!(s["test"]["remaining"], 2);
    assert_eq!(s["test"]["spent"], 0);
    assert_eq!(s["test"]["network"], "base-sepolia");
}

#[tokio::test]
async fn b2_free_seller_is_forwarded_with_the_prefix_stripped() {
    let seller = spawn_seller(Mode::Free, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("b2");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "free", &cfg, &[]);
    let t = mk_buyer(&dir, 4).await;
    let (code, _, _) = call(
        &t.app,
        Method::POST,
        "/upstream/free/v1/chat/completions?x=1",
        chat("m"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(seller.state.log.lock()[0].path, "/v1/chat/completions");
    // The purchase's root, with and without the trailing slash.
    for uri in ["/upstream/free/", "/upstream/free"] {
        let (code, _, _) = call(&t.app, Method::GET, uri, None).await;
        assert_eq!(code, StatusCode::OK, "{uri}");
    }
    let paths: Vec<String> = seller
        .state
        .log
        .lock()
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(paths, ["/v1/chat/completions", "/", "/"]);
}

#[tokio::test]
async fn b3_paid_retry_carries_a_valid_x_payment_and_unknown_upstreams_404() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("b3");
    let cfg = upstream_json(
        &seller.url("/services/test"),
        None,
        "base-sepolia",
        USDC_BASE_SEPOLIA,
    );
    write_upstream(&dir, "test", &cfg, &signed_auths(1, 1));
    let t = mk_buyer(&dir, 4).await;
    let (code, _, body) = call(
        &t.app,
        Method::POST,
        "/upstream/test/v1/chat/completions",
        chat("m"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["path"], "/services/test/v1/chat/completions");
    let log = seller.state.log.lock().clone();
    assert_eq!(log.len(), 2, "one unpaid try, one paid retry");
    let (name, value) = log[1].payment.clone().unwrap();
    assert_eq!(name, "x-payment");
    // The seller's view: a v1 payload the x402 codec accepts, signed by the payer.
    let payload = obol_x402::codec::decode_payment_payload(&value).unwrap();
    assert_eq!(payload.version(), obol_x402::X402Version::V1);
    assert_eq!(payload.exact().authorization.nonce.to_string(), nonce(1));
    let (code, _, _) = call(&t.app, Method::POST, "/upstream/nonexistent/v1/x", CHAT).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn b4_pool_of_two_then_502() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("b4");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "test", &cfg, &fake_auths(0, 2));
    let t = mk_buyer(&dir, 4).await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(call(&t.app, Method::POST, "/upstream/test/x", CHAT).await);
    }
    assert_eq!(codes[0].0, StatusCode::OK);
    assert_eq!(codes[1].0, StatusCode::OK);
    assert_eq!(codes[2].0, StatusCode::BAD_GATEWAY);
    let err: Value = serde_json::from_slice(&codes[2].2).unwrap();
    assert_eq!(err["reason"], "pool_exhausted");
    assert!(
        err["error"].as_str().unwrap().contains("exhausted"),
        "{err}"
    );
    let s = status(&t.app).await;
    assert_eq!(
        (s["test"]["remaining"].clone(), s["test"]["spent"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(seller.state.paid.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn b5_two_networks_each_reach_their_own_seller() {
    let alpha = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let beta = spawn_seller(Mode::V2, "eip155:8453", USDC_BASE).await;
    let dir = temp_dir("b5");
    write_upstream(
        &dir,
        "alpha",
        &upstream_json(&alpha.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA),
        &fake_auths(0, 3),
    );
    write_upstream(
        &dir,
        "beta",
        &upstream_json(&beta.url(""), None, "base", USDC_BASE),
        &fake_auths(10, 3),
    );
    let t = mk_buyer(&dir, 4).await;
    for round in 0..=2 {
        let s = status(&t.app).await;
        for name in ["alpha", "beta"] {
            assert_eq!(s[name]["remaining"], 3 - round, "{name} round {round}");
            assert_eq!(s[name]["spent"], round);
        }
        assert_eq!(s["alpha"]["network"], "base-sepolia");
        assert_eq!(s["beta"]["network"], "base");
        if round < 2 {
            for name in ["alpha", "beta"] {
                let (code, _, _) =
                    call(&t.app, Method::POST, &format!("/upstream/{name}/x"), CHAT).await;
                assert_eq!(code, StatusCode::OK, "{name}");
            }
        }
    }
    assert_eq!(alpha.state.paid.load(Ordering::SeqCst), 2);
    assert_eq!(beta.state.paid.load(Ordering::SeqCst), 2);
    // v2 sellers get PAYMENT-SIGNATURE with the requirement echoed as `accepted`.
    let (name, value) = beta.state.log.lock()[1].payment.clone().unwrap();
    assert_eq!(name, "payment-signature");
    let p = obol_x402::codec::decode_payment_payload(&value).unwrap();
    assert_eq!(p.version(), obol_x402::X402Version::V2);
}

#[tokio::test]
async fn b6_paid_model_route_and_metrics() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("b6");
    let cfg = upstream_json(
        &seller.url("/services/qwen"),
        Some("qwen3:32b"),
        "base-sepolia",
        USDC_BASE_SEPOLIA,
    );
    write_upstream(&dir, "seller-qwen", &cfg, &fake_auths(0, 1));
    let t = mk_buyer(&dir, 4).await;
    let (code, _, body) = call(
        &t.app,
        Method::POST,
        "/v1/chat/completions",
        chat("paid/qwen3:32b"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        seller.state.log.lock()[1].model.as_deref(),
        Some("qwen3:32b")
    );
    let s = status(&t.app).await;
    assert_eq!(s["seller-qwen"]["public_model"], "paid/qwen3:32b");
    assert_eq!(s["seller-qwen"]["remaining"], 0);
    assert_eq!(s["seller-qwen"]["spent"], 1);
    let (_, _, m) = call(&t.app, Method::GET, "/metrics", None).await;
    let m = String::from_utf8(m.to_vec()).unwrap();
    let labels = r#"{upstream="seller-qwen",remote_model="qwen3:32b"}"#;
    for line in [
        format!("obol_x402_buyer_requests_total{labels} 1"),
        format!("obol_x402_buyer_payment_attempts_total{labels} 1"),
        format!("obol_x402_buyer_payment_success_total{labels} 1"),
        format!("obol_x402_buyer_auth_remaining{labels} 0"),
        format!("obol_x402_buyer_auth_spent{labels} 1"),
        format!("obol_x402_buyer_active_model_mappings{labels} 1"),
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line} in\n{m}");
    }
}

#[tokio::test]
async fn b7_chat_completions_without_v1_keeps_path_and_model() {
    let seller = spawn_seller(Mode::Free, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("b7");
    let cfg = upstream_json(
        &seller.url(""),
        Some("qwen3.5:9b"),
        "base-sepolia",
        USDC_BASE_SEPOLIA,
    );
    write_upstream(&dir, "s", &cfg, &[]);
    let t = mk_buyer(&dir, 4).await;
    let (code, _, _) = call(
        &t.app,
        Method::POST,
        "/chat/completions",
        chat("qwen3.5:9b"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let seen = seller.state.log.lock()[0].clone();
    assert_eq!(
        (seen.path.as_str(), seen.model.as_deref()),
        ("/chat/completions", Some("qwen3.5:9b"))
    );
    let (code, _, _) = call(
        &t.app,
        Method::POST,
        "/v1/responses",
        Some(json!({"model": 7})),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn b8_reload_keeps_spends_and_swaps_models() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("b8");
    let cfg = upstream_json(
        &seller.url(""),
        Some("old-model"),
        "base-sepolia",
        USDC_BASE_SEPOLIA,
    );
    write_upstream(&dir, "seller-old", &cfg, &fake_auths(0, 2));
    let t = mk_buyer(&dir, 4).await;
    let (code, _, _) = call(
        &t.app,
        Method::POST,
        "/v1/chat/completions",
        chat("paid/old-model"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    t.buyer.reload(true).await;
    let s = status(&t.app).await;
    assert_eq!(
        (
            s["seller-old"]["remaining"].clone(),
            s["seller-old"]["spent"].clone()
        ),
        (json!(1), json!(1))
    );

    std::fs::remove_file(dir.join("config/seller-old.json")).unwrap();
    let cfg = upstream_json(
        &seller.url(""),
        Some("new-model"),
        "base-sepolia",
        USDC_BASE_SEPOLIA,
    );
    write_upstream(&dir, "seller-new", &cfg, &fake_auths(10, 1));
    t.buyer.reload(false).await;
    let (old, _, _) = call(
        &t.app,
        Method::POST,
        "/v1/chat/completions",
        chat("paid/old-model"),
    )
    .await;
    let (new, _, _) = call(
        &t.app,
        Method::POST,
        "/v1/chat/completions",
        chat("paid/new-model"),
    )
    .await;
    assert_eq!((old, new), (StatusCode::NOT_FOUND, StatusCode::OK));
    let (_, _, m) = call(&t.app, Method::GET, "/metrics", None).await;
    let m = String::from_utf8(m.to_vec()).unwrap();
    let mappings: Vec<_> = m
        .lines()
        .filter(|l| l.starts_with("obol_x402_buyer_active_model_mappings{"))
        .collect();
    assert_eq!(
        mappings,
        [
            r#"obol_x402_buyer_active_model_mappings{upstream="seller-new",remote_model="new-model"} 1"#
        ]
    );
}

#[tokio::test]
async fn b9_admin_reload_has_one_slot() {
    let dir = temp_dir("b9");
    let mut t = mk_buyer(&dir, 4).await;
    let mut answers = Vec::new();
    for drain in [false, false, true, false] {
        if drain {
            t.reload_rx.recv().await.unwrap();
            continue;
        }
        let (code, _, body) = call(&t.app, Method::POST, "/admin/reload", None).await;
        assert_eq!(code, StatusCode::OK);
        answers.push(serde_json::from_slice::<Value>(&body).unwrap()["status"].clone());
    }
    assert_eq!(
        answers,
        [
            json!("reload triggered"),
            json!("reload already pending"),
            json!("reload triggered")
        ]
    );
}
