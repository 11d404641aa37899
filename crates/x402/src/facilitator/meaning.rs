//! What a facilitator's "no" means, whichever implementation said it.
//!
//! `isValid:false` or `success:false` alone does not say whose problem it is. Facilitators use
//! different codes and words for the same thing (the official TypeScript one
//! `invalid_exact_evm_nonce_already_used`, x402-rs `transaction_simulation` with the token's
//! revert text in `invalidReasonDetails`), and both also say no when they could not check at
//! all (their RPC is down: TS `…_simulation_failed` with the RPC error in `invalidMessage`,
//! x402-rs an HTTP 500 `unexpected_error`). [`meaning`] reads the status, the code and the
//! words, and answers what the gate must do; [`FacilitatorError::facilitator_words`] keeps
//! what the facilitator said for the refusal's `detail`.
//!
//! The rule for a settlement is conservative: "nothing was sent on chain" (so the
//! authorization may be used again) needs positive evidence — a refusal at the facilitator's
//! own pre-flight check, a connection that never opened, or an RPC refusal of the transaction
//! itself (the facilitator's gas, its account nonce). Anything else after `/settle` was sent
//! keeps the authorization spent.

use super::{Answer, Endpoint, FacilitatorError};

/// What the gate does with a facilitator's "no".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Meaning {
    /// Refused for the payer's reasons (signature, window, balance, requirement): a 402.
    Refused,
    /// The authorization was already used or cancelled on chain: a 402 the buyer can
    /// recognise (`replayed`) and mark spent.
    AlreadyUsed,
    /// The facilitator could not check or settle for its own reasons, and nothing was sent on
    /// chain: a 503, and the same authorization may be tried again.
    Unavailable,
    /// A settlement was sent, or may have been, and did not succeed or its outcome is
    /// unknown: the authorization stays spent and an operator may have to reconcile.
    SettleUnknown,
}

impl Meaning {
    /// A bounded label for metrics and logs.
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::AlreadyUsed => "already_used",
            Self::Unavailable => "unavailable",
            Self::SettleUnknown => "settle_unknown",
        }
    }
}

/// Words that say the authorization's nonce is consumed (TS codes and revert texts of
/// FiatToken and of our test token, x402-rs revert details, custom-error names).
const USED: &[&str] = &[
    "nonce_already_used",
    "nonce already used",
    "authorization is used",
    "authorization already used",
    "authorization was used",
    "used or canceled",
    "used or cancelled",
    "authorizationalreadyused",
    "authorizationusedorcanceled",
];

/// Words that say the facilitator could not reach or use its chain: it checked nothing.
const COULD_NOT_CHECK: &[&str] = &[
    "http request failed",
    "fetch failed",
    "econnrefused",
    "econnreset",
    "connection refused",
    "connection reset",
    "error sending request",
    "socket hang up",
    "timed out",
    "timeout",
    "took too long",
    "rate limit",
    "too many requests",
    "service unavailable",
    "bad gateway",
    "dns error",
    "network error",
];

/// Words of an RPC refusing the settlement transaction itself, before it exists on chain: the
/// facilitator's gas money, its account nonce, its fee settings, or an RPC it never reached.
const NOT_SENT: &[&str] = &[
    "insufficient funds for gas",
    "nonce too low",
    "nonce too high",
    "replacement transaction underpriced",
    "transaction underpriced",
    "intrinsic gas too low",
    "max fee per gas less than block base fee",
    "exceeds block gas limit",
    "econnrefused",
    "connection refused",
];

/// Words of the token refusing the transfer when it was simulated or estimated: the chain
/// answered, about the payment itself.
const REVERTED: &[&str] = &["execution reverted", "reverted with"];

/// Codes under which a settlement was attempted and its result is unknown or failed.
const OUTCOME_UNKNOWN: &[&str] = &[
    "invalid_exact_evm_transaction_failed",
    "transaction_failed",
    "settlement_pending",
    "invalid_transaction_state",
];

fn says(haystack: &str, words: &[&str]) -> bool {
    let lower = haystack.to_ascii_lowercase();
    words.iter().any(|w| lower.contains(w))
}

/// Codes a facilitator uses for a signature it found invalid.
const SIGNATURE_CODES: &[&str] = &[
    "invalid_exact_evm_signature",
    "invalid_exact_evm_payload_signature",
    "invalid_signature",
];

/// [`meaning`], knowing that the signature was proven locally: it recovers to
/// `authorization.from` under the route's EIP-712 domain. A facilitator that still calls it
/// invalid could not check it (the TypeScript facilitator answers `invalid_exact_evm_signature`
/// when its RPC is down, because reading the payer's code failed), so that is
/// [`Meaning::Unavailable`], not the payer's fault.
pub fn meaning_with_proven_signature(err: &FacilitatorError) -> Meaning {
    match meaning(err) {
        Meaning::Refused if err.reason().is_some_and(|r| SIGNATURE_CODES.contains(&r)) => {
            Meaning::Unavailable
        }
        m => m,
    }
}

