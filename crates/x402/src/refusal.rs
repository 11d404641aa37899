//! Why a request on a paid route was not served: one stable [`Reason`] code per cause, and the
//! JSON every refusal answers with.
//!
//! The codes are defined here once, for every producer (the verifier in both of its modes) and
//! every consumer (the buyer, the CLI). `REFUSALS.md` at the repository root is generated from
//! [`markdown_table`]; a test fails when it is stale.
//!
//! Two shapes carry a reason:
//! - a refused payment is a fresh **402** (the usual `PAYMENT-REQUIRED` header and v1 body)
//!   whose JSON body also carries `reason` and `extensions.paymentFailure {reason, detail,
//!   hint}` ([`PaymentFailure`]), so a client can pay again with what it needs to know;
//! - every other terminal failure answers [`RefusalBody`]:
//!   `{"error", "reason", "detail", "hint", "retriable"}`.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $status:literal, $retriable:literal,
        $summary:literal, $hint:literal; )+) => {
        /// A stable, machine-readable cause of a refusal (the `reason` of every refusal body).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )+
        }

        impl Reason {
            /// Every reason, in table order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),+];

            /// The wire code (`snake_case`).
            pub const fn code(self) -> &'static str {
                match self { $(Self::$variant => $code,)+ }
            }

            /// The HTTP status a refusal for this reason answers with (see
            /// [`Refusal::status`] for the one exception).
            pub const fn status(self) -> u16 {
                match self { $(Self::$variant => $status,)+ }
            }

            /// Whether the very same request may succeed when sent again later (after
            /// `Retry-After`); `false` means something must change first.
            pub const fn retriable(self) -> bool {
                match self { $(Self::$variant => $retriable,)+ }
            }

            /// One sentence for people: the `error` of a [`RefusalBody`].
            pub const fn summary(self) -> &'static str {
                match self { $(Self::$variant => $summary,)+ }
            }

            /// What the client should do, unless the refusal gives a more precise hint.
            pub const fn hint(self) -> &'static str {
                match self { $(Self::$variant => $hint,)+ }
            }
        }
    };
}

