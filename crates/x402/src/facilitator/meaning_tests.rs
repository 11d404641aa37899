use super::*;
use crate::facilitator::{BoxError, decide_settle_answer};

fn unreachable(endpoint: Endpoint, source: BoxError) -> FacilitatorError {
    FacilitatorError::Unreachable {
        endpoint,
        timed_out: false,
        source,
    }
}

#[test]
fn transport_failures_by_endpoint() {
    let refused =
        || -> BoxError { Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)) };
    let reset =
        || -> BoxError { Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)) };
    let cases = [
        (Endpoint::Verify, reset(), Meaning::Unavailable),
        (Endpoint::Verify, refused(), Meaning::Unavailable),
        (Endpoint::Settle, refused(), Meaning::Unavailable),
        // The request may have left: the facilitator may be settling it.
        (Endpoint::Settle, reset(), Meaning::SettleUnknown),
        (Endpoint::Settle, "timed out".into(), Meaning::SettleUnknown),
    ];
    for (endpoint, source, want) in cases {
        let e = unreachable(endpoint, source);
        assert_eq!(meaning(&e), want, "{e}");
    }
    let malformed = |endpoint, status| FacilitatorError::Malformed {
        endpoint,
        status,
        detail: "x".into(),
    };
    assert_eq!(
        meaning(&malformed(Endpoint::Verify, 502)),
        Meaning::Unavailable
    );
    assert_eq!(
        meaning(&malformed(Endpoint::Settle, 400)),
        Meaning::Unavailable
    );
    assert_eq!(
        meaning(&malformed(Endpoint::Settle, 504)),
        Meaning::SettleUnknown
    );
    assert_eq!(
        meaning(&malformed(Endpoint::Settle, 200)),
        Meaning::SettleUnknown
    );
}

#[test]
fn one_line_folds_and_bounds() {
    assert_eq!(one_line("a\n\n b\t\u{7}c ", 100), "a b c");
    let long = "é".repeat(300);
    let cut = one_line(&long, 101);
    assert!(cut.len() <= 101 && cut.ends_with('…'), "{}", cut.len());
    assert_eq!(one_line("", 10), "");
}

#[test]
fn words_are_kept_and_bounded() {
    let msg = "x".repeat(2000);
    let body =
        format!(r#"{{"success":false,"errorReason":"unexpected_error","errorMessage":"{msg}"}}"#);
    let err = decide_settle_answer(500, body.as_bytes()).unwrap_err();
    assert!(err.facilitator_words().unwrap().len() <= MAX_WORDS_LEN);
    let silent = decide_settle_answer(200, br#"{"success":false,"errorReason":"x"}"#).unwrap_err();
    assert_eq!(silent.facilitator_words(), None);
}
