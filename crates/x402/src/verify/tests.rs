use alloy::primitives::{Bytes, address};

use super::*;
use crate::codec;
use crate::eip3009::sign_payload;
use crate::key::PrivateKey;
use crate::wire::{Authorization, Eip712Extra, PaymentPayloadV1, PaymentPayloadV2, ResourceInfo};

const PAY_TO: Address = address!("0x209693Bc6afc0C5328bA36FaF03C514EF312287C");
const NOW: u64 = 1_750_000_000;
const V1_BODY: &str = include_str!("../../tests/fixtures/v1_payment_required.json");
const V2_REQUIRED: &str = include_str!("../../tests/fixtures/v2_payment_required.json");
const V1_SPEC_PAYMENT: &str = include_str!("../../tests/fixtures/v1_x_payment.json");
const V2_SPEC_PAYMENT: &str = include_str!("../../tests/fixtures/v2_payment_signature.json");

fn key() -> PrivateKey {
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
        .parse()
        .unwrap()
}

fn requirement() -> Requirement {
    let net = Network::resolve("base-sepolia").unwrap();
    Requirement::usdc(net, PAY_TO, U256::from(10_000u64), 60).unwrap()
}

fn resource() -> ResourceInfo {
    ResourceInfo {
        description: Some("Access to premium market data".into()),
        mime_type: Some("application/json".into()),
        ..ResourceInfo::new("https://api.example.com/premium-data")
    }
}

fn authorization() -> Authorization {
    Authorization {
        from: key().address(),
        to: PAY_TO,
        value: U256::from(10_000u64),
        valid_after: NOW - 600,
        valid_before: NOW + 60,
        nonce: B256::repeat_byte(0x42),
    }
}

fn signed(req: &Requirement, auth: Authorization) -> crate::wire::ExactEvmPayload {
    sign_payload(&key(), &req.domain(), auth).unwrap()
}

fn v1(auth: Authorization) -> PaymentPayload {
    PaymentPayload::V1(PaymentPayloadV1 {
        x402_version: Default::default(),
        scheme: "exact".into(),
        network: "base-sepolia".parse().unwrap(),
        payload: signed(&requirement(), auth),
    })
}

fn v2(auth: Authorization) -> PaymentPayload {
    PaymentPayload::V2(PaymentPayloadV2 {
        x402_version: Default::default(),
        resource: Some(resource()),
        accepted: requirement().to_v2(),
        payload: signed(&requirement(), auth),
        extensions: None,
    })
}

#[test]
fn valid_payments_of_both_versions_pass() {
    for payload in [v1(authorization()), v2(authorization())] {
        let ok = verify_payment(&requirement(), &payload, NOW).unwrap();
        assert_eq!(ok.payer, key().address());
        assert_eq!(ok.amount, U256::from(10_000u64));
        assert_eq!(ok.version, payload.version());
    }
}

#[test]
fn a_signed_v2_header_decodes_to_a_payment_that_passes() {
    let header = requirement()
        .signed_v2_header(&key(), authorization())
        .unwrap();
    let payload = codec::decode_payment_payload(&header).unwrap();
    let PaymentPayload::V2(v2) = &payload else {
        panic!("not a v2 payload");
    };
    assert_eq!(v2.accepted, requirement().to_v2());
    let ok = verify_payment(&requirement(), &payload, NOW).unwrap();
    assert_eq!(ok.payer, key().address());
}

type Mutation = fn(&mut PaymentPayload);

fn v1_mut(p: &mut PaymentPayload) -> &mut PaymentPayloadV1 {
    match p {
        PaymentPayload::V1(p) => p,
        PaymentPayload::V2(_) => unreachable!("v1 mutation on a v2 payload"),
    }
}

fn v2_accepted(p: &mut PaymentPayload) -> &mut PaymentRequirementsV2 {
    match p {
        PaymentPayload::V2(p) => &mut p.accepted,
        PaymentPayload::V1(_) => unreachable!("v2 mutation on a v1 payload"),
    }
}

fn exact_mut(p: &mut PaymentPayload) -> &mut crate::wire::ExactEvmPayload {
    match p {
        PaymentPayload::V1(p) => &mut p.payload,
        PaymentPayload::V2(p) => &mut p.payload,
    }
}

fn permit2_extra(p: &mut PaymentPayload) {
    let mut extra = Eip712Extra::new("USDC", "2");
    extra.asset_transfer_method = Some("permit2".into());
    v2_accepted(p).extra = Some(extra);
}

