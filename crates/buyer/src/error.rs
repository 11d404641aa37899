//! Why a paid request failed, and the HTTP answer for each case.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::journal::JournalError;

/// A request the buyer could not complete. Every variant is a deliberate status: 502 when the
/// seller side cannot be paid or reached, 503 when our own journal refuses to record a spend.
#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    /// No authorization left that is valid now.
    #[error("x402 authorization pool exhausted for upstream {upstream}; buy more authorizations")]
    Exhausted {
        /// Upstream name.
        upstream: String,
    },
    /// The 402 lists nothing this upstream's authorizations were signed for: refused here,
    /// nothing was sent.
    #[error(
        "upstream {upstream}: refusing to pay: {detail}; the authorizations were signed for other terms (buy again for the new terms)"
    )]
    NoMatch {
        /// Upstream name.
        upstream: String,
        /// What differs.
        detail: String,
    },
    /// The seller got the payment but no answer came back: the authorization stays held
    /// (never sent again) until the chain says whether it was used.
    #[error(
        "upstream {upstream}: no answer after the payment was sent ({source}); the authorization is held until the chain says whether it was used"
    )]
    NoAnswer {
        /// Upstream name.
        upstream: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// No chain reader serves this upstream's network.
    #[error("upstream {upstream}: no chain reader (--rpc-url) for its network")]
    NoChainReader {
        /// Upstream name.
        upstream: String,
    },
    /// The 402 could not be read.
    #[error("upstream {upstream} sent an unusable 402: {detail}")]
    BadPaymentRequired {
        /// Upstream name.
        upstream: String,
        /// Why.
        detail: String,
    },
    /// Several authorizations in a row were reported as already used (lost state being healed).
    #[error(
        "upstream {upstream}: {tries} authorizations in a row were already used; state was lost and is being healed, retry"
    )]
    AlreadyUsed {
        /// Upstream name.
        upstream: String,
        /// How many were tried.
        tries: usize,
    },
    /// The spend could not be recorded, so nothing was sent.
    #[error("spend journal refused the authorization: {0}")]
    Journal(#[from] JournalError),
    /// The chain check could not run.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    /// The seller could not be reached or its answer could not be read.
    #[error("upstream {upstream} request failed: {source}")]
    Upstream {
        /// Upstream name.
        upstream: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
}

impl SpendError {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Exhausted { .. } => "pool_exhausted",
            Self::NoMatch { .. } => "seller_terms_changed",
            Self::NoAnswer { .. } => "no_answer",
            Self::NoChainReader { .. } => "no_chain_reader",
            Self::BadPaymentRequired { .. } => "bad_payment_required",
            Self::AlreadyUsed { .. } => "already_used",
            Self::Journal(e) => e.metric_label(),
            Self::Upstream { .. } => "upstream_unreachable",
            Self::Chain(e) => e.metric_label(),
        }
    }

    /// The HTTP status answered to the client.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Journal(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for SpendError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.to_string(), "reason": self.metric_label()});
        (self.status(), axum::Json(body)).into_response()
    }
}
