//! Lost state, restarts, journal failures and streaming, through the router.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::*;
use futures::StreamExt as _;
use obol_buyer::journal::{FileStorage, Journal, MemStorage, Storage};
use obol_buyer::{Buyer, BuyerParts, SystemClock, config::Source};
use serde_json::{Value, json};

async fn paid(app: &axum::Router) -> (StatusCode, Value) {
    let (code, _, body) = call(app, Method::POST, "/upstream/s/x", None).await;
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn already_used_answers_heal_lost_state() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    seller.state.used.lock().extend((0..5).map(nonce));
    let dir = temp_dir("heal");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "s", &cfg, &fake_auths(0, 10));
    let t = mk_buyer(&dir, 8).await;
    let (code, _) = paid(&t.app).await;
    assert_eq!(code, StatusCode::OK);
    let s = status(&t.app).await;
    assert_eq!(
        (s["s"]["remaining"].clone(), s["s"]["spent"].clone()),
        (json!(4), json!(6))
    );
    let (_, _, m) = call(&t.app, Method::GET, "/metrics", None).await;
    let m = String::from_utf8(m.to_vec()).unwrap();
    assert!(
        m.contains(r#"obol_x402_buyer_auth_already_used_total{upstream="s",remote_model=""} 5"#),
        "{m}"
    );
}

#[tokio::test]
async fn healing_is_bounded_per_request_and_never_loops() {
    let seller = spawn_seller(Mode::V2, "eip155:84532", USDC_BASE_SEPOLIA).await;
    seller.state.used.lock().extend((0..5).map(nonce));
    let dir = temp_dir("heal-bound");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "s", &cfg, &fake_auths(0, 7));
    let t = mk_buyer(&dir, 2).await;
    let (code, err) = paid(&t.app).await;
    assert_eq!(
        (code, err["reason"].clone()),
        (StatusCode::BAD_GATEWAY, json!("already_used"))
    );
    assert_eq!(status(&t.app).await["s"]["spent"], 3);
    // The next request carries on where the first stopped.
    assert_eq!(paid(&t.app).await.0, StatusCode::OK);
    assert_eq!(paid(&t.app).await.0, StatusCode::OK);
    let (code, err) = paid(&t.app).await;
    assert_eq!(
        (code, err["reason"].clone()),
        (StatusCode::BAD_GATEWAY, json!("pool_exhausted"))
    );
    assert_eq!(seller.state.paid.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn restart_and_go_state_import_never_respend() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("restart");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "s", &cfg, &fake_auths(0, 6));
    // A Go buyer had spent nonce 0 (its consumed.json is found on the volume).
    std::fs::write(
        dir.join("state/consumed.json"),
        json!({"consumed": {"s": [nonce(0)]}}).to_string(),
    )
    .unwrap();
    seller.state.used.lock().insert(nonce(0));
    {
        let t = mk_buyer(&dir, 0).await;
        assert_eq!(status(&t.app).await["s"]["spent"], 1);
        assert_eq!(paid(&t.app).await.0, StatusCode::OK);
        t.buyer.flush().await;
        assert_eq!(paid(&t.app).await.0, StatusCode::OK);
        // Stopped like a kill: the second confirmation was never flushed.
    }
    // B10: restart, spend the next one: it settles cleanly, nothing is re-sent. The spend whose
    // confirmation was lost is held: never sent again.
    let t = mk_buyer(&dir, 0).await;
    let s = status(&t.app).await;
    assert_eq!(
        (
            s["s"]["remaining"].clone(),
            s["s"]["spent"].clone(),
            s["s"]["held"].clone()
        ),
        (json!(3), json!(2), json!(1))
    );
    assert_eq!(paid(&t.app).await.0, StatusCode::OK);
    assert_eq!(seller.state.duplicates.load(Ordering::SeqCst), 0);
    assert_eq!(seller.state.paid.load(Ordering::SeqCst), 3);
}

/// Storage whose appends start failing on demand.
#[derive(Default)]
struct Flaky {
    inner: MemStorage,
    fail: AtomicBool,
}

impl Storage for Flaky {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.inner.read(name)
    }
    fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.write(name, data)
    }
    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("disk full"));
        }
        self.inner.append(name, data)
    }
    fn sync(&self, name: &str) -> io::Result<()> {
        self.inner.sync(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()
    }
}

