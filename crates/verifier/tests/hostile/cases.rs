//! The hostile inputs and the status and reason each must get.

use axum::http::StatusCode;
use obol_x402::{Address, Requirement, U256};
use serde_json::{Value, json};

use crate::support::*;

pub const URI: (&str, &str) = ("x-forwarded-uri", "/services/demo/x");

fn req() -> Requirement {
    Harness::demo().requirement("demo", "demo")
}

/// A valid payment's JSON, to mutate.
fn valid(version: u8) -> Value {
    payload_json(&req(), auth(&req(), 1), version, &key())
}

fn mutated(version: u8, f: impl FnOnce(&mut Value)) -> String {
    let mut v = valid(version);
    f(&mut v);
    encode(&v)
}

/// A properly signed payment whose authorization was changed before signing.
fn signed_with(version: u8, f: impl FnOnce(&mut obol_x402::wire::Authorization)) -> String {
    let r = req();
    let mut a = auth(&r, 1);
    f(&mut a);
    encode(&payload_json(&r, a, version, &key()))
}

/// Signed for the domain of another requirement (other chain or token contract).
fn signed_for(other: &Requirement, version: u8) -> String {
    let r = req();
    let payload = obol_x402::eip3009::sign_payload(&key(), &other.domain(), auth(&r, 1))
        .expect("test fixture");
    let mut v = valid(version);
    v["payload"] = serde_json::to_value(payload).expect("test fixture");
    encode(&v)
}

/// A 65-byte signature with the given bytes.
fn with_signature(version: u8, sig: String) -> String {
    mutated(version, |v| v["payload"]["signature"] = json!(sig))
}

pub struct Case {
    pub name: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub path: &'static str,
    pub setup: Setup,
    pub status: StatusCode,
    /// The denial's metric label (which check refused it; finer than the body's `reason`).
    pub reason: Option<&'static str>,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Setup {
    None,
    SettledBefore,
    VerifyNo,
    /// The facilitator refuses the signature (it cannot be proven offline).
    VerifyNoSignature,
    VerifyDown,
    VerifyMalformed,
    SettleNo,
}

fn pay(value: String) -> Vec<(&'static str, String)> {
    vec![("x-payment", value)]
}

fn case(
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    status: u16,
    reason: Option<&'static str>,
) -> Case {
    Case {
        name,
        headers,
        path: "/verify/demo/demo",
        setup: Setup::None,
        status: StatusCode::from_u16(status).expect("test fixture"),
        reason,
    }
}

