//! Several buyer replicas sharing one PurchaseRequest on the real control plane
//! (`scripts/testenv`):
//!
//! - the StatefulSet's replica count goes 1 → 3 → 1 under paid load, one replica dies holding
//!   its slots, and no nonce ever reaches the seller twice. The seller is the stub that records
//!   every nonce; the chain reader answers `authorizationState` from the same record. Each
//!   replica runs its watcher on its own runtime, so dropping the runtime kills it without a
//!   goodbye;
//! - three `x402-buyer` processes under 200 SIGKILLs, against that stub (every nonce the seller
//!   saw is checked) and against real parts: anvil with the test USDC, the official
//!   facilitator and our verifier in gateway mode `proxy`, where the chain is the judge.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use obol_api::purchase_request::{MAX_AUTHS_PER_CONFIGMAP, PurchaseRequest};
use obol_api::{PaymentRoute, PaymentRouteSpec, ProxyTarget};
use obol_buyer::chain::ChainReaders;
use obol_buyer::journal::{FileStorage, Journal};
use obol_buyer::purchases::{self, WatchOptions};
use obol_buyer::replica::ReplicaOptions;
use obol_buyer::{Buyer, BuyerParts, SystemClock};
use obol_devstack::chain::Rpc;
use obol_devstack::facilitator::{PaidChain, PaidChainTools};
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

/// The test's purchase `demo` of `url`, paying `pay_to`: `auths` in ConfigMaps of at most
/// [`MAX_AUTHS_PER_CONFIGMAP`].
async fn create_purchase(
    client: &kube::Client,
    ns: &str,
    url: &str,
    pay_to: &str,
    auths: &[Value],
) {
    let shards: Vec<Vec<Value>> = auths
        .chunks(MAX_AUTHS_PER_CONFIGMAP)
        .map(<[Value]>::to_vec)
        .collect();
    create_purchase_to(client, ns, "demo", url, pay_to, &shards).await;
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
        PAY_TO,
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

/// How the replica processes of a chaos test are started: on the test's control plane and
/// namespace, reading the chain at `rpc`.
struct Launcher<'a> {
    env: &'a TestEnv,
    ns: String,
    rpc: String,
}

impl Launcher<'_> {
    fn spawn(&self, ordinal: u32, addr: SocketAddr, state: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_x402-buyer"))
            .env("KUBECONFIG", self.env.kubeconfig_path())
            .arg("--source=kube")
            .arg(format!("--namespace={}", self.ns))
            .arg(format!("--replica=x402-buyer-{ordinal}"))
            .arg("--statefulset=x402-buyer")
            .arg("--replica-lease=2s")
            .arg(format!("--rpc-url={}", self.rpc))
            .arg(format!("--state={}", state.join("consumed.json").display()))
            .arg(format!("--listen={addr}"))
            .arg("--held-check-interval=1s")
            .arg("--log=warn")
            .stdout(Self::log(state))
            .stderr(Self::log(state))
            .spawn()
            .unwrap()
    }

    /// The log every process of one replica appends to (beside its journal).
    fn log(state: &Path) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.with_extension("log"))
            .unwrap()
    }

    /// Replicas 0, 1 and 2, each on its own address and journal under `dir`.
    fn start_three(&self, dir: &Path) -> Vec<Process> {
        (0..3)
            .map(|ordinal| {
                let addr = free_addr();
                let state = dir.join(format!("r{ordinal}"));
                std::fs::create_dir_all(&state).unwrap();
                Process {
                    ordinal,
                    addr,
                    child: self.spawn(ordinal, addr, &state),
                    state,
                    started: Instant::now(),
                    healthy_at: None,
                    up_for: up_for(),
                }
            })
            .collect()
    }

    /// `kills` SIGKILLs spread at random over `procs` under paid load. Each replica is killed a
    /// random 200-1200 ms after it answered /healthz (so kills land at start-up, while
    /// claiming, and while spending), and restarted at once on its journal.
    async fn kill_spread(&self, procs: &mut [Process], kills: usize) -> Chaos {
        use rand::Rng as _;
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let loads: Vec<_> = procs.iter().map(|p| paying(p.addr, stop.clone())).collect();
        let health = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let mut killed = vec![0usize; procs.len()];
        let mut starts = Vec::new();
        while killed.iter().sum::<usize>() < kills {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let i = rand::rng().random_range(0..procs.len());
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
                    p.child = self.spawn(p.ordinal, p.addr, &p.state);
                    p.started = Instant::now();
                    p.healthy_at = None;
                    p.up_for = up_for();
                }
                Some(_) => {}
            }
        }
        stop.store(true, Ordering::Relaxed);
        let mut paid = 0;
        for l in loads {
            paid += l.await.unwrap();
        }
        Chaos {
            killed,
            took: started.elapsed(),
            paid,
            start_up: starts.iter().sum::<Duration>() / starts.len().max(1) as u32,
        }
    }
}

