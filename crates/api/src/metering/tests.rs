use super::*;

fn input<'a>(
    mtok: Option<&'a str>,
    mtok_in: Option<&'a str>,
    mtok_out: Option<&'a str>,
    approx: Option<u64>,
    max: Option<u64>,
) -> PriceInput<'a> {
    PriceInput {
        per_mtok: mtok,
        per_mtok_input: mtok_in,
        per_mtok_output: mtok_out,
        approx_tokens_per_request: approx,
        max_tokens_per_request: max,
        ..PriceInput::default()
    }
}

fn metered(i: PriceInput<'_>) -> MeteredPrice {
    metered_price(i, 6).unwrap().unwrap()
}

#[test]
fn metered_terms_table() {
    // (input, rates in/out, maximum, fallback, max tokens, fallback tokens)
    let cases = [
        // 1 USDC per MTok: 1 atomic per token; default 1000 tokens, maximum 10 x that.
        (
            input(Some("1"), None, None, None, None),
            (1_000_000, 1_000_000),
            10_000,
            1000,
            10_000,
            1000,
        ),
        (
            input(Some("1"), None, None, Some(500), Some(8000)),
            (1_000_000, 1_000_000),
            8000,
            500,
            8000,
            500,
        ),
        // Split rates: the maximum and the fallback use the higher one.
        (
            input(None, Some("0.15"), Some("0.6"), Some(1000), Some(4000)),
            (150_000, 600_000),
            2400,
            600,
            4000,
            1000,
        ),
        // One side defaults to perMTok, the other overrides it.
        (
            input(Some("0.5"), None, Some("2"), None, None),
            (500_000, 2_000_000),
            20_000,
            2000,
            10_000,
            1000,
        ),
        // Only outputs priced: inputs are free.
        (
            input(None, None, Some("3"), Some(10), Some(10)),
            (0, 3_000_000),
            30,
            30,
            10,
            10,
        ),
        // Sub-atomic results: the maximum rounds up (0.600002 -> 1), the exact price half-up
        // (0.6 -> 1).
        (
            input(Some("0.000002"), None, None, Some(300_000), Some(300_001)),
            (2, 2),
            1,
            1,
            300_001,
            300_000,
        ),
        // The most precise price: one atomic unit per million tokens.
        (
            input(Some("0.000001"), None, None, Some(1_000_000), None),
            (1, 1),
            10,
            1,
            10_000_000,
            1_000_000,
        ),
    ];
    for (i, (inp, rates, maximum, fallback, max_tokens, fallback_tokens)) in
        cases.into_iter().enumerate()
    {
        let m = metered(inp);
        assert_eq!(
            (m.tariff.rates.input, m.tariff.rates.output),
            rates,
            "case {i}"
        );
        assert_eq!(m.tariff.maximum, maximum, "case {i}");
        assert_eq!(m.tariff.fallback, fallback, "case {i}");
        assert_eq!(
            (m.max_tokens, m.fallback_tokens),
            (max_tokens, fallback_tokens),
            "case {i}"
        );
        // The fallback is the exact price of the same offer.
        assert_eq!(
            m.tariff.fallback,
            price::effective_price(inp, 6).unwrap().atomic.min(maximum),
            "case {i}"
        );
    }
}

