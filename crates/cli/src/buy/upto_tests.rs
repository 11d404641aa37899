use super::*;
use crate::buy::plan::tests::{USDC_BASE, USDC_BASE_SEPOLIA, want};
use obol_x402::X402Version;
use obol_x402::wire::Eip712Extra;

const PAY_TO: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const FACILITATOR: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

fn upto(network: &str, asset: &str, amount: u64) -> Offered {
    let mut extra = Eip712Extra::new("USDC", "2");
    extra.asset_transfer_method = Some("permit2".into());
    extra.facilitator_address = Some(FACILITATOR.parse().unwrap());
    Offered {
        version: X402Version::V2,
        scheme: "upto".into(),
        network: network.into(),
        amount: U256::from(amount),
        asset: asset.parse().unwrap(),
        pay_to: PAY_TO.parse().unwrap(),
        max_timeout_seconds: 300,
        extra: Some(extra),
    }
}

#[test]
fn the_upto_requirement_or_a_refusal() {
    let good = upto("eip155:84532", USDC_BASE_SEPOLIA, 2400);
    let exact = Offered {
        scheme: "exact".into(),
        extra: Some(Eip712Extra::new("USDC", "2")),
        ..upto("eip155:84532", USDC_BASE_SEPOLIA, 600)
    };
    let with = |f: &dyn Fn(&mut Offered)| {
        let mut o = good.clone();
        f(&mut o);
        o
    };
    let eip3009 = with(&|o| o.extra.as_mut().unwrap().asset_transfer_method = None);
    let nobody = with(&|o| o.extra.as_mut().unwrap().facilitator_address = None);
    let free = with(&|o| o.amount = U256::ZERO);
    let cases: Vec<(&str, Vec<Offered>, Want, &str)> = vec![
        (
            "exact only: buy exact",
            vec![exact.clone()],
            want(Some(600), false),
            "None",
        ),
        (
            "upto beside exact",
            vec![good.clone(), exact.clone()],
            want(Some(2400), false),
            "Some",
        ),
        (
            "confirmed without a cap",
            vec![good.clone()],
            want(None, true),
            "Some",
        ),
        (
            "neither capped nor confirmed",
            vec![good.clone()],
            want(None, false),
            "NotConfirmed",
        ),
        (
            "maximum above the cap",
            vec![good.clone()],
            want(Some(2399), false),
            "AboveCap",
        ),
        (
            "other chain",
            vec![upto("eip155:8453", USDC_BASE_SEPOLIA, 2400)],
            want(Some(2400), false),
            "Invalid",
        ),
        (
            "other token",
            vec![upto("eip155:84532", USDC_BASE, 2400)],
            want(Some(2400), false),
            "Invalid",
        ),
        (
            "not permit2",
            vec![eip3009],
            want(Some(2400), false),
            "TransferMethod",
        ),
        (
            "no facilitator signer",
            vec![nobody],
            want(Some(2400), false),
            "Invalid",
        ),
        (
            "zero maximum",
            vec![free],
            want(Some(2400), false),
            "ZeroPrice",
        ),
    ];
    for (case, offers, want, expected) in cases {
        let got = match choose_upto(&offers, &want) {
            Ok(None) => "None".to_owned(),
            Ok(Some(c)) => {
                assert_eq!(c.offered, good, "{case}");
                assert_eq!(c.facilitator, FACILITATOR.parse::<Address>().unwrap());
                "Some".to_owned()
            }
            Err(e) => format!("{e:?}"),
        };
        assert!(got.starts_with(expected), "{case}: {got}");
    }
}

