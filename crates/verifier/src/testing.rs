//! Fixtures shared by the unit tests of this crate.

use obol_api::PaymentRouteSpec;

use crate::route::{RouteEntry, RouteKey};

/// A seller wallet used across tests.
pub const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";

/// A Base Sepolia USDC spec at `price` atomic units.
pub fn mk_spec(pattern: &str, price: &str) -> PaymentRouteSpec {
    PaymentRouteSpec::new(pattern, price, PAY_TO, "base-sepolia")
}

/// A loaded entry `namespace/name` for `pattern` at 1000 atomic units.
pub fn mk_entry(namespace: &str, name: &str, pattern: &str) -> RouteEntry {
    RouteEntry::load(
        RouteKey::new(namespace, name),
        Some(1),
        &mk_spec(pattern, "1000"),
        None,
    )
    .expect("fixture spec loads")
}

/// Unix seconds the payment fixtures are valid at.
pub const NOW: u64 = 1_750_000_000;

/// Public Anvil dev key #1 (test-only).
pub fn key() -> obol_x402::PrivateKey {
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
        .parse()
        .expect("valid dev key")
}

/// An authorization paying `req` exactly, valid around [`NOW`].
pub fn mk_auth(req: &obol_x402::Requirement, nonce: u8) -> obol_x402::wire::Authorization {
    obol_x402::wire::Authorization {
        from: key().address(),
        to: req.pay_to,
        value: req.amount,
        valid_after: NOW - 600,
        valid_before: NOW + 60,
        nonce: obol_x402::B256::repeat_byte(nonce),
    }
}

/// A base64 payment header of `version` (1 or 2) for `auth`, signed for `req`'s domain.
pub fn mk_header(
    req: &obol_x402::Requirement,
    auth: obol_x402::wire::Authorization,
    version: u8,
) -> String {
    if version != 1 {
        return req
            .signed_v2_header(&key(), auth)
            .expect("signs and encodes");
    }
    let payload = obol_x402::eip3009::sign_payload(&key(), &req.domain(), auth).expect("signs");
    obol_x402::codec::encode_header(&obol_x402::wire::PaymentPayloadV1 {
        x402_version: Default::default(),
        scheme: "exact".into(),
        network: req.network.v1_name().expect("v1 name"),
        payload,
    })
    .expect("encodes")
}
