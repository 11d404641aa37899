//! Metered billing measured with real parts (anvil, test Permit2 and upto proxy, the official
//! facilitator, the gateway, the fake LLM upstream): N paid chat requests with varied token
//! counts, JSON and SSE alternating, each signed here. Prints the settled error (the sum over
//! all requests of |on-chain movement − ⌈(prompt × in + completion × out) ÷ 10⁶⌉|, expected 0)
//! and the request latency of `upto` against `exact` over the same gateway and facilitator.
//!
//! `cargo bench -p obol-verifier --bench metering_live` (`OBOL_BENCH_N`, default 200)

#![allow(clippy::unwrap_used)] // a benchmark: a panic is the failure report

#[path = "../tests/gateway_support/mod.rs"]
mod gateway_support;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use alloy_primitives::U256;
use axum::http::StatusCode;
use gateway_support::metered::*;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let n: u64 = std::env::var("OBOL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let live = Live::start().await;
        let in_rate: u128 = IN_RATE.parse().unwrap();
        let out_rate: u128 = OUT_RATE.parse().unwrap();
        let mut error = U256::ZERO;
        let mut charged = U256::ZERO;
        let mut upto = Vec::new();
        let mut exact = Vec::new();
        // A fixed pseudo-random sequence (xorshift), so runs are comparable.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..n {
            let words = 1 + next() % 60;
            let completion = 1 + next() % 3000;
            let stream = i % 2 == 1;
            let prompt = vec!["w"; words as usize].join(" ");
            let body = chat(&prompt, completion, stream, None);
            let want = (u128::from(words) * in_rate + u128::from(completion) * out_rate)
                .div_ceil(1_000_000)
                .min(u128::from(MAXIMUM));
            let pay = live.sign_here(1_000 + i);
            let (payer, seller) = live.balances().await;
            let t = Instant::now();
            let r = live.post(&body, &[("payment-signature", &pay)]).await;
            upto.push(t.elapsed());
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let (payer_after, seller_after) = live.balances().await;
            let moved = seller_after - seller;
            assert_eq!(payer - payer_after, moved);
            let want = U256::from(want);
            error += if moved > want {
                moved - want
            } else {
                want - moved
            };
            charged += moved;
            // The same request paid with exact (the fallback price), for the latency baseline.
            let pay = live.sign_exact(1_000_000 + i);
            let t = Instant::now();
            let r = live.post(&body, &[("payment-signature", &pay)]).await;
            exact.push(t.elapsed());
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        }
        upto.sort();
        exact.sort();
        println!("requests (upto): {n}, half JSON, half SSE; charged {charged} atomic units");
        println!("settled error: {error} atomic units");
        for (name, v) in [("upto", &upto), ("exact", &exact)] {
            println!(
                "{name}: p50 {:.2} ms, p99 {:.2} ms (request to the answer's end, settle included)",
                percentile(v, 0.5).as_secs_f64() * 1e3,
                percentile(v, 0.99).as_secs_f64() * 1e3,
            );
        }
        let _ = std::fs::remove_dir_all(&live.dir);
    });
}