/// What [`Launcher::kill_spread`] did.
#[derive(Debug)]
#[allow(dead_code, reason = "read through Debug in the tests' reports")]
struct Chaos {
    /// Kills per replica.
    killed: Vec<usize>,
    took: Duration,
    /// Requests answered 200 under chaos.
    paid: usize,
    /// Mean time from a start to the first `/healthz` answer.
    start_up: Duration,
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

/// Paid load through every process until the status of purchase `demo` says nothing remains,
/// spent equals what `settled` counts, and remaining + held + spent = `bought`; gives up after
/// 90 s. Whether it got there, the last (remaining, held, spent, settled) seen, and that status
/// whole.
async fn spend_the_rest<F, Fut>(
    client: &kube::Client,
    ns: &str,
    procs: &[Process],
    bought: u64,
    settled: F,
) -> (bool, (u64, u64, u64, u64), Value)
where
    F: Fn() -> Fut,
    Fut: Future<Output = u64>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let drains: Vec<_> = procs.iter().map(|p| paying(p.addr, stop.clone())).collect();
    let purchases = Api::<PurchaseRequest>::namespaced(client.clone(), ns);
    let mut last = (0, 0, 0, 0);
    let mut status = Value::Null;
    let converged = tokio::time::timeout(Duration::from_secs(90), async {
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
            let paid = settled().await;
            last = (r, h, sp, paid);
            status = serde_json::to_value(&s).unwrap();
            if r == 0 && sp == paid && r + h + sp == bought {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .is_ok();
    stop.store(true, Ordering::Relaxed);
    for d in drains {
        d.await.unwrap();
    }
    (converged, last, status)
}

fn kills() -> usize {
    std::env::var("OBOL_BUYER_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Three `x402-buyer` processes as replicas of one StatefulSet, 200 SIGKILLs spread over them
/// under paid load (each killed replica restarted at once on its journal), then the rest of
/// the pool spent: no nonce reaches the seller twice, and remaining + held + spent = bought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_buyer_processes_under_kill_9_never_send_a_nonce_twice() {
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
        PAY_TO,
        &signed_auths(0, bought),
    )
    .await;
    let started = Instant::now();
    let launcher = Launcher {
        env: &env,
        ns: ns.clone(),
        rpc,
    };
    let mut procs = launcher.start_three(&dir);
    let chaos = launcher.kill_spread(&mut procs, kills()).await;
    let paid_now = || async { seller.state.paid.load(Ordering::SeqCst) as u64 };
    let (converged, last, status) = spend_the_rest(&client, &ns, &procs, bought, paid_now).await;
    let paid = seller.state.paid.load(Ordering::SeqCst) as u64;
    let duplicates = seller.state.duplicates.load(Ordering::SeqCst);
    for p in &mut procs {
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }
    eprintln!(
        "{chaos:?}; paid in all {paid} of {bought}; duplicates {duplicates}; (remaining, held, spent, paid) {last:?}; wall {:?}",
        started.elapsed()
    );
    assert_eq!(duplicates, 0, "a nonce reached the seller twice");
    assert!(
        converged,
        "(remaining, held, spent, paid) {last:?}: want remaining 0, spent = paid, sum = {bought}; status {status}"
    );
    assert!(chaos.paid > 0, "nothing was paid under chaos");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The seller of [`three_buyer_processes_under_kill_9_settle_each_authorization_once_on_chain`]:
/// our verifier in gateway mode `proxy` (routes from PaymentRoutes of the control plane, as the
/// local stack runs it) selling a loopback upstream at `/services/demo` for 1000 atomic units
/// to dev account #2, settling through the official facilitator on anvil.
struct ChainSeller {
    chain: PaidChain,
    /// The verifier's gateway listener.
    gateway: SocketAddr,
    /// The verifier's probe and metrics listener.
    admin: SocketAddr,
    pay_to: Address,
    _verifier: tokio::process::Child,
    _upstream: Seller,
}

impl ChainSeller {
    async fn start(env: &TestEnv, ns: &str, dir: &Path) -> Self {
        let tools = PaidChainTools {
            anvil: obol_testenv::tools::anvil(),
            x402_peers: obol_testenv::tools::x402_peers(),
            repo: obol_testenv::repo_root(),
        };
        let chain = PaidChain::start(&tools, dir, U256::from(1_000_000_000u64), false)
            .await
            .unwrap();
        let upstream = spawn_seller(Mode::Free, "", "").await;
        let pay_to = obol_devstack::chain::dev_address(2);
        let mut spec = PaymentRouteSpec::new(
            "/services/demo/*",
            PRICE.to_string(),
            pay_to.to_string(),
            "base-sepolia",
        );
        spec.proxy = Some(ProxyTarget {
            upstream: format!("http://{}", upstream.addr),
            strip_prefix: Some("/services/demo".into()),
            streaming_content_types: vec![],
            allow_web_socket: false,
        });
        Api::<PaymentRoute>::namespaced(env.client(), ns)
            .create(&PostParams::default(), &PaymentRoute::new("demo", spec))
            .await
            .unwrap();
        let (admin, gateway) = (free_addr(), free_addr());
        let log = std::fs::File::create(dir.join("verifier.log")).unwrap();
        let verifier =
            tokio::process::Command::new(obol_testenv::process::workspace_bin("x402-verifier"))
                .env("KUBECONFIG", env.kubeconfig_path())
                .args([
                    "--route-source=kube",
                    &format!("--namespace={ns}"),
                    &format!("--listen={admin}"),
                    &format!("--gateway-listen={gateway}"),
                    &format!("--facilitator-url={}", chain.facilitator.url()),
                    "--upstream-timeout=10s",
                ])
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap();
        let http = reqwest::Client::new();
        eventually(Duration::from_secs(30), || async {
            let r = http
                .get(format!("http://{gateway}/services/demo/x"))
                .send()
                .await
                .ok()?;
            (r.status() == reqwest::StatusCode::PAYMENT_REQUIRED).then_some(())
        })
        .await;
        Self {
            chain,
            gateway,
            admin,
            pay_to,
            _verifier: verifier,
            _upstream: upstream,
        }
    }

    fn rpc(&self) -> &Rpc {
        self.chain.anvil.rpc()
    }

    async fn balance(&self, owner: Address) -> U256 {
        self.rpc().balance_of(self.chain.usdc, owner).await.unwrap()
    }

    /// The nonces of `payer`'s authorizations the chain shows used (its `AuthorizationUsed`
    /// logs), each as often as it was logged.
    async fn used_nonces(&self, payer: Address) -> Vec<String> {
        let topic = alloy::primitives::keccak256("AuthorizationUsed(address,bytes32)");
        let logs = self
            .rpc()
            .call(
                "eth_getLogs",
                json!([{"address": self.chain.usdc, "fromBlock": "0x0", "toBlock": "latest",
                    "topics": [topic, payer.into_word()]}]),
            )
            .await
            .unwrap();
        logs.as_array()
            .unwrap()
            .iter()
            .map(|l| l["topics"][2].as_str().unwrap().to_lowercase())
            .collect()
    }

    /// How many transactions the facilitator's account has sent.
    async fn facilitator_transactions(&self) -> u64 {
        let n = self
            .rpc()
            .call(
                "eth_getTransactionCount",
                json!([obol_devstack::chain::dev_address(0), "latest"]),
            )
            .await
            .unwrap();
        u64::from_str_radix(n.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }

    /// The verifier's counters of refusals and facilitator errors (`/metrics` lines).
    async fn refusals(&self) -> Vec<String> {
        let text = reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| {
                !l.starts_with('#') && (l.contains("denials") || l.contains("facilitator_errors"))
            })
            .map(str::to_owned)
            .collect()
    }
}

/// The price of the chain test's route, in atomic USDC units (what `signed_auths_to` signs).
const PRICE: u64 = 1000;

/// The chaos test on real parts: three `x402-buyer` processes as replicas of one StatefulSet
/// on the control plane, reading anvil as their chain, buy from our verifier (gateway mode
/// `proxy`) settling through the official facilitator, under 200 SIGKILLs spread over them,
/// then spend the rest of the pool. Asserted from the chain: every authorization bought was
/// used at most once and no settlement transaction was sent for a used one; the buyers'
/// spent count equals the authorizations the chain shows used (so the held ones are unused);
/// remaining + held + spent = bought; the seller's balance moved by price × used, the payer's
/// by the opposite. And the verifier refused no payment: none was presented after its use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_buyer_processes_under_kill_9_settle_each_authorization_once_on_chain() {
    let bought: u64 = 360;
    let env = TestEnv::get().await;
    let ns_guard = env.namespace("buyer-chain-chaos").await;
    let ns = ns_guard.name().to_owned();
    let client = env.client();
    let dir = temp_dir("replica-chain-chaos");
    let started = Instant::now();
    let seller = ChainSeller::start(&env, &ns, &dir).await;
    let payer: Address = PAYER.parse().unwrap();
    let (seller_before, payer_before) = (
        seller.balance(seller.pay_to).await,
        seller.balance(payer).await,
    );
    let sent_before = seller.facilitator_transactions().await;
    create_statefulset(&client, &ns, 3).await;
    let pay_to = seller.pay_to.to_string();
    let url = format!("http://{}/services/demo", seller.gateway);
    create_purchase(
        &client,
        &ns,
        &url,
        &pay_to,
        &signed_auths_to(&pay_to, 0, bought),
    )
    .await;
    let set_up = started.elapsed();
    let launcher = Launcher {
        env: &env,
        ns: ns.clone(),
        rpc: seller.rpc().url().to_owned(),
    };
    let mut procs = launcher.start_three(&dir);
    let chaos = launcher.kill_spread(&mut procs, kills()).await;
    let settled_now = || async { seller.used_nonces(payer).await.len() as u64 };
    let (converged, last, status) = spend_the_rest(&client, &ns, &procs, bought, settled_now).await;
    for p in &mut procs {
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }
    let used = seller.used_nonces(payer).await;
    let settled = used.len() as u64;
    let sent = seller.facilitator_transactions().await - sent_before;
    let (seller_after, payer_after) = (
        seller.balance(seller.pay_to).await,
        seller.balance(payer).await,
    );
    let refusals = seller.refusals().await;
    eprintln!(
        "set-up {set_up:?}; {chaos:?}; settled on chain {settled} of {bought} in {sent} \
         settlement transactions; (remaining, held, spent, settled) {last:?}; verifier \
         {refusals:?}; wall {:?}",
        started.elapsed()
    );
    // The test's own readiness poll may meet the verifier before its routes are loaded; any
    // other refusal or facilitator error means an authorization was presented after it was
    // used (or was bad).
    let unexpected: Vec<&String> = refusals
        .iter()
        .filter(|l| !l.contains("reason=\"not_ready\""))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the verifier refused payments: {unexpected:?}"
    );
    let bought_nonces: HashSet<String> = (0..bought).map(nonce).collect();
    let mut once = HashSet::new();
    for n in &used {
        assert!(bought_nonces.contains(n), "{n} was used but never bought");
        assert!(once.insert(n), "{n} was used twice");
    }
    assert_eq!(
        sent, settled,
        "a settlement transaction was sent for an authorization already used"
    );
    assert!(
        converged,
        "(remaining, held, spent, settled) {last:?}: want remaining 0, spent = settled on chain, \
         remaining + held + spent = {bought}; status {status}"
    );
    let moved = U256::from(PRICE * settled);
    assert_eq!(seller_after - seller_before, moved, "the seller's balance");
    assert_eq!(payer_before - payer_after, moved, "the payer's balance");
    assert!(chaos.paid > 0, "nothing was paid under chaos");
    let _ = std::fs::remove_dir_all(&dir);
}
