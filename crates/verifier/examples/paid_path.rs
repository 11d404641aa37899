//! What the verifier adds to a paid request when the facilitator costs nothing.
//!
//! Starts a zero-latency facilitator stub (hyper, loopback, in a child process of its own so
//! that every hop crosses processes as in a cluster: `/verify` and `/settle` answer at once),
//! runs the release verifier binary against it with a file route source, signs fresh
//! EIP-3009 authorizations (a new nonce per request: the verifier refuses a replay), and times
//! with one client:
//!
//! 1. one HTTP exchange with the stub (the floor of any loopback hop);
//! 2. the verifier's unpaid 402;
//! 3. a paid request, one at a time (decode, signature recovery, replay cache, the stub's
//!    `/verify` and `/settle`, the 200);
//! 4. paid requests over `PAID_CONNECTIONS` concurrent connections (throughput and percentiles).
//!
//! Every answer is checked (402, 200, exactly one `/verify` and one `/settle` per paid request,
//! a replayed authorization refused), so a broken path cannot print a fast figure.
//!
//! `cargo build --release -p obol-verifier --bin x402-verifier --example paid-path &&
//!  target/release/examples/paid-path target/release/x402-verifier`
//!
//! Environment: `PAID_REQUESTS` (per sequential series, default 3000), `PAID_CONNECTIONS` (default 16),
//! `PAID_CONCURRENT_REQUESTS` (default 8000).

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use hyper::StatusCode;
use obol_x402::{Network, PrivateKey, Requirement, U256};
use support::{
    PAY_TO, PAYER_KEY, PRICE, env_usize, process_cpu_micros, serve_stub, sign_payments, stub_calls,
};

const ROUTE: &str = "/verify/default/demo";
const FORWARDED_URI: &str = "/services/demo/v1/chat/completions";

/// Polls `url` until it answers 200, while `alive` says the process serving it lives.
async fn wait_ready(
    client: &reqwest::Client,
    url: &str,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == StatusCode::OK
        {
            return Ok(());
        }
        alive().with_context(|| format!("{url}: the process exited before it was ready"))?;
        ensure!(Instant::now() < deadline, "{url} was not ready in 15 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `Ok` while `child` runs.
fn running(child: &mut tokio::process::Child) -> anyhow::Result<()> {
    match child.try_wait()? {
        Some(status) => bail!("exited: {status}"),
        None => Ok(()),
    }
}

/// A port free on 127.0.0.1 at the time of asking.
fn free_loopback_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Series {
    label: &'static str,
    micros: Vec<f64>,
    wall: Duration,
    /// CPU time the verifier process spent per request, µs (none for the stub series).
    cpu_per_request: Option<f64>,
}

impl Series {
    /// A series of latencies (µs), sorted once for the percentiles.
    fn new(
        label: &'static str,
        mut micros: Vec<f64>,
        wall: Duration,
        cpu_per_request: Option<f64>,
    ) -> Self {
        micros.sort_by(f64::total_cmp);
        Self {
            label,
            micros,
            wall,
            cpu_per_request,
        }
    }

    fn pct(&self, q: f64) -> f64 {
        support::pct(&self.micros, q)
    }

    fn rate(&self) -> f64 {
        self.micros.len() as f64 / self.wall.as_secs_f64()
    }
}

#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    verify_url: String,
}

impl Target {
    /// One ForwardAuth call; returns its status.
    async fn call(&self, payment: Option<&str>) -> anyhow::Result<StatusCode> {
        let mut req = self
            .client
            .get(&self.verify_url)
            .header("x-forwarded-uri", FORWARDED_URI)
            .header("x-forwarded-host", "obol.stack")
            .header("x-forwarded-proto", "https");
        if let Some(p) = payment {
            req = req.header("payment-signature", p);
        }
        let resp = req.send().await?;
        let status = resp.status();
        resp.bytes().await?;
        Ok(status)
    }
}

async fn sequential<F, Fut>(
    label: &'static str,
    n: usize,
    verifier_pid: Option<u32>,
    mut f: F,
) -> anyhow::Result<Series>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut micros = Vec::with_capacity(n);
    let cpu = verifier_pid.map(process_cpu_micros).transpose()?;
    let wall = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        f(i).await
            .with_context(|| format!("{label}, request {i}"))?;
        micros.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let wall = wall.elapsed();
    let cpu_per_request = match (verifier_pid, cpu) {
        (Some(pid), Some(before)) => Some((process_cpu_micros(pid)? - before) / n as f64),
        _ => None,
    };
    Ok(Series::new(label, micros, wall, cpu_per_request))
}

