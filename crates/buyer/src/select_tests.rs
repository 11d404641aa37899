use super::*;
use crate::pool::tests::mk_config;

const MOCK_402: &str = r#"{"x402Version":1,"accepts":[{"scheme":"exact","network":"base-sepolia","maxAmountRequired":"1000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}]}"#;

fn mk_upstream() -> Upstream {
    Upstream::parse("s", &mk_config("http://s", None, "base-sepolia")).unwrap()
}

fn mk_auth() -> Auth {
    Auth {
        key: "0xn".into(),
        payload: json!({"signature": "0x01", "authorization": {"nonce": "0xn"}}),
        scheme: crate::upstream::Scheme::Exact,
        valid_after: None,
        valid_before: None,
        from: None,
        to: None,
        value: None,
        token: None,
    }
}

#[test]
fn the_go_mock_seller_402_matches() {
    let offer = parse_offer(None, MOCK_402.as_bytes()).unwrap();
    assert_eq!(offer.version, X402Version::V1);
    assert_eq!(pick(&mk_upstream(), &offer), Some(0));
    let (name, value) = payment_header(&offer, 0, &mk_auth()).unwrap();
    assert_eq!(name, "X-PAYMENT");
    let decoded: Value = serde_json::from_slice(&codec::decode_base64(&value).unwrap()).unwrap();
    assert_eq!(decoded["x402Version"], 1);
    assert_eq!(decoded["network"], "base-sepolia");
    assert_eq!(decoded["payload"]["authorization"]["nonce"], "0xn");
}

