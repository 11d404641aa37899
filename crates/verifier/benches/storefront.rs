//! The storefront's figures (issue 19), printed, one run:
//!
//! - discovery regeneration after an offer change at 1 000 offers (without tables, and with a
//!   10-rule table each): the time from applying the changed route to both documents
//!   (`/.well-known/x402.json`, `/openapi.json`) being built from the new snapshot — what the
//!   first request after a change waits for;
//! - route-table lookup at 10 000 routes with 10 rules each: path → route (the indexed table)
//!   → rule (most specific path and method), timed call by call (the clock's own cost
//!   included, so the percentiles overstate), plus the mean CPU cost per lookup.
//!
//! `cargo bench -p obol-verifier --bench storefront`

use std::hint::black_box;
use std::time::Instant;

use obol_api::routes::{Gate, RouteRule};
use obol_verifier::discovery::{self, Document};
use obol_verifier::{RouteEntry, RouteKey, RouteTable};

mod common;

const OFFERS: usize = 1_000;
const ROUTES: usize = 10_000;
const RULES: usize = 10;
const ROUNDS: usize = 21;
const LOOKUPS: usize = 200_000;

/// Rule `r` of offer `i`: exact, prefix and segment globs, some priced, some limited to POST,
/// the last one free.
fn rule(prefix: &str, r: usize) -> RouteRule {
    RouteRule {
        pattern: match r % 3 {
            0 => format!("{prefix}/v1/op{r}"),
            1 => format!("{prefix}/v1/op{r}/*"),
            _ => format!("{prefix}/m/*/op{r}"),
        },
        gate: if r == RULES - 1 {
            Gate::Free
        } else {
            Gate::Paid
        },
        price: (r.is_multiple_of(2) && r != RULES - 1).then(|| "5000".to_owned()),
        methods: if r.is_multiple_of(2) {
            vec!["POST".to_owned()]
        } else {
            Vec::new()
        },
        summary: Some(format!("Operation {r}")),
        input_schema: None,
        output_schema: None,
    }
}

/// Offer `i` as the controller writes its PaymentRoute, with `rules` rules.
fn offer(i: usize, rules: usize, price: &str) -> RouteEntry {
    let prefix = format!("/services/offer-{i}");
    let mut spec = common::spec(format!("{prefix}/*"), price);
    spec.description = Some(format!("ServiceOffer offer-{i}"));
    spec.routes = (0..rules).map(|r| rule(&prefix, r)).collect();
    let key = RouteKey::new(format!("ns-{}", i % 100), format!("offer-{i}"));
    RouteEntry::load(key, Some(1), &spec, None).expect("a valid route")
}

fn table(n: usize, rules: usize) -> RouteTable {
    let t = RouteTable::new();
    t.reset((0..n).map(|i| offer(i, rules, "1000")));
    t
}

fn p(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn regeneration(rules: usize) {
    let t = table(OFFERS, rules);
    let base = "https://obol.example";
    // Warm: the documents of the first snapshot.
    discovery::document(&t.snapshot(), base, Document::Manifest);
    let mut ms = Vec::with_capacity(ROUNDS);
    let mut sizes = (0, 0);
    for round in 0..ROUNDS {
        let price = if round % 2 == 0 { "2000" } else { "1000" };
        let changed = offer(OFFERS / 2, rules, price);
        let start = Instant::now();
        assert!(t.apply(changed), "a price change is a change");
        let snapshot = t.snapshot();
        let manifest = discovery::document(&snapshot, base, Document::Manifest);
        let openapi = discovery::document(&snapshot, base, Document::OpenApi);
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        sizes = (manifest.len(), openapi.len());
        black_box((manifest, openapi));
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "discovery regeneration after one offer change, {OFFERS} offers x {rules} rules: p50 {:.1} ms, max {:.1} ms over {ROUNDS} changes (x402.json {} KiB, openapi.json {} KiB)",
        p(&ms, 0.5),
        ms[ms.len() - 1],
        sizes.0 / 1024,
        sizes.1 / 1024,
    );
}

/// Concrete requests that hit rules of random offers (a fixed LCG, so runs compare).
fn requests() -> Vec<(String, &'static str)> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (x >> 33) as usize
    };
    (0..4_096)
        .map(|_| {
            let (i, r) = (next() % ROUTES, next() % RULES);
            let prefix = format!("/services/offer-{i}");
            let path = match r % 3 {
                0 => format!("{prefix}/v1/op{r}"),
                1 => format!("{prefix}/v1/op{r}/a/b"),
                _ => format!("{prefix}/m/x/op{r}"),
            };
            let method = if r.is_multiple_of(2) { "POST" } else { "GET" };
            (path, method)
        })
        .collect()
}

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn lookup() {
    let t = table(ROUTES, RULES);
    let snapshot = t.snapshot();
    let reqs = requests();
    let resolve = |r: &(String, &str)| {
        snapshot
            .find(&r.0)
            .and_then(|route| route.resolve(&r.0, Some(r.1)).ok())
    };
    for r in &reqs {
        assert!(resolve(r).is_some(), "{r:?} resolves to a rule");
    }
    let cpu = thread_cpu_ns();
    let wall = Instant::now();
    for i in 0..LOOKUPS {
        black_box(resolve(black_box(&reqs[i % reqs.len()])));
    }
    let cpu = (thread_cpu_ns() - cpu) as f64 / LOOKUPS as f64;
    let wall = wall.elapsed().as_nanos() as f64 / LOOKUPS as f64;
    // The two steps apart: the indexed table lookup, then the rule scan of the found route.
    let found: Vec<_> = reqs
        .iter()
        .map(|r| snapshot.find(&r.0).expect("a route").clone())
        .collect();
    let cpu_find = thread_cpu_ns();
    for i in 0..LOOKUPS {
        black_box(snapshot.find(black_box(&reqs[i % reqs.len()].0)));
    }
    let cpu_find = (thread_cpu_ns() - cpu_find) as f64 / LOOKUPS as f64;
    let cpu_rule = thread_cpu_ns();
    for i in 0..LOOKUPS {
        let (r, route) = (&reqs[i % reqs.len()], &found[i % reqs.len()]);
        black_box(route.resolve(black_box(&r.0), Some(r.1)).ok());
    }
    let cpu_rule = (thread_cpu_ns() - cpu_rule) as f64 / LOOKUPS as f64;
    println!("  of which: table lookup {cpu_find:.0} ns CPU, rule scan {cpu_rule:.0} ns CPU");
    let mut ns = Vec::with_capacity(LOOKUPS);
    for i in 0..LOOKUPS {
        let r = &reqs[(i * 7) % reqs.len()];
        let start = Instant::now();
        black_box(resolve(black_box(r)));
        ns.push(start.elapsed().as_nanos() as f64);
    }
    ns.sort_by(f64::total_cmp);
    println!(
        "route-table lookup (path -> route -> rule), {ROUTES} routes x {RULES} rules: mean {cpu:.0} ns CPU ({wall:.0} ns wall); per call p50 {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns over {LOOKUPS} calls",
        p(&ns, 0.5),
        p(&ns, 0.99),
        p(&ns, 0.999),
    );
}

fn main() {
    regeneration(0);
    regeneration(RULES);
    lookup();
}