reasons! {
    /// The payment header is not base64 of an x402 payment payload, or several copies disagree.
    InvalidPaymentHeader = "invalid_payment_header", 402, false,
        "The payment header could not be read.",
        "Send one PAYMENT-SIGNATURE (v2) or X-PAYMENT (v1) header: standard base64, with padding, of the compact JSON payment payload.";
    /// The payment is for something else: scheme, network, asset, recipient, amount, EIP-712
    /// domain, transfer method or protocol version differ from the route's requirement.
    NoMatchingRequirement = "no_matching_requirement", 402, false,
        "The payment does not match what this route asks for.",
        "Pay exactly what accepts[0] of this 402 states (v2: copy it verbatim into `accepted`) and sign again.";
    /// The authorization is outside its validity window, its signature does not prove `from`,
    /// or the facilitator found it invalid (balance, token, simulation).
    PaymentInvalid = "payment_invalid", 402, false,
        "The payment authorization is not valid.",
        "Sign a new authorization; `detail` says what was wrong with this one.";
    /// This authorization (payer and nonce) is being settled, was settled, or was cancelled.
    Replayed = "replayed", 402, false,
        "This payment authorization was already used.",
        "Sign a new authorization with a fresh nonce. If you lost track of it, mark it spent.";
    /// Too many payments are in flight on this verifier; nothing was taken.
    Busy = "busy", 503, true,
        "Too many payments are being processed right now.",
        "Retry after Retry-After with the same authorization; nothing was charged.";
    /// Another request holds this authorization right now (a concurrent copy, or a settled
    /// answer still being delivered).
    InFlight = "in_flight", 409, true,
        "This payment is being used by another request right now.",
        "Retry after Retry-After with the same authorization; it is served once.";
    /// The reservation store shared by the verifier's replicas did not answer: fail closed.
    ReservationsUnavailable = "reservations_unavailable", 503, true,
        "The payment gate cannot record payments right now.",
        "Retry after Retry-After with the same authorization; nothing was charged.";
    /// The chain could not be asked whether this authorization was settled here before.
    ChainUnavailable = "chain_unavailable", 503, true,
        "The payment gate cannot read the chain right now.",
        "Retry after Retry-After with the same authorization; nothing was charged.";
    /// The facilitator could not be asked, or could not check the payment (its RPC, its
    /// simulation); nothing was taken.
    FacilitatorUnreachable = "facilitator_unreachable", 503, true,
        "The payment facilitator is unavailable.",
        "Retry after Retry-After with the same authorization; nothing was charged.";
    /// The facilitator refused to settle for the payer's reasons (balance, signature, window);
    /// nothing moved.
    SettlementRejected = "settlement_rejected", 402, false,
        "The payment could not be settled.",
        "Sign a new authorization; `detail` says why this one did not settle.";
    /// Settlement failed for reasons that are not the payer's. Answered 503 (retriable, the
    /// authorization released) when nothing was sent on chain, else 502 (not retriable: a
    /// transaction was sent, or may have been; `PAYMENT-RESPONSE` carries it when known).
    SettlementFailed = "settlement_failed", 502, false,
        "The payment could not be settled.",
        "If retriable, retry after Retry-After with the same authorization. Otherwise do not pay again: check the transaction in PAYMENT-RESPONSE, or ask the seller to reconcile.";
    /// The paid service answered with an error, timed out (504) or could not be reached; the
    /// payment was not settled (gateway mode).
    UpstreamFailed = "upstream_failed", 502, true,
        "The service failed to answer; the payment was not settled.",
        "Retry with the same authorization; nothing was charged.";
    /// The service's health probe fails: the route takes no payment until it recovers.
    UpstreamDown = "upstream_down", 503, true,
        "The service is down; no payment was taken.",
        "Retry after Retry-After; nothing was charged.";
    /// The client went away before the answer was delivered; the payment was not settled
    /// (gateway mode; only logged and counted, nobody is left to read it).
    ClientDisconnected = "client_disconnected", 499, true,
        "The client closed the connection before the answer was delivered.",
        "Send the request again with the same authorization; nothing was charged.";
    /// The verifier has not loaded its routes yet: it fails closed.
    NotReady = "not_ready", 503, true,
        "The payment gate is starting.",
        "Retry after Retry-After.";
    /// The gateway asked about a route the verifier has not loaded (yet, or any more).
    UnknownRoute = "unknown_route", 503, true,
        "This route is not loaded by the payment gate.",
        "Retry after Retry-After; if it persists, the offer is not ready (see `obol sell status`).";
    /// A path under an offer's published prefix that no paid rule covers: refused, never free.
    NoPaidRule = "no_paid_rule", 403, false,
        "No paid rule covers this path.",
        "Use a path the offer prices; its 402 answers list the resource.";
    /// The offer declares a route table and none of its routes lists this path.
    RouteNotListed = "route_not_listed", 404, false,
        "No route of this offer serves this path.",
        "Use a path the offer lists: see /.well-known/x402.json or /openapi.json at the gateway.";
    /// The offer's route table lists this path for other methods only (`Allow` names them).
    MethodNotAllowed = "method_not_allowed", 405, false,
        "This path is not served for this method.",
        "Use a method the Allow header names.";
    /// The gateway listener has no paid route for this request (gateway mode).
    NoRoute = "no_route", 404, false,
        "No paid route serves this path.",
        "Check the URL against the offer's endpoint (`obol sell status`).";
    /// The route is not in gateway mode `proxy`, so the gateway listener does not serve it.
    NotProxied = "not_proxied", 404, false,
        "This route is not served by the payment gateway.",
        "Send the request through the cluster's gateway, which forwards it for payment checks.";
    /// The gateway's route header is not `<namespace>/<name>`.
    InvalidRouteHeader = "invalid_route_header", 400, false,
        "The gateway's route header is not valid.",
        "Configure the gateway to name the route as namespace/name.";
    /// A WebSocket upgrade on a route that does not allow them; nothing was charged.
    WebsocketRefused = "websocket_refused", 403, false,
        "WebSocket upgrades are not allowed on this route.",
        "Use plain HTTP requests, or ask the seller to allow WebSockets on the offer.";
    /// The request body is larger than the gateway forwards; nothing was charged.
    RequestTooLarge = "request_too_large", 413, false,
        "The request body is too large.",
        "Send a smaller body.";
    /// The gateway did not say which URI was requested (`X-Forwarded-Uri`).
    MissingForwardedUri = "missing_forwarded_uri", 403, false,
        "The gateway did not forward the request URI.",
        "Configure the gateway's ForwardAuth to send X-Forwarded-Uri.";
    /// A forwarded header is not visible ASCII.
    InvalidForwardedHeader = "invalid_forwarded_header", 400, false,
        "A forwarded request header is not valid.",
        "Send header values in visible ASCII.";
    /// The request URI is too long to be priced or echoed.
    UriTooLong = "uri_too_long", 414, false,
        "The request URI is too long.",
        "Shorten the URI (move large inputs into the request body).";
}

