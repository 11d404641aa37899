//! Test fixtures: an in-process stub seller on loopback that records every nonce it is paid
//! with, auth and config file writers, and a library-built buyer.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use obol_buyer::chain::ChainReaders;
use obol_buyer::journal::{FileStorage, Journal};
use obol_buyer::{Buyer, BuyerParts, SystemClock, config::Source};
use obol_x402::codec;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

pub const PAY_TO: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
pub const USDC_BASE_SEPOLIA: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
/// The payer of the test purchases (anvil's second development account).
pub const PAYER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
pub const USDC_BASE: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";

/// What the stub seller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Never asks for payment.
    Free,
    /// x402 v1: the Go mock seller's 402 body.
    V1,
    /// x402 v2: `PAYMENT-REQUIRED` header.
    V2,
}

/// One request the seller received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub model: Option<String>,
    pub payment: Option<(String, String)>,
}

pub struct SellerState {
    pub mode: Mode,
    pub network: String,
    pub asset: String,
    /// Nonces already paid with (the chain's `authorizationState`).
    pub used: Mutex<HashSet<String>>,
    pub log: Mutex<Vec<Seen>>,
    pub paid: AtomicUsize,
    pub duplicates: AtomicUsize,
    /// When set, paid answers stream "first" then wait for this before "last".
    pub stream_gate: Option<Arc<Notify>>,
}

pub struct Seller {
    pub addr: SocketAddr,
    pub state: Arc<SellerState>,
}

