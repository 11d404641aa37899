//! Several buyer replicas sharing one PurchaseRequest on the real control plane
//! (`scripts/testenv`): the StatefulSet's replica count goes 1 → 3 → 1 under paid load, one
//! replica dies holding its slots, and no nonce ever reaches the seller twice. The seller is the
//! stub that records every nonce; the chain reader answers `authorizationState` from the same
//! record. Each replica runs its watcher on its own runtime, so dropping the runtime kills it
//! without a goodbye.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use obol_api::purchase_request::{MAX_AUTHS_PER_CONFIGMAP, PurchaseRequest};
use obol_buyer::chain::ChainReaders;
use obol_buyer::journal::{FileStorage, Journal};
use obol_buyer::purchases::{self, WatchOptions};
use obol_buyer::replica::ReplicaOptions;
use obol_buyer::{Buyer, BuyerParts, SystemClock};
use obol_testenv::{TestEnv, eventually};
use serde_json::{Value, json};

const BOUGHT: u64 = 360;
const LEASE: Duration = Duration::from_secs(3);

/// `authorizationState` from the seller's record of nonces paid with: the chain as the stub
/// seller sees it.
async fn spawn_rpc(used: Arc<SellerState>) -> String {
    async fn rpc(State(s): State<Arc<SellerState>>, body: axum::Json<Value>) -> axum::Json<Value> {
        let answer = |req: &Value| -> Value {
            match req["method"].as_str().unwrap() {
                "eth_chainId" => json!({"jsonrpc":"2.0","id":req["id"],"result":"0x14a34"}),
                "eth_call" => {
                    let data = req["params"][0]["data"].as_str().unwrap();
                    let nonce = format!("0x{}", &data[data.len() - 64..]);
                    let bit = u8::from(s.used.lock().contains(&nonce));
                    json!({"jsonrpc":"2.0","id":req["id"],"result":format!("0x{bit:064x}")})
                }
                m => panic!("unexpected {m}"),
            }
        };
        match &body.0 {
            Value::Array(reqs) => axum::Json(Value::Array(reqs.iter().map(answer).collect())),
            single => axum::Json(answer(single)),
        }
    }
    let app = Router::new().fallback(rpc).with_state(used);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// One replica: its buyer (requests are served on the caller's runtime) and the runtime of its
/// watcher and status writer; dropping the runtime kills it.
struct Replica {
    app: Router,
    buyer: Arc<Buyer>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn start_replica(
    client: &kube::Client,
    ns: &str,
    ordinal: u32,
    rpc: &str,
    state: &std::path::Path,
) -> Replica {
    std::fs::create_dir_all(state).unwrap();
    let (journal, _) = Journal::open(
        Arc::new(FileStorage::open(state).unwrap()),
        Vec::new(),
        1 << 20,
    )
    .unwrap();
    let http = reqwest::Client::new();
    let (buyer, _rx) = Buyer::new(BuyerParts {
        source: None,
        journal: Arc::new(journal),
        chains: Arc::new(ChainReaders::new(&http, &[rpc.to_owned()])),
        client: http,
        clock: Arc::new(SystemClock),
        max_heal: 4,
        expiry_margin: 60,
    });
    let options = WatchOptions {
        namespace: Some(ns.to_owned()),
        seller_check: Duration::from_secs(60),
        replica: Some(ReplicaOptions {
            name: format!("x402-buyer-{ordinal}"),
            ordinal,
            statefulset: "x402-buyer".into(),
            namespace: ns.to_owned(),
            lease: LEASE,
            drain_limit: Duration::from_secs(5),
        }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    runtime.spawn(purchases::run(
        buyer.clone(),
        client.clone(),
        options,
        move || {
            let _ = ready_tx.send(());
        },
    ));
    ready_rx.await.unwrap();
    Replica {
        app: obol_buyer::proxy::router(buyer.clone()),
        buyer,
        runtime: Some(runtime),
    }
}

/// The test's purchase `demo`: `auths` in ConfigMaps of at most [`MAX_AUTHS_PER_CONFIGMAP`].
async fn create_purchase(client: &kube::Client, ns: &str, url: &str, auths: &[Value]) {
    let shards: Vec<Vec<Value>> = auths
        .chunks(MAX_AUTHS_PER_CONFIGMAP)
        .map(<[Value]>::to_vec)
        .collect();
    common::create_purchase(client, ns, "demo", url, &shards).await;
}

/// A StatefulSet object whose `spec.replicas` the replicas read (no kubelet runs its pods).
async fn create_statefulset(client: &kube::Client, ns: &str, replicas: i32) {
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "x402-buyer"},
        "spec": {"replicas": replicas, "serviceName": "x402-buyer-replicas",
            "selector": {"matchLabels": {"app": "x402-buyer-test"}},
            "template": {"metadata": {"labels": {"app": "x402-buyer-test"}},
                "spec": {"containers": [{"name": "x402-buyer", "image": "none.invalid/none"}]}}},
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &set)
        .await
        .unwrap();
}

async fn scale(client: &kube::Client, ns: &str, replicas: i32) {
    Api::<StatefulSet>::namespaced(client.clone(), ns)
        .patch(
            "x402-buyer",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
}

/// The slots each replica lists, by name.
async fn listing(client: &kube::Client, ns: &str) -> BTreeMap<String, String> {
    let p = Api::<PurchaseRequest>::namespaced(client.clone(), ns)
        .get_status("demo")
        .await
        .unwrap();
    p.status
        .unwrap_or_default()
        .buyers
        .into_iter()
        .map(|b| (b.name, b.slots))
        .collect()
}

async fn wait_listing(client: &kube::Client, ns: &str, want: &[(&str, &str)], within: Duration) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
        .collect();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let l = listing(client, ns).await;
        let ok = want.iter().all(|(n, s)| l.get(n) == Some(s))
            && l.iter().all(|(n, s)| want.contains_key(n) || s.is_empty());
        if ok {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listing {l:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Paid requests against every running replica until `stop`: (paid, refused) per replica.
fn load(
    replicas: Vec<Router>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(usize, usize)>> {
    tokio::spawn(async move {
        let mut counts = vec![(0, 0); replicas.len()];
        while !stop.load(Ordering::SeqCst) {
            for (i, app) in replicas.iter().enumerate() {
                let (code, _, _) = call(app, Method::POST, "/upstream/demo/x", None).await;
                if code == StatusCode::OK {
                    counts[i].0 += 1;
                } else {
                    counts[i].1 += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        counts
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_one_three_one_moves_slots_and_never_sends_a_nonce_twice() {
    let env = TestEnv::get().await;
    let ns_guard = env.namespace("buyer-replicas").await;
    let ns = ns_guard.name().to_owned();
    let client = env.client();
    let seller = spawn_seller(Mode::V2, "eip155:84532", USDC_BASE_SEPOLIA).await;
    let rpc = spawn_rpc(seller.state.clone()).await;
    let dir = temp_dir("replicas");
    create_statefulset(&client, &ns, 1).await;
    create_purchase(
        &client,
        &ns,
        &seller.url("/services/demo"),
        &signed_auths(0, BOUGHT),
    )
    .await;

    // One replica: it claims every slot, checks the chain, spends.
    let mut r0 = start_replica(&client, &ns, 0, &rpc, &dir.join("r0")).await;
    let every = "0,1,2,3,4,5,6,7,8,9,10,11";
    wait_listing(
        &client,
        &ns,
        &[("x402-buyer-0", every)],
        Duration::from_secs(20),
    )
    .await;
    eventually(Duration::from_secs(10), || async {
        let (code, _, _) = call(&r0.app, Method::POST, "/upstream/demo/x", None).await;
        (code == StatusCode::OK).then_some(())
    })
    .await;

    // 1 -> 3 under load: the new replicas wait until replica 0 lets their slots go.
    let stop = Arc::new(AtomicBool::new(false));
    scale(&client, &ns, 3).await;
    let mut r1 = start_replica(&client, &ns, 1, &rpc, &dir.join("r1")).await;
    let mut r2 = start_replica(&client, &ns, 2, &rpc, &dir.join("r2")).await;
    let loaded = load(
        vec![r0.app.clone(), r1.app.clone(), r2.app.clone()],
        stop.clone(),
    );
    wait_listing(
        &client,
        &ns,
        &[
            ("x402-buyer-0", "0,3,6,9"),
            ("x402-buyer-1", "1,4,7,10"),
            ("x402-buyer-2", "2,5,8,11"),
        ],
        Duration::from_secs(30),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let three = loaded.await.unwrap();
    assert!(
        three.iter().all(|(paid, _)| *paid > 0),
        "every replica paid from its share: {three:?}"
    );

    // 3 -> 1: replica 2 dies without a word (its slots move after a lease of silence and a
    // chain check), replica 1 lets go of its slots by itself.
    let stop = Arc::new(AtomicBool::new(false));
    let loaded = load(vec![r0.app.clone(), r1.app.clone()], stop.clone());
    r2.kill();
    scale(&client, &ns, 1).await;
    wait_listing(
        &client,
        &ns,
        &[("x402-buyer-0", every)],
        Duration::from_secs(30),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let one = loaded.await.unwrap();
    r1.kill();

    // The survivor spends the rest: every authorization exactly once.
    let mut refused_at_end = 0;
    loop {
        let (code, _, _) = call(&r0.app, Method::POST, "/upstream/demo/x", None).await;
        if code != StatusCode::OK {
            refused_at_end += 1;
            let c = r0.buyer.counts("demo").unwrap();
            if c.remaining == 0 || refused_at_end > 20 {
                break;
            }
        }
    }
    let paid = seller.state.paid.load(Ordering::SeqCst);
    eprintln!(
        "paid/refused per replica: three {three:?}, two {one:?}; survivor's refusals at the end {refused_at_end}; seller paid {paid}"
    );
    let duplicates = seller.state.duplicates.load(Ordering::SeqCst);
    let distinct: HashSet<String> = seller.state.used.lock().clone();
    assert_eq!(duplicates, 0, "a nonce reached the seller twice");
    assert_eq!(paid, distinct.len());
    assert_eq!(
        paid as u64, BOUGHT,
        "every authorization spent (3 replicas {three:?}, 2 {one:?})"
    );
    let s = eventually(Duration::from_secs(10), || async {
        let p = Api::<PurchaseRequest>::namespaced(client.clone(), &ns)
            .get_status("demo")
            .await
            .ok()?;
        let s = p.status?;
        (s.spent == Some(BOUGHT)).then_some(s)
    })
    .await;
    assert_eq!(
        (s.remaining, s.held, s.spent),
        (Some(0), Some(0), Some(BOUGHT)),
        "remaining + held + spent = bought"
    );
    r0.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A free loopback address below the kernel's ephemeral range (obol-testenv's reserved
/// port): each replica is restarted on the same address many times.
fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], obol_testenv::net::reserved_port()))
}

struct Process {
    ordinal: u32,
    addr: SocketAddr,
    state: PathBuf,
    child: Child,
    /// When it was started.
    started: Instant,
    /// When it first answered `/healthz`.
    healthy_at: Option<Instant>,
    /// How long it runs after that before it is killed.
    up_for: Duration,
}

fn up_for() -> Duration {
    use rand::Rng as _;
    Duration::from_millis(rand::rng().random_range(200..1200))
}

fn spawn_process(
    env: &TestEnv,
    ns: &str,
    rpc: &str,
    ordinal: u32,
    addr: SocketAddr,
    state: &Path,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_x402-buyer"))
        .env("KUBECONFIG", env.kubeconfig_path())
        .arg("--source=kube")
        .arg(format!("--namespace={ns}"))
        .arg(format!("--replica=x402-buyer-{ordinal}"))
        .arg("--statefulset=x402-buyer")
        .arg("--replica-lease=2s")
        .arg(format!("--rpc-url={rpc}"))
        .arg(format!("--state={}", state.join("consumed.json").display()))
        .arg(format!("--listen={addr}"))
        .arg("--held-check-interval=1s")
        .arg("--log=error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Paid requests against `addr` until `stop` (the process behind it may be dead): how many
/// were paid.
fn paying(addr: SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let url = format!("http://{addr}/upstream/demo/x");
        let mut paid = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Ok(r) = client.post(&url).body("{}").send().await
                && r.status() == reqwest::StatusCode::OK
            {
                paid += 1;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        paid
    })
}

/// Three `x402-buyer` processes as replicas of one StatefulSet, 200 SIGKILLs spread over them
/// under paid load (each killed replica restarted at once on its journal), then the rest of
/// the pool spent: no nonce reaches the seller twice, and remaining + held + spent = bought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_buyer_processes_under_kill_9_never_send_a_nonce_twice() {
    use rand::Rng as _;
    let kills: usize = std::env::var("OBOL_BUYER_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let bought: u64 = 600;
    let env = TestEnv::get().await;
    let ns_guard = env.namespace("buyer-replica-chaos").await;
    let ns = ns_guard.name().to_owned();
    let client = env.client();
    let seller = spawn_seller(Mode::V2, "eip155:84532", USDC_BASE_SEPOLIA).await;
    let rpc = spawn_rpc(seller.state.clone()).await;
    let dir = temp_dir("replica-chaos");
    create_statefulset(&client, &ns, 3).await;
    create_purchase(
        &client,
        &ns,
        &seller.url("/services/demo"),
        &signed_auths(0, bought),
    )
    .await;
    let started = Instant::now();
    let mut procs: Vec<Process> = (0..3)
        .map(|ordinal| {
            let addr = free_addr();
            let state = dir.join(format!("r{ordinal}"));
            std::fs::create_dir_all(&state).unwrap();
            let child = spawn_process(&env, &ns, &rpc, ordinal, addr, &state);
            Process {
                ordinal,
                addr,
                state,
                child,
                started: Instant::now(),
                healthy_at: None,
                up_for: up_for(),
            }
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = procs.iter().map(|p| paying(p.addr, stop.clone())).collect();
    let health = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    // Each replica is killed a random 200-1200 ms after it answered /healthz (so kills land at
    // start-up, while claiming, and while spending), and restarted at once on its journal.
    let mut killed = [0usize; 3];
    let mut starts = Vec::new();
    while killed.iter().sum::<usize>() < kills {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let i = rand::rng().random_range(0..3);
        let p = &mut procs[i];
        match p.healthy_at {
            None => {
                let url = format!("http://{}/healthz", p.addr);
                if health
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    p.healthy_at = Some(Instant::now());
                    starts.push(p.started.elapsed());
                }
            }
            Some(at) if at.elapsed() >= p.up_for => {
                p.child.kill().unwrap(); // SIGKILL
                p.child.wait().unwrap();
                killed[i] += 1;
                p.child = spawn_process(&env, &ns, &rpc, p.ordinal, p.addr, &p.state);
                p.started = Instant::now();
                p.healthy_at = None;
                p.up_for = up_for();
            }
            Some(_) => {}
        }
    }
    let chaos = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut paid_under_chaos = 0;
    for l in loads {
        paid_under_chaos += l.await.unwrap();
    }
    // Every replica back; the rest of the pool is spent through all three until the status
    // says nothing remains.
    let stop = Arc::new(AtomicBool::new(false));
    let drains: Vec<_> = procs.iter().map(|p| paying(p.addr, stop.clone())).collect();
    let purchases = Api::<PurchaseRequest>::namespaced(client.clone(), &ns);
    let last = Arc::new(parking_lot::Mutex::new(None));
    let seen = last.clone();
    let seller_state = seller.state.clone();
    let settled = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let s = purchases
                .get_status("demo")
                .await
                .unwrap()
                .status
                .unwrap_or_default();
            let (r, h, sp) = (
                s.remaining.unwrap_or(0),
                s.held.unwrap_or(0),
                s.spent.unwrap_or(0),
            );
            let paid = seller_state.paid.load(Ordering::SeqCst) as u64;
            *seen.lock() = Some((r, h, sp));
            if r == 0 && sp == paid && r + h + sp == bought {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for d in drains {
        d.await.unwrap();
    }
    let paid = seller.state.paid.load(Ordering::SeqCst) as u64;
    let duplicates = seller.state.duplicates.load(Ordering::SeqCst);
    for p in &mut procs {
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }
    eprintln!(
        "kills per replica {killed:?} in {chaos:?}, start-up to /healthz {:?} on average; paid under chaos {paid_under_chaos}, in all {paid} of {bought}; duplicates {duplicates}; status (remaining, held, spent) {:?}; wall {:?}",
        starts.iter().sum::<Duration>() / starts.len().max(1) as u32,
        last.lock(),
        started.elapsed()
    );
    assert_eq!(duplicates, 0, "a nonce reached the seller twice");
    assert!(
        settled.is_ok(),
        "status (remaining, held, spent) {:?}: want remaining 0, spent = paid {paid}, sum = {bought}",
        last.lock()
    );
    assert!(paid_under_chaos > 0, "nothing was paid under chaos");
    let _ = std::fs::remove_dir_all(&dir);
}