pub fn cases() -> Vec<Case> {
    let r = req();
    let base: Requirement = {
        let net = obol_x402::Network::resolve("base").expect("test fixture");
        Requirement::usdc(net, r.pay_to, r.amount, 60).expect("test fixture")
    };
    let mut other_contract = r.clone();
    other_contract.asset = Address::repeat_byte(0x11);
    let half_n = "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0";
    let high_s_n = "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a1";
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let p402 = Some;
    // A signature that cannot be proven offline goes to the facilitator, which refuses it.
    let sig402 = || Some("verify_rejected");
    let mut v = vec![
        case(
            "oversized header",
            pay("A".repeat(17 * 1024)),
            402,
            p402("too_large"),
        ),
        case("empty header", pay(String::new()), 402, p402("empty")),
        case("whitespace header", pay("   ".into()), 402, p402("empty")),
        case(
            "bad base64",
            pay("!!!notbase64!!!".into()),
            402,
            p402("invalid_base64"),
        ),
        case(
            "url-safe base64",
            pay("eyJ4-_-_".into()),
            402,
            p402("invalid_base64"),
        ),
        case(
            "inner whitespace",
            pay("eyJ4 NDAy".into()),
            402,
            p402("invalid_base64"),
        ),
        case("not json", pay(b64(b"not json")), 402, p402("invalid_json")),
        case("json array", pay(b64(b"[1,2]")), 402, p402("invalid_shape")),
        case(
            "json string",
            pay(b64(b"\"x\"")),
            402,
            p402("invalid_shape"),
        ),
        case("json null", pay(b64(b"null")), 402, p402("invalid_shape")),
        case("deeply nested json", pay(b64(deep.as_bytes())), 402, None),
        case(
            "empty object",
            pay(b64(b"{}")),
            402,
            p402("missing_version"),
        ),
        case(
            "version 3",
            pay(mutated(1, |v| v["x402Version"] = json!(3))),
            402,
            p402("unsupported_version"),
        ),
        case(
            "version as string",
            pay(mutated(1, |v| v["x402Version"] = json!("1"))),
            402,
            p402("unsupported_version"),
        ),
        case(
            "value as number",
            pay(mutated(1, |v| {
                v["payload"]["authorization"]["value"] = json!(1000)
            })),
            402,
            p402("invalid_shape"),
        ),
        case(
            "validAfter as number",
            pay(mutated(2, |v| {
                v["payload"]["authorization"]["validAfter"] = json!(0)
            })),
            402,
            p402("invalid_shape"),
        ),
        case(
            "validBefore as hex",
            pay(mutated(1, |v| {
                v["payload"]["authorization"]["validBefore"] = json!("0xffff")
            })),
            402,
            p402("invalid_shape"),
        ),
        case(
            "validBefore beyond u64",
            pay(mutated(1, |v| {
                v["payload"]["authorization"]["validBefore"] = json!(U256::MAX.to_string())
            })),
            402,
            p402("invalid_shape"),
        ),
        case(
            "value beyond uint256",
            pay(mutated(1, |v| {
                v["payload"]["authorization"]["value"] = json!("9".repeat(100))
            })),
            402,
            p402("invalid_shape"),
        ),
        case(
            "negative value",
            pay(mutated(1, |v| {
                v["payload"]["authorization"]["value"] = json!("-1000")
            })),
            402,
            p402("invalid_shape"),
        ),
        case(
            "v1 with CAIP-2 network",
            pay(mutated(1, |v| v["network"] = json!("eip155:84532"))),
            402,
            p402("invalid_shape"),
        ),
        case(
            "v2 with legacy network",
            pay(mutated(2, |v| {
                v["accepted"]["network"] = json!("base-sepolia")
            })),
            402,
            p402("invalid_shape"),
        ),
        case(
            "missing signature",
            pay(mutated(1, |v| {
                v["payload"]
                    .as_object_mut()
                    .expect("test fixture")
                    .remove("signature");
            })),
            402,
            p402("invalid_shape"),
        ),
        case(
            "signature not hex",
            pay(with_signature(1, "0xzz".into())),
            402,
            p402("invalid_shape"),
        ),
        case(
            "null payload",
            pay(mutated(2, |v| v["payload"] = Value::Null)),
            402,
            p402("invalid_shape"),
        ),
        case(
            "bad from address",
            pay(mutated(1, |v| {
                v["payload"]["authorization"]["from"] = json!("0x1234")
            })),
            402,
            p402("invalid_shape"),
        ),
        Case {
            setup: Setup::VerifyNoSignature,
            ..case(
                "64-byte signature",
                pay(with_signature(1, format!("0x{}", "11".repeat(64)))),
                402,
                sig402(),
            )
        },
        Case {
            setup: Setup::VerifyNoSignature,
            ..case(
                "zero signature",
                pay(with_signature(1, format!("0x{}", "00".repeat(65)))),
                402,
                sig402(),
            )
        },
        Case {
            setup: Setup::VerifyNoSignature,
            ..case(
                "high-s signature",
                pay(with_signature(
                    1,
                    format!("0x{}{high_s_n}1b", "11".repeat(32)),
                )),
                402,
                sig402(),
            )
        },
        Case {
            setup: Setup::VerifyNoSignature,
            ..case(
                "unrecoverable signature",
                pay(with_signature(
                    1,
                    format!("0x{}{half_n}1b", "00".repeat(32)),
                )),
                402,
                sig402(),
            )
        },
        Case {
            setup: Setup::VerifyNoSignature,
            ..case(
                "signature for another chain",
                pay(signed_for(&base, 1)),
                402,
                sig402(),
            )
        },
        Case {
            setup: Setup::VerifyNoSignature,
            ..case(
                "signature for another token contract",
                pay(signed_for(&other_contract, 2)),
                402,
                sig402(),
            )
        },
        Case {
            setup: Setup::VerifyNoSignature,
            ..case(
                "signed by someone else",
                pay(encode(&payload_json(&r, auth(&r, 1), 1, &other_key()))),
                402,
                sig402(),
            )
        },
        Case {
            setup: Setup::VerifyNoSignature,
            ..case(
                "tampered nonce after signing",
                pay(mutated(1, |v| {
                    v["payload"]["authorization"]["nonce"] = json!(format!("0x{}", "22".repeat(32)))
                })),
                402,
                sig402(),
            )
        },
        case(
            "another payTo",
            pay(signed_with(1, |a| a.to = Address::repeat_byte(0x33))),
            402,
            p402("pay_to_mismatch"),
        ),
        case(
            "v2 accepted another payTo",
            pay(mutated(2, |v| {
                v["accepted"]["payTo"] = json!(format!("0x{}", "33".repeat(20)))
            })),
            402,
            p402("pay_to_mismatch"),
        ),
        case(
            "amount one over",
            pay(signed_with(1, |a| a.value += U256::from(1u8))),
            402,
            p402("amount_mismatch"),
        ),
        case(
            "amount one under",
            pay(signed_with(2, |a| a.value -= U256::from(1u8))),
            402,
            p402("amount_mismatch"),
        ),
        case(
            "v2 accepted amount off by one",
            pay(mutated(2, |v| v["accepted"]["amount"] = json!("999"))),
            402,
            p402("amount_mismatch"),
        ),
        case(
            "expired",
            pay(signed_with(1, |a| a.valid_before = NOW - 1)),
            402,
            p402("expired"),
        ),
        case(
            "expires within the skew margin",
            pay(signed_with(2, |a| a.valid_before = NOW + 3)),
            402,
            p402("expired"),
        ),
        case(
            "validAfter in the future",
            pay(signed_with(1, |a| a.valid_after = NOW + 60)),
            402,
            p402("not_yet_valid"),
        ),
        case(
            "v1 on another network",
            pay(mutated(1, |v| v["network"] = json!("base"))),
            402,
            p402("network_mismatch"),
        ),
        case(
            "v2 on another chain",
            pay(mutated(2, |v| {
                v["accepted"]["network"] = json!("eip155:8453")
            })),
            402,
            p402("network_mismatch"),
        ),
        case(
            "unknown scheme",
            pay(mutated(1, |v| v["scheme"] = json!("upto"))),
            402,
            p402("scheme_mismatch"),
        ),
        case(
            "v2 another asset",
            pay(mutated(2, |v| {
                v["accepted"]["asset"] = json!(format!("0x{}", "44".repeat(20)))
            })),
            402,
            p402("asset_mismatch"),
        ),
        case(
            "v2 without extra",
            pay(mutated(2, |v| {
                v["accepted"]
                    .as_object_mut()
                    .expect("test fixture")
                    .remove("extra");
            })),
            402,
            p402("domain_mismatch"),
        ),
        case(
            "v2 other EIP-712 name",
            pay(mutated(2, |v| {
                v["accepted"]["extra"]["name"] = json!("USD Coin")
            })),
            402,
            p402("domain_mismatch"),
        ),
        case(
            "v2 permit2 transfer",
            pay(mutated(2, |v| {
                v["accepted"]["extra"]["assetTransferMethod"] = json!("permit2")
            })),
            402,
            p402("unsupported_transfer_method"),
        ),
        case(
            "conflicting headers",
            vec![
                ("x-payment", header(&r, 1, 1)),
                ("payment-signature", header(&r, 2, 2)),
            ],
            402,
            p402("conflicting_payment_headers"),
        ),
        case(
            "two different x-payment",
            vec![
                ("x-payment", header(&r, 1, 1)),
                ("x-payment", header(&r, 2, 1)),
            ],
            402,
            p402("conflicting_payment_headers"),
        ),
        case(
            "unknown fields are tolerated",
            pay(mutated(2, |v| v["zzz"] = json!({"a": [1, 2]}))),
            200,
            None,
        ),
        case(
            "surrounding spaces are tolerated",
            pay(format!("  {}\t", header(&r, 1, 1))),
            200,
            None,
        ),
    ];
    let mut more = vec![
        Case {
            setup: Setup::SettledBefore,
            ..case(
                "duplicate nonce",
                pay(header(&r, 1, 2)),
                402,
                p402("nonce_already_used"),
            )
        },
        Case {
            setup: Setup::VerifyNo,
            ..case(
                "facilitator says invalid",
                pay(header(&r, 1, 1)),
                402,
                p402("verify_rejected"),
            )
        },
        Case {
            setup: Setup::VerifyDown,
            ..case(
                "facilitator unreachable",
                pay(header(&r, 1, 1)),
                503,
                p402("facilitator_unavailable"),
            )
        },
        Case {
            setup: Setup::VerifyMalformed,
            ..case(
                "facilitator 5xx / garbage",
                pay(header(&r, 1, 1)),
                503,
                p402("facilitator_unavailable"),
            )
        },
        Case {
            setup: Setup::SettleNo,
            ..case(
                "settlement failed with a transaction",
                pay(header(&r, 1, 1)),
                502,
                p402("settle_unknown"),
            )
        },
        Case {
            path: "/verify/demo/nope",
            ..case(
                "unknown route",
                pay(header(&r, 1, 1)),
                503,
                p402("unknown_route"),
            )
        },
        Case {
            path: "/verify/other/demo",
            ..case(
                "right name, other namespace",
                vec![],
                503,
                p402("unknown_route"),
            )
        },
        Case {
            path: "/verify/demo/demo/extra",
            ..case("extra path segment", vec![], 404, None)
        },
    ];
    v.append(&mut more);
    v
}
