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
//! - `gateway-bench metering GATEWAY STUB VERIFIER_PID`: what metering adds (section below).
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
//! Metering (issue 20's figure): the same LLM-shaped answers — a 1 MiB JSON body with `usage` at
//! its end, and a stream of `GW_METER_EVENTS` chunk events (default 2 000) ending with a usage
//! event and `[DONE]` — bought alternately on a route priced per request (`exact`, nothing to
//! meter) and on a route priced per token (`upto`, Permit2, metered from the answer's usage).
//! Both go through the same gateway to the same upstream and the same stub, so the difference is
//! metering: the usage read, the charge computed, the different scheme's local check. Every
//! metered receipt must state exactly `ceil(tokens × rate / 10⁶)`.
//!
//! Environment: `GW_REQUESTS` (1 KiB series, default 2000), `GW_LARGE_REQUESTS` (1 MiB series,
//! default 300), `GW_SSE_REQUESTS` (default 500), `GW_STREAMS` (default 1000),
//! `GW_STREAM_SECS` (how long the concurrent streams stay open, default 10),
//! `GW_STREAM_EVERY_MS` (their event interval, default 500), `GW_METER_REQUESTS` (metering
//! pairs per answer, default 300), `GW_METER_EVENTS` (events per metered stream, default 2000).

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
use obol_x402::permit2::UPTO_PROXY_ADDRESS;
use obol_x402::verify::UptoRequirement;
use obol_x402::wire::{Permit2Authorization, Permitted, UptoPaymentPayload, UptoWitness, V2Tag};
use obol_x402::{Network, PrivateKey, Requirement, U256, codec};
use support::{
    PAY_TO, PAYER_KEY, PRICE, STUB_SIGNER, env_usize, pct, process_cpu_micros, serve_stub,
    sign_payments, stub_calls,
};

/// The offer's published prefix (stripped before forwarding).
const PREFIX: &str = "/services/demo";
/// The route the HTTPRoute would name in the route header.
const ROUTE: &str = "default/demo";
const SMALL: usize = 1 << 10;
const LARGE: usize = 1 << 20;
/// The SSE series' stream: a few events, the first at once.
const SSE_EVENTS: usize = 4;
/// The metered route (priced per token) of the metering series, and its prefix.
const LLM_ROUTE: &str = "default/llm";
const LLM_PREFIX: &str = "/services/llm";
/// Its tariff, as `scripts/bench-gateway.sh` writes it: atomic units per million input and
/// output tokens, the tokens the maximum is priced at, the maximum.
const IN_PER_MTOK: u64 = 1_000_000;
const OUT_PER_MTOK: u64 = 2_000_000;
const MAX_AMOUNT: u64 = 200_000;
/// The token counts the upstream's metered answers report (JSON, stream).
const JSON_USAGE: (u64, u64) = (1_000, 2_000);
const STREAM_PROMPT: u64 = 100;

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

/// A chat completion of exactly `len` bytes whose `usage` comes last, as LLM servers write it.
fn json_with_usage(len: usize) -> Bytes {
    let (i, o) = JSON_USAGE;
    let head = r#"{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":""#;
    let tail = format!(
        r#""}}}}],"usage":{{"prompt_tokens":{i},"completion_tokens":{o},"total_tokens":{}}}}}"#,
        i + o
    );
    let mut s = String::with_capacity(len);
    s.push_str(head);
    let pad = len - head.len() - tail.len();
    s.extend((0..pad).map(|k| char::from(b'a' + (k % 26) as u8)));
    s.push_str(&tail);
    Bytes::from(s)
}

/// A metered stream: `events` chunk events (one completion token each), the usage event and
/// `[DONE]`.
fn stream_with_usage(events: usize) -> String {
    let mut s: String = (0..events).map(sse_event).collect();
    s.push_str(&format!(
        "data: {{\"id\":\"bench\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{STREAM_PROMPT},\"completion_tokens\":{events},\"total_tokens\":{}}}}}\n\n",
        STREAM_PROMPT + events as u64
    ));
    s.push_str("data: [DONE]\n\n");
    s
}

