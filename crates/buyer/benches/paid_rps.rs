//! Paid requests per second through the real `x402-buyer` binary (optimised by `cargo bench`)
//! to an in-process loopback stub seller, with the durable journal (append + fsync, group
//! commit) on the target directory's disk. Every request is a 402, a journaled spend and a paid
//! retry. Prints figures; no criterion.
//!
//! `cargo bench -p obol-buyer --bench paid_rps` (env `BENCH_SECS`, `BENCH_CLIENTS`).

#![allow(clippy::unwrap_used)] // bench code: a panic is the failure report

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let secs = env_or("BENCH_SECS", 5);
    let clients = env_or("BENCH_CLIENTS", 32) as usize;
    let pool = 60_000;
    let seller = spawn_seller(Mode::V1, "base-sepolia", USDC_BASE_SEPOLIA).await;
    // Not std::env::temp_dir(): /tmp may be a tmpfs, where fsync costs nothing.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("paid-rps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["config", "auths", "state"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let cfg = upstream_json(
        &seller.url("/services/s"),
        None,
        "base-sepolia",
        USDC_BASE_SEPOLIA,
    );
    write_upstream(&dir, "s", &cfg, &fake_auths(0, pool));
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_x402-buyer"))
        .arg(format!("--config-dir={}", dir.join("config").display()))
        .arg(format!("--auths-dir={}", dir.join("auths").display()))
        .arg(format!(
            "--state={}",
            dir.join("state/consumed.json").display()
        ))
        .arg(format!("--listen={addr}"))
        .arg("--reload-interval=0")
        .arg("--log=error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "buyer did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let url = format!("http://{addr}/upstream/s/v1/chat/completions");
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let run_for = |d: Duration| {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut failed = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        match client.post(&url).body(body).send().await {
                            Ok(r) if r.status() == 200 => {
                                let _ = r.bytes().await;
                                lat.push(t.elapsed());
                            }
                            _ => failed += 1,
                        }
                    }
                    (lat, failed)
                })
            })
            .collect();
        async move {
            tokio::time::sleep(d).await;
            stop.store(true, Ordering::Relaxed);
            let mut lat = Vec::new();
            let mut failed = 0;
            for t in tasks {
                let (l, f) = t.await.unwrap();
                lat.extend(l);
                failed += f;
            }
            (lat, failed)
        }
    };
    run_for(Duration::from_secs(1)).await; // warm-up: connections, page cache
    let syncs = |client: reqwest::Client| async move {
        let text = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("obol_x402_buyer_journal_syncs_total "))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap())
    };
    let syncs_before = syncs(client.clone()).await;
    let paid_before = seller.state.paid.load(Ordering::SeqCst);
    let started = Instant::now();
    let (mut lat, failed) = run_for(Duration::from_secs(secs)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let paid = seller.state.paid.load(Ordering::SeqCst) - paid_before;
    let fsyncs = syncs(client.clone()).await - syncs_before;
    child.kill().unwrap();
    child.wait().unwrap();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "paid_rps: {:.0} paid requests/s ({} in {elapsed:.1}s, {clients} clients, {failed} failed); \
         latency p50 {:.2} ms, p99 {:.2} ms; {fsyncs} journal fsyncs ({:.1} spends each); \
         seller duplicates {}",
        lat.len() as f64 / elapsed,
        lat.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        paid as f64 / fsyncs.max(1) as f64,
        seller.state.duplicates.load(Ordering::SeqCst),
    );
    assert_eq!(
        paid,
        lat.len(),
        "every 200 is one paid request at the seller"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
