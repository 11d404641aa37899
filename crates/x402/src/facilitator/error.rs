//! Facilitator call outcomes other than "yes".

use std::fmt;

use crate::wire::{SettleResponse, VerifyResponse};

/// Boxed transport error (reqwest's, or a test double's).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The facilitator operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /verify`.
    Verify,
    /// `POST /settle`.
    Settle,
    /// `GET /supported`.
    Supported,
}

impl Endpoint {
    /// `POST /verify`, `POST /settle` or `GET /supported`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "POST /verify",
            Self::Settle => "POST /settle",
            Self::Supported => "GET /supported",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A well-formed "no" from the facilitator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `isValid: false`.
    Verify(VerifyResponse),
    /// `success: false` (may still carry a transaction hash).
    Settle(SettleResponse),
}

impl Answer {
    /// The facilitator's machine-readable reason, if it gave one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Verify(v) => v.invalid_reason.as_deref(),
            Self::Settle(s) => s.error_reason.as_deref(),
        }
        .filter(|r| !r.is_empty())
    }
}

/// The three families a caller branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No answer: connection failed, timed out, or broke off.
    Unreachable,
    /// A well-formed answer saying no.
    Rejected,
    /// An answer that is not one: wrong status, not JSON, wrong shape, too large.
    Malformed,
}

/// A facilitator call that did not end in "yes".
#[derive(Debug, thiserror::Error)]
pub enum FacilitatorError {
    /// No answer: connection refused or reset, DNS failure, TLS failure, or the endpoint's time
    /// budget ran out.
    #[error("{endpoint}: facilitator unreachable{}", if *.timed_out { " (timed out)" } else { "" })]
    Unreachable {
        /// The operation.
        endpoint: Endpoint,
        /// Whether the time budget ran out (as opposed to a connection failure).
        timed_out: bool,
        /// The transport error.
        #[source]
        source: BoxError,
    },
    /// The facilitator answered, well-formed, that the payment is not valid or did not settle.
    #[error("{endpoint}: payment rejected by the facilitator (HTTP {status}, {})",
        .answer.reason().unwrap_or("no reason given"))]
    Rejected {
        /// The operation.
        endpoint: Endpoint,
        /// HTTP status of the answer (200, 400, 412, ... depending on the implementation).
        status: u16,
        /// The answer itself.
        answer: Box<Answer>,
    },
    /// The answer was not a facilitator answer.
    #[error("{endpoint}: malformed facilitator answer (HTTP {status}): {detail}")]
    Malformed {
        /// The operation.
        endpoint: Endpoint,
        /// HTTP status of the answer.
        status: u16,
        /// What was wrong (no body content is echoed).
        detail: String,
    },
}

impl FacilitatorError {
    /// Which family this failure belongs to.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Unreachable { .. } => FailureKind::Unreachable,
            Self::Rejected { .. } => FailureKind::Rejected,
            Self::Malformed { .. } => FailureKind::Malformed,
        }
    }

    /// The operation that failed.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Self::Unreachable { endpoint, .. }
            | Self::Rejected { endpoint, .. }
            | Self::Malformed { endpoint, .. } => *endpoint,
        }
    }

    /// A bounded label: `timeout`, `unreachable`, `rejected` or `malformed`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Unreachable {
                timed_out: true, ..
            } => "timeout",
            Self::Unreachable { .. } => "unreachable",
            Self::Rejected { .. } => "rejected",
            Self::Malformed { .. } => "malformed",
        }
    }

    /// The facilitator's reason for a rejection.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Rejected { answer, .. } => answer.reason(),
            _ => None,
        }
    }

    /// The body of a rejected settle, kept so its transaction hash can be reported.
    pub fn settle_response(&self) -> Option<&SettleResponse> {
        match self {
            Self::Rejected { answer, .. } => match answer.as_ref() {
                Answer::Settle(s) => Some(s),
                Answer::Verify(_) => None,
            },
            _ => None,
        }
    }
}
