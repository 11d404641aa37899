use super::*;

#[test]
fn decimal_u256_table() {
    let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    let cases: &[(&str, Option<U256>)] = &[
        ("0", Some(U256::ZERO)),
        ("10000", Some(U256::from(10_000u64))),
        ("0010", Some(U256::from(10u64))),
        (max, Some(U256::MAX)),
        // 2^256 overflows.
        (
            "115792089237316195423570985008687907853269984665640564039457584007913129639936",
            None,
        ),
        ("", None),
        ("-1", None),
        ("+1", None),
        ("0x10", None),
        ("1e3", None),
        (" 1", None),
        ("1.0", None),
    ];
    for (input, want) in cases {
        assert_eq!(parse_decimal_u256(input).ok(), *want, "{input:?}");
    }
}

#[test]
fn decimal_u64_table() {
    let cases: &[(&str, Option<u64>)] = &[
        ("1740672089", Some(1_740_672_089)),
        ("18446744073709551615", Some(u64::MAX)),
        ("18446744073709551616", None),
        ("0x67c0b059", None),
        ("+5", None),
        ("", None),
    ];
    for (input, want) in cases {
        assert_eq!(parse_decimal_u64(input).ok(), *want, "{input:?}");
    }
}

#[test]
fn address_table() {
    let checksummed = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
    let lower = checksummed.to_lowercase();
    let upper = format!("0x{}", checksummed[2..].to_uppercase());
    assert_eq!(parse_address(checksummed), parse_address(&lower));
    assert_eq!(parse_address(checksummed), parse_address(&upper));
    for bad in [
        "209693Bc6afc0C5328bA36FaF03C514EF312287C",
        "0x209693Bc6afc0C5328bA36FaF03C514EF312287",
        "0x209693Bc6afc0C5328bA36FaF03C514EF312287C00",
        "0x209693Bc6afc0C5328bA36FaF03C514EF312287G",
        "0X209693Bc6afc0C5328bA36FaF03C514EF312287C",
        "",
    ] {
        assert!(parse_address(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn b256_and_bytes_table() {
    let nonce = "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480";
    assert!(parse_b256(nonce).is_ok());
    assert!(parse_b256(&nonce[..65]).is_err());
    assert!(parse_b256(&nonce[2..]).is_err());
    assert_eq!(
        parse_hex_bytes("0x00ff").map(|b| b.to_vec()),
        Ok(vec![0, 255])
    );
    for bad in ["0x", "0x0", "00ff", "0xzz"] {
        assert!(parse_hex_bytes(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn networks_table() {
    assert!("base-sepolia".parse::<V1Network>().is_ok());
    for bad in ["eip155:84532", "Base", "", "base sepolia"] {
        assert!(bad.parse::<V1Network>().is_err(), "{bad:?}");
    }
    let cases: &[(&str, bool, Option<u64>)] = &[
        ("eip155:84532", true, Some(84_532)),
        ("eip155:1", true, Some(1)),
        ("eip155:01", true, None),
        ("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", true, None),
        ("base-sepolia", false, None),
        ("eip155:", false, None),
        ("EIP155:1", false, None),
        ("eip155:1:2", false, None),
    ];
    for (input, valid, chain) in cases {
        let parsed = input.parse::<Caip2>();
        assert_eq!(parsed.is_ok(), *valid, "{input:?}");
        assert_eq!(
            parsed.ok().and_then(|c| c.eip155_chain_id()),
            *chain,
            "{input:?}"
        );
    }
    assert_eq!(Caip2::eip155(84_532).as_str(), "eip155:84532");
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Probe {
    #[serde(with = "dec_u256")]
    value: U256,
}

#[test]
fn json_numbers_are_refused_where_strings_are_required() {
    assert!(serde_json::from_str::<Probe>(r#"{"value":"10000"}"#).is_ok());
    let err = serde_json::from_str::<Probe>(r#"{"value":10000}"#).unwrap_err();
    assert!(err.is_data(), "{err}");
    let out = serde_json::to_string(&Probe {
        value: U256::from(7u8),
    })
    .unwrap();
    assert_eq!(out, r#"{"value":"7"}"#);
}
