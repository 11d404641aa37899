//! Gateway mode `proxy`: what the verifier adds to a paid request it forwards, against the same
//! request sent straight to the upstream. Run by `scripts/bench-gateway.sh`, which starts the
//! processes (each with a mode of this example, and the release verifier), passes their
//! addresses, and stops them by pid.
//!
//! - `gateway-bench stub ADDR`: the zero-latency facilitator stub (`/verify`, `/settle` answer
//!   success at once; `/calls` counts them).
//! - `gateway-bench upstream ADDR`: the upstream: `/v1/small` (a 1 KiB JSON answer),
//!   `/v1/large` (a 1 MiB JSON answer), `/v1/stream?events=N&every_ms=M[&until_ms=T]`
//!   (`text/event-stream`, the first event at once, then one every M ms, N in all or until the
//!   Unix time T in ms).
//! - `gateway-bench measure GATEWAY UPSTREAM STUB VERIFIER_PID`: the figures, as Markdown.
//!
//! Every paid request carries a freshly signed EIP-3009 authorization that passes the
//! verifier's local checks. Every answer is checked (status, the bytes of the body, the receipt
//! in the head or the trailer), the stub's `/verify` and `/settle` counts must equal the paid
//! requests, and a spent authorization must be refused at the end: a broken path fails the run
//! instead of printing a fast figure.
//!
//! Measured (sequential series alternate one direct and one paid request, so a drift of the
//! shared machine's load hits both alike):
//! 1. a 1 KiB and a 1 MiB JSON answer: p50 and p99 of the whole exchange, direct and through
//!    the gateway, and the verifier's CPU per paid request (`/proc/<pid>/stat`);
//! 2. an SSE stream: time to the first event, direct and through the gateway;
//! 3. `GW_STREAMS` paid streams open at once: the verifier's resident memory.
//!
//! Environment: `GW_REQUESTS` (1 KiB series, default 2000), `GW_LARGE_REQUESTS` (1 MiB series,
//! default 300), `GW_SSE_REQUESTS` (default 500), `GW_STREAMS` (default 1000),
//! `GW_STREAM_SECS` (how long the concurrent streams stay open, default 10),
//! `GW_STREAM_EVERY_MS` (their event interval, default 500).

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use obol_x402::{Network, PrivateKey, Requirement, U256};
use support::{
    PAY_TO, PAYER_KEY, PRICE, env_usize, pct, process_cpu_micros, serve_stub, sign_payments,
    stub_calls,
};

/// The offer's published prefix (stripped before forwarding).
const PREFIX: &str = "/services/demo";
/// The route the HTTPRoute would name in the route header.
const ROUTE: &str = "default/demo";
const SMALL: usize = 1 << 10;
const LARGE: usize = 1 << 20;
/// The SSE series' stream: a few events, the first at once.
const SSE_EVENTS: usize = 4;

/// A JSON document of exactly `len` bytes (`len` ≥ 16).
fn json_answer(len: usize) -> Bytes {
    let head = r#"{"object":"x","pad":""#;
    let tail = r#""}"#;
    let mut s = String::with_capacity(len);
    s.push_str(head);
    let pad = len - head.len() - tail.len();
    s.extend((0..pad).map(|i| char::from(b'a' + (i % 26) as u8)));
    s.push_str(tail);
    Bytes::from(s)
}

