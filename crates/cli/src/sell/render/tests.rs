use super::*;

const GOLDEN: &str = include_str!("../../../tests/fixtures/status-myapi.txt");

fn offer() -> ServiceOffer {
    let text = include_str!("../../../../api/tests/fixtures/seed-serviceoffer.yaml");
    let mut so: ServiceOffer = serde_yaml::from_str(text).unwrap();
    let status = so.status.as_mut().unwrap();
    status.endpoint = Some("/services/myapi".into());
    status.agent_id = Some("42".into());
    so
}

fn now() -> Timestamp {
    "2026-03-29T10:30:00Z".parse().unwrap()
}

#[test]
fn status_matches_the_golden_file() {
    let got = status(&offer(), now());
    if std::env::var_os("OBOL_UPDATE_GOLDEN").is_some() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/status-myapi.txt"
        );
        std::fs::write(path, &got).unwrap();
    }
    assert_eq!(
        got, GOLDEN,
        "status output changed; if intended, rerun with OBOL_UPDATE_GOLDEN=1 and review the diff"
    );
}

#[test]
fn status_without_conditions_says_so() {
    let mut so = offer();
    so.status = None;
    let got = status(&so, now());
    assert!(got.contains("Phase:           -"), "{got}");
    assert!(got.contains("not reconciled yet"), "{got}");
    assert!(got.contains("No conditions yet"), "{got}");
}

#[test]
fn ages_like_kubectl() {
    let cases = [
        ("2026-03-29T10:29:15Z", "45s"),
        ("2026-03-29T10:10:00Z", "20m"),
        ("2026-03-29T06:00:00Z", "4h"),
        ("2026-03-20T10:30:00Z", "9d"),
        ("2026-03-29T10:31:00Z", "0s"),
        ("garbage", "<unknown>"),
    ];
    for (since, want) in cases {
        assert_eq!(age(Some(since), now()), want, "{since}");
    }
    assert_eq!(age(None, now()), "<unknown>");
}

#[test]
fn blocking_names_the_first_condition_not_true() {
    let mut so = offer();
    assert!(blocking(&so).is_none());
    let conditions = &mut so.status.as_mut().unwrap().conditions;
    conditions[1].status = obol_api::ConditionStatus::False;
    conditions[1].reason = "AdmissionPending".into();
    let b = blocking(&so).unwrap();
    assert_eq!(
        (b.type_.as_str(), b.reason.as_str()),
        ("PaymentGateReady", "AdmissionPending")
    );
    so.status = None;
    assert_eq!(blocking(&so).unwrap().type_, "UpstreamHealthy");
}

#[test]
fn list_table() {
    let so = offer();
    let got = list(&[so], now());
    let lines: Vec<&str> = got.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE   NAME    TYPE"), "{got}");
    assert!(lines[1].contains("llm") && lines[1].contains("0.001") && lines[1].contains("Ready"));
    assert_eq!(list(&[], now()), "No ServiceOffers found.\n");
}

#[test]
fn list_shows_each_kind_of_price() {
    type Edit = fn(&mut obol_api::service_offer::Price);
    let priced = |f: Edit| {
        let mut so = offer();
        so.spec.payment.price = Default::default();
        f(&mut so.spec.payment.price);
        list(&[so], now())
    };
    let cases: [(Edit, &str); 4] = [
        (|p| p.per_mtok = Some("1.5".into()), " 1.5/MTok "),
        (|p| p.per_hour = Some("2".into()), " 2/h "),
        (
            |p| {
                p.per_mtok_input = Some("0.15".into());
                p.per_mtok_output = Some("0.6".into());
            },
            " 0.15 in, 0.6 out /MTok ",
        ),
        (
            |p| {
                p.per_mtok = Some("1".into());
                p.per_mtok_output = Some("3".into());
            },
            " 1 in, 3 out /MTok ",
        ),
    ];
    for (f, want) in cases {
        let got = priced(f);
        assert!(got.contains(want), "{want:?} in {got}");
    }
}
