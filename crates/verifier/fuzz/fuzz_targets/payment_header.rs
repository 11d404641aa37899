//! Fuzzes the payment-header decoder and the local checks behind it: any input must decode to
//! a payload or a typed error, and a decoded payload must verify or be rejected, never panic.
//! Each input is tried twice: as the header text itself (base64 layer) and base64-encoded
//! (so the fuzzer reaches the JSON and shape layers directly; seeds are JSON payloads).
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use obol_x402::{Network, Requirement, U256, codec, verify_payment};

const NOW: u64 = 1_740_672_100;

fn requirement() -> &'static Requirement {
    static REQ: OnceLock<Requirement> = OnceLock::new();
    REQ.get_or_init(|| {
        let net = Network::resolve("base-sepolia").expect("known network");
        let pay_to = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
            .parse()
            .expect("address");
        Requirement::usdc(net, pay_to, U256::from(10_000u64), 60).expect("requirement")
    })
}

fn check(header: &str) {
    if let Ok(payload) = codec::decode_payment_payload(header) {
        let _ = verify_payment(requirement(), &payload, NOW);
        // What decodes must re-encode.
        codec::encode_header(&payload).expect("a decoded payload encodes");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    check(&base64::engine::general_purpose::STANDARD.encode(data));
});