#[tokio::test]
async fn a_journal_failure_sends_nothing_and_answers_503() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("flaky");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "s", &cfg, &fake_auths(0, 3));
    let storage = Arc::new(Flaky::default());
    let (journal, _) = Journal::open(storage.clone(), Vec::new(), 1 << 20).unwrap();
    let (buyer, _rx) = Buyer::new(BuyerParts {
        source: Some(Source::Dirs {
            config_dir: dir.join("config"),
            auths_dir: dir.join("auths"),
        }),
        journal: Arc::new(journal),
        client: reqwest::Client::new(),
        clock: Arc::new(SystemClock),
        max_heal: 4,
        chains: Arc::default(),
        expiry_margin: 60,
    });
    buyer.reload(true).await;
    let app = obol_buyer::proxy::router(buyer);
    storage.fail.store(true, Ordering::SeqCst);
    let (code, _, body) = call(&app, Method::POST, "/upstream/s/x", None).await;
    assert_eq!(
        code,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let s = status(&app).await;
    assert_eq!(
        (s["s"]["remaining"].clone(), s["s"]["spent"].clone()),
        (json!(3), json!(0))
    );
    assert_eq!(seller.state.paid.load(Ordering::SeqCst), 0);
    // Poisoned until restart, even once the disk recovers.
    storage.fail.store(false, Ordering::SeqCst);
    assert_eq!(
        call(&app, Method::POST, "/upstream/s/x", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn paid_responses_stream_through_unbuffered() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let seller = spawn_seller_with(
        Mode::V1,
        "base-sepolia",
        USDC_BASE_SEPOLIA,
        Some(gate.clone()),
    )
    .await;
    let dir = temp_dir("stream");
    let cfg = upstream_json(
        &seller.url(""),
        Some("m"),
        "base-sepolia",
        USDC_BASE_SEPOLIA,
    );
    write_upstream(&dir, "s", &cfg, &fake_auths(0, 1));
    let t = mk_buyer(&dir, 4).await;
    use tower::ServiceExt as _;
    let req = axum::http::Request::post("/v1/chat/completions")
        .body(axum::body::Body::from(
            r#"{"model":"paid/m","stream":true}"#,
        ))
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body().into_data_stream();
    // The first chunk arrives while the seller is still holding the rest back.
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first;");
    gate.notify_one();
    let last = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&last[..], b"last");
}

#[tokio::test]
async fn a_corrupt_journal_refuses_to_start() {
    let dir = temp_dir("corrupt");
    let state = dir.join("state");
    {
        let (j, _) = Journal::open(
            Arc::new(FileStorage::open(&state).unwrap()),
            Vec::new(),
            1 << 20,
        )
        .unwrap();
        for i in 0..3 {
            j.record(&[obol_buyer::journal::Record::new("s", nonce(i))])
                .unwrap();
        }
    }
    let path = state.join("spend.journal");
    let mut data = std::fs::read(&path).unwrap();
    data[12] ^= 0x55;
    std::fs::write(&path, data).unwrap();
    let err = Journal::open(
        Arc::new(FileStorage::open(&state).unwrap()),
        Vec::new(),
        1 << 20,
    )
    .unwrap_err();
    assert!(err.to_string().contains("corrupt at byte 8"), "{err}");
}

#[tokio::test]
async fn the_reload_timer_picks_up_changed_files() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("timer");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "s", &cfg, &fake_auths(0, 1));
    let t = mk_buyer(&dir, 0).await;
    tokio::spawn(obol_buyer::buyer::reload_loop(
        t.buyer.clone(),
        t.reload_rx,
        Some(Duration::from_millis(20)),
    ));
    assert_eq!(paid(&t.app).await.0, StatusCode::OK);
    // The controller buys more: the file grows, and the pool follows without a restart.
    write_upstream(&dir, "s", &cfg, &fake_auths(0, 3));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while status(&t.app).await["s"]["remaining"] != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "reload did not happen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status(&t.app).await["s"]["spent"], 1);
}

#[tokio::test]
async fn upstream_server_errors_after_payment_pass_through() {
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("boom");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "s", &cfg, &fake_auths(0, 2));
    let t = mk_buyer(&dir, 4).await;
    let (code, _, body) = call(&t.app, Method::POST, "/upstream/s/boom", None).await;
    assert_eq!(
        (code, body.len()),
        (StatusCode::INTERNAL_SERVER_ERROR, 300 * 1024)
    );
    // An error without a settlement receipt releases the authorization, and nothing is retried.
    let s = status(&t.app).await;
    assert_eq!(
        (s["s"]["remaining"].clone(), s["s"]["spent"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(seller.state.paid.load(Ordering::SeqCst), 1);
    // This stub seller had settled it anyway: the next request finds it used, heals it, and
    // pays with the next one (no failed client request).
    assert_eq!(paid(&t.app).await.0, StatusCode::OK);
    let s = status(&t.app).await;
    assert_eq!(
        (
            s["s"]["remaining"].clone(),
            s["s"]["spent"].clone(),
            s["s"]["healed"].clone()
        ),
        (json!(0), json!(2), json!(1))
    );
}
