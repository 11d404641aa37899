use alloy::primitives::address;

use super::*;
use crate::codec;
use crate::key::PrivateKey;
use crate::wire::{PaymentRequiredV2, Permit2Authorization, Permitted, UptoWitness};

/// What `tools/x402-peers/sign.cjs` (the official `@x402/evm` upto client) was given, and what
/// it signed with anvil's dev key #1. Regenerated (then update the two times below) with:
///
/// ```sh
/// BUYER_KEY=<anvil dev key #1> SCHEMES=upto NODE_PATH="$(scripts/tools/x402-peers.sh)/node_modules" \
///   node tools/x402-peers/sign.cjs < crates/x402/tests/fixtures/upto_payment_required.json \
///   > crates/x402/tests/fixtures/upto_payment_signature.json
/// ```
const OFFICIAL_REQUIRED: &str = include_str!("../../tests/fixtures/upto_payment_required.json");
const OFFICIAL_PAYMENT: &str = include_str!("../../tests/fixtures/upto_payment_signature.json");
/// A second inside the official vector's window (it was signed about then, with a deadline
/// `maxTimeoutSeconds` = 300 s after signing).
const OFFICIAL_NOW: u64 = 1_796_288_352;
const OFFICIAL_DEADLINE: u64 = 1_796_288_651;

const PAY_TO: Address = address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");
const FACILITATOR: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
const NOW: u64 = 1_750_000_000;
const MAX: u64 = 50_000;

fn key() -> PrivateKey {
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
        .parse()
        .unwrap()
}

fn requirement() -> UptoRequirement {
    let net = Network::resolve("base-sepolia").unwrap();
    UptoRequirement {
        base: Requirement::usdc(net, PAY_TO, U256::from(MAX), 300).unwrap(),
        facilitator: FACILITATOR,
    }
}

fn authorization() -> Permit2Authorization {
    let req = requirement();
    Permit2Authorization {
        from: key().address(),
        permitted: Permitted {
            token: req.base.asset,
            amount: U256::from(MAX),
        },
        spender: UPTO_PROXY_ADDRESS,
        nonce: U256::from(0xA11CEu64),
        deadline: NOW + 300,
        witness: UptoWitness {
            to: PAY_TO,
            facilitator: FACILITATOR,
            valid_after: 0,
        },
    }
}

/// A payment signed by us for `authorization` (re-signed after each mutation, so only the
/// mutated field is wrong).
fn payment(auth: Permit2Authorization) -> UptoPaymentPayload {
    UptoPaymentPayload {
        x402_version: Default::default(),
        resource: None,
        accepted: requirement().to_v2(),
        payload: permit2::sign_payload(&key(), 84_532, auth).unwrap(),
        extensions: None,
    }
}

fn official() -> UptoPaymentPayload {
    serde_json::from_str(OFFICIAL_PAYMENT).unwrap()
}

#[test]
fn the_official_clients_payment_passes_inside_its_window_only() {
    let required: PaymentRequiredV2 = serde_json::from_str(OFFICIAL_REQUIRED).unwrap();
    let advertised = required.accepts[0].parsed().unwrap();
    // What we advertise is, field for field, what the official client was given.
    assert_eq!(advertised, &requirement().to_v2());
    let payment = official();
    let ok = verify_upto(&requirement(), &payment, OFFICIAL_NOW).unwrap();
    assert_eq!(ok.payer, key().address());
    assert_eq!(ok.signature, SignatureCheck::Proven);
    assert_eq!(ok.authorized, U256::from(MAX));
    assert_eq!(ok.deadline, OFFICIAL_DEADLINE);
    assert_eq!(
        ok.nonce,
        B256::from(payment.payload.permit2_authorization.nonce)
    );
    assert!(matches!(
        verify_upto(&requirement(), &payment, ok.deadline),
        Err(UptoRejection::Expired { .. })
    ));
    // Through the header codec it is recognised as an upto payment.
    let header = codec::encode_header(&payment).unwrap();
    match codec::decode_scheme_payment(&header).unwrap() {
        crate::wire::SchemePayment::Upto(decoded) => assert_eq!(decoded, payment),
        other => panic!("decoded as {other:?}"),
    }
}

#[test]
fn our_signature_equals_the_official_clients_byte_for_byte() {
    // Same key, same message: RFC 6979 signatures are deterministic.
    let official = official();
    let ours = permit2::sign_payload(
        &key(),
        84_532,
        official.payload.permit2_authorization.clone(),
    )
    .unwrap();
    assert_eq!(ours, official.payload);
}

