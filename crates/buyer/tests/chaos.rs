//! Process chaos with the real `x402-buyer` binary on loopback: SIGKILL it at random under paid
//! load and restart it; delete its journal and restart it under load.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use obol_buyer::journal::FileStorage;
use rand::Rng as _;
use serde_json::Value;

/// A free loopback address below the kernel's ephemeral range (obol-testenv's reserved
/// port). The buyer is restarted on the same address hundreds of times; an ephemeral port could
/// be handed to another test's `bind(0)` or outgoing connection in between.
fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], obol_testenv::net::reserved_port()))
}

/// Every request of the test gives up after a few seconds: a hang becomes a failure.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn start(dir: &Path, addr: SocketAddr, max_heal: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_x402-buyer"))
        .arg(format!("--config-dir={}", dir.join("config").display()))
        .arg(format!("--auths-dir={}", dir.join("auths").display()))
        .arg(format!(
            "--state={}",
            dir.join("state/consumed.json").display()
        ))
        .arg(format!("--listen={addr}"))
        .arg("--reload-interval=0")
        .arg(format!("--max-heal={max_heal}"))
        // Compact every ~45 spends so kills also land inside compactions.
        .arg("--compact-bytes=4096")
        .arg("--log=error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn wait_healthy(client: &reqwest::Client, addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "buyer exited during start-up"
        );
        assert!(Instant::now() < deadline, "buyer did not become healthy");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    ok: AtomicUsize,
    failed: AtomicUsize,
    first_failed: AtomicUsize,
    retry_failed: AtomicUsize,
    status_503: AtomicUsize,
}

/// `clients` loops of paid requests; with `retry`, a failed request is retried once.
fn spawn_load(
    addr: SocketAddr,
    clients: usize,
    retry: bool,
) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load::default());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let handles = (0..clients)
        .map(|_| {
            let (load, client) = (load.clone(), client.clone());
            tokio::spawn(async move {
                let url = format!("http://{addr}/upstream/s/v1/chat/completions");
                let attempt = || async {
                    match client.post(&url).body("{}").send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    }
                };
                while !load.stop.load(Ordering::Relaxed) {
                    let mut code = attempt().await;
                    if code != 200 && retry {
                        load.first_failed.fetch_add(1, Ordering::Relaxed);
                        // A client's retry policy: back off until the buyer answers again.
                        let health = format!("http://{addr}/healthz");
                        for _ in 0..200 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if client.get(&health).send().await.is_ok() {
                                break;
                            }
                        }
                        code = attempt().await;
                        if code != 200 {
                            load.retry_failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("request failed after its retry with status {code}");
                        }
                    }
                    if code == 503 {
                        load.status_503.fetch_add(1, Ordering::Relaxed);
                    }
                    let counter = if code == 200 { &load.ok } else { &load.failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    (load, handles)
}

fn journal_keys(dir: &Path) -> std::collections::HashSet<String> {
    let storage = FileStorage::open(dir.join("state")).unwrap();
    let recovered = obol_buyer::journal::inspect(&storage).unwrap();
    recovered.records.into_iter().map(|r| r.key).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_never_spends_a_nonce_twice() {
    let kills: usize = std::env::var("OBOL_BUYER_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // Debug builds load ~15 auths/ms at start-up; the pool is sized to outlast the load.
    let pool = 3000;
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("chaos");
    let cfg = upstream_json(
        &seller.url("/services/s"),
        None,
        "base-sepolia",
        USDC_BASE_SEPOLIA,
    );
    write_upstream(&dir, "s", &cfg, &fake_auths(0, pool));
    let addr = free_addr();
    let client = client();
    let (load, handles) = spawn_load(addr, 2, false);
    let started = Instant::now();
    for _ in 0..kills {
        let mut child = start(&dir, addr, 0);
        wait_healthy(&client, addr, &mut child).await;
        let up = rand::rng().random_range(5..60);
        tokio::time::sleep(Duration::from_millis(up)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let mut child = start(&dir, addr, 0);
    wait_healthy(&client, addr, &mut child).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    load.stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    let status: Value = client
        .get(format!("http://{addr}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    let (remaining, spent, held) = (
        status["s"]["remaining"].as_u64().unwrap(),
        status["s"]["spent"].as_u64().unwrap(),
        status["s"]["held"].as_u64().unwrap(),
    );
    let paid = seller.state.paid.load(Ordering::SeqCst);
    let duplicates = seller.state.duplicates.load(Ordering::SeqCst);
    let journaled = journal_keys(&dir);
    let seen = seller.state.used.lock().clone();
    println!(
        "chaos: {kills} SIGKILLs in {:.1}s; client requests ok {} failed {}; seller paid {paid}, \
         duplicate nonces {duplicates}; pool {pool} = remaining {remaining} + spent {spent} + held {held}; \
         journaled {} (lost in flight: {})",
        started.elapsed().as_secs_f64(),
        load.ok.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed),
        journaled.len(),
        journaled.len() - seen.len(),
    );
    assert_eq!(duplicates, 0, "a nonce reached the seller twice");
    assert_eq!(remaining + spent + held, pool);
    assert_eq!((spent + held) as usize, journaled.len());
    assert!(
        seen.is_subset(&journaled),
        "the seller saw a nonce the journal does not hold"
    );
    assert!(
        paid > kills,
        "the load should have paid through most cycles ({paid})"
    );
    assert!(remaining > 0, "the pool ran dry; raise its size");
    std::fs::remove_dir_all(dir).unwrap();
}

async fn wait_paid(seller: &Seller, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while seller.state.paid.load(Ordering::SeqCst) < at_least {
        assert!(Instant::now() < deadline, "paid load stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_journal_heals_without_503s() {
    let pool = 1200;
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    let dir = temp_dir("state-loss");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "s", &cfg, &fake_auths(0, pool));
    let addr = free_addr();
    let client = client();
    let mut child = start(&dir, addr, 32);
    wait_healthy(&client, addr, &mut child).await;
    let (load, handles) = spawn_load(addr, 4, true);
    wait_paid(&seller, 100).await;
    // Node loss: the process dies and its volume comes back empty.
    child.kill().unwrap();
    child.wait().unwrap();
    let lost = journal_keys(&dir).len();
    for f in ["spend.journal", "spend.snapshot"] {
        std::fs::remove_file(dir.join("state").join(f)).unwrap();
    }
    let mut child = start(&dir, addr, 32);
    wait_healthy(&client, addr, &mut child).await;
    let paid_at_restart = seller.state.paid.load(Ordering::SeqCst);
    wait_paid(&seller, paid_at_restart + 200).await;
    load.stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let duplicates = seller.state.duplicates.load(Ordering::SeqCst);
    println!(
        "state loss: {lost} journaled spends deleted; client requests ok {}, first attempts failed {}, \
         failed after one retry {} (503: {}); already-used answers healed {duplicates}",
        load.ok.load(Ordering::Relaxed),
        load.first_failed.load(Ordering::Relaxed),
        load.retry_failed.load(Ordering::Relaxed),
        load.status_503.load(Ordering::Relaxed),
    );
    assert_eq!(load.status_503.load(Ordering::Relaxed), 0);
    assert_eq!(
        load.retry_failed.load(Ordering::Relaxed),
        0,
        "a client failed beyond its first retry"
    );
    assert!(
        duplicates <= lost,
        "each lost spend is re-sent at most once"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