impl Reason {
    /// The reason with this wire code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One refusal: the reason, what exactly went wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The stable cause.
    pub reason: Reason,
    /// What exactly went wrong (may quote a facilitator's own words; never a secret).
    pub detail: String,
    /// What to do; the reason's default unless something more precise is known.
    pub hint: Cow<'static, str>,
    /// Whether the same request may succeed later; the reason's default unless known better.
    pub retriable: bool,
    /// A status other than the reason's (`upstream_failed` on a timeout is a 504).
    status: Option<u16>,
}

impl Refusal {
    /// A refusal with the reason's default hint, retriability and status.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            hint: Cow::Borrowed(reason.hint()),
            retriable: reason.retriable(),
            status: None,
        }
    }

    /// Answers with another status than the reason's.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Replaces the hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<Cow<'static, str>>) -> Self {
        self.hint = hint.into();
        self
    }

    /// Overrides retriability.
    #[must_use]
    pub fn with_retriable(mut self, retriable: bool) -> Self {
        self.retriable = retriable;
        self
    }

    /// The HTTP status: the reason's, except that a retriable `settlement_failed` (nothing
    /// was sent on chain) is a 503 rather than a 502.
    pub fn status(&self) -> u16 {
        match (self.status, self.reason) {
            (Some(status), _) => status,
            (None, Reason::SettlementFailed) if self.retriable => 503,
            (None, r) => r.status(),
        }
    }

    /// The JSON body of a refusal that is not a 402.
    pub fn body(&self) -> RefusalBody<'_> {
        RefusalBody {
            error: Cow::Borrowed(self.reason.summary()),
            reason: Cow::Borrowed(self.reason.code()),
            detail: Cow::Borrowed(&self.detail),
            hint: Cow::Borrowed(&self.hint),
            retriable: self.retriable,
        }
    }

    /// The `extensions.paymentFailure` of a 402 body.
    pub fn payment_failure(&self) -> PaymentFailure<'_> {
        PaymentFailure {
            reason: Cow::Borrowed(self.reason.code()),
            detail: Cow::Borrowed(&self.detail),
            hint: Cow::Borrowed(&self.hint),
        }
    }
}

/// `{"error", "reason", "detail", "hint", "retriable"}`: the body of every refusal that is not
/// a 402. Parsed tolerantly (an unknown `reason` is kept as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalBody<'a> {
    /// One sentence for people.
    pub error: Cow<'a, str>,
    /// The stable code ([`Reason::code`]).
    pub reason: Cow<'a, str>,
    /// What exactly went wrong.
    #[serde(default)]
    pub detail: Cow<'a, str>,
    /// What to do.
    #[serde(default)]
    pub hint: Cow<'a, str>,
    /// Whether the same request may succeed later.
    #[serde(default)]
    pub retriable: bool,
}