impl Seller {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn requirement(s: &SellerState) -> Value {
    match s.mode {
        Mode::V2 => json!({"scheme":"exact","network":s.network,"amount":"1000","asset":s.asset,
            "payTo":PAY_TO,"maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}),
        _ => {
            json!({"scheme":"exact","network":s.network,"maxAmountRequired":"1000","asset":s.asset,"payTo":PAY_TO})
        }
    }
}

fn payment_required(s: &SellerState, error: Option<&str>) -> Response {
    match s.mode {
        Mode::V2 => {
            let body = json!({"x402Version":2,"error":error,"resource":{"url":"http://seller/x"},
                "accepts":[requirement(s)]});
            let header = codec::encode_header(&body).unwrap();
            (
                StatusCode::PAYMENT_REQUIRED,
                [("PAYMENT-REQUIRED", header)],
                "{}",
            )
                .into_response()
        }
        _ => {
            let mut body = json!({"x402Version":1,"accepts":[requirement(s)]});
            if let Some(e) = error {
                body["error"] = json!(e);
            }
            (StatusCode::PAYMENT_REQUIRED, axum::Json(body)).into_response()
        }
    }
}

async fn seller(State(s): State<Arc<SellerState>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let payment = ["x-payment", "payment-signature"].iter().find_map(|h| {
        req.headers()
            .get(*h)
            .map(|v| (h.to_string(), v.to_str().unwrap().to_owned()))
    });
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let model = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("model").and_then(Value::as_str).map(str::to_owned));
    s.log.lock().push(Seen {
        path: path.clone(),
        model: model.clone(),
        payment: payment.clone(),
    });
    if s.mode != Mode::Free {
        let Some((_, value)) = payment else {
            return payment_required(&s, None);
        };
        let decoded: Value =
            serde_json::from_slice(&codec::decode_base64(&value).unwrap()).unwrap();
        let nonce = decoded["payload"]["authorization"]["nonce"]
            .as_str()
            .unwrap()
            .to_owned();
        if !s.used.lock().insert(nonce) {
            s.duplicates.fetch_add(1, Ordering::SeqCst);
            return payment_required(&s, Some("invalid_exact_evm_nonce_already_used"));
        }
        s.paid.fetch_add(1, Ordering::SeqCst);
    }
    if path.ends_with("/boom") {
        // An upstream failure with a body larger than anything x402 sends.
        return (StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(300 * 1024)).into_response();
    }
    if let Some(gate) = s.stream_gate.clone() {
        let chunks = async_stream(gate);
        return Response::new(Body::from_stream(chunks));
    }
    axum::Json(json!({"ok": true, "path": path, "model": model})).into_response()
}

fn async_stream(
    gate: Arc<Notify>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::unfold(0, move |step| {
        let gate = gate.clone();
        async move {
            match step {
                0 => Some((Ok(Bytes::from_static(b"first;")), 1)),
                1 => {
                    gate.notified().await;
                    Some((Ok(Bytes::from_static(b"last")), 2))
                }
                _ => None,
            }
        }
    })
}

pub async fn spawn_seller(mode: Mode, network: &str, asset: &str) -> Seller {
    spawn_seller_with(mode, network, asset, None).await
}

pub async fn spawn_seller_with(
    mode: Mode,
    network: &str,
    asset: &str,
    stream_gate: Option<Arc<Notify>>,
) -> Seller {
    let state = Arc::new(SellerState {
        mode,
        network: network.into(),
        asset: asset.into(),
        used: Mutex::default(),
        log: Mutex::default(),
        paid: AtomicUsize::new(0),
        duplicates: AtomicUsize::new(0),
        stream_gate,
    });
    let app = Router::new().fallback(seller).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Seller { addr, state }
}

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "obol-buyer-it-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["config", "auths", "state"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    dir
}

pub fn nonce(i: u64) -> String {
    format!("0x{i:064x}")
}

/// Authorizations with real-looking but unsigned payloads (the stub seller checks nonces only).
pub fn fake_auths(first: u64, n: u64) -> Vec<Value> {
    (first..first + n)
        .map(|i| {
            let n = nonce(i);
            json!({"id": n, "payment": {"x402Version": 2, "payload": {
                "signature": format!("0x{}", "11".repeat(65)),
                "authorization": {"from": "0x857b06519E91e3A54538791bDbb0E22373e36b66", "to": PAY_TO,
                    "value": "1000", "validAfter": "0", "validBefore": "4294967295", "nonce": n}}}})
        })
        .collect()
}

/// Authorizations signed with the public Anvil dev key #1 for Base Sepolia USDC, as the
/// controller's buy-side signing stores them.
pub fn signed_auths(first: u64, n: u64) -> Vec<Value> {
    signed_auths_to(PAY_TO, first, n)
}

/// [`signed_auths`] paying `pay_to`.
pub fn signed_auths_to(pay_to: &str, first: u64, n: u64) -> Vec<Value> {
    use obol_x402::{Network, PrivateKey, U256, eip3009, wire::Authorization};
    let key: PrivateKey = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
        .parse()
        .unwrap();
    let domain = Network::resolve("base-sepolia")
        .unwrap()
        .usdc_domain()
        .unwrap();
    (first..first + n)
        .map(|i| {
            let authorization = Authorization {
                from: key.address(),
                to: pay_to.parse().unwrap(),
                value: U256::from(1000u64),
                valid_after: 0,
                valid_before: 4_294_967_295,
                nonce: nonce(i).parse().unwrap(),
            };
            let payload = eip3009::sign_payload(&key, &domain, authorization).unwrap();
            json!({"id": nonce(i), "payment": {"x402Version": 2, "payload": payload}})
        })
        .collect()
}

pub fn upstream_json(url: &str, model: Option<&str>, network: &str, asset: &str) -> Value {
    let mut v = json!({"url": url, "network": network, "payTo": PAY_TO.to_lowercase(),
        "asset": asset, "price": "1000"});
    if let Some(m) = model {
        v["remoteModel"] = json!(m);
    }
    v
}

pub fn write_upstream(dir: &Path, name: &str, config: &Value, auths: &[Value]) {
    std::fs::write(
        dir.join("config").join(format!("{name}.json")),
        serde_json::to_vec(config).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("auths").join(format!("{name}.json")),
        serde_json::to_vec(auths).unwrap(),
    )
    .unwrap();
}

pub struct TestBuyer {
    pub buyer: Arc<Buyer>,
    pub app: Router,
    pub reload_rx: mpsc::Receiver<()>,
}

pub async fn mk_buyer(dir: &Path, max_heal: usize) -> TestBuyer {
    mk_buyer_with(dir, max_heal, &[]).await
}

/// A buyer over `dir`'s files with chain readers at `rpc_urls`.
pub async fn mk_buyer_with(dir: &Path, max_heal: usize, rpc_urls: &[String]) -> TestBuyer {
    let storage = Arc::new(FileStorage::open(dir.join("state")).unwrap());
    let import = obol_buyer::journal::legacy::load(&dir.join("state/consumed.json")).unwrap();
    let (journal, _) = Journal::open(storage, import, 1 << 20).unwrap();
    let client = reqwest::Client::new();
    let (buyer, reload_rx) = Buyer::new(BuyerParts {
        source: Some(Source::Dirs {
            config_dir: dir.join("config"),
            auths_dir: dir.join("auths"),
        }),
        journal: Arc::new(journal),
        chains: Arc::new(ChainReaders::new(&client, rpc_urls)),
        client,
        clock: Arc::new(SystemClock),
        max_heal,
        expiry_margin: 60,
    });
    buyer.reload(true).await;
    TestBuyer {
        app: obol_buyer::proxy::router(buyer.clone()),
        buyer,
        reload_rx,
    }
}

pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Bytes) {
    use tower::ServiceExt as _;
    let body = body.map_or_else(Body::empty, |v| Body::from(serde_json::to_vec(&v).unwrap()));
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
    (parts.status, parts.headers, bytes)
}

