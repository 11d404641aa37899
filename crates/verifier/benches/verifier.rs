//! Criterion benchmarks of the request path's pure parts: route lookup at 10 000 routes (by
//! key and by path) and the local payment check (decode + EIP-712 signature recovery), plus
//! the unpaid 402 decision. Before criterion runs, per-call percentiles of the lookups are
//! printed (criterion reports means; the target is a p99).
//!
//! `cargo bench -p obol-verifier --bench verifier`

use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use obol_verifier::RouteTable;
use obol_verifier::decide::{self, Forwarded};
use obol_x402::wire::Authorization;
use obol_x402::{B256, PrivateKey, Requirement};

mod common;

const ROUTES: usize = 10_000;
const NOW: u64 = 1_750_000_000;

/// Everything the three passes (CPU costs, per-call percentiles, criterion) measure against,
/// built once.
struct Fixture {
    table: RouteTable,
    paths: Vec<String>,
    req: Requirement,
    header: String,
    payload: obol_x402::PaymentPayload,
}

impl Fixture {
    fn new() -> Self {
        let req = requirement();
        let header = payment_header(&req);
        let payload = obol_x402::codec::decode_payment_payload(&header).expect("decodes");
        Self {
            table: common::table(ROUTES),
            paths: paths(),
            req,
            header,
            payload,
        }
    }

    /// The priced route of the unpaid-402 benchmark, and the request it answers.
    fn unpaid(
        &self,
    ) -> (
        std::sync::Arc<obol_verifier::RouteEntry>,
        Forwarded<'static>,
    ) {
        let route = self.table.find("/services/offer-5/x").expect("route");
        let fwd = Forwarded {
            proto: Some("https"),
            host: Some("obol.stack"),
            uri: "/services/offer-5/v1/chat/completions",
            wants_html: false,
        };
        (route, fwd)
    }
}

fn paths() -> Vec<String> {
    (0..1000)
        .map(|i| match i % 4 {
            0 => format!("/services/offer-{}/v1/chat/completions", (i * 37) % ROUTES),
            1 => format!("/services/offer-{}", (i * 91) % ROUTES),
            2 => format!("/exact/offer-{}", (i * 100) % ROUTES),
            _ => format!("/unpriced/{i}/x/y"),
        })
        .collect()
}

fn percentiles(label: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)];
    println!(
        "{label}: p50 {} ns, p99 {} ns, p99.9 {} ns over {} calls",
        p(0.50),
        p(0.99),
        p(0.999),
        ns.len()
    );
}

/// CPU time of this thread in ns (`/proc/thread-self/schedstat`): unlike wall time it does not
/// count time spent preempted, so figures stay meaningful on a busy machine.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cpu_per_op(label: &str, iters: u32, mut f: impl FnMut(u32)) {
    let (cpu, wall) = (thread_cpu_ns(), Instant::now());
    for i in 0..iters {
        f(i);
    }
    let cpu = (thread_cpu_ns() - cpu) as f64 / f64::from(iters);
    let wall = wall.elapsed().as_nanos() as f64 / f64::from(iters);
    println!("{label}: {cpu:.0} ns CPU/op ({wall:.0} ns wall/op)");
}

/// Mean CPU cost of each operation, before criterion's wall-clock runs.
fn cpu_costs(f: &Fixture) {
    let (t, paths) = (&f.table, &f.paths);
    cpu_per_op("lookup by path, 10000 routes", 1_000_000, |i| {
        black_box(t.find(black_box(&paths[i as usize % paths.len()])));
    });
    cpu_per_op("lookup by key, 10000 routes", 1_000_000, |_| {
        black_box(t.get(black_box("ns-42"), black_box("offer-4242")));
    });
    cpu_per_op("local payment check (decode + recover)", 2_000, |_| {
        black_box(decide::check_payment(&f.req, black_box(&f.header), NOW).is_ok());
    });
    cpu_per_op("signature check only (verify_payment)", 2_000, |_| {
        black_box(obol_x402::verify_payment(&f.req, black_box(&f.payload), NOW).is_ok());
    });
    let (route, fwd) = f.unpaid();
    let r = route.requirement.as_ref().expect("priced");
    cpu_per_op("unpaid 402 decision", 100_000, |_| {
        let res = decide::resource(&route, &fwd);
        black_box(decide::payment_required(r, &res, false, None));
    });
}

/// Times every call separately (Instant overhead included, so this overstates).
fn lookup_percentiles(f: &Fixture) {
    let (t, paths) = (&f.table, &f.paths);
    let mut by_path = Vec::with_capacity(200_000);
    let mut by_key = Vec::with_capacity(200_000);
    for round in 0..200 {
        for (i, p) in paths.iter().enumerate() {
            let start = Instant::now();
            black_box(t.find(black_box(p)));
            by_path.push(start.elapsed().as_nanos() as u64);
            let n = (i * 7 + round) % ROUTES;
            let (ns, name) = (format!("ns-{}", n % 100), format!("offer-{n}"));
            let start = Instant::now();
            black_box(t.get(black_box(&ns), black_box(&name)));
            by_key.push(start.elapsed().as_nanos() as u64);
        }
    }
    percentiles("lookup by path at 10000 routes", by_path);
    percentiles("lookup by key at 10000 routes", by_key);
}

fn requirement() -> Requirement {
    let net = obol_x402::Network::resolve("base-sepolia").expect("network");
    let pay_to = common::PAY_TO.parse().expect("address");
    Requirement::usdc(net, pay_to, obol_x402::U256::from(1000u64), 60).expect("requirement")
}

fn payment_header(req: &Requirement) -> String {
    let key: PrivateKey = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
        .parse()
        .expect("key");
    let auth = Authorization {
        from: key.address(),
        to: req.pay_to,
        value: req.amount,
        valid_after: NOW - 600,
        valid_before: NOW + 60,
        nonce: B256::repeat_byte(7),
    };
    req.signed_v2_header(&key, auth).expect("signs and encodes")
}

fn benches(c: &mut Criterion, f: &Fixture) {
    let (t, paths) = (&f.table, &f.paths);
    let mut i = 0usize;
    c.bench_function("route lookup by path, 10000 routes", |b| {
        b.iter(|| {
            i = (i + 1) % paths.len();
            black_box(t.find(black_box(&paths[i])))
        })
    });
    c.bench_function("route lookup by key, 10000 routes", |b| {
        b.iter(|| black_box(t.get(black_box("ns-42"), black_box("offer-4242"))))
    });
    c.bench_function("local payment check (decode + EIP-712 recover)", |b| {
        b.iter(|| black_box(decide::check_payment(&f.req, black_box(&f.header), NOW)).is_ok())
    });
    c.bench_function("signature check only (verify_payment)", |b| {
        b.iter(|| {
            black_box(obol_x402::verify_payment(
                &f.req,
                black_box(&f.payload),
                NOW,
            ))
            .is_ok()
        })
    });
    let (route, fwd) = f.unpaid();
    let r = route.requirement.as_ref().expect("priced");
    c.bench_function("unpaid 402 decision", |b| {
        b.iter(|| {
            let res = decide::resource(&route, &fwd);
            black_box(decide::payment_required(r, &res, false, None))
        })
    });
}

fn main() {
    let fixture = Fixture::new();
    cpu_costs(&fixture);
    lookup_percentiles(&fixture);
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion, &fixture);
    criterion.final_summary();
}