#[test]
fn rejection_table() {
    let (one, two) = (v1(authorization()), v2(authorization()));
    #[rustfmt::skip]
    let cases: Vec<(&str, &PaymentPayload, Mutation, &str)> = vec![
        ("v1 scheme", &one, |p| v1_mut(p).scheme = "upto".into(), "scheme_mismatch"),
        ("v1 network", &one, |p| v1_mut(p).network = "base".parse().unwrap(), "network_mismatch"),
        ("v1 unknown network", &one, |p| v1_mut(p).network = "megaeth".parse().unwrap(), "network_mismatch"),
        ("v2 scheme", &two, |p| v2_accepted(p).scheme = "upto".into(), "scheme_mismatch"),
        ("v2 network", &two, |p| v2_accepted(p).network = "eip155:8453".parse().unwrap(), "network_mismatch"),
        ("v2 asset", &two, |p| v2_accepted(p).asset = Address::ZERO, "asset_mismatch"),
        ("v2 accepted payTo", &two, |p| v2_accepted(p).pay_to = Address::ZERO, "pay_to_mismatch"),
        ("v2 accepted amount", &two, |p| v2_accepted(p).amount = U256::from(1u8), "amount_mismatch"),
        ("v2 extra missing", &two, |p| v2_accepted(p).extra = None, "domain_mismatch"),
        ("v2 extra name", &two, |p| v2_accepted(p).extra = Some(Eip712Extra::new("USD Coin", "2")), "domain_mismatch"),
        ("v2 extra version", &two, |p| v2_accepted(p).extra = Some(Eip712Extra::new("USDC", "1")), "domain_mismatch"),
        ("v2 permit2", &two, permit2_extra, "unsupported_transfer_method"),
        ("empty signature", &one, |p| exact_mut(p).signature = Bytes::new(), "empty_signature"),
    ];
    for (name, payload, mutate, reason) in cases {
        let mut payload = payload.clone();
        mutate(&mut payload);
        let err = verify_payment(&requirement(), &payload, NOW).expect_err(name);
        assert_eq!(err.reason(), reason, "{name}: {err}");
    }
}

#[test]
fn signed_content_table() {
    // Each authorization is correctly signed, so only the named check can fail.
    let cases: Vec<(&str, Authorization, &str)> = vec![
        (
            "to elsewhere",
            Authorization {
                to: Address::ZERO,
                ..authorization()
            },
            "pay_to_mismatch",
        ),
        (
            "underpays",
            Authorization {
                value: U256::from(9_999u64),
                ..authorization()
            },
            "amount_mismatch",
        ),
        (
            "overpays (v1 too)",
            Authorization {
                value: U256::from(10_001u64),
                ..authorization()
            },
            "amount_mismatch",
        ),
        (
            "expired",
            Authorization {
                valid_before: NOW - 1,
                ..authorization()
            },
            "expired",
        ),
        (
            "expires within the skew",
            Authorization {
                valid_before: NOW + CLOCK_SKEW_SECS - 1,
                ..authorization()
            },
            "expired",
        ),
        (
            "not yet valid",
            Authorization {
                valid_after: NOW + 1,
                ..authorization()
            },
            "not_yet_valid",
        ),
    ];
    for (name, auth, reason) in cases {
        for payload in [v1(auth.clone()), v2(auth.clone())] {
            let err = verify_payment(&requirement(), &payload, NOW).expect_err(name);
            assert_eq!(
                err.reason(),
                reason,
                "{name} {:?}: {err}",
                payload.version()
            );
        }
    }
    let edge = Authorization {
        valid_after: NOW,
        valid_before: NOW + CLOCK_SKEW_SECS,
        ..authorization()
    };
    assert!(
        verify_payment(&requirement(), &v1(edge), NOW).is_ok(),
        "window edges are inclusive"
    );
}

#[test]
fn spec_examples_verify_inside_their_window_and_expire_after() {
    let during = 1_740_672_100;
    for json in [V1_SPEC_PAYMENT, V2_SPEC_PAYMENT] {
        let header =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, json.trim_end());
        let payload = codec::decode_payment_payload(&header).unwrap();
        let ok = verify_payment(&requirement(), &payload, during).unwrap();
        assert_eq!(
            ok.payer,
            address!("0x857b06519E91e3A54538791bDbb0E22373e36b66")
        );
        let err = verify_payment(&requirement(), &payload, NOW).unwrap_err();
        assert_eq!(err.reason(), "expired");
    }
}

#[test]
fn addresses_compare_case_insensitively() {
    let json = V2_SPEC_PAYMENT.replace(
        "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        "0x209693bc6afc0c5328ba36faf03c514ef312287c",
    );
    let payload: PaymentPayload = serde_json::from_str(&json).unwrap();
    assert!(verify_payment(&requirement(), &payload, 1_740_672_100).is_ok());
}