/// Event `i` of a stream, shaped like a chat completion chunk.
fn sse_event(i: usize) -> String {
    format!(
        "data: {{\"id\":\"bench\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {i}\"}}}}]}}\n\n"
    )
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Answer = Response<BoxBody<Bytes, Infallible>>;

fn query_u64(query: &str, key: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

async fn upstream(
    small: Bytes,
    large: Bytes,
    req: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let json = |body: Bytes| {
        let mut r = Response::new(Full::new(body).boxed());
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    };
    Ok(match req.uri().path() {
        "/v1/small" => json(small),
        "/v1/large" => json(large),
        "/v1/stream" => {
            let q = req.uri().query().unwrap_or("");
            let events = query_u64(q, "events").unwrap_or(SSE_EVENTS as u64) as usize;
            let every = Duration::from_millis(query_u64(q, "every_ms").unwrap_or(0));
            let until = query_u64(q, "until_ms");
            let stream = futures::stream::unfold(0usize, move |i| async move {
                let more = match until {
                    Some(t) => i == 0 || unix_ms() < t,
                    None => i < events,
                };
                if !more {
                    return None;
                }
                if i > 0 && !every.is_zero() {
                    tokio::time::sleep(every).await;
                }
                let frame = Frame::data(Bytes::from(sse_event(i)));
                Some((Ok::<_, Infallible>(frame), i + 1))
            });
            let mut r = Response::new(StreamBody::new(stream).boxed());
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            r
        }
        _ => {
            let mut r = Response::new(Empty::new().boxed());
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    })
}

async fn serve_upstream(addr: &str) -> anyhow::Result<()> {
    let (small, large) = (json_answer(SMALL), json_answer(LARGE));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (small, large) = (small.clone(), large.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| upstream(small.clone(), large.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// One exchange, timed: the head, the first body byte, the whole answer.
struct Exchange {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
    first_byte: Duration,
    total: Duration,
}

async fn exchange(
    client: &HttpClient,
    uri: &str,
    payment: Option<&str>,
) -> anyhow::Result<Exchange> {
    let mut req = Request::get(uri);
    if let Some(p) = payment {
        req = req
            .header("payment-signature", p)
            .header(obol_api::proxy::ROUTE_HEADER, ROUTE)
            .header("te", "trailers");
    }
    let req = req.body(Empty::new())?;
    let start = Instant::now();
    let resp = client.request(req).await?;
    let (parts, mut body) = resp.into_parts();
    let mut out = Exchange {
        status: parts.status,
        headers: parts.headers,
        body: Vec::new(),
        trailers: None,
        first_byte: Duration::ZERO,
        total: Duration::ZERO,
    };
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if out.first_byte.is_zero() && frame.is_data() {
            out.first_byte = start.elapsed();
        }
        match frame.into_data() {
            Ok(data) => out.body.extend_from_slice(&data),
            Err(frame) => out.trailers = frame.into_trailers().ok(),
        }
    }
    out.total = start.elapsed();
    Ok(out)
}

/// The receipt of a paid answer, in its head or (a stream) its trailers.
fn receipt(x: &Exchange) -> Option<&HeaderValue> {
    x.headers
        .get("payment-response")
        .or_else(|| x.trailers.as_ref()?.get("payment-response"))
}

/// A paid answer: 200, the expected body, a receipt.
fn check_paid(x: &Exchange, expected: &[u8]) -> anyhow::Result<()> {
    ensure!(
        x.status == StatusCode::OK,
        "paid request answered {}",
        x.status
    );
    ensure!(
        x.body == expected,
        "paid answer: {} bytes, not the upstream's {}",
        x.body.len(),
        expected.len()
    );
    ensure!(
        receipt(x).is_some(),
        "a paid answer without PAYMENT-RESPONSE"
    );
    Ok(())
}

fn check_direct(x: &Exchange, expected: &[u8]) -> anyhow::Result<()> {
    ensure!(x.status == StatusCode::OK, "upstream answered {}", x.status);
    ensure!(x.body == expected, "upstream answer differs");
    Ok(())
}

/// Latencies in µs, sorted.
struct Lat(Vec<f64>);

impl Lat {
    fn new(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Self(v)
    }
    fn p50(&self) -> f64 {
        pct(&self.0, 0.5)
    }
    fn p99(&self) -> f64 {
        pct(&self.0, 0.99)
    }
}

/// A series alternating one direct and one paid request.
struct Pair {
    label: &'static str,
    direct: Lat,
    gateway: Lat,
    cpu_per_paid: f64,
}

struct Bench {
    client: HttpClient,
    gateway: SocketAddr,
    upstream: SocketAddr,
    pid: u32,
    payments: std::vec::IntoIter<String>,
}

impl Bench {
    fn take(&mut self, n: usize) -> anyhow::Result<Vec<String>> {
        let v: Vec<String> = self.payments.by_ref().take(n).collect();
        ensure!(v.len() == n, "not enough signed payments");
        Ok(v)
    }

    /// `n` rounds of one direct and one paid request for `path`; `first` times the first body
    /// byte instead of the whole answer.
    async fn pair(
        &mut self,
        label: &'static str,
        path: &str,
        expected: &[u8],
        n: usize,
        first: bool,
    ) -> anyhow::Result<Pair> {
        let payments = self.take(n)?;
        let direct_uri = format!("http://{}{path}", self.upstream);
        let gateway_uri = format!("http://{}{PREFIX}{path}", self.gateway);
        let pick = |x: &Exchange| if first { x.first_byte } else { x.total }.as_secs_f64() * 1e6;
        let (mut direct, mut gateway) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let cpu = process_cpu_micros(self.pid)?;
        for (i, p) in payments.iter().enumerate() {
            let d = exchange(&self.client, &direct_uri, None).await?;
            check_direct(&d, expected).with_context(|| format!("{label}, direct {i}"))?;
            direct.push(pick(&d));
            let g = exchange(&self.client, &gateway_uri, Some(p)).await?;
            check_paid(&g, expected).with_context(|| format!("{label}, paid {i}"))?;
            gateway.push(pick(&g));
        }
        let cpu_per_paid = (process_cpu_micros(self.pid)? - cpu) / n as f64;
        Ok(Pair {
            label,
            direct: Lat::new(direct),
            gateway: Lat::new(gateway),
            cpu_per_paid,
        })
    }
}

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc/<pid>/status")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Streams {
    n: usize,
    rss_idle: u64,
    rss_all_open: Option<u64>,
    rss_peak: u64,
    rss_after: u64,
    most_open: usize,
    ramp: Duration,
    cpu_per_stream: f64,
    events: usize,
}

/// `n` paid streams, opened with at most 64 in their handshake at a time, all held open until
/// the same moment (`secs` after the start); the verifier's RSS sampled every 20 ms.
async fn concurrent_streams(
    b: &mut Bench,
    n: usize,
    secs: u64,
    every_ms: u64,
) -> anyhow::Result<Streams> {
    let payments = b.take(n)?;
    let until = unix_ms() + secs * 1000;
    let uri = format!(
        "http://{}{PREFIX}/v1/stream?every_ms={every_ms}&until_ms={until}",
        b.gateway
    );
    let (open, ended, opened) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let handshakes = Arc::new(tokio::sync::Semaphore::new(64));
    let rss_idle = rss_kib(b.pid)?;
    let cpu = process_cpu_micros(b.pid)?;
    let start = Instant::now();
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(n);
    for p in payments {
        let (client, uri) = (b.client.clone(), uri.clone());
        let (open, ended, opened, failed, handshakes) = (
            open.clone(),
            ended.clone(),
            opened.clone(),
            failed.clone(),
            handshakes.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let one = async {
                let mut permit = Some(handshakes.acquire_owned().await?);
                let req = Request::get(&uri)
                    .header("payment-signature", &p)
                    .header(obol_api::proxy::ROUTE_HEADER, ROUTE)
                    .header("te", "trailers")
                    .body(Empty::new())?;
                let resp = client.request(req).await?;
                ensure!(
                    resp.status() == StatusCode::OK,
                    "stream answered {}",
                    resp.status()
                );
                let mut body = resp.into_body();
                let (mut events, mut trailers) = (0usize, None);
                while let Some(frame) = body.frame().await {
                    match frame?.into_data() {
                        Ok(data) => {
                            events += data.windows(2).filter(|w| *w == b"\n\n").count();
                            if permit.take().is_some() {
                                opened.fetch_add(1, Ordering::SeqCst);
                                open.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(frame) => trailers = frame.into_trailers().ok(),
                    }
                }
                if permit.is_none() {
                    open.fetch_sub(1, Ordering::SeqCst);
                }
                let receipt = trailers.as_ref().and_then(|t| t.get("payment-response"));
                ensure!(
                    receipt.is_some(),
                    "a stream ended without its receipt trailer"
                );
                anyhow::Ok(events)
            };
            let result = one.await;
            if result.is_err() {
                failed.fetch_add(1, Ordering::SeqCst);
            }
            ended.fetch_add(1, Ordering::SeqCst);
            result
        }));
    }
    let (mut peak, mut all_open, mut most_open, mut ramp) = (rss_idle, None, 0, None);
    let deadline = start + Duration::from_secs(secs + 60);
    while ended.load(Ordering::SeqCst) < n && failed.load(Ordering::SeqCst) == 0 {
        if Instant::now() > deadline {
            tasks.iter().for_each(|t| t.abort());
            bail!("the streams did not end in time");
        }
        let rss = rss_kib(b.pid)?;
        peak = peak.max(rss);
        let now_open = open.load(Ordering::SeqCst);
        most_open = most_open.max(now_open);
        if now_open == n && all_open.is_none() {
            ramp = Some(start.elapsed());
            all_open = Some(rss);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if failed.load(Ordering::SeqCst) > 0 {
        tasks.iter().for_each(|t| t.abort());
        for t in tasks {
            if let Ok(Err(error)) = t.await {
                return Err(error.context("a concurrent paid stream"));
            }
        }
        bail!("a concurrent paid stream failed");
    }
    let mut events = 0;
    for t in tasks {
        events += t.await??;
    }
    ensure!(opened.load(Ordering::SeqCst) == n);
    // Let the last settlements finish before the after-figure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(Streams {
        n,
        rss_idle,
        rss_all_open: all_open,
        rss_peak: peak,
        rss_after: rss_kib(b.pid)?,
        most_open,
        ramp: ramp.unwrap_or_default(),
        cpu_per_stream: (process_cpu_micros(b.pid)? - cpu) / n as f64,
        events,
    })
}

async fn measure(args: &[String]) -> anyhow::Result<()> {
    let [gateway, upstream_addr, stub, pid] = args else {
        bail!("usage: gateway-bench measure GATEWAY UPSTREAM STUB VERIFIER_PID");
    };
    let gateway: SocketAddr = gateway.parse()?;
    let upstream_addr: SocketAddr = upstream_addr.parse()?;
    let stub: SocketAddr = stub.parse()?;
    let pid: u32 = pid.parse()?;
    let n_small = env_usize("GW_REQUESTS", 2000)?;
    let n_large = env_usize("GW_LARGE_REQUESTS", 300)?;
    let n_sse = env_usize("GW_SSE_REQUESTS", 500)?;
    let n_streams = env_usize("GW_STREAMS", 1000)?;
    let stream_secs = env_usize("GW_STREAM_SECS", 10)? as u64;
    let every_ms = env_usize("GW_STREAM_EVERY_MS", 500)? as u64;
    let warmup = 100;

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let key: PrivateKey = PAYER_KEY.parse()?;
    let network = Network::resolve("base-sepolia").context("network")?;
    let req = Requirement::usdc(network, PAY_TO.parse()?, U256::from(PRICE), 60)?;
    let total = warmup + n_small + n_large + n_sse + n_streams + 1;
    let signing = Instant::now();
    let payments = sign_payments(&key, &req, total)?;
    eprintln!(
        "signed {total} authorizations in {:.1} s",
        signing.elapsed().as_secs_f64()
    );
    let rss_start = rss_kib(pid)?;
    let http = reqwest::Client::new();
    let (verify0, settle0) = stub_calls(&http, stub).await?;
    let mut b = Bench {
        client,
        gateway,
        upstream: upstream_addr,
        pid,
        payments: payments.into_iter(),
    };
    let (small, large) = (json_answer(SMALL), json_answer(LARGE));
    let stream: String = (0..SSE_EVENTS).map(sse_event).collect();

    // Warm-up: connections, pools, caches; and an authorization to replay at the end.
    b.pair("warm-up", "/v1/small", &small, warmup, false)
        .await?;
    let replay = b.take(1)?.remove(0);
    let g = exchange(
        &b.client,
        &format!("http://{gateway}{PREFIX}/v1/small"),
        Some(&replay),
    )
    .await?;
    check_paid(&g, &small)?;
    let unpaid = exchange(
        &b.client,
        &format!("http://{gateway}{PREFIX}/v1/small"),
        None,
    )
    .await?;
    ensure!(
        unpaid.status == StatusCode::PAYMENT_REQUIRED,
        "an unpaid request answered {}",
        unpaid.status
    );
    eprintln!("warm-up done; measuring");

    let floor = {
        let mut v = Vec::with_capacity(n_small);
        let url = format!("http://{stub}/calls");
        for _ in 0..n_small.min(1000) {
            let t = Instant::now();
            http.get(&url).send().await?.bytes().await?;
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Lat::new(v)
    };
    let s = b
        .pair("1 KiB JSON", "/v1/small", &small, n_small, false)
        .await?;
    let l = b
        .pair("1 MiB JSON", "/v1/large", &large, n_large, false)
        .await?;
    let sse_path = format!("/v1/stream?events={SSE_EVENTS}");
    let e = b
        .pair(
            "SSE, time to first event",
            &sse_path,
            stream.as_bytes(),
            n_sse,
            true,
        )
        .await?;
    eprintln!("opening {n_streams} paid streams for {stream_secs} s");
    let st = concurrent_streams(&mut b, n_streams, stream_secs, every_ms).await?;

    // Every paid request cost exactly one /verify and one /settle; a spent one is refused.
    let paid = (warmup + 1 + n_small + n_large + n_sse + n_streams) as u64;
    let (verify1, settle1) = stub_calls(&http, stub).await?;
    let (v, se) = (verify1 - verify0, settle1 - settle0);
    ensure!(
        v == paid && se == paid,
        "{paid} paid requests made {v} /verify and {se} /settle calls"
    );
    let again = exchange(
        &b.client,
        &format!("http://{gateway}{PREFIX}/v1/small"),
        Some(&replay),
    )
    .await?;
    ensure!(
        again.status == StatusCode::PAYMENT_REQUIRED,
        "a spent authorization answered {}",
        again.status
    );

    println!(
        "| answer | pairs | direct p50 µs | direct p99 µs | gateway p50 µs | gateway p99 µs | added p50 µs | added p99 µs | verifier CPU µs per paid request |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for p in [&s, &l, &e] {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            p.label,
            p.direct.0.len(),
            p.direct.p50(),
            p.direct.p99(),
            p.gateway.p50(),
            p.gateway.p99(),
            p.gateway.p50() - p.direct.p50(),
            p.gateway.p99() - p.direct.p99(),
            p.cpu_per_paid,
        );
    }
    println!();
    println!(
        "One loopback exchange with the facilitator stub (the gateway makes two per paid request, \
         `/verify` and `/settle`): p50 {:.0} µs, p99 {:.0} µs.",
        floor.p50(),
        floor.p99()
    );
    println!();
    println!(
        "| concurrent paid streams | most open at once | all open after | verifier RSS at start / idle before / all open / peak / after MiB | CPU µs per stream | events |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.1} / {:.1} / {} / {:.1} / {:.1} | {:.0} | {} |",
        st.n,
        st.most_open,
        if st.rss_all_open.is_some() {
            format!("{:.1} s", st.ramp.as_secs_f64())
        } else {
            "never".to_owned()
        },
        mib(rss_start),
        mib(st.rss_idle),
        st.rss_all_open
            .map_or("–".to_owned(), |k| format!("{:.1}", mib(k))),
        mib(st.rss_peak),
        mib(st.rss_after),
        st.cpu_per_stream,
        st.events,
    );
    println!();
    println!(
        "Checked: {paid} paid answers, each with its body and receipt; {v} /verify and {se} /settle \
         at the stub; a spent authorization refused with 402."
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stub") => {
            let addr = args.get(1).context("usage: gateway-bench stub ADDR")?;
            let payer = PAYER_KEY.parse::<PrivateKey>()?.address().to_string();
            serve_stub(addr, &payer).await
        }
        Some("upstream") => {
            let addr = args.get(1).context("usage: gateway-bench upstream ADDR")?;
            serve_upstream(addr).await
        }
        Some("measure") => measure(&args[1..]).await,
        _ => bail!(
            "usage: gateway-bench stub ADDR | upstream ADDR | measure GATEWAY UPSTREAM STUB PID"
        ),
    }
}