/// Whether a facilitator code says the signature is invalid.
pub fn is_signature_code(code: &str) -> bool {
    SIGNATURE_CODES.contains(&code)
}

/// What a failed facilitator call means for the payer and the gate.
pub fn meaning(err: &FacilitatorError) -> Meaning {
    match (err.endpoint(), err) {
        (Endpoint::Settle, FacilitatorError::Unreachable { source, .. }) => {
            if connection_never_opened(source.as_ref()) {
                Meaning::Unavailable
            } else {
                // The request may have reached the facilitator: it may be settling now.
                Meaning::SettleUnknown
            }
        }
        (Endpoint::Settle, FacilitatorError::Malformed { status, .. }) => {
            // A 4xx refused our request; a 5xx or a broken answer may hide a settlement.
            if (400..500).contains(status) {
                Meaning::Unavailable
            } else {
                Meaning::SettleUnknown
            }
        }
        (_, FacilitatorError::Unreachable { .. } | FacilitatorError::Malformed { .. }) => {
            Meaning::Unavailable
        }
        (endpoint, FacilitatorError::Rejected { status, answer, .. }) => {
            let words = err.facilitator_words().unwrap_or_default();
            let code = answer.reason().unwrap_or_default();
            let text = format!("{code} {words}");
            if endpoint == Endpoint::Settle {
                settle_meaning(*status, answer, code, &text)
            } else {
                verify_meaning(*status, code, &text)
            }
        }
    }
}

fn verify_meaning(status: u16, code: &str, text: &str) -> Meaning {
    if says(text, USED) {
        Meaning::AlreadyUsed
    } else if says(text, REVERTED) {
        // x402-rs answers a simulation revert (a bad signature, say) with a 500.
        Meaning::Refused
    } else if status >= 500 || code.starts_with("unexpected_") || says(text, COULD_NOT_CHECK) {
        Meaning::Unavailable
    } else {
        Meaning::Refused
    }
}

fn settle_meaning(status: u16, answer: &Answer, code: &str, text: &str) -> Meaning {
    let transaction = match answer {
        Answer::Settle(s) => s.transaction(),
        Answer::Verify(_) => None,
    };
    // x402-rs names a mined, reverted transaction only in its message.
    if transaction.is_some() || says(text, &["transaction 0x"]) {
        Meaning::SettleUnknown
    } else if says(text, USED) {
        Meaning::AlreadyUsed
    } else if says(text, NOT_SENT) {
        Meaning::Unavailable
    } else if says(text, REVERTED) {
        // Refused while the transaction was being estimated: never sent.
        Meaning::Refused
    } else if status >= 500 || code.starts_with("unexpected_") || OUTCOME_UNKNOWN.contains(&code) {
        Meaning::SettleUnknown
    } else {
        // The facilitator's own pre-flight check (it re-verifies before sending) said no.
        Meaning::Refused
    }
}

/// Whether a transport error happened before any byte of the request left: only then is it
/// certain the facilitator did not start settling.
fn connection_never_opened(source: &(dyn std::error::Error + 'static)) -> bool {
    #[cfg(feature = "http")]
    if let Some(e) = source.downcast_ref::<reqwest::Error>() {
        return e.is_connect();
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = e.source();
    }
    false
}

/// Longest excerpt of a facilitator's own words kept in a refusal's `detail`.
pub const MAX_WORDS_LEN: usize = 400;

impl FacilitatorError {
    /// What the facilitator said in words (`invalidMessage`, `invalidReasonDetails` or
    /// `errorMessage`), on one line and at most [`MAX_WORDS_LEN`] bytes.
    pub fn facilitator_words(&self) -> Option<String> {
        let Self::Rejected { answer, .. } = self else {
            return None;
        };
        let words = match answer.as_ref() {
            Answer::Verify(v) => v
                .invalid_message
                .as_deref()
                .into_iter()
                .chain(v.invalid_reason_details.as_deref())
                .find(|w| !w.trim().is_empty()),
            Answer::Settle(s) => s.error_message.as_deref().filter(|w| !w.trim().is_empty()),
        }?;
        Some(one_line(words, MAX_WORDS_LEN))
    }
}

/// `text` with control characters and runs of whitespace folded into single spaces, cut at a
/// character boundary to at most `max` bytes (with `…` when cut).
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() > max {
            break;
        }
    }
    if out.len() > max {
        let mut cut = max.saturating_sub('…'.len_utf8());
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
#[path = "meaning_tests.rs"]
mod tests;