#[test]
fn reasons_are_stable_and_distinct() {
    let all = [
        Rejection::SchemeMismatch { got: String::new() },
        Rejection::NetworkMismatch { got: String::new() },
        Rejection::AssetMismatch { got: Address::ZERO },
        Rejection::PayToMismatch { got: Address::ZERO },
        Rejection::AmountMismatch {
            got: U256::ZERO,
            want: U256::ZERO,
        },
        Rejection::DomainMismatch,
        Rejection::UnsupportedTransferMethod(String::new()),
        Rejection::Expired {
            valid_before: 0,
            now: 0,
        },
        Rejection::NotYetValid {
            valid_after: 0,
            now: 0,
        },
        Rejection::EmptySignature,
    ];
    let reasons: std::collections::BTreeSet<_> = all.iter().map(Rejection::reason).collect();
    assert_eq!(reasons.len(), all.len());
    assert!(
        all.iter()
            .all(|r| r.x402_error_code().starts_with("invalid_")
                || r.x402_error_code() == "unsupported_scheme")
    );
}

#[test]
fn builds_the_spec_402_bodies() {
    let v1 =
        payment_required_v1(&requirement(), &resource(), "X-PAYMENT header is required").unwrap();
    // The spec example's `"outputSchema":null` is not written (the v1 client refuses it).
    let v1_body = V1_BODY.trim_end().replace(r#""outputSchema":null,"#, "");
    assert_eq!(serde_json::to_string(&v1).unwrap(), v1_body);
    let v2 = payment_required_v2(
        &requirement(),
        &resource(),
        "PAYMENT-SIGNATURE header is required",
    );
    assert_eq!(serde_json::to_string(&v2).unwrap(), V2_REQUIRED.trim_end());
}

#[test]
fn requirement_errors() {
    let sepolia = Network::resolve("sepolia").unwrap();
    let err = Requirement::usdc(sepolia, PAY_TO, U256::from(1u8), 60).unwrap_err();
    assert_eq!(err.metric_label(), "no_usdc");
    let mut eth = requirement();
    eth.network = sepolia;
    assert_eq!(
        eth.to_v1(&resource()).unwrap_err().metric_label(),
        "no_v1_name"
    );
}

#[test]
fn signatures_are_proven_normalized_or_deferred() {
    use super::DeferredSignature as D;
    let good = v2(authorization());
    let sig = good.exact().signature.to_vec();
    let mut v_parity = sig.clone();
    v_parity[64] -= 27;
    let mut erc6492 = vec![7u8; 96];
    erc6492.extend_from_slice(&ERC6492_MAGIC_SUFFIX);
    let other_domain = {
        let mut r = requirement();
        r.eip712_name = "USD Coin".into();
        sign_payload(&key(), &r.domain(), authorization())
            .unwrap()
            .signature
            .to_vec()
    };
    let cases: Vec<(&str, Vec<u8>, Option<D>)> = vec![
        ("65-byte v=27/28", sig.clone(), None),
        ("65-byte v=0/1", v_parity.clone(), None),
        (
            "erc-1271, 97 bytes",
            vec![1u8; 97],
            Some(D::ContractWallet { len: 97 }),
        ),
        ("erc-6492 wrapper", erc6492, Some(D::Erc6492)),
        (
            "zero, 65 bytes",
            vec![0u8; 65],
            Some(D::NotFrom { recovered: None }),
        ),
        (
            "owner key / other domain",
            other_domain,
            Some(D::NotFrom {
                recovered: Some(Address::ZERO),
            }),
        ),
    ];
    for (name, signature, want) in cases {
        let mut payload = good.clone();
        exact_mut(&mut payload).signature = Bytes::from(signature.clone());
        let ok = verify_payment(&requirement(), &payload, NOW).expect(name);
        match (&ok.signature, want) {
            (SignatureCheck::Proven, None) => assert_eq!(signature, sig, "{name}"),
            (SignatureCheck::ProvenNormalized(fixed), None) => {
                assert_eq!(fixed.to_vec(), sig, "{name}: v rewritten to 27/28");
                ok.normalize(&mut payload);
                assert_eq!(payload.exact().signature.to_vec(), sig, "{name}");
            }
            (SignatureCheck::Deferred(D::NotFrom { recovered }), Some(D::NotFrom { .. })) => {
                // Recovery under the route's domain finds somebody, just not `from`.
                if name.starts_with("owner") {
                    assert!(recovered.is_some_and(|r| r != key().address()), "{name}");
                }
            }
            (SignatureCheck::Deferred(got), Some(want)) => assert_eq!(*got, want, "{name}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
        assert_eq!(ok.signature_proven(), want.is_none(), "{name}");
        let before = payload.clone();
        ok.normalize(&mut payload);
        assert_eq!(payload, before, "{name}: normalize is idempotent");
    }
}
