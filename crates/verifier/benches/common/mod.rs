//! Route fixtures shared by the verifier's benchmarks: tables shaped as the controller writes
//! them.
#![allow(dead_code, reason = "each bench uses a different subset")]

use obol_api::PaymentRouteSpec;
use obol_verifier::{RouteEntry, RouteKey, RouteTable};

pub const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";

pub fn spec(pattern: String, price: &str) -> PaymentRouteSpec {
    PaymentRouteSpec::new(pattern, price, PAY_TO, "base-sepolia")
}

/// Route `i` of a table: mostly `/services/<offer>/*` (what the controller writes), in 100
/// namespaces, with one exact and one glob pattern in every hundred.
pub fn entry(i: usize, price: &str) -> RouteEntry {
    let pattern = match i % 100 {
        0 => format!("/exact/offer-{i}"),
        1 => format!("/glob-{i}-*/v1/*"),
        _ => format!("/services/offer-{i}/*"),
    };
    let key = RouteKey::new(format!("ns-{}", i % 100), format!("offer-{i}"));
    RouteEntry::load(key, Some(1), &spec(pattern, price), None).expect("a valid route")
}

pub fn entries(n: usize) -> Vec<RouteEntry> {
    (0..n).map(|i| entry(i, "1000")).collect()
}

/// A synced table of `n` routes.
pub fn table(n: usize) -> RouteTable {
    let t = RouteTable::new();
    t.reset(entries(n));
    t
}