/// What the metered route charges for `input` and `output` tokens: rounded up, capped.
fn charge(input: u64, output: u64) -> u64 {
    let micro =
        u128::from(input) * u128::from(IN_PER_MTOK) + u128::from(output) * u128::from(OUT_PER_MTOK);
    let atomic = micro.div_ceil(1_000_000);
    u64::try_from(atomic).map_or(MAX_AMOUNT, |a| a.min(MAX_AMOUNT))
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
    metered: Bytes,
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
        "/v1/usage-large" => json(metered),
        "/v1/usage-stream" => {
            let q = req.uri().query().unwrap_or("");
            let events = query_u64(q, "events").unwrap_or(2000) as usize;
            // One frame per event, as a server flushing each token would send them.
            let frames: Vec<Bytes> = stream_with_usage(events)
                .split_inclusive("\n\n")
                .map(|e| Bytes::from(e.to_owned()))
                .collect();
            let stream = futures::stream::iter(
                frames
                    .into_iter()
                    .map(|b| Ok::<_, Infallible>(Frame::data(b))),
            );
            let mut r = Response::new(StreamBody::new(stream).boxed());
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            r
        }
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
    let (small, large, metered) = (
        json_answer(SMALL),
        json_answer(LARGE),
        json_with_usage(LARGE),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (small, large, metered) = (small.clone(), large.clone(), metered.clone());
        tokio::spawn(async move {
            let service =
                service_fn(move |req| upstream(small.clone(), large.clone(), metered.clone(), req));
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
    exchange_on(client, uri, payment, ROUTE).await
}

/// [`exchange`] on the route `route` (the header the HTTPRoute would set).
async fn exchange_on(
    client: &HttpClient,
    uri: &str,
    payment: Option<&str>,
    route: &str,
) -> anyhow::Result<Exchange> {
    let mut req = Request::get(uri);
    if let Some(p) = payment {
        req = req
            .header("payment-signature", p)
            .header(obol_api::proxy::ROUTE_HEADER, route)
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

/// `count` `upto` payments for the metered route: Permit2 authorizations of the route's maximum,
/// to be settled by the stub's announced signer.
fn sign_upto(key: &PrivateKey, req: &UptoRequirement, count: usize) -> anyhow::Result<Vec<String>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let run = U256::from(u64::from(std::process::id()) << 32 | (now & 0xffff_ffff)) << 64;
    let chain_id = req.base.network.chain_id;
    (0..count)
        .map(|i| {
            let auth = Permit2Authorization {
                from: key.address(),
                permitted: Permitted {
                    token: req.base.asset,
                    amount: req.base.amount,
                },
                spender: UPTO_PROXY_ADDRESS,
                nonce: run | U256::from(i),
                deadline: now + 600,
                witness: UptoWitness {
                    to: req.base.pay_to,
                    facilitator: req.facilitator,
                    valid_after: 0,
                },
            };
            let payload = obol_x402::permit2::sign_payload(key, chain_id, auth)?;
            let payment = UptoPaymentPayload {
                x402_version: V2Tag::default(),
                resource: None,
                accepted: req.to_v2(),
                payload,
                extensions: None,
            };
            Ok(codec::encode_header(&payment)?)
        })
        .collect()
}

/// The amount a paid answer's receipt says was settled.
fn settled(x: &Exchange) -> anyhow::Result<u64> {
    let r = receipt(x).context("no receipt")?.to_str()?;
    let settle = codec::decode_settle_response(r)?;
    ensure!(settle.success, "the receipt says the settlement failed");
    settle
        .amount
        .context("a receipt without an amount")?
        .parse()
        .context("the receipt's amount")
}

/// One metering series: `n` rounds of the same answer bought on the per-request route and on
/// the metered route; then the verifier's CPU for `cpu_n` of each, one after the other.
#[allow(clippy::too_many_arguments)]
async fn metering_pair(
    client: &HttpClient,
    gateway: SocketAddr,
    pid: u32,
    path: &str,
    expected: &[u8],
    want: u64,
    exact: &mut std::vec::IntoIter<String>,
    upto: &mut std::vec::IntoIter<String>,
    n: usize,
    cpu_n: usize,
) -> anyhow::Result<(Lat, Lat, f64, f64)> {
    let plain = format!("http://{gateway}{PREFIX}{path}");
    let metered = format!("http://{gateway}{LLM_PREFIX}{path}");
    let mut one = async |meter: bool| -> anyhow::Result<f64> {
        let x = if meter {
            let p = upto.next().context("not enough upto payments")?;
            exchange_on(client, &metered, Some(&p), LLM_ROUTE).await?
        } else {
            let p = exact.next().context("not enough exact payments")?;
            exchange(client, &plain, Some(&p)).await?
        };
        check_paid(&x, expected).with_context(|| format!("{path}, metered {meter}"))?;
        let amount = settled(&x)?;
        let wanted = if meter { want } else { PRICE };
        ensure!(
            amount == wanted,
            "{path}: settled {amount}, expected {wanted} (metered {meter})"
        );
        Ok(x.total.as_secs_f64() * 1e6)
    };
    let (mut without, mut with) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        without.push(one(false).await?);
        with.push(one(true).await?);
    }
    let mut cpu = [0.0; 2];
    for (k, meter) in [false, true].into_iter().enumerate() {
        let start = process_cpu_micros(pid)?;
        for _ in 0..cpu_n {
            one(meter).await?;
        }
        cpu[k] = (process_cpu_micros(pid)? - start) / cpu_n as f64;
    }
    Ok((Lat::new(without), Lat::new(with), cpu[0], cpu[1]))
}

/// What metering adds: see the module's documentation.
async fn metering(args: &[String]) -> anyhow::Result<()> {
    let [gateway, stub, pid] = args else {
        bail!("usage: gateway-bench metering GATEWAY STUB VERIFIER_PID");
    };
    let gateway: SocketAddr = gateway.parse()?;
    let stub: SocketAddr = stub.parse()?;
    let pid: u32 = pid.parse()?;
    let n = env_usize("GW_METER_REQUESTS", 300)?;
    let events = env_usize("GW_METER_EVENTS", 2000)?;
    let (warmup, cpu_n) = (20, n.min(100));

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let key: PrivateKey = PAYER_KEY.parse()?;
    let network = Network::resolve("base-sepolia").context("network")?;
    let exact_req = Requirement::usdc(network, PAY_TO.parse()?, U256::from(PRICE), 60)?;
    let upto_req = UptoRequirement {
        base: Requirement {
            amount: U256::from(MAX_AMOUNT),
            ..exact_req.clone()
        },
        facilitator: STUB_SIGNER.parse()?,
    };
    // Per answer: warm-up, the pairs, the CPU series.
    let each = 2 * (warmup + n + cpu_n);
    let mut exact = sign_payments(&key, &exact_req, each)?.into_iter();
    let mut upto = sign_upto(&key, &upto_req, each)?.into_iter();
    let http = reqwest::Client::new();
    let (verify0, settle0) = stub_calls(&http, stub).await?;

    // The metered route sells upto (the stub announced its signer) and still sells exact.
    let unpaid = exchange_on(
        &client,
        &format!("http://{gateway}{LLM_PREFIX}/v1/usage-large"),
        None,
        LLM_ROUTE,
    )
    .await?;
    let offered = unpaid
        .headers
        .get("payment-required")
        .context("the metered route's 402 has no PAYMENT-REQUIRED")?
        .to_str()?;
    let offered = codec::decode_payment_required(offered)?;
    let schemes: Vec<&str> = offered
        .accepts
        .iter()
        .filter_map(|a| a.parsed().map(|r| r.scheme.as_str()))
        .collect();
    ensure!(
        schemes.contains(&"upto") && schemes.contains(&"exact"),
        "the metered route offers {schemes:?}, not exact and upto"
    );

    let large = json_with_usage(LARGE);
    let stream = stream_with_usage(events);
    let stream_path = format!("/v1/usage-stream?events={events}");
    let json_charge = charge(JSON_USAGE.0, JSON_USAGE.1);
    let stream_charge = charge(STREAM_PROMPT, events as u64);
    let mut rows = Vec::new();
    for (label, path, expected, want) in [
        (
            "1 MiB JSON, usage at the end",
            "/v1/usage-large",
            large.as_ref(),
            json_charge,
        ),
        (
            "SSE, whole stream",
            stream_path.as_str(),
            stream.as_bytes(),
            stream_charge,
        ),
    ] {
        metering_pair(
            &client, gateway, pid, path, expected, want, &mut exact, &mut upto, warmup, 0,
        )
        .await?;
        let (without, with, cpu_without, cpu_with) = metering_pair(
            &client, gateway, pid, path, expected, want, &mut exact, &mut upto, n, cpu_n,
        )
        .await?;
        rows.push((label, want, without, with, cpu_without, cpu_with));
    }
    let (verify1, settle1) = stub_calls(&http, stub).await?;
    let paid = 2 * 2 * (warmup + n + cpu_n) as u64;
    ensure!(
        verify1 - verify0 == paid && settle1 - settle0 == paid,
        "{paid} paid requests made {} /verify and {} /settle calls",
        verify1 - verify0,
        settle1 - settle0
    );

    println!(
        "| answer (events) | pairs | per request p50 / p99 µs | metered p50 / p99 µs | added p50 µs | added p99 µs | verifier CPU µs per request / metered | charged per metered request |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, want, without, with, cpu_without, cpu_with) in rows {
        println!(
            "| {label} | {} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} | {:.0} | {:.0} / {:.0} | {want} |",
            without.0.len(),
            without.p50(),
            without.p99(),
            with.p50(),
            with.p99(),
            with.p50() - without.p50(),
            with.p99() - without.p99(),
            cpu_without,
            cpu_with,
        );
    }
    println!();
    println!(
        "Checked: {paid} paid answers, each with its body byte for byte and its receipt; every \
         metered receipt settled exactly the charge for its usage ({json_charge} for the JSON \
         answer, {stream_charge} for a stream of {events} events), every per-request one {PRICE}; \
         {paid} /verify and /settle at the stub."
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
        Some("metering") => metering(&args[1..]).await,
        _ => bail!(
            "usage: gateway-bench stub ADDR | upstream ADDR | measure GATEWAY UPSTREAM STUB PID \
             | metering GATEWAY STUB PID"
        ),
    }
}