#[test]
fn valid_payment_passes() {
    let ok = verify_upto(&requirement(), &payment(authorization()), NOW).unwrap();
    assert_eq!(ok.payer, key().address());
    assert_eq!(ok.nonce, B256::from(U256::from(0xA11CEu64)));
    // More than the maximum may be authorized; the charge is still capped by the route.
    let mut more = authorization();
    more.permitted.amount = U256::from(MAX * 2);
    let ok = verify_upto(&requirement(), &payment(more), NOW).unwrap();
    assert_eq!(ok.authorized, U256::from(MAX * 2));
}

type Mutation = fn(&mut UptoPaymentPayload);

fn auth(p: &mut UptoPaymentPayload) -> &mut Permit2Authorization {
    &mut p.payload.permit2_authorization
}

fn extra(p: &mut UptoPaymentPayload) -> &mut crate::wire::Eip712Extra {
    p.accepted.extra.as_mut().unwrap()
}

#[test]
fn rejection_table() {
    let cases: [(&str, bool, Mutation, &str); 17] = [
        (
            "scheme exact",
            false,
            |p| p.accepted.scheme = "exact".into(),
            "scheme_mismatch",
        ),
        (
            "network",
            false,
            |p| p.accepted.network = crate::wire::Caip2::eip155(8453),
            "network_mismatch",
        ),
        (
            "accepted asset",
            false,
            |p| p.accepted.asset = Address::repeat_byte(0x11),
            "asset_mismatch",
        ),
        (
            "accepted payTo",
            false,
            |p| p.accepted.pay_to = Address::repeat_byte(0x11),
            "pay_to_mismatch",
        ),
        (
            "accepted amount",
            false,
            |p| p.accepted.amount = U256::from(1u64),
            "amount_mismatch",
        ),
        (
            "no extra",
            false,
            |p| p.accepted.extra = None,
            "extra_mismatch",
        ),
        (
            "transfer method eip3009",
            false,
            |p| extra(p).asset_transfer_method = Some("eip3009".into()),
            "extra_mismatch",
        ),
        (
            "token domain",
            false,
            |p| extra(p).name = "USD Coin".into(),
            "extra_mismatch",
        ),
        (
            "extra facilitator",
            false,
            |p| extra(p).facilitator_address = Some(Address::repeat_byte(0x11)),
            "facilitator_mismatch",
        ),
        (
            "spender",
            true,
            |p| auth(p).spender = Address::repeat_byte(0x11),
            "spender_mismatch",
        ),
        (
            "recipient",
            true,
            |p| auth(p).witness.to = Address::repeat_byte(0x11),
            "pay_to_mismatch",
        ),
        (
            "token",
            true,
            |p| auth(p).permitted.token = Address::repeat_byte(0x11),
            "asset_mismatch",
        ),
        (
            "amount below maximum",
            true,
            |p| auth(p).permitted.amount = U256::from(MAX - 1),
            "amount_below_maximum",
        ),
        (
            "witness facilitator",
            true,
            |p| auth(p).witness.facilitator = Address::repeat_byte(0x11),
            "facilitator_mismatch",
        ),
        (
            "deadline too close",
            true,
            |p| auth(p).deadline = NOW + 5,
            "expired",
        ),
        (
            "not yet valid",
            true,
            |p| auth(p).witness.valid_after = NOW + 1,
            "not_yet_valid",
        ),
        (
            "empty signature",
            false,
            |p| p.payload.signature = Default::default(),
            "empty_signature",
        ),
    ];
    for (name, resign, mutate, want) in cases {
        let mut p = payment(authorization());
        mutate(&mut p);
        if resign {
            p.payload =
                permit2::sign_payload(&key(), 84_532, p.payload.permit2_authorization.clone())
                    .unwrap();
        }
        let err = verify_upto(&requirement(), &p, NOW).unwrap_err();
        assert_eq!(err.reason(), want, "{name}: {err}");
        assert!(!err.x402_error_code().is_empty());
    }
    // A deadline exactly at the margin still passes; validAfter = now passes.
    let mut edge = authorization();
    edge.deadline = NOW + CLOCK_SKEW_SECS;
    edge.witness.valid_after = NOW;
    assert!(verify_upto(&requirement(), &payment(edge), NOW).is_ok());
}

