//! Shutdown of the real `x402-buyer` binary: the first SIGTERM drains (a streamed response in
//! flight keeps the process up), a second one stops it at once.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use obol_testenv::net::free_port;
use obol_testenv::process::{exit_within, sigterm};

#[tokio::test]
async fn first_sigterm_drains_and_a_second_one_stops_at_once() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let seller = spawn_seller_with(Mode::Free, "base-sepolia", USDC_BASE_SEPOLIA, Some(gate)).await;
    let dir = temp_dir("shutdown");
    let cfg = upstream_json(&seller.url(""), None, "base-sepolia", USDC_BASE_SEPOLIA);
    write_upstream(&dir, "slow", &cfg, &fake_auths(0, 1));
    let port = free_port();
    let mut buyer = Command::new(env!("CARGO_BIN_EXE_x402-buyer"))
        .arg(format!("--config-dir={}", dir.join("config").display()))
        .arg(format!("--auths-dir={}", dir.join("auths").display()))
        .arg(format!(
            "--state={}",
            dir.join("state/consumed.json").display()
        ))
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg("--log=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    obol_testenv::eventually(Duration::from_secs(20), || async {
        let r = client.get(format!("{url}/healthz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    // A streamed response in flight: the first chunk arrived, the rest waits on the seller.
    let mut response = client
        .get(format!("{url}/upstream/slow/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"first;");

    sigterm(buyer.id());
    // Draining: the process waits for the request in flight (up to its 10 s grace).
    assert_eq!(exit_within(&mut buyer, Duration::from_secs(1)).await, None);
    sigterm(buyer.id());
    let status = exit_within(&mut buyer, Duration::from_secs(5))
        .await
        .expect("a second SIGTERM stops the buyer at once");
    assert_eq!(status.code(), Some(obol_runtime::shutdown::ABORT_EXIT_CODE));
    let _ = std::fs::remove_dir_all(&dir);
}
