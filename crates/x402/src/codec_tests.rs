use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};

use super::*;

const V1_PAYMENT: &str = include_str!("../tests/fixtures/v1_x_payment.json");
const V2_PAYMENT: &str = include_str!("../tests/fixtures/v2_payment_signature.json");
const V2_REQUIRED: &str = include_str!("../tests/fixtures/v2_payment_required.json");

fn b64(json: &str) -> String {
    STANDARD.encode(json.trim_end())
}

#[test]
fn accepts_what_official_clients_send() {
    let cases = [
        ("v1 padded", b64(V1_PAYMENT), X402Version::V1),
        ("v2 padded", b64(V2_PAYMENT), X402Version::V2),
        (
            "v2 unpadded",
            STANDARD_NO_PAD.encode(V2_PAYMENT.trim_end()),
            X402Version::V2,
        ),
        (
            "surrounding OWS",
            format!(" \t{} ", b64(V1_PAYMENT)),
            X402Version::V1,
        ),
    ];
    for (name, header, version) in cases {
        let payload = decode_payment_payload(&header).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(payload.version(), version, "{name}");
    }
}

#[test]
fn rejects_everything_else_with_a_typed_reason() {
    let v1 = V1_PAYMENT.trim_end();
    // URL-safe base64 of a document whose standard encoding contains '/' (from "???").
    let url_safe = {
        let json = v1.replace(r#""scheme":"exact","#, r#""scheme":"exact","memo":"???","#);
        assert!(
            decode_payment_payload(&b64(&json)).is_ok(),
            "unknown keys are tolerated"
        );
        assert!(b64(&json).contains('/'));
        URL_SAFE.encode(json)
    };
    let half = b64(V1_PAYMENT).len() / 2;
    let inner_space = format!("{} {}", &b64(V1_PAYMENT)[..half], &b64(V1_PAYMENT)[half..]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "empty"),
        ("blank", "  ".into(), "empty"),
        ("oversized", "A".repeat(MAX_HEADER_LEN + 4), "too_large"),
        ("url-safe alphabet", url_safe, "invalid_base64"),
        ("inner whitespace", inner_space, "invalid_base64"),
        ("junk", "%%%".into(), "invalid_base64"),
        ("bad length", "QUJDR".into(), "invalid_base64"),
        ("not json", STANDARD.encode("hello"), "invalid_json"),
        (
            "truncated json",
            STANDARD.encode(&v1[..v1.len() - 1]),
            "invalid_json",
        ),
        ("json array", STANDARD.encode("[1]"), "invalid_shape"),
        (
            "no version",
            STANDARD.encode(r#"{"scheme":"exact"}"#),
            "missing_version",
        ),
        (
            "version 3",
            b64(&v1.replace(r#""x402Version":1"#, r#""x402Version":3"#)),
            "unsupported_version",
        ),
        (
            "version \"1\"",
            b64(&v1.replace(r#""x402Version":1"#, r#""x402Version":"1""#)),
            "unsupported_version",
        ),
        (
            "v1 with caip-2",
            b64(&v1.replace("base-sepolia", "eip155:84532")),
            "invalid_shape",
        ),
        (
            "value as number",
            b64(&v1.replace(r#""10000""#, "10000")),
            "invalid_shape",
        ),
        (
            "validAfter as number",
            b64(&v1.replace(r#""1740672089""#, "1740672089")),
            "invalid_shape",
        ),
        (
            "duplicate key",
            b64(&v1.replace(
                r#""scheme":"exact""#,
                r#""scheme":"exact","scheme":"exact""#,
            )),
            "invalid_shape",
        ),
        (
            "v2 shape under v1 tag",
            b64(&V2_PAYMENT
                .trim_end()
                .replace(r#""x402Version":2"#, r#""x402Version":1"#)),
            "invalid_shape",
        ),
    ];
    for (name, header, reason) in cases {
        let err = decode_payment_payload(&header).expect_err(name);
        assert_eq!(err.reason(), reason, "{name}: {err}");
    }
}

#[test]
fn size_is_checked_before_decoding() {
    let err = decode_payment_payload(&"!".repeat(MAX_HEADER_LEN + 1)).unwrap_err();
    assert_eq!(err.reason(), "too_large");
    assert!(decode_base64(&"A".repeat(MAX_HEADER_LEN)).is_ok());
}

#[test]
fn encode_round_trips_byte_for_byte() {
    for json in [V1_PAYMENT, V2_PAYMENT] {
        let payload = decode_payment_payload(&b64(json)).unwrap();
        assert_eq!(encode_header(&payload).unwrap(), b64(json));
    }
    let required = decode_payment_required(&b64(V2_REQUIRED)).unwrap();
    assert_eq!(encode_header(&required).unwrap(), b64(V2_REQUIRED));
    // x402.md §10.4: the spec's PAYMENT-REQUIRED and PAYMENT-SIGNATURE are 584 / 1088 chars.
    assert_eq!(b64(V2_REQUIRED).len(), 584);
    assert_eq!(b64(V2_PAYMENT).len(), 1088);
}

#[test]
fn payment_required_header_is_v2_only_and_body_is_either() {
    let v1_body = include_str!("../tests/fixtures/v1_payment_required.json");
    let err = decode_payment_required(&b64(v1_body)).unwrap_err();
    assert_eq!(err.reason(), "unsupported_version");
    assert!(matches!(
        parse_payment_required_body(v1_body.as_bytes()),
        Ok(PaymentRequired::V1(_))
    ));
    assert!(matches!(
        parse_payment_required_body(V2_REQUIRED.as_bytes()),
        Ok(PaymentRequired::V2(_))
    ));
    let big = vec![b' '; MAX_BODY_LEN + 1];
    assert_eq!(
        parse_payment_required_body(&big).unwrap_err().reason(),
        "too_large"
    );
}

#[test]
fn settle_response_header() {
    let ok = r#"{"success":true,"transaction":"0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef","network":"eip155:84532","payer":"0x857b06519E91e3A54538791bDbb0E22373e36b66"}"#;
    let decoded = decode_settle_response(&STANDARD.encode(ok)).unwrap();
    assert!(decoded.success);
    assert_eq!(encode_header(&decoded).unwrap(), STANDARD.encode(ok));
}

#[test]
fn scheme_payment_dispatches_on_the_accepted_scheme() {
    let upto = include_str!("../tests/fixtures/upto_payment_signature.json");
    let cases = [
        ("v1 exact", V1_PAYMENT.to_owned(), "exact"),
        ("v2 exact", V2_PAYMENT.to_owned(), "exact"),
        ("v2 upto", upto.to_owned(), "upto"),
        // Another scheme stays on the exact path, whose checks refuse it by name.
        (
            "v2 other scheme",
            V2_PAYMENT.replace(r#""scheme":"exact""#, r#""scheme":"batch""#),
            "exact",
        ),
    ];
    for (name, json, want) in cases {
        let got = match decode_scheme_payment(&b64(json.trim_end())).unwrap() {
            SchemePayment::Exact(_) => "exact",
            SchemePayment::Upto(_) => "upto",
        };
        assert_eq!(got, want, "{name}");
    }
    // An upto payload that is malformed is refused as such, never read as another scheme.
    let broken = upto.replace(r#""permit2Authorization""#, r#""authorization""#);
    let err = decode_scheme_payment(&b64(broken.trim_end())).unwrap_err();
    assert_eq!(err.reason(), "invalid_shape", "{err}");
    // An exact payload relabelled upto is not an upto payment.
    let relabelled = V2_PAYMENT.replace(r#""scheme":"exact""#, r#""scheme":"upto""#);
    assert_eq!(
        decode_scheme_payment(&b64(relabelled.trim_end()))
            .unwrap_err()
            .reason(),
        "invalid_shape"
    );
    assert_eq!(
        decode_scheme_payment("").unwrap_err().reason(),
        decode_payment_payload("").unwrap_err().reason()
    );
}