#[test]
fn matching_table() {
    let up = mk_upstream();
    let base = serde_json::from_str::<Value>(MOCK_402).unwrap()["accepts"][0].clone();
    let with = |k: &str, v: &str| {
        let mut e = base.clone();
        e[k] = json!(v);
        e
    };
    let cases = [
        (
            "lowercase payTo",
            with("payTo", "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"),
            true,
        ),
        (
            "uppercase asset",
            with("asset", "0x036CBD53842C5426634E7929541EC2318F3DCF7E"),
            true,
        ),
        ("caip-2 network", with("network", "eip155:84532"), true),
        ("other chain", with("network", "base"), false),
        (
            "other payTo",
            with("payTo", "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
            false,
        ),
        ("higher amount", with("maxAmountRequired", "1001"), false),
        ("v2 amount wins", with("amount", "1000"), true),
        ("other scheme", with("scheme", "upto"), false),
    ];
    for (name, entry, want) in cases {
        let offer = Offer {
            version: X402Version::V1,
            accepts: vec![json!({"scheme": "exact"}), entry],
            resource: None,
            extensions: None,
        };
        assert_eq!(pick(&up, &offer).is_some(), want, "{name}");
    }
}

#[test]
fn v2_header_is_preferred_and_accepted_is_echoed_verbatim() {
    let accepted = json!({"scheme":"exact","network":"eip155:84532","amount":"1000",
        "asset":"0x036cbd53842c5426634e7929541ec2318f3dcf7e",
        "payTo":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","maxTimeoutSeconds":60,
        "extra":{"name":"USDC","version":"2"}});
    let required = json!({"x402Version":2,"resource":{"url":"http://s/x"},"accepts":[accepted]});
    let header = codec::encode_header(&required).unwrap();
    let offer = parse_offer(Some(&header), b"{}").unwrap();
    assert_eq!(offer.version, X402Version::V2);
    let idx = pick(&mk_upstream(), &offer).unwrap();
    let (name, value) = payment_header(&offer, idx, &mk_auth()).unwrap();
    assert_eq!(name, "PAYMENT-SIGNATURE");
    let decoded: Value = serde_json::from_slice(&codec::decode_base64(&value).unwrap()).unwrap();
    assert_eq!(decoded["accepted"], accepted);
    assert_eq!(decoded["resource"]["url"], "http://s/x");
}

#[test]
fn unusable_402s() {
    assert_eq!(
        parse_offer(None, br#"{"x402Version":1,"accepts":[]}"#),
        Err(OfferError::Empty)
    );
    assert!(matches!(
        parse_offer(None, b"nope"),
        Err(OfferError::Unreadable(_))
    ));
    assert!(matches!(
        parse_offer(None, b"{\"accepts\":[{}]}"),
        Err(OfferError::Unreadable(_))
    ));
    assert!(matches!(
        parse_offer(Some("!!"), b""),
        Err(OfferError::Unreadable(_))
    ));
}

#[test]
fn already_used_answers_are_recognised() {
    let yes: &[(u16, &str)] = &[
        (
            402,
            r#"{"x402Version":2,"error":"invalid_exact_evm_nonce_already_used"}"#,
        ),
        (400, "FiatTokenV2: authorization is used or canceled"),
        (402, "nonce already used"),
    ];
    for (status, body) in yes {
        assert!(says_already_used(*status, &[body.as_bytes()]), "{body}");
    }
    assert!(!says_already_used(200, &[b"already used"]));
    assert!(!says_already_used(402, &[b"insufficient_funds"]));
    let header = codec::encode_header(
        &json!({"success":false,"errorReason":"invalid_exact_evm_nonce_already_used"}),
    )
    .unwrap();
    assert!(says_already_used(402, &[b"{}", &decoded_header(&header)]));
}

#[test]
fn refusals_are_classified() {
    let used_words = br#"{"error":"invalid_exact_evm_nonce_already_used"}"#;
    let used_code = br#"{"error":"payment refused","reason":"replayed"}"#;
    let used_ext = br#"{"x402Version":2,"extensions":{"paymentFailure":{"reason":"replayed"}}}"#;
    let simulation = br#"{"error":"invalid_exact_evm_transaction_simulation_failed"}"#;
    let cases: [(u16, &[u8], Refusal); 6] = [
        (402, used_words, Refusal::AlreadyUsed),
        (402, used_code, Refusal::AlreadyUsed),
        (402, used_ext, Refusal::AlreadyUsed),
        // The official facilitator's answer for a spent nonce: only the chain can tell.
        (402, simulation, Refusal::Payment),
        (500, b"boom", Refusal::Other),
        (400, b"{}", Refusal::Other),
    ];
    for (status, body, want) in cases {
        assert_eq!(
            classify_refusal(status, &[body]),
            want,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn settlement_transactions_are_read_from_receipts() {
    let receipt = |tx: &str| {
        codec::encode_header(
            &json!({"success": false, "transaction": tx, "network": "eip155:84532"}),
        )
        .unwrap()
    };
    let with_tx = receipt("0xabc");
    let without = receipt("");
    assert_eq!(settlement_tx(&[&with_tx], None).as_deref(), Some("0xabc"));
    assert_eq!(settlement_tx(&[&without], None), None);
    assert_eq!(
        settlement_tx(&[&without], Some("0xdef")).as_deref(),
        Some("0xdef")
    );
    assert_eq!(settlement_tx(&["not base64"], Some(" ")), None);
}

#[test]
fn the_charged_amount_is_read_from_a_receipt_that_states_it() {
    let receipt = |amount: Option<&str>| {
        let mut r = json!({"success": true, "transaction": "0xabc", "network": "eip155:84532"});
        if let Some(a) = amount {
            r["amount"] = json!(a);
        }
        codec::encode_header(&r).unwrap()
    };
    let cases: &[(&str, Vec<String>, Option<u128>)] = &[
        ("upto receipt", vec![receipt(Some("61"))], Some(61)),
        ("charged nothing", vec![receipt(Some("0"))], Some(0)),
        (
            "beyond u64",
            vec![receipt(Some("340282366920938463463374607431768211455"))],
            Some(u128::MAX),
        ),
        ("exact receipt: no amount", vec![receipt(None)], None),
        ("not a number", vec![receipt(Some("61 USDC"))], None),
        ("negative", vec![receipt(Some("-1"))], None),
        ("not base64", vec!["%%%".to_owned()], None),
        (
            "the first stated amount",
            vec![receipt(None), receipt(Some("7")), receipt(Some("9"))],
            Some(7),
        ),
        ("no receipt", vec![], None),
    ];
    for (name, receipts, want) in cases {
        let refs: Vec<&str> = receipts.iter().map(String::as_str).collect();
        assert_eq!(settled_amount(&refs), *want, "{name}");
    }
}

#[test]
fn a_mismatch_says_what_differs() {
    let up = mk_upstream();
    let more = MOCK_402.replace(
        "\"maxAmountRequired\":\"1000\"",
        "\"maxAmountRequired\":\"2000\"",
    );
    let offer = parse_offer(None, more.as_bytes()).unwrap();
    assert_eq!(pick(&up, &offer), None);
    let why = terms_mismatch(&up, &offer);
    assert!(
        why.contains("price 2000 atomic units, more than the 1000 signed for"),
        "{why}"
    );
    let other = MOCK_402.replace(
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    );
    let why = terms_mismatch(&up, &parse_offer(None, other.as_bytes()).unwrap());
    assert!(why.starts_with("the seller now asks for payTo"), "{why}");
}
/// An obol verifier's stable reason decides, in either refusal shape, over any wording.
#[test]
fn a_stated_reason_decides() {
    let cases: &[(u16, &str, bool)] = &[
        (
            402,
            r#"{"x402Version":1,"reason":"replayed","accepts":[]}"#,
            true,
        ),
        (
            402,
            r#"{"x402Version":1,"extensions":{"paymentFailure":{"reason":"replayed"}}}"#,
            true,
        ),
        // The x402 error quotes "already used", but the verifier says why it refused.
        (
            402,
            r#"{"error":"invalid_exact_evm_nonce_already_used","reason":"payment_invalid"}"#,
            false,
        ),
        // Held by another request right now: not spent, retry later.
        (
            409,
            r#"{"error":"x","reason":"in_flight","retriable":true}"#,
            false,
        ),
        (
            503,
            r#"{"reason":"facilitator_unreachable","detail":"already used?"}"#,
            false,
        ),
    ];
    for (status, body, want) in cases {
        assert_eq!(
            says_already_used(*status, &[body.as_bytes()]),
            *want,
            "{body}"
        );
    }
}

#[test]
fn a_metered_purchase_pays_the_upto_requirement_with_its_permit2_payload() {
    const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
    let seller = mk_upstream().pay_to.to_checksum(None);
    let entry = |scheme: &str, amount: &str| {
        json!({"scheme": scheme, "network": "eip155:84532", "amount": amount, "asset": USDC,
            "payTo": seller, "maxTimeoutSeconds": 300,
            "extra": {"name": "USDC", "version": "2", "assetTransferMethod": "permit2"}})
    };
    // The local stack's llm offer: upto for the maximum first, exact for the approximation.
    let required = json!({"x402Version": 2, "resource": {"url": "http://s/v1/chat/completions"},
        "accepts": [entry("upto", "2400"), entry("exact", "600")]});
    let offer = parse_offer(Some(&codec::encode_header(&required).unwrap()), b"").unwrap();
    let upstream = |scheme: Option<&str>, price: &str| {
        let mut c = mk_config("http://s", None, "base-sepolia");
        c.scheme = scheme.map(Into::into);
        c.price = price.into();
        Upstream::parse("s", &c).unwrap()
    };
    let metered = upstream(Some("upto"), "2400");
    assert_eq!(pick(&metered, &offer), Some(0));
    assert_eq!(
        pick(&upstream(None, "600"), &offer),
        Some(1),
        "exact still buys exact"
    );
    assert_eq!(pick(&upstream(None, "2400"), &offer), None);
    let raised = parse_offer(
        Some(
            &codec::encode_header(&json!({"x402Version": 2, "accepts": [entry("upto", "3000")]}))
                .unwrap(),
        ),
        b"",
    )
    .unwrap();
    assert_eq!(pick(&metered, &raised), None);
    assert_eq!(
        terms_mismatch(&metered, &raised),
        "the seller now asks for price 3000 atomic units, more than the 2400 signed for"
    );
    assert_eq!(
        terms_mismatch(
            &upstream(Some("upto"), "600"),
            &parse_offer(None, MOCK_402.as_bytes()).unwrap()
        ),
        "the seller now asks for scheme exact (signed for upto), price 1000 atomic units, more than the 600 signed for"
    );

    // The header is what the verifier reads as an upto payment: the requirement echoed, the
    // Permit2 payload as signed.
    let auth =
        Auth::from_presigned(&crate::upstream::tests::upto_item(USDC, &seller, 2400, 7)).unwrap();
    let (name, value) = payment_header(&offer, 0, &auth).unwrap();
    assert_eq!(name, "PAYMENT-SIGNATURE");
    let payment: obol_x402::wire::UptoPaymentPayload =
        serde_json::from_slice(&codec::decode_base64(&value).unwrap()).unwrap();
    assert_eq!(payment.accepted.scheme, "upto");
    assert_eq!(
        payment.payload.permit2_authorization.permitted.amount,
        U256::from(2400u64)
    );
    let signer = obol_x402::permit2::recover_signer(
        84_532,
        &payment.payload.permit2_authorization,
        &payment.payload.signature,
    )
    .unwrap();
    assert_eq!(Some(signer), auth.from);
}

#[test]
fn an_upto_item_is_sent_only_to_the_facilitator_it_names() {
    const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
    // upto_item's witness names dev account #0 as the facilitator.
    const SIGNED: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
    const OTHER: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
    let seller = mk_upstream().pay_to.to_checksum(None);
    let upto =
        Auth::from_presigned(&crate::upstream::tests::upto_item(USDC, &seller, 2400, 7)).unwrap();
    let with_extra = |extra: Value| json!({"scheme": "upto", "extra": extra});
    let cases: &[(&str, Value, Option<&str>)] = &[
        (
            "same facilitator",
            with_extra(json!({"facilitatorAddress": SIGNED})),
            None,
        ),
        (
            "same, lower case",
            with_extra(json!({"facilitatorAddress": SIGNED.to_lowercase()})),
            None,
        ),
        (
            "another facilitator",
            with_extra(json!({"facilitatorAddress": OTHER})),
            Some(
                "the seller settles through facilitator 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC (signed for 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266)",
            ),
        ),
        (
            "not an address",
            with_extra(json!({"facilitatorAddress": "settler"})),
            Some("the seller's facilitatorAddress is not an address"),
        ),
        ("no facilitator named", with_extra(json!({})), None),
        ("no extra", json!({"scheme": "upto"}), None),
    ];
    for (name, accepted, want) in cases {
        assert_eq!(unpayable_with(accepted, &upto).as_deref(), *want, "{name}");
    }
    // An exact item names no facilitator: nothing to compare.
    let mut exact = upto.clone();
    exact.payload = json!({"authorization": {"from": seller}});
    assert_eq!(
        unpayable_with(&with_extra(json!({"facilitatorAddress": OTHER})), &exact),
        None
    );
    // An upto item whose witness lost its facilitator is not sent.
    let mut bare = upto.clone();
    bare.payload["permit2Authorization"]["witness"]
        .as_object_mut()
        .unwrap()
        .remove("facilitator");
    assert_eq!(
        unpayable_with(&with_extra(json!({"facilitatorAddress": OTHER})), &bare).as_deref(),
        Some("the authorization's witness names no facilitator")
    );
}