fn pid_of(child: &tokio::process::Child) -> anyhow::Result<u32> {
    child.id().context("the verifier has exited")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, addr, payer] = &args[..]
        && flag == "--serve-stub"
    {
        return serve_stub(addr, payer).await;
    }
    let verifier_bin = args
        .get(1)
        .context("usage: paid-path <path of the x402-verifier binary>")?
        .clone();
    let n = env_usize("PAID_REQUESTS", 3000)?;
    let connections = env_usize("PAID_CONNECTIONS", 16)?.max(1);
    let concurrent = env_usize("PAID_CONCURRENT_REQUESTS", 8000)?;
    let warmup = 200;

    let key: PrivateKey = PAYER_KEY.parse()?;
    let payer: Arc<str> = key.address().to_string().into();
    let stub_addr: SocketAddr = format!("127.0.0.1:{}", free_loopback_port()?).parse()?;
    let mut stub_process = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--serve-stub", &stub_addr.to_string(), &payer])
        .kill_on_drop(true)
        .spawn()
        .context("starting the facilitator stub")?;

    let dir = std::env::temp_dir().join(format!("obol-paid-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let routes = dir.join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            "routes:\n  - name: demo\n    namespace: default\n    pattern: /services/demo/*\n    \
             price: \"{PRICE}\"\n    payTo: \"{PAY_TO}\"\n    network: base-sepolia\n"
        ),
    )?;
    let listen = format!("127.0.0.1:{}", free_loopback_port()?);
    let mut verifier = tokio::process::Command::new(&verifier_bin)
        .args([
            "--listen",
            &listen,
            "--gateway-listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--route-source",
            "file",
        ])
        .arg("--routes-file")
        .arg(&routes)
        .args(["--facilitator-url", &format!("http://{stub_addr}")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {verifier_bin}"))?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections.max(4))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    wait_ready(&client, &format!("http://{stub_addr}/calls"), || {
        running(&mut stub_process)
    })
    .await?;
    wait_ready(&client, &format!("http://{listen}/readyz"), || {
        running(&mut verifier)
    })
    .await?;
    let target = Target {
        client: client.clone(),
        verify_url: format!("http://{listen}{ROUTE}"),
    };

    let network = Network::resolve("base-sepolia").context("network")?;
    let req = Requirement::usdc(network, PAY_TO.parse()?, U256::from(PRICE), 60)?;
    let signing = Instant::now();
    let mut payments = sign_payments(&key, &req, warmup + n + concurrent)?.into_iter();
    eprintln!(
        "signed {} authorizations in {:.1} s",
        warmup + n + concurrent,
        signing.elapsed().as_secs_f64()
    );

    // Warm-up: connections, the verifier's facilitator pool, caches.
    let stub_url = format!("http://{stub_addr}/verify");
    for p in payments.by_ref().take(warmup) {
        ensure!(
            target.call(Some(&p)).await? == StatusCode::OK,
            "warm-up paid request refused"
        );
        ensure!(target.call(None).await? == StatusCode::PAYMENT_REQUIRED);
        client
            .post(&stub_url)
            .body("{}")
            .send()
            .await?
            .bytes()
            .await?;
    }
    let replayed = payments.next().context("a payment to replay")?;
    ensure!(target.call(Some(&replayed)).await? == StatusCode::OK);
    eprintln!("warm-up done; measuring");

    let pid = Some(pid_of(&verifier)?);
    let floor = sequential("one loopback HTTP exchange (stub /verify)", n, None, |_| {
        let (client, url) = (client.clone(), stub_url.clone());
        async move {
            let r = client.post(&url).body("{}").send().await?;
            ensure!(r.status() == StatusCode::OK);
            r.bytes().await?;
            Ok(())
        }
    })
    .await?;
    let unpaid = sequential("verifier, unpaid 402", n, pid, |_| {
        let t = target.clone();
        async move {
            ensure!(t.call(None).await? == StatusCode::PAYMENT_REQUIRED);
            Ok(())
        }
    })
    .await?;
    let paid_headers: Vec<String> = payments.by_ref().take(n).collect();
    let (verify_before, settle_before) = stub_calls(&client, stub_addr).await?;
    let paid = sequential("verifier, paid (verify + settle)", n, pid, |i| {
        let (t, p) = (target.clone(), paid_headers[i].clone());
        async move {
            ensure!(
                t.call(Some(&p)).await? == StatusCode::OK,
                "paid request refused"
            );
            Ok(())
        }
    })
    .await?;

    // Concurrent paid requests: `connections` workers share the remaining authorizations.
    let queue = Arc::new(parking_lot::Mutex::new(
        payments.by_ref().collect::<Vec<_>>(),
    ));
    let cpu0 = process_cpu_micros(pid_of(&verifier)?)?;
    let wall = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (t, queue) = (target.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            let mut micros = Vec::new();
            loop {
                let Some(p) = queue.lock().pop() else {
                    return anyhow::Ok(micros);
                };
                let start = Instant::now();
                ensure!(
                    t.call(Some(&p)).await? == StatusCode::OK,
                    "paid request refused"
                );
                micros.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }));
    }
    let mut micros = Vec::new();
    for w in workers {
        micros.extend(w.await??);
    }
    let wall = wall.elapsed();
    let cpu = (process_cpu_micros(pid_of(&verifier)?)? - cpu0) / micros.len() as f64;
    let loaded = Series::new("verifier, paid, concurrent", micros, wall, Some(cpu));

    // Every paid request cost exactly one /verify and one /settle; a spent authorization is
    // refused.
    let paid_count = (n + loaded.micros.len()) as u64;
    let (verify_after, settle_after) = stub_calls(&client, stub_addr).await?;
    let (verify_calls, settle_calls) = (verify_after - verify_before, settle_after - settle_before);
    ensure!(
        verify_calls == paid_count && settle_calls == paid_count,
        "{paid_count} paid requests made {verify_calls} /verify and {settle_calls} /settle calls"
    );
    ensure!(
        target.call(Some(&replayed)).await? == StatusCode::PAYMENT_REQUIRED,
        "a replayed authorization was let through"
    );
    verifier.kill().await?;
    stub_process.kill().await?;
    std::fs::remove_dir_all(&dir)?;

    println!("| series | requests | p50 µs | p99 µs | req/s | verifier CPU µs/request |");
    println!("|---|---|---|---|---|---|");
    let cpu = |s: &Series| {
        s.cpu_per_request
            .map_or("-".to_owned(), |c| format!("{c:.0}"))
    };
    for s in [&floor, &unpaid, &paid] {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {} |",
            s.label,
            s.micros.len(),
            s.pct(0.5),
            s.pct(0.99),
            s.rate(),
            cpu(s)
        );
    }
    println!(
        "| {} ({connections} connections) | {} | {:.0} | {:.0} | {:.0} | {} |",
        loaded.label,
        loaded.micros.len(),
        loaded.pct(0.5),
        loaded.pct(0.99),
        loaded.rate(),
        cpu(&loaded)
    );
    println!(
        "paid over unpaid p50: {:.0} µs (the facilitator's two exchanges and the payment check); \
         paid p50 over one loopback exchange: {:.0} µs",
        paid.pct(0.5) - unpaid.pct(0.5),
        paid.pct(0.5) - floor.pct(0.5),
    );
    Ok(())
}