#[test]
fn signatures_are_proven_normalised_or_left_to_the_facilitator() {
    use crate::verify::DeferredSignature;
    let proven = verify_upto(&requirement(), &payment(authorization()), NOW).unwrap();
    assert_eq!(proven.signature, SignatureCheck::Proven);

    // v as y-parity (0/1): proven after the rewrite, and the rewritten form is what goes on.
    let mut parity = payment(authorization());
    let good = parity.payload.signature.clone();
    let mut raw = good.to_vec();
    raw[64] -= 27;
    parity.payload.signature = raw.into();
    let ok = verify_upto(&requirement(), &parity, NOW).unwrap();
    assert_eq!(ok.signature, SignatureCheck::ProvenNormalized(good.clone()));
    ok.normalize(&mut parity);
    assert_eq!(parity.payload.signature, good);

    // What cannot be decided offline is the facilitator's to check against the chain.
    let deferred =
        |p: &UptoPaymentPayload| match verify_upto(&requirement(), p, NOW).unwrap().signature {
            SignatureCheck::Deferred(d) => d,
            other => panic!("{other:?}"),
        };
    let mut wallet = payment(authorization());
    wallet.payload.signature = vec![1u8; 300].into();
    assert_eq!(
        deferred(&wallet),
        DeferredSignature::ContractWallet { len: 300 }
    );
    // Signed on Base mainnet's domain, presented for Base Sepolia: recovers someone else.
    let mut other_chain = payment(authorization());
    other_chain.payload = permit2::sign_payload(&key(), 8_453, authorization()).unwrap();
    assert!(matches!(
        deferred(&other_chain),
        DeferredSignature::NotFrom { recovered: Some(r) } if r != key().address()
    ));
    // A signature lifted onto a larger amount, or claimed for another payer, proves nothing.
    let mut lifted = payment(authorization());
    lifted.payload.permit2_authorization.permitted.amount = U256::from(MAX * 10);
    assert!(matches!(
        deferred(&lifted),
        DeferredSignature::NotFrom { .. }
    ));
    let mut forged = payment(authorization());
    forged.payload.permit2_authorization.from = Address::repeat_byte(0x11);
    assert!(matches!(
        deferred(&forged),
        DeferredSignature::NotFrom { recovered: Some(r) } if r == key().address()
    ));
}

#[test]
fn mismatch_versus_invalid() {
    let table = [
        (UptoRejection::ExtraMismatch, true),
        (UptoRejection::SpenderMismatch { got: Address::ZERO }, true),
        (
            UptoRejection::Expired {
                deadline: 1,
                now: 2,
            },
            false,
        ),
        (UptoRejection::EmptySignature, false),
    ];
    for (rejection, mismatch) in table {
        assert_eq!(rejection.is_mismatch(), mismatch, "{rejection}");
    }
}

#[test]
fn facilitator_bodies_verify_the_maximum_and_settle_the_charge() {
    let req = requirement();
    let p = payment(authorization());
    let verify = serde_json::to_value(req.verify_request(p.clone())).unwrap();
    assert_eq!(verify["x402Version"], 2);
    assert_eq!(verify["paymentRequirements"]["scheme"], "upto");
    assert_eq!(verify["paymentRequirements"]["amount"], MAX.to_string());
    assert_eq!(
        verify["paymentRequirements"],
        serde_json::to_value(&p.accepted).unwrap()
    );
    let settle = req.settle_request(p.clone(), U256::from(1234u64));
    let body = serde_json::to_value(&settle).unwrap();
    assert_eq!(body["paymentRequirements"]["amount"], "1234");
    assert_eq!(
        body["paymentPayload"]["payload"]["permit2Authorization"]["permitted"]["amount"],
        MAX.to_string()
    );
    // The body reads back as the same request (fake facilitators in tests parse it).
    let back: FacilitatorRequest = serde_json::from_value(body).unwrap();
    assert_eq!(back, settle);
}

#[test]
fn a_metered_402_offers_upto_first_and_exact_for_the_others() {
    let upto = requirement();
    let exact = Requirement {
        amount: U256::from(1000u64),
        ..upto.base.clone()
    };
    let resource = ResourceInfo::new("http://127.0.0.1/llm/v1/chat/completions");
    let required = payment_required_metered_v2(&exact, &upto, &resource, "payment required");
    let accepts: Vec<_> = required
        .accepts
        .iter()
        .map(|a| a.parsed().unwrap().clone())
        .collect();
    assert_eq!(accepts, vec![upto.to_v2(), exact.to_v2()]);
    let json = serde_json::to_value(&required).unwrap();
    let (first, second) = (&json["accepts"][0], &json["accepts"][1]);
    assert_eq!(first["scheme"], "upto");
    assert_eq!(first["amount"], MAX.to_string());
    assert_eq!(first["extra"]["assetTransferMethod"], "permit2");
    assert_eq!(
        first["extra"]["facilitatorAddress"],
        FACILITATOR.to_checksum(None)
    );
    assert_eq!(second["scheme"], "exact");
    assert_eq!(second["amount"], "1000");
    assert!(second["extra"].get("facilitatorAddress").is_none());
    // Same resource and error as the exact-only 402.
    let plain = crate::verify::payment_required_v2(&exact, &resource, "payment required");
    assert_eq!(
        (&required.resource, &required.error),
        (&plain.resource, &plain.error)
    );
    // The official client's own 402 fixture reads the same way: upto with the proxy's extra.
    let official: PaymentRequiredV2 = serde_json::from_str(OFFICIAL_REQUIRED).unwrap();
    assert_eq!(official.accepts[0].parsed().unwrap(), &accepts[0]);
}
