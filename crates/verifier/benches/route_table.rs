//! The route table at 100 / 1 000 / 10 000 routes: live heap bytes (counted by dhat's global
//! allocator, not guessed from RSS), and the time to apply one change, to delete and re-add one
//! route, to apply a burst of 200 changes as one batch, and to load a full list (what a watch
//! restart does). A change rebuilds the immutable
//! snapshot that readers load without a lock, so its cost grows with the table.
//!
//! `cargo bench -p obol-verifier --bench route_table`

use std::hint::black_box;
use std::time::Instant;

use obol_verifier::route_table::Change;
use obol_verifier::{RouteKey, RouteTable};

mod common;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SIZES: [usize; 3] = [100, 1_000, 10_000];
const CHANGES: usize = 51;
const BURST: usize = 200;

/// Live heap bytes of a table of `n` routes, and the peak while it was built.
fn memory(n: usize) -> (u64, u64) {
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    let table = common::table(n);
    let after = dhat::HeapStats::get();
    assert_eq!(table.len(), n);
    let live = after.curr_bytes as u64 - before.curr_bytes as u64;
    let peak = after.max_bytes as u64 - before.curr_bytes as u64;
    drop(table);
    (live, peak)
}

fn micros(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

/// Median and worst time of one change, of a delete + re-add, of a batch of `BURST` changes
/// (what the watcher applies when events arrive together), and of a full reload.
fn change_times(n: usize) -> [(f64, f64); 4] {
    let table: RouteTable = common::table(n);
    let i = n / 2;
    let key = RouteKey::new(format!("ns-{}", i % 100), format!("offer-{i}"));
    let path = common::entry(i, "1").pattern.clone();
    let mut change = Vec::with_capacity(CHANGES);
    let mut readd = Vec::with_capacity(CHANGES);
    for round in 0..CHANGES {
        let price = if round % 2 == 0 { "2000" } else { "1000" };
        let entry = common::entry(i, price);
        let t = Instant::now();
        assert!(table.apply(entry), "a price change is a change");
        change.push(t.elapsed().as_secs_f64() * 1e6);
        let found = table.find(&path.replace('*', "x")).expect("the route");
        assert_eq!(found.key, key);
        let again = common::entry(i, price);
        let t = Instant::now();
        assert!(table.delete(&key));
        assert!(table.apply(again));
        readd.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut burst = Vec::new();
    for round in 0..5 {
        let price = if round % 2 == 0 { "3000" } else { "1000" };
        let batch: Vec<Change> = (0..BURST.min(n))
            .map(|j| Change::Apply(Box::new(common::entry(j * n / BURST.min(n), price))))
            .collect();
        let t = Instant::now();
        assert_eq!(table.update(batch), BURST.min(n));
        burst.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut reload = Vec::new();
    for _ in 0..5.min(CHANGES) {
        let entries = common::entries(n);
        let t = Instant::now();
        table.reset(black_box(entries));
        reload.push(t.elapsed().as_secs_f64() * 1e6);
    }
    [micros(change), micros(readd), micros(burst), micros(reload)]
}

fn main() {
    println!(
        "| routes | live heap | per route | build peak | one change p50 / max | delete + re-add \
         p50 / max | {BURST} changes in one batch p50 / max | full reload p50 / max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in SIZES {
        let (live, peak) = memory(n);
        let [change, readd, burst, reload] = change_times(n);
        println!(
            "| {n} | {:.2} MiB | {} B | {:.2} MiB | {:.0} / {:.0} µs | {:.0} / {:.0} µs | \
             {:.1} / {:.1} ms | {:.1} / {:.1} ms |",
            live as f64 / 1048576.0,
            live / n as u64,
            peak as f64 / 1048576.0,
            change.0,
            change.1,
            readd.0,
            readd.1,
            burst.0 / 1e3,
            burst.1 / 1e3,
            reload.0 / 1e3,
            reload.1 / 1e3,
        );
    }
}
