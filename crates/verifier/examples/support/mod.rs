//! What the verifier's benchmark examples share: the zero-latency facilitator stub, signed
//! payments, the verifier's CPU time, percentiles.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use obol_x402::wire::Authorization;
use obol_x402::{B256, PrivateKey, Requirement};

/// Anvil's second development key: a public test key, never funded on a real chain.
pub const PAYER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// The seller's wallet of the benchmark route.
pub const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
/// The benchmark route's price, atomic USDC units.
pub const PRICE: u64 = 1000;
/// The address the stub announces as its `upto` settler (anvil's first development account).
pub const STUB_SIGNER: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

#[derive(Default)]
struct Calls {
    verify: AtomicU64,
    settle: AtomicU64,
}

/// The facilitator stub: reads the body (as a real one would) and answers success at once.
async fn stub(
    calls: Arc<Calls>,
    payer: Arc<str>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = match path.as_str() {
        "/verify" => {
            calls.verify.fetch_add(1, Ordering::Relaxed);
            format!(r#"{{"isValid":true,"payer":"{payer}"}}"#)
        }
        "/settle" => {
            calls.settle.fetch_add(1, Ordering::Relaxed);
            // The receipt states the amount the verifier asked to settle (v2 `amount`, v1
            // `maxAmountRequired`), so a benchmark can check what was charged.
            let asked: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let wanted = &asked["paymentRequirements"];
            let amount = wanted["amount"]
                .as_str()
                .or_else(|| wanted["maxAmountRequired"].as_str())
                .unwrap_or("0");
            serde_json::json!({
                "success": true,
                "transaction": format!("0x{}", "ab".repeat(32)),
                "network": "eip155:84532",
                "payer": &*payer,
                "amount": amount,
            })
            .to_string()
        }
        // `exact` and `upto` on Base Sepolia, `upto` settled by STUB_SIGNER.
        "/supported" => format!(
            r#"{{"kinds":[{{"x402Version":2,"scheme":"exact","network":"eip155:84532"}},{{"x402Version":2,"scheme":"upto","network":"eip155:84532","extra":{{"facilitatorAddress":"{STUB_SIGNER}"}}}}],"extensions":[],"signers":{{}}}}"#
        ),
        "/calls" => format!(
            r#"{{"verify":{},"settle":{}}}"#,
            calls.verify.load(Ordering::Relaxed),
            calls.settle.load(Ordering::Relaxed)
        ),
        _ => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return Ok(r);
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// The stub's process: serves on `addr` until killed. `/calls` counts `/verify` and `/settle`.
pub async fn serve_stub(addr: &str, payer: &str) -> anyhow::Result<()> {
    let (calls, payer) = (Arc::new(Calls::default()), Arc::<str>::from(payer));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (calls, payer) = (calls.clone(), payer.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| stub(calls.clone(), payer.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The stub's `/verify` and `/settle` call counts.
pub async fn stub_calls(client: &reqwest::Client, stub: SocketAddr) -> anyhow::Result<(u64, u64)> {
    let v: serde_json::Value = client
        .get(format!("http://{stub}/calls"))
        .send()
        .await?
        .json()
        .await?;
    let count = |k: &str| v[k].as_u64().context("a call count");
    Ok((count("verify")?, count("settle")?))
}

/// `count` payment headers, each a fresh authorization (distinct nonce) valid for ten minutes.
pub fn sign_payments(
    key: &PrivateKey,
    req: &Requirement,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let run = u64::from(std::process::id()) << 32 | (now & 0xffff_ffff);
    (0..count)
        .map(|i| {
            let mut nonce = [0u8; 32];
            nonce[..8].copy_from_slice(&run.to_be_bytes());
            nonce[24..].copy_from_slice(&(i as u64).to_be_bytes());
            let auth = Authorization {
                from: key.address(),
                to: req.pay_to,
                value: req.amount,
                valid_after: now - 600,
                valid_before: now + 600,
                nonce: B256::from(nonce),
            };
            Ok(req.signed_v2_header(key, auth)?)
        })
        .collect()
}

/// User + system CPU time of process `pid` in µs (`/proc/<pid>/stat`, clock ticks of 10 ms:
/// divided over thousands of requests, the tick is fine enough).
pub fn process_cpu_micros(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").context("a stat line")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| -> anyhow::Result<f64> { Ok(fields.get(i).context("a field")?.parse()?) };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Ok((ticks(11)? + ticks(12)?) * 1e6 / 100.0)
}

/// A count from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v} is not a count")),
        Err(_) => Ok(default),
    }
}

/// The value at quantile `q` of sorted `v` (nearest rank).
pub fn pct(v: &[f64], q: f64) -> f64 {
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}