/// `extensions.paymentFailure` of a 402 that refuses a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailure<'a> {
    /// The stable code ([`Reason::code`]).
    pub reason: Cow<'a, str>,
    /// What exactly went wrong.
    #[serde(default)]
    pub detail: Cow<'a, str>,
    /// What to do.
    #[serde(default)]
    pub hint: Cow<'a, str>,
}

/// Key of [`PaymentFailure`] under a 402 body's `extensions`.
pub const PAYMENT_FAILURE_EXTENSION: &str = "paymentFailure";

/// The reason a refusal body states, whichever of the two shapes it has: `reason` at the top
/// (both shapes) or `extensions.paymentFailure.reason`. Unknown codes give `None`.
pub fn reason_of_body(body: &[u8]) -> Option<Reason> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        reason: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        extensions: Option<Extensions<'a>>,
    }
    #[derive(Deserialize)]
    struct Extensions<'a> {
        #[serde(borrow, default, rename = "paymentFailure")]
        payment_failure: Option<PaymentFailure<'a>>,
    }
    let probe: Probe<'_> = serde_json::from_slice(body).ok()?;
    let nested = probe
        .extensions
        .and_then(|e| e.payment_failure)
        .map(|f| f.reason);
    probe
        .reason
        .into_iter()
        .chain(nested)
        .find_map(|code| Reason::from_code(&code))
}

/// The reference table of every reason (what `REFUSALS.md` contains between its markers).
pub fn markdown_table() -> String {
    let mut out =
        String::from("| `reason` | Status | Retriable | Meaning | Hint |\n|---|---|---|---|---|\n");
    for r in Reason::ALL {
        let status = match r {
            Reason::SettlementFailed => "502, or 503 when retriable".to_owned(),
            Reason::UpstreamFailed => "502, or 504 on a timeout".to_owned(),
            r => r.status().to_string(),
        };
        let retriable = match (r, r.retriable()) {
            (Reason::SettlementFailed, _) => "when nothing was sent on chain",
            (_, true) => "yes",
            (_, false) => "no",
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            r.code(),
            status,
            retriable,
            r.summary(),
            r.hint().replace('|', "\\|"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            let code = r.code();
            assert!(
                code.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'),
                "{code}"
            );
            assert!(seen.insert(code), "duplicate {code}");
            assert_eq!(Reason::from_code(code), Some(*r));
            assert!((400..600).contains(&r.status()), "{code}");
            // A 402 always asks for something new; a 5xx is never the payer's fault.
            if r.status() == 402 {
                assert!(!r.retriable(), "{code}");
            }
        }
        assert_eq!(Reason::from_code("nonce_already_used"), None);
    }

    #[test]
    fn settlement_failed_status_follows_retriability() {
        let sent = Refusal::new(Reason::SettlementFailed, "tx failed");
        assert_eq!((sent.status(), sent.retriable), (502, false));
        let not_sent = sent.with_retriable(true);
        assert_eq!(not_sent.status(), 503);
        assert_eq!(Refusal::new(Reason::Busy, "").status(), 503);
    }

    #[test]
    fn both_shapes_name_their_reason() {
        let r = Refusal::new(Reason::Replayed, "nonce 0x01 used").with_hint("sign again");
        let plain = serde_json::to_vec(&r.body()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(v["reason"], "replayed");
        assert_eq!(v["hint"], "sign again");
        assert_eq!(v["retriable"], false);
        assert_eq!(reason_of_body(&plain), Some(Reason::Replayed));
        let nested = serde_json::json!({
            "x402Version": 1,
            "extensions": {"paymentFailure": r.payment_failure()}
        });
        assert_eq!(
            reason_of_body(nested.to_string().as_bytes()),
            Some(Reason::Replayed)
        );
        for other in [&b"{}"[..], b"[]", b"not json", br#"{"reason":"nope"}"#] {
            assert_eq!(reason_of_body(other), None);
        }
    }
}