#[test]
fn not_metered_and_refused_terms() {
    let per_request = PriceInput {
        per_request: Some("0.001"),
        per_mtok: Some("1"),
        ..PriceInput::default()
    };
    assert_eq!(metered_price(per_request, 6), Ok(None));
    let per_hour = PriceInput {
        per_hour: Some("1"),
        ..PriceInput::default()
    };
    assert_eq!(metered_price(per_hour, 6), Ok(None));
    let cases = [
        (
            input(Some("0.0000001"), None, None, Some(100_000_000), None),
            "perMTok 0.0000001 is finer",
        ),
        (
            input(Some("1"), Some("0.1234567"), None, None, None),
            "perMTokInput 0.1234567 is finer",
        ),
        (
            input(Some("1"), None, None, Some(1000), Some(999)),
            "maxTokensPerRequest 999 is below approxTokensPerRequest 1000",
        ),
        (
            input(Some("1"), None, None, None, Some(0)),
            "maxTokensPerRequest 0 is below",
        ),
        (
            input(None, Some("0"), Some("0"), None, None),
            "rounds to zero",
        ),
        (input(Some("x"), None, None, None, None), "not a decimal"),
        (
            input(Some("1"), None, None, Some(u64::MAX), None),
            "overflow",
        ),
    ];
    for (inp, want) in cases {
        let err = metered_price(inp, 6).unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn usage_cost_is_the_exact_ceiling() {
    let rates = TokenRates {
        input: 150_000,
        output: 600_000,
    };
    // (input tokens, output tokens, atomic units)
    let cases = [
        (0, 0, 0),
        (1, 0, 1),   // 0.15 -> 1
        (0, 1, 1),   // 0.6 -> 1
        (6, 0, 1),   // 0.9 -> 1
        (7, 0, 2),   // 1.05 -> 2
        (10, 5, 5),  // 1.5 + 3 = 4.5 -> 5
        (20, 10, 9), // 3 + 6 = 9 exactly
        (1_000_000, 1_000_000, 750_000),
        (1_000_001, 0, 150_001), // 150000.15 -> 150001
    ];
    for (i, o, want) in cases {
        let usage = TokenUsage {
            input: i,
            output: o,
        };
        assert_eq!(usage_cost(rates, usage), Some(want), "{i}+{o}");
        // Against the defining formula in wider arithmetic.
        let num = u128::from(i) * 150_000 + u128::from(o) * 600_000;
        assert_eq!(want, num.div_ceil(1_000_000), "{i}+{o}");
    }
    let huge = TokenUsage {
        input: u64::MAX,
        output: u64::MAX,
    };
    let rates = TokenRates {
        input: u128::MAX / 2,
        output: u128::MAX / 2,
    };
    assert_eq!(usage_cost(rates, huge), None);
}

#[test]
fn charge_table() {
    let tariff = Tariff {
        rates: TokenRates {
            input: 1_000_000,
            output: 2_000_000,
        },
        maximum: 10_000,
        fallback: 2_000,
    };
    let usage = |input, output| Some(TokenUsage { input, output });
    // (usage, authorized, amount, capped, basis is usage)
    let cases = [
        (usage(100, 200), 10_000, 500, false, true),
        (usage(0, 0), 10_000, 0, false, true),
        (usage(0, 5_000), 10_000, 10_000, false, true),
        (usage(1, 5_000), 10_000, 10_000, true, true),
        (usage(u64::MAX, u64::MAX), 10_000, 10_000, true, true),
        // A larger authorization does not raise the maximum.
        (usage(0, 9_000), 1_000_000, 10_000, true, true),
        // A smaller one lowers the cap (the payment cannot settle more).
        (usage(0, 4_000), 5_000, 5_000, true, true),
        (None, 10_000, 2_000, false, false),
        (None, 1_000, 1_000, true, false),
    ];
    for (u, authorized, amount, capped, by_usage) in cases {
        let c = charge(&tariff, u, authorized);
        assert_eq!(
            (c.amount, c.capped),
            (amount, capped),
            "{u:?} / {authorized}"
        );
        assert_eq!(matches!(c.basis, ChargeBasis::Usage(_)), by_usage, "{u:?}");
        assert!(c.amount <= tariff.maximum.min(authorized));
    }
}

#[test]
fn the_description_states_rates_and_what_a_request_costs() {
    let split = metered(input(
        None,
        Some("0.15"),
        Some("0.6"),
        Some(1000),
        Some(4000),
    ));
    assert_eq!(
        describe(&split, 6, "USDC", false),
        "Metered per token: 0.15 USDC per million input tokens and 0.6 USDC per million output \
         tokens. A request costs 0.0006 USDC (1000 tokens), paid with the exact scheme."
    );
    assert_eq!(
        describe(&split, 6, "USDC", true),
        "Metered per token: 0.15 USDC per million input tokens and 0.6 USDC per million output \
         tokens. Paid with upto, a request is charged the tokens its answer reports, rounded up \
         to the atomic unit, at most 0.0024 USDC (4000 tokens); an answer without usage is \
         charged 0.0006 USDC (1000 tokens). Paid with exact, a request costs 0.0006 USDC."
    );
    let one = metered(input(Some("1"), None, None, None, None));
    for upto in [false, true] {
        assert!(
            describe(&one, 6, "USDC", upto)
                .starts_with("Metered per token: 1 USDC per million tokens.")
        );
    }
}

#[test]
fn route_terms_round_trip() {
    let m = metered(input(
        None,
        Some("0.15"),
        Some("0.6"),
        Some(1000),
        Some(4000),
    ));
    let route = crate::payment_route::Metering::from_price(&m);
    assert_eq!(route.max_amount, "2400");
    assert_eq!(route.tariff("600"), Some(m.tariff));
    assert_eq!(route.tariff("2401"), None, "fallback above the maximum");
    assert_eq!(route.tariff("x"), None);
    let mut broken = route.clone();
    broken.max_amount = "0".into();
    assert_eq!(broken.tariff("0"), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
    /// Over 1 000 random answers, the charge is the defining formula exactly (computed here by
    /// quotient and remainder, in ranges where nothing overflows), capped at the maximum and
    /// the authorization.
    #[test]
    fn charges_equal_the_formula(
        input in 0u64..10_000_000,
        output in 0u64..10_000_000,
        rate_in in 0u128..100_000_000,
        rate_out in 0u128..100_000_000,
        maximum in 1u128..1_000_000_000_000,
        authorized in 1u128..2_000_000_000_000,
    ) {
        let tariff = Tariff {
            rates: TokenRates { input: rate_in, output: rate_out },
            maximum,
            fallback: 1.min(maximum),
        };
        let c = charge(&tariff, Some(TokenUsage { input, output }), authorized);
        let num = u128::from(input) * rate_in + u128::from(output) * rate_out;
        let exact = num / 1_000_000 + u128::from(num % 1_000_000 != 0);
        let cap = maximum.min(authorized);
        proptest::prop_assert_eq!(c.amount, exact.min(cap));
        proptest::prop_assert_eq!(c.capped, exact > cap);
    }
}

#[test]
fn the_receipt_reports_the_basis_the_tokens_and_a_cap() {
    let usage = TokenUsage {
        input: 12,
        output: 30,
    };
    let cases = [
        (
            Charge {
                amount: 61,
                basis: ChargeBasis::Usage(usage),
                capped: false,
            },
            r#"{"basis":"usage","capped":false,"inputTokens":12,"maximum":"2400","outputTokens":30}"#,
        ),
        (
            Charge {
                amount: 2400,
                basis: ChargeBasis::Usage(usage),
                capped: true,
            },
            r#"{"basis":"usage","capped":true,"inputTokens":12,"maximum":"2400","outputTokens":30}"#,
        ),
        (
            Charge {
                amount: 600,
                basis: ChargeBasis::Fallback,
                capped: false,
            },
            r#"{"basis":"fallback","capped":false,"maximum":"2400"}"#,
        ),
    ];
    for (charge, want) in cases {
        assert_eq!(
            receipt_report(&charge, 2400).to_string(),
            want,
            "{charge:?}"
        );
    }
}
