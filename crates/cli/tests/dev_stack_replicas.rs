//! The local stack with three verifier replicas (`obol dev up --verifier-replicas 3`), real
//! parts throughout (control plane, anvil, the official x402 facilitator, Traefik, Debian's
//! redis-server). In both gateway modes (the demo offer in proxy mode, `demo-fa` of the same
//! upstream in ForwardAuth mode): 32 concurrent copies of one payment through the gateway reach
//! the upstream once and move the chain once, and the copies are spread over more than one
//! replica (each replica's own `/metrics`). A replica killed by its recorded pid leaves the
//! others serving paid requests in both modes; Redis killed, paid requests fail closed (503,
//! nothing reaches the upstream) until a Redis is back. Every "Try" line the stack prints works in a new
//! shell (the check of `dev_stack.rs`). The stack is stopped at the end, on failure too (a
//! guard).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use obol_devstack::chain::Rpc;
use obol_devstack::demo::{authorization, demo_requirement};
use obol_devstack::stack::{State, recorded};
use obol_x402::U256;

#[allow(dead_code, reason = "this binary uses some of the checks")]
mod dev_stack_features;

const REPLICAS: usize = 3;
const COPIES: usize = 32;

use dev_stack_features::{Stack, obol, text};

/// Requests replica `url` counted for offer `demo/<offer>` (its `/metrics`).
async fn offer_requests(http: &reqwest::Client, url: &str, offer: &str) -> u64 {
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("obol_x402_verifier_requests_total{")
                && l.contains(&format!("offer_namespace=\"demo\",offer_name=\"{offer}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Requests the demo upstream received for `path` (it logs one line per request).
fn upstream_hits(state: &State, path: &str) -> usize {
    let log = state.run_dir.join("demo-upstream.log");
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        // The path as the upstream got it (the gateway strips the offer's prefix).
        .filter(|l| l.split_whitespace().next().is_some_and(|p| p.ends_with(path)))
        .count()
}

/// `obol` with the stack's kubeconfig, in namespace `demo`.
fn obol_in_demo(stack: &Stack, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(args)
        .args(["-n", "demo"])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .env("OBOL_GATEWAY_URL", stack.var("OBOL_GATEWAY_URL"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// 32 concurrent copies of one payment for offer `demo/<offer>` through the gateway: one is
/// served, the upstream sees it once, the chain moves once, and the copies were spread over
/// more than one replica (their `/metrics`).
async fn copies_reach_the_upstream_once(
    http: &reqwest::Client,
    state: &State,
    key: &obol_x402::PrivateKey,
    offer: &str,
) {
    let req = demo_requirement(state).unwrap();
    let rpc = Rpc::new(&state.rpc_url);
    let usdc = state.usdc.parse().unwrap();
    let seller = state.seller.parse().unwrap();
    let before = (
        rpc.balance_of(usdc, seller).await.unwrap(),
        rpc.balance_of(usdc, key.address()).await.unwrap(),
    );
    let counted = || {
        futures::future::join_all(
            state
                .verifiers
                .iter()
                .map(|r| offer_requests(http, &r.url, offer)),
        )
    };
    let counted_before: Vec<u64> = counted().await;
    let path = format!("/once-{offer}-{}", std::process::id());
    let url = format!("{}/services/{offer}{path}", state.gateway_url);
    let header = req
        .signed_v2_header(key, authorization(key, &req).unwrap())
        .unwrap();
    let answers = futures::future::join_all((0..COPIES).map(|_| pay(http, &url, &header))).await;
    let served = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(
        served, 1,
        "{offer}: exactly one copy is served: {answers:#?}"
    );
    assert!(
        answers.iter().all(|(s, _)| [200, 402, 409].contains(s)),
        "{offer}: the other copies are refused as the same payment: {answers:#?}"
    );
    assert_eq!(
        upstream_hits(state, &path),
        1,
        "{offer}: the upstream sees the payment once"
    );
    // Settlement happens before a whole answer is sent: the chain has moved by now; a late
    // second settlement would show a moment later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = (
        rpc.balance_of(usdc, seller).await.unwrap(),
        rpc.balance_of(usdc, key.address()).await.unwrap(),
    );
    assert_eq!(
        after.0 - before.0,
        req.amount,
        "{offer}: the seller is paid once"
    );
    assert_eq!(
        before.1 - after.1,
        req.amount,
        "{offer}: the payer pays once"
    );
    let per_replica: Vec<u64> = counted()
        .await
        .iter()
        .zip(&counted_before)
        .map(|(a, b)| a - b)
        .collect();
    // At least the copies (the controller's probe of the payment gate may add one).
    assert!(
        per_replica.iter().sum::<u64>() >= COPIES as u64,
        "{offer}: every copy was counted by a replica: {per_replica:?}"
    );
    assert!(
        per_replica.iter().filter(|n| **n > 0).count() > 1,
        "{offer}: the copies went to more than one replica: {per_replica:?}"
    );
    eprintln!("{offer}: {COPIES} copies per replica: {per_replica:?}");
}

async fn pay(http: &reqwest::Client, url: &str, header: &str) -> (u16, String) {
    match http
        .get(url)
        .header("PAYMENT-SIGNATURE", header)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

#[tokio::test]
async fn three_verifier_replicas_serve_one_payment_once_and_survive_a_killed_replica() {
    let guard = Stack::up(
        "dev-replicas",
        &["--verifier-replicas", &REPLICAS.to_string()],
    );
    assert!(
        guard.summary.contains("3 verifier replicas serve it"),
        "{}",
        guard.summary
    );
    let state = recorded(&guard.run).unwrap();

    // Recorded and listed: three replicas, their Redis, the balanced addresses.
    let names: Vec<&str> = state.verifiers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["verifier-1", "verifier-2", "verifier-3"]);
    assert!(
        state.redis_url.starts_with("redis://127.0.0.1:"),
        "{state:?}"
    );
    assert!(
        state
            .verifiers
            .iter()
            .all(|r| r.url != state.verifier_url && r.gateway_url != state.verifier_gateway_url),
        "the stack's verifier addresses are the balanced ones"
    );
    let status = obol(&guard.run, &["dev", "status"]);
    let listed = String::from_utf8_lossy(&status.stdout).into_owned();
    for name in ["verifier-1", "verifier-2", "verifier-3", "redis"] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(name) && l.contains("running")),
            "{name} not running in obol dev status:\n{listed}"
        );
    }
    assert!(listed.contains(&state.redis_url), "{listed}");

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Every "Try" line works in a new shell with the replicas too (a second offer, registered
    // on chain; the buyer paying the demo offer through the balanced gateway).
    dev_stack_features::try_lines_work_in_a_new_shell(&guard, &http).await;
    let req = demo_requirement(&state).unwrap();
    let rpc = Rpc::new(&state.rpc_url);
    let usdc = state.usdc.parse().unwrap();
    let seller = state.seller.parse().unwrap();
    let (key, _) = obol_devstack::onchain::new_key().unwrap();
    rpc.mint(usdc, key.address(), U256::from(1_000_000u64))
        .await
        .unwrap();
    copies_reach_the_upstream_once(&http, &state, &key, "demo").await;

    // The same in ForwardAuth mode: an offer of the same upstream whose ForwardAuth address is
    // the balanced one.
    let out = obol_in_demo(
        &guard,
        &[
            "sell",
            "http",
            "demo-fa",
            "--upstream",
            "demo",
            "--port",
            &state.demo_port.to_string(),
            "--price",
            "0.001",
            "--max-timeout",
            "300",
            "--wallet",
            &state.seller,
            "--gateway-mode",
            "forwardAuth",
            "--wait",
            "--timeout",
            "90s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let fa_url = format!("{}/services/demo-fa/", state.gateway_url);
    obol_testenv::eventually(Duration::from_secs(30), || async {
        let r = http.get(&fa_url).send().await.ok()?;
        (r.status() == 402).then_some(())
    })
    .await;
    copies_reach_the_upstream_once(&http, &state, &key, "demo-fa").await;

    // One replica killed (SIGKILL, its pid from the state file): the others keep serving.
    let victim = state
        .procs
        .iter()
        .find(|p| p.name == "verifier-2")
        .unwrap()
        .clone();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &victim.pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while obol_devstack::process::alive(victim.pid) {
        assert!(Instant::now() < deadline, "verifier-2 still alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Traefik's health checks take it out of the rotation within a few intervals: until then
    // an unpaid request may meet the dead replica (502); afterwards every one is a 402.
    // Both balancers: the gateway listeners' (proxy mode) and the ForwardAuth listeners'.
    let offers = ["demo", "demo-fa"];
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut in_a_row = 0;
    while in_a_row < 2 * REPLICAS {
        assert!(
            Instant::now() < deadline,
            "the gateway still sends requests to the killed replica"
        );
        let unpaid = format!("{}/services/{}/", state.gateway_url, offers[in_a_row % 2]);
        let status = http.get(&unpaid).send().await.map(|r| r.status().as_u16());
        in_a_row = if matches!(status, Ok(402)) {
            in_a_row + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = rpc.balance_of(usdc, seller).await.unwrap();
    let mut statuses = vec![];
    for i in 0..(2 * REPLICAS) {
        let header = req
            .signed_v2_header(&key, authorization(&key, &req).unwrap())
            .unwrap();
        let url = format!(
            "{}/services/{}/after-kill-{i}",
            state.gateway_url,
            offers[i % 2]
        );
        statuses.push(pay(&http, &url, &header).await);
    }
    assert!(
        statuses.iter().all(|(s, _)| *s == 200),
        "paid requests after the kill: {statuses:#?}"
    );
    let after = rpc.balance_of(usdc, seller).await.unwrap();
    assert_eq!(
        after - before,
        req.amount * U256::from(2 * REPLICAS),
        "each paid request after the kill settled once"
    );
    let status = obol(&guard.run, &["dev", "status"]);
    let listed = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("verifier-2") && l.contains("STOPPED")),
        "{listed}"
    );

    // Redis killed (its pid from the state file): paid requests fail closed in both modes (503
    // reservations_unavailable, nothing reaches the upstream, nothing moves); with a Redis
    // back on the same port the same authorizations are served, once each.
    let redis = state.procs.iter().find(|p| p.name == "redis").unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &redis.pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while obol_devstack::process::alive(redis.pid) {
        assert!(Instant::now() < deadline, "redis still alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let payments: Vec<(String, String)> = (0..4)
        .map(|i| {
            let url = format!(
                "{}/services/{}/redis-down-{i}",
                state.gateway_url,
                offers[i % 2]
            );
            let header = req
                .signed_v2_header(&key, authorization(&key, &req).unwrap())
                .unwrap();
            (url, header)
        })
        .collect();
    let before = rpc.balance_of(usdc, seller).await.unwrap();
    for (url, header) in &payments {
        let (status, body) = pay(&http, url, header).await;
        assert_eq!(status, 503, "{url}: {body}");
        assert!(body.contains("reservations_unavailable"), "{url}: {body}");
    }
    for i in 0..4 {
        assert_eq!(upstream_hits(&state, &format!("/redis-down-{i}")), 0);
    }
    assert_eq!(rpc.balance_of(usdc, seller).await.unwrap(), before);
    let port: u16 = state.redis_url.rsplit(':').next().unwrap().parse().unwrap();
    let _back = RedisAgain::start(&guard.run, port).await;
    // As the refusal's hint says: retried with the same authorization. A pooled connection to
    // the dead Redis fails once more before the verifier reconnects, still closed.
    let mut refused_again = 0;
    for (url, header) in &payments {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = pay(&http, url, header).await;
            if status == 200 {
                break;
            }
            refused_again += 1;
            assert!(
                status == 503 && body.contains("reservations_unavailable"),
                "{url}: {status} {body}"
            );
            assert!(Instant::now() < deadline, "{url}: not served again: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!("Redis back: {refused_again} refusal(s) before the 4 payments were served");
    for i in 0..4 {
        assert_eq!(upstream_hits(&state, &format!("/redis-down-{i}")), 1);
    }
    assert_eq!(
        rpc.balance_of(usdc, seller).await.unwrap() - before,
        req.amount * U256::from(4u64)
    );
    drop(guard);
}

/// A `redis-server` the test starts again on the port of the one it killed; stopped when
/// dropped (before the stack's guard: it is declared later).
struct RedisAgain(std::process::Child);

impl RedisAgain {
    async fn start(run: &Path, port: u16) -> Self {
        let log = std::fs::File::create(run.join("redis-again.log")).unwrap();
        let child = std::process::Command::new(obol_testenv::tools::redis_server())
            .args(obol_devstack::redis::server_args(port))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let again = Self(child);
        obol_devstack::redis::wait_ready(port, Duration::from_secs(10))
            .await
            .unwrap();
        again
    }
}

impl Drop for RedisAgain {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
