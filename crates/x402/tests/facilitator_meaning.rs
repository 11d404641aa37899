//! What two facilitator implementations' refusals mean (fixtures written from their sources:
//! `fixtures/facilitator_answers.json` says which files). Each answer goes through the same
//! classification as a live one (`decide_*_answer`), then through `meaning`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use obol_x402::facilitator::{
    FacilitatorError, decide_settle_answer, decide_verify_answer, meaning,
    meaning_with_proven_signature,
};
use serde_json::Value;

const FIXTURES: &str = include_str!("fixtures/facilitator_answers.json");

fn failure(case: &Value) -> FacilitatorError {
    let status = case["status"].as_u64().unwrap() as u16;
    let body = match &case["body"] {
        Value::String(raw) => raw.clone().into_bytes(),
        json => serde_json::to_vec(json).unwrap(),
    };
    match case["endpoint"].as_str().unwrap() {
        "verify" => decide_verify_answer(status, &body).map(|_| ()),
        "settle" => decide_settle_answer(status, &body).map(|_| ()),
        other => panic!("unknown endpoint {other}"),
    }
    .expect_err("every fixture is a refusal")
}

#[test]
fn both_facilitators_wording_is_understood() {
    let fixtures: Value = serde_json::from_str(FIXTURES).unwrap();
    let cases = fixtures["cases"].as_array().unwrap();
    let mut per_impl = std::collections::BTreeMap::<&str, usize>::new();
    for case in cases {
        let name = format!(
            "{} {}",
            case["facilitator"].as_str().unwrap(),
            case["case"].as_str().unwrap()
        );
        *per_impl
            .entry(case["facilitator"].as_str().unwrap())
            .or_default() += 1;
        let err = failure(case);
        assert_eq!(
            meaning(&err).metric_label(),
            case["meaning"].as_str().unwrap(),
            "{name}"
        );
        let proven = case
            .get("meaning_with_proven_signature")
            .unwrap_or(&case["meaning"]);
        assert_eq!(
            meaning_with_proven_signature(&err).metric_label(),
            proven.as_str().unwrap(),
            "{name} (signature proven locally)"
        );
        // The facilitator's own words survive, on one line, for the refusal's detail.
        let said = ["invalidMessage", "invalidReasonDetails", "errorMessage"]
            .iter()
            .any(|k| case["body"].get(k).is_some_and(|v| v != ""));
        if said {
            let words = err.facilitator_words().unwrap();
            assert!(
                !words.contains('\n') && !words.is_empty(),
                "{name}: {words}"
            );
        }
    }
    assert!(
        per_impl["ts"] >= 10 && per_impl["x402-rs"] >= 10,
        "{per_impl:?}"
    );
}
