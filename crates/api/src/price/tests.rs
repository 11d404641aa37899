use super::*;

#[test]
fn to_atomic_table() {
    // (input, decimals, atomic)
    let cases: &[(&str, u8, u128)] = &[
        ("0.001", 6, 1000),
        ("0.0001", 6, 100),
        ("1", 6, 1_000_000),
        ("1.5", 6, 1_500_000),
        ("0.000001", 6, 1),
        ("0.0000005", 6, 1),  // exactly half rounds up
        ("0.00000049", 6, 0), // below half rounds down
        ("0.0000015", 6, 2),
        ("0.0000025", 6, 3), // half-up, not banker's rounding
        ("0.1234567", 6, 123_457),
        ("10.0000000000", 6, 10_000_000),
        ("007.5", 6, 7_500_000),
        ("0", 6, 0),
        ("123.456", 0, 123),
        ("0.5", 0, 1),
        ("1", 18, 1_000_000_000_000_000_000),
    ];
    for &(input, decimals, want) in cases {
        let got = Decimal::parse(input).unwrap().to_atomic(decimals).unwrap();
        assert_eq!(got, want, "{input} at {decimals} decimals");
    }
}

#[test]
fn parse_rejections() {
    let cases: &[(&str, PriceError)] = &[
        ("", PriceError::Empty),
        ("-1", PriceError::Negative("-1".into())),
        ("-0.001", PriceError::Negative("-0.001".into())),
        ("abc", PriceError::NotANumber("abc".into())),
        ("1e-3", PriceError::NotANumber("1e-3".into())),
        (" 1", PriceError::NotANumber(" 1".into())),
        ("1 ", PriceError::NotANumber("1 ".into())),
        ("+1", PriceError::NotANumber("+1".into())),
        (".5", PriceError::NotANumber(".5".into())),
        ("5.", PriceError::NotANumber("5.".into())),
        ("1.2.3", PriceError::NotANumber("1.2.3".into())),
        ("0x10", PriceError::NotANumber("0x10".into())),
        ("1,5", PriceError::NotANumber("1,5".into())),
        ("١٢", PriceError::NotANumber("١٢".into())), // non-ASCII digits
        ("NaN", PriceError::NotANumber("NaN".into())),
        (
            "1234567890123456789012345678901",
            PriceError::TooManyDigits("1234567890123456789012345678901".into()),
        ),
        (
            "0.0000000000000000000000000000001",
            PriceError::TooManyDigits("0.0000000000000000000000000000001".into()),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(Decimal::parse(input).unwrap_err(), *want, "{input:?}");
    }
    // Leading zeros are not significant digits.
    assert!(Decimal::parse(&format!("{}1", "0".repeat(40))).is_ok());
}

#[test]
fn display_is_normalized() {
    let cases = [
        ("1.0", "1"),
        ("0.00100", "0.001"),
        ("000", "0"),
        ("0.0", "0"),
        ("12.50", "12.5"),
        ("100", "100"),
    ];
    for (input, want) in cases {
        assert_eq!(Decimal::parse(input).unwrap().to_string(), want);
    }
    assert_eq!(format_atomic(1000, 6), "0.001");
    assert_eq!(format_atomic(1_500_000, 6), "1.5");
    assert_eq!(format_atomic(0, 6), "0");
    assert_eq!(format_atomic(7, 0), "7");
}

#[test]
fn per_mtok_examples_of_the_reference() {
    // obol-reference.md §5.6: 1.25 -> 0.00125, 1.0 -> 0.001 at 1000 tokens per request.
    let cases = [
        ("1.25", 1000, "0.00125"),
        ("1.0", 1000, "0.001"),
        ("3", 2000, "0.006"),
        ("0.5", 1, "0.0000005"),
    ];
    for (per_mtok, tokens, want) in cases {
        let d = Decimal::parse(per_mtok).unwrap();
        assert_eq!(d.per_mtok_to_per_request(tokens).unwrap().to_string(), want);
    }
    assert_eq!(
        Decimal::parse("1").unwrap().per_mtok_to_per_request(0),
        Err(PriceError::ZeroTokens)
    );
}

fn input<'a>(req: Option<&'a str>, mtok: Option<&'a str>, hour: Option<&'a str>) -> PriceInput<'a> {
    PriceInput {
        per_request: req,
        per_mtok: mtok,
        per_hour: hour,
        ..PriceInput::default()
    }
}

#[test]
fn effective_price_precedence_and_conversion() {
    // The Go controller's C11 cases, with the conversions this project documents.
    let cases: &[(PriceInput<'_>, PriceSource, u128)] = &[
        (
            input(Some("0.001"), None, None),
            PriceSource::PerRequest,
            1000,
        ),
        (input(None, Some("1.0"), None), PriceSource::PerMTok, 1000),
        // 0.5 per hour, 5 minutes per request: 0.041666… -> 41667 (half-up).
        (input(None, None, Some("0.5")), PriceSource::PerHour, 41_667),
        (
            input(Some("0.01"), Some("1.0"), None),
            PriceSource::PerRequest,
            10_000,
        ),
        (
            input(None, Some("2"), Some("100")),
            PriceSource::PerMTok,
            2000,
        ),
        (
            input(Some(""), Some("1.25"), None),
            PriceSource::PerMTok,
            1250,
        ),
        (
            input(None, None, Some("1.2")),
            PriceSource::PerHour,
            100_000,
        ),
    ];
    for (i, (inp, source, atomic)) in cases.iter().enumerate() {
        let p = effective_price(*inp, USDC_DECIMALS).unwrap();
        assert_eq!((p.source, p.atomic), (*source, *atomic), "case {i}");
    }
    let with_tokens = PriceInput {
        approx_tokens_per_request: Some(4000),
        ..input(None, Some("1"), None)
    };
    let p = effective_price(with_tokens, USDC_DECIMALS).unwrap();
    assert_eq!((p.atomic, p.approx_tokens_per_request), (4000, Some(4000)));
}

#[test]
fn effective_price_rejections() {
    let cases: &[(PriceInput<'_>, PriceError)] = &[
        (input(None, None, None), PriceError::Missing),
        (input(Some(" "), None, None), PriceError::Missing),
        (input(Some("0"), None, None), PriceError::Zero("0".into())),
        (
            input(Some("0.0000001"), None, None),
            PriceError::Zero("0.0000001".into()),
        ),
        (
            input(None, Some("0.0004"), None),
            PriceError::Zero("0.0004".into()),
        ),
        (
            input(Some("-1"), None, None),
            PriceError::Negative("-1".into()),
        ),
        (
            input(Some("free"), Some("1"), None),
            PriceError::NotANumber("free".into()),
        ),
    ];
    for (inp, want) in cases {
        assert_eq!(effective_price(*inp, USDC_DECIMALS).unwrap_err(), *want);
    }
    let absurd = input(Some("999999999999999999999999999999"), None, None);
    assert_eq!(effective_price(absurd, 30), Err(PriceError::Overflow));
}
