//! The facilitator seam: a [`Facilitator`] trait (object-safe, for `Arc<dyn Facilitator>` and
//! test doubles) and, with the `http` feature, [`HttpFacilitator`].
//!
//! Outcomes are kept apart because callers act differently on each: a payment the facilitator
//! **rejected** is a 402 for the buyer; an **unreachable** or **malformed** facilitator is our
//! outage (503). Within a rejection, [`meaning`] reads the facilitator's code and words to tell
//! the payer's fault from a facilitator that could not check, and an already used
//! authorization from an invalid one. Facilitators disagree on status codes for a rejection (the TS example answers
//! 200 with `isValid:false`, x402-rs 400/412 with a JSON body), so the body decides: a
//! well-formed answer saying no is [`FacilitatorError::Rejected`] whatever the status.

mod error;
#[cfg(feature = "http")]
mod http;
#[cfg(test)]
#[cfg(feature = "http")]
mod http_tests;
mod meaning;

pub use async_trait::async_trait;
pub use error::{Answer, BoxError, Endpoint, FacilitatorError, FailureKind};
#[cfg(feature = "http")]
pub use http::{FacilitatorConfigError, HttpFacilitator, HttpFacilitatorConfig};
pub use meaning::{
    MAX_WORDS_LEN, Meaning, is_signature_code, meaning, meaning_with_proven_signature, one_line,
};

use serde::de::DeserializeOwned;

use crate::codec::from_json_object;
use crate::wire::{FacilitatorRequest, SettleResponse, SupportedResponse, VerifyResponse};

/// Largest facilitator answer read, in bytes.
pub const MAX_ANSWER_LEN: usize = 64 * 1024;

/// A payment facilitator: `POST /verify`, `POST /settle`, `GET /supported`.
///
/// `Ok` means yes (`isValid:true`, `success:true`); every no is an error, see
/// [`FacilitatorError`]. Implement it with `#[obol_x402::facilitator::async_trait]`.
#[async_trait]
pub trait Facilitator: Send + Sync {
    /// Checks a payment without moving funds (does not consume the EIP-3009 nonce).
    async fn verify(
        &self,
        request: &FacilitatorRequest,
    ) -> Result<VerifyResponse, FacilitatorError>;

    /// Submits the transfer and waits for it; not idempotent.
    async fn settle(
        &self,
        request: &FacilitatorRequest,
    ) -> Result<SettleResponse, FacilitatorError>;

    /// Lists the (version, scheme, network) kinds the facilitator handles.
    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError>;
}

fn parse_answer<T: DeserializeOwned>(
    endpoint: Endpoint,
    status: u16,
    body: &[u8],
) -> Result<T, FacilitatorError> {
    from_json_object(body).map_err(|e| FacilitatorError::Malformed {
        endpoint,
        status,
        detail: format!("{}: {e}", e.reason()),
    })
}

fn unexpected_status(endpoint: Endpoint, status: u16) -> FacilitatorError {
    FacilitatorError::Malformed {
        endpoint,
        status,
        detail: "unexpected HTTP status".into(),
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Classifies a `/verify` answer from its status and body, whatever the transport.
pub fn decide_verify_answer(status: u16, body: &[u8]) -> Result<VerifyResponse, FacilitatorError> {
    let endpoint = Endpoint::Verify;
    let answer: VerifyResponse = parse_answer(endpoint, status, body)?;
    match (answer.is_valid, is_success(status)) {
        (true, true) => Ok(answer),
        (true, false) => Err(unexpected_status(endpoint, status)),
        (false, _) => Err(FacilitatorError::Rejected {
            endpoint,
            status,
            answer: Box::new(Answer::Verify(answer)),
        }),
    }
}

/// Classifies a `/settle` answer; a failed settle keeps its body (it may carry a tx hash).
pub fn decide_settle_answer(status: u16, body: &[u8]) -> Result<SettleResponse, FacilitatorError> {
    let endpoint = Endpoint::Settle;
    let answer: SettleResponse = parse_answer(endpoint, status, body)?;
    match (answer.success, is_success(status)) {
        (true, true) => Ok(answer),
        (true, false) => Err(unexpected_status(endpoint, status)),
        (false, _) => Err(FacilitatorError::Rejected {
            endpoint,
            status,
            answer: Box::new(Answer::Settle(answer)),
        }),
    }
}

/// Classifies a `/supported` answer.
pub fn decide_supported_answer(
    status: u16,
    body: &[u8],
) -> Result<SupportedResponse, FacilitatorError> {
    if !is_success(status) {
        return Err(unexpected_status(Endpoint::Supported, status));
    }
    parse_answer(Endpoint::Supported, status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_answer_table() {
        let ok = br#"{"isValid":true,"payer":"0x857b06519E91e3A54538791bDbb0E22373e36b66"}"#;
        let no = br#"{"isValid":false,"invalidReason":"insufficient_funds","payer":""}"#;
        let cases: &[(&str, u16, &[u8], &str)] = &[
            ("TS yes", 200, ok, "ok"),
            ("TS no on 200", 200, no, "rejected"),
            ("x402-rs no on 400", 400, no, "rejected"),
            ("x402-rs allowance 412", 412, no, "rejected"),
            ("no on 500", 500, no, "rejected"),
            ("yes on 500", 500, ok, "malformed"),
            (
                "TS exception",
                500,
                br#"{"error":"TypeError"}"#,
                "malformed",
            ),
            ("html", 502, b"<html>bad gateway</html>", "malformed"),
            ("empty", 200, b"", "malformed"),
            ("array", 200, b"[true]", "malformed"),
            ("string bool", 200, br#"{"isValid":"true"}"#, "malformed"),
        ];
        for (name, status, body, want) in cases {
            let got = match decide_verify_answer(*status, body) {
                Ok(_) => "ok",
                Err(e) => e.metric_label(),
            };
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn failed_settle_keeps_the_transaction() {
        let body = br#"{"success":false,"errorReason":"unexpected_settle_error","transaction":"0xabc","network":"eip155:84532"}"#;
        let err = decide_settle_answer(200, body).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Rejected);
        assert_eq!(err.reason(), Some("unexpected_settle_error"));
        assert_eq!(
            err.settle_response().and_then(SettleResponse::transaction),
            Some("0xabc")
        );
        let ok = br#"{"success":true,"transaction":"0xabc","network":"eip155:84532"}"#;
        assert!(decide_settle_answer(200, ok).is_ok());
    }

    #[test]
    fn supported_answer_table() {
        let body = br#"{"kinds":[{"x402Version":2,"scheme":"exact","network":"eip155:84532"}]}"#;
        assert!(decide_supported_answer(200, body).is_ok());
        assert_eq!(
            decide_supported_answer(429, body).unwrap_err().kind(),
            FailureKind::Malformed
        );
        assert_eq!(
            decide_supported_answer(200, b"{}").unwrap_err().kind(),
            FailureKind::Malformed
        );
    }
}