pub async fn status(app: &Router) -> Value {
    let (code, _, body) = call(app, Method::GET, "/status", None).await;
    assert_eq!(code, StatusCode::OK);
    serde_json::from_slice(&body).unwrap()
}

use k8s_openapi::api::core::v1::ConfigMap;
use obol_api::purchase_request::{
    POOL_KEY, POOL_LABEL, PoolShard, PurchaseRequest, PurchaseRequestSpec, pool_config_map,
};

/// Creates PurchaseRequest `name` of `url` with one immutable pool ConfigMap per shard, owned by
/// it, as `obol buy http` writes them.
pub async fn create_purchase(
    client: &kube::Client,
    ns: &str,
    name: &str,
    url: &str,
    shards: &[Vec<Value>],
) {
    create_purchase_to(client, ns, name, url, PAY_TO, shards).await;
}

/// [`create_purchase`] of authorizations paying `pay_to`.
pub async fn create_purchase_to(
    client: &kube::Client,
    ns: &str,
    name: &str,
    url: &str,
    pay_to: &str,
    shards: &[Vec<Value>],
) {
    let purchases: kube::Api<PurchaseRequest> = kube::Api::namespaced(client.clone(), ns);
    let spec = PurchaseRequestSpec {
        seller_url: url.into(),
        upstream: None,
        remote_model: None,
        network: "eip155:84532".into(),
        asset: USDC_BASE_SEPOLIA.into(),
        pay_to: pay_to.into(),
        price: "1000".into(),
        scheme: None,
        payer: PAYER.into(),
        eip712_name: Some("USDC".into()),
        eip712_version: Some("2".into()),
        count: shards.iter().map(|s| s.len() as u64).sum(),
        pool: shards
            .iter()
            .enumerate()
            .map(|(i, s)| PoolShard {
                config_map: pool_config_map(name, i),
                count: s.len() as u64,
                expires_at: "2106-02-07T06:28:15Z".into(),
            })
            .collect(),
    };
    let created = purchases
        .create(
            &kube::api::PostParams::default(),
            &PurchaseRequest::new(name, spec),
        )
        .await
        .unwrap();
    let owner = kube::Resource::controller_owner_ref(&created, &()).unwrap();
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), ns);
    for (i, auths) in shards.iter().enumerate() {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": pool_config_map(name, i), "labels": {POOL_LABEL: name},
                "ownerReferences": [owner]},
            "data": {POOL_KEY: json!(auths).to_string()},
            "immutable": true,
        }))
        .unwrap();
        cms.create(&kube::api::PostParams::default(), &cm)
            .await
            .unwrap();
    }
}