#[test]
fn the_approval_is_sent_only_when_needed_and_only_to_a_deployed_permit2() {
    let facts = |allowance: u64, permit2: bool, proxy: bool| ChainFacts {
        allowance: U256::from(allowance),
        permit2_deployed: permit2,
        proxy_deployed: proxy,
    };
    let max = U256::from(2400u64);
    let cases = [
        (
            "nothing approved",
            facts(0, true, true),
            10,
            Ok(Some(24_000u64)),
        ),
        ("exactly enough", facts(24_000, true, true), 10, Ok(None)),
        ("one short", facts(23_999, true, true), 10, Ok(Some(1))),
        ("no Permit2", facts(0, false, true), 10, Err("no Permit2")),
        (
            "no proxy",
            facts(u64::MAX, true, false),
            10,
            Err("no x402UptoPermit2Proxy"),
        ),
    ];
    for (case, facts, count, expected) in cases {
        let got = approval(facts, count, max, U256::ZERO);
        match (got, expected) {
            (Ok(Approval::Enough), Ok(None)) => {}
            (Ok(Approval::Approve { amount, short }), Ok(Some(s))) => {
                assert_eq!((amount, short), (U256::MAX, U256::from(s)), "{case}");
            }
            (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{case}: {e}"),
            (got, expected) => panic!("{case}: {got:?}, expected {expected:?}"),
        }
    }
    assert!(approval(facts(0, true, true), u64::MAX, U256::MAX, U256::ZERO).is_err());
    // The payer's older authorizations count: enough for the batch alone is not enough.
    assert_eq!(
        approval(facts(24_000, true, true), 10, max, U256::from(600u64)),
        Ok(Approval::Approve {
            amount: U256::MAX,
            short: U256::from(600u64)
        })
    );
    assert_eq!(
        approval(facts(24_600, true, true), 10, max, U256::from(600u64)),
        Ok(Approval::Enough)
    );
}

#[test]
fn outstanding_counts_the_payers_unspent_upto_maxima_on_the_token() {
    use obol_api::purchase_request::{PurchaseRequestSpec, PurchaseRequestStatus};
    const PAYER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let purchase =
        |scheme: Option<&str>, payer: &str, asset: &str, price: &str, spent: Option<u64>| {
            let mut p = PurchaseRequest::new(
                "p",
                PurchaseRequestSpec {
                    seller_url: "https://s".into(),
                    upstream: None,
                    remote_model: None,
                    network: "eip155:84532".into(),
                    asset: asset.into(),
                    pay_to: PAY_TO.into(),
                    price: price.into(),
                    scheme: scheme.map(Into::into),
                    payer: payer.into(),
                    eip712_name: None,
                    eip712_version: None,
                    count: 10,
                    pool: vec![],
                },
            );
            p.status = spent.map(|s| PurchaseRequestStatus {
                spent: Some(s),
                ..PurchaseRequestStatus::default()
            });
            p
        };
    let lower = PAYER.to_lowercase();
    let all = [
        purchase(Some("upto"), PAYER, USDC_BASE_SEPOLIA, "2400", Some(4)), // 6 × 2400
        purchase(Some("upto"), &lower, USDC_BASE_SEPOLIA, "100", None),    // 10 × 100
        purchase(None, PAYER, USDC_BASE_SEPOLIA, "2400", None),            // exact: no Permit2
        purchase(Some("exact"), PAYER, USDC_BASE_SEPOLIA, "2400", None),
        purchase(Some("upto"), PAY_TO, USDC_BASE_SEPOLIA, "2400", None), // another payer
        purchase(Some("upto"), PAYER, USDC_BASE, "2400", None),          // another token
        purchase(Some("upto"), PAYER, USDC_BASE_SEPOLIA, "1", Some(11)), // over-reported: 0
    ];
    let payer: Address = PAYER.parse().unwrap();
    let token: Address = USDC_BASE_SEPOLIA.parse().unwrap();
    assert_eq!(
        outstanding(&all, payer, token),
        Ok(U256::from(6u64 * 2400 + 10 * 100))
    );
    assert_eq!(outstanding(&[], payer, token), Ok(U256::ZERO));
    let bad = [purchase(
        Some("upto"),
        PAYER,
        USDC_BASE_SEPOLIA,
        "lots",
        None,
    )];
    assert!(matches!(
        outstanding(&bad, payer, token),
        Err(Refusal::Invalid(_))
    ));
}

#[test]
fn each_authorization_names_the_proxy_the_seller_and_the_facilitator() {
    let choice = choose_upto(
        &[upto("eip155:84532", USDC_BASE_SEPOLIA, 2400)],
        &want(Some(2400), false),
    )
    .unwrap()
    .unwrap();
    let payer: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        .parse()
        .unwrap();
    let auth = authorization(payer, &choice, U256::from(7u64), 1_900_000_000);
    assert_eq!(auth.from, payer);
    assert_eq!(auth.spender, UPTO_PROXY_ADDRESS);
    assert_eq!(
        (auth.permitted.token, auth.permitted.amount),
        (choice.offered.asset, U256::from(2400u64))
    );
    assert_eq!(
        (auth.nonce, auth.deadline),
        (U256::from(7u64), 1_900_000_000)
    );
    assert_eq!(
        (
            auth.witness.to,
            auth.witness.facilitator,
            auth.witness.valid_after
        ),
        (choice.offered.pay_to, choice.facilitator, 0)
    );
    // Signed with obol-x402's Permit2 signing, it recovers to the payer.
    let key: obol_x402::PrivateKey =
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
            .parse()
            .unwrap();
    let signed = obol_x402::permit2::sign_payload(&key, 84_532, auth).unwrap();
    let signer = obol_x402::permit2::recover_signer(
        84_532,
        &signed.permit2_authorization,
        &signed.signature,
    )
    .unwrap();
    assert_eq!(signer, payer);
}
