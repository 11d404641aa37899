use super::*;

const PAY_TO: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
pub(in crate::buy) const USDC_BASE_SEPOLIA: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
pub(in crate::buy) const USDC_BASE: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";

fn offer(network: &str, asset: &str, amount: u64) -> Offered {
    Offered {
        version: X402Version::V2,
        scheme: "exact".into(),
        network: network.into(),
        amount: U256::from(amount),
        asset: asset.parse().unwrap(),
        pay_to: PAY_TO.parse().unwrap(),
        max_timeout_seconds: 300,
        extra: Some(Eip712Extra::new("USDC", "2")),
    }
}

/// What a buyer of Base Sepolia's USDC wants: capped at `max`, or `confirmed`.
pub(in crate::buy) fn want(max: Option<u64>, confirmed: bool) -> Want {
    Want {
        network: Network::resolve("base-sepolia").unwrap(),
        asset: USDC_BASE_SEPOLIA.parse().unwrap(),
        max_price: max.map(U256::from),
        confirmed,
        decimals: 6,
    }
}

#[test]
fn urls_must_be_https_except_to_this_machine() {
    for ok in [
        "https://seller.example/services/x",
        "http://127.0.0.1:8080/services/demo",
        "http://127.3.4.5/x",
        "http://localhost:9/x",
        "http://[::1]:80/x",
    ] {
        assert!(check_url(ok).is_ok(), "{ok}");
    }
    let cases = [
        ("http://seller.example/x", "NotHttps"),
        ("http://10.0.0.1/x", "NotHttps"),
        ("http://localhost.evil.example/x", "NotHttps"),
        ("ftp://seller/x", "BadUrl"),
        ("seller/x", "BadUrl"),
    ];
    for (url, kind) in cases {
        let err = check_url(url).unwrap_err();
        assert!(format!("{err:?}").starts_with(kind), "{url}: {err:?}");
    }
}

#[test]
fn choice_and_refusals() {
    let good = offer("eip155:84532", USDC_BASE_SEPOLIA, 1000);
    let mut permit2 = good.clone();
    permit2.extra.as_mut().unwrap().asset_transfer_method = Some("permit2".into());
    let mut wrong_domain = good.clone();
    wrong_domain.extra = Some(Eip712Extra::new("USD Coin", "2"));
    let mut no_domain = good.clone();
    no_domain.extra = None;
    let mut upto = good.clone();
    upto.scheme = "upto".into();
    // (offers, want) -> Ok(amount) or the refusal's variant name
    type Case = (&'static str, Vec<Offered>, Want, Result<u64, &'static str>);
    let cases: Vec<Case> = vec![
        (
            "under the cap",
            vec![good.clone()],
            want(Some(1000), false),
            Ok(1000),
        ),
        (
            "v1 network name",
            vec![offer("base-sepolia", USDC_BASE_SEPOLIA, 5)],
            want(Some(9), false),
            Ok(5),
        ),
        (
            "confirmed, no cap",
            vec![good.clone()],
            want(None, true),
            Ok(1000),
        ),
        (
            "no domain: the network's USDC",
            vec![no_domain],
            want(Some(1000), false),
            Ok(1000),
        ),
        (
            "picks the matching one",
            vec![offer("eip155:8453", USDC_BASE, 1), good.clone()],
            want(Some(1000), false),
            Ok(1000),
        ),
        (
            "above the cap",
            vec![good.clone()],
            want(Some(999), false),
            Err("AboveCap"),
        ),
        (
            "not confirmed",
            vec![good.clone()],
            want(None, false),
            Err("NotConfirmed"),
        ),
        (
            "other network",
            vec![offer("eip155:8453", USDC_BASE, 1000)],
            want(Some(1000), false),
            Err("WrongNetwork"),
        ),
        (
            "other asset",
            vec![offer("eip155:84532", USDC_BASE, 1000)],
            want(Some(1000), false),
            Err("WrongAsset"),
        ),
        (
            "wrong domain",
            vec![wrong_domain],
            want(Some(1000), false),
            Err("WrongDomain"),
        ),
        (
            "permit2",
            vec![permit2],
            want(Some(1000), false),
            Err("TransferMethod"),
        ),
        (
            "free",
            vec![offer("eip155:84532", USDC_BASE_SEPOLIA, 0)],
            want(Some(1000), false),
            Err("ZeroPrice"),
        ),
        (
            "no exact",
            vec![upto],
            want(Some(1000), false),
            Err("NoExact"),
        ),
        ("nothing", vec![], want(Some(1000), false), Err("NoExact")),
    ];
    for (what, offers, w, expected) in cases {
        match (choose(&offers, &w), expected) {
            (Ok(c), Ok(amount)) => {
                assert_eq!(c.offered.amount, U256::from(amount), "{what}");
                assert_eq!(
                    (c.domain.name.as_str(), c.domain.chain_id),
                    ("USDC", 84532),
                    "{what}"
                );
            }
            (Err(e), Err(kind)) => {
                assert!(format!("{e:?}").starts_with(kind), "{what}: {e:?}");
                assert!(!e.to_string().is_empty());
            }
            (got, _) => panic!("{what}: {got:?}"),
        }
    }
}

#[test]
fn refusals_say_the_price_in_tokens() {
    let err = choose(
        &[offer("eip155:84532", USDC_BASE_SEPOLIA, 2500)],
        &want(Some(1000), false),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the seller asks 0.0025 per request, above --max-price 0.001"
    );
}

#[test]
fn a_metered_offer_beside_exact_is_pointed_out() {
    let exact = offer("eip155:84532", USDC_BASE_SEPOLIA, 600);
    let upto = |network: &str, asset: &str| Offered {
        scheme: "upto".into(),
        amount: U256::from(2400u64),
        ..offer(network, asset, 0)
    };
    let cases = [
        ("exact only", vec![exact.clone()], None),
        (
            "upto on the same chain and token",
            vec![upto("eip155:84532", USDC_BASE_SEPOLIA), exact.clone()],
            Some(
                "at most 0.0024 per request); these are exact authorizations: each request costs 0.0006",
            ),
        ),
        (
            "the same chain by its v1 name",
            vec![upto("base-sepolia", USDC_BASE_SEPOLIA), exact.clone()],
            Some("at most 0.0024"),
        ),
        (
            "upto on another chain",
            vec![upto("eip155:8453", USDC_BASE_SEPOLIA), exact.clone()],
            None,
        ),
        (
            "upto in another token",
            vec![upto("eip155:84532", USDC_BASE), exact.clone()],
            None,
        ),
    ];
    for (case, offers, expected) in cases {
        let notice = metered_notice(&offers, &exact, 6);
        match expected {
            None => assert_eq!(notice, None, "{case}"),
            Some(part) => assert!(
                notice.as_deref().is_some_and(|n| n.contains(part)),
                "{case}: {notice:?}"
            ),
        }
    }
}
