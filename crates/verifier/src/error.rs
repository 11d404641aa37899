//! Errors: why a route cannot be loaded ([`LoadError`]), why a request is not let through
//! ([`Denial`]), and what stops the process ([`Error`]). Each has a bounded `metric_label`.

use obol_x402 as x402;
use x402::facilitator::{self, Endpoint, FacilitatorError, Meaning};
use x402::verify::{DeferredSignature, SignatureCheck};
use x402::wire::SettleResponse;
use x402::{Reason, Refusal, Requirement};

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Why a PaymentRoute (or a file route) cannot be loaded. `reason()` is the `CamelCase`
/// condition reason written to the route's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The pattern does not start with `/` or is too long.
    #[error("pattern must start with / and be at most 1024 characters")]
    Pattern,
    /// `price` is not a decimal integer of atomic units.
    #[error("price must be a whole number of atomic units (e.g. \"1000\" = 0.001 USDC)")]
    Price,
    /// `payTo` is not an address.
    #[error("payTo must be 0x and 40 hex digits")]
    PayTo,
    /// The network is neither a known name nor a known CAIP-2 id.
    #[error("unsupported chain: {network}")]
    UnknownNetwork {
        /// What the route names.
        network: String,
    },
    /// The network is known but has no USDC deployment to price in.
    #[error("no USDC deployment known on {network}")]
    NoUsdc {
        /// Canonical network name.
        network: &'static str,
    },
    /// `asset` is not the network's USDC (no other EIP-712 domain is known).
    #[error("asset must be the network's USDC")]
    Asset,
    /// `maxTimeoutSeconds` out of `1..=86400`.
    #[error("maxTimeoutSeconds must be between 1 and 86400")]
    MaxTimeout,
    /// `upstreamAuth` cannot be sent as an HTTP header value.
    #[error("upstreamAuth is not a valid header value")]
    UpstreamAuth,
    /// `facilitatorURL` is not an http(s) URL.
    #[error("facilitatorURL must be an http(s) URL")]
    FacilitatorUrl,
    /// `proxy` names no usable upstream.
    #[error("proxy: {0}")]
    Proxy(String),
    /// `metering` has a number that does not parse, a zero maximum, or a `price` (the
    /// fallback) above its maximum.
    #[error("metering must have whole-number rates and a maxAmount of at least the price")]
    Metering,
}

impl LoadError {
    /// The condition reason (`CamelCase`, stable).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Pattern => "InvalidPattern",
            Self::Price => "InvalidPrice",
            Self::PayTo => "InvalidPayTo",
            Self::UnknownNetwork { .. } => "UnknownNetwork",
            Self::NoUsdc { .. } => "NoUsdc",
            Self::Asset => "UnsupportedAsset",
            Self::MaxTimeout => "InvalidMaxTimeout",
            Self::UpstreamAuth => "InvalidUpstreamAuth",
            Self::FacilitatorUrl => "InvalidFacilitatorURL",
            Self::Proxy(_) => "InvalidProxyTarget",
            Self::Metering => "InvalidMetering",
        }
    }

    /// A bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Pattern => "invalid_pattern",
            Self::Price => "invalid_price",
            Self::PayTo => "invalid_pay_to",
            Self::UnknownNetwork { .. } => "unknown_network",
            Self::NoUsdc { .. } => "no_usdc",
            Self::Asset => "unsupported_asset",
            Self::MaxTimeout => "invalid_max_timeout",
            Self::UpstreamAuth => "invalid_upstream_auth",
            Self::FacilitatorUrl => "invalid_facilitator_url",
            Self::Proxy(_) => "invalid_proxy_target",
            Self::Metering => "invalid_metering",
        }
    }
}

/// Why a request on a gated route is not let through. Every variant maps to one
/// [`Refusal`] (a stable [`Reason`], a detail and a hint) and so to a deliberate status.
#[derive(Debug, thiserror::Error)]
pub enum Denial {
    /// `/verify` without `X-Forwarded-Uri`: nothing to match, fail closed.
    #[error("forbidden: missing forwarded URI")]
    MissingForwardedUri,
    /// A forwarded header that is not visible ASCII.
    #[error("forwarded header {0} is not valid")]
    InvalidForwardedHeader(&'static str),
    /// The forwarded URI is longer than [`crate::decide::MAX_URI_LEN`].
    #[error("request URI is {len} bytes, more than the {max} allowed")]
    UriTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The route table has not finished its first sync.
    #[error("verifier is not ready")]
    NotReady,
    /// `/verify/{namespace}/{name}` names a route that is not loaded: fail closed.
    #[error("payment route is not loaded")]
    UnknownRoute,
    /// The path is under the route's published prefix, outside its pattern (query and
    /// fragment never count): refused, never let through for free.
    #[error("this path is not one the route sells")]
    PathNotPriced,
    /// The offer declares a route table and none of its routes lists this path: 404, never
    /// let through for free.
    #[error("no route of this offer serves this path")]
    NotListed,
    /// The offer's route table lists this path for other methods only.
    #[error("this route does not serve this method")]
    MethodNotAllowed {
        /// The methods it serves, for the `Allow` header.
        allow: String,
    },
    /// The payment header could not be decoded.
    #[error("invalid payment header: {0}")]
    Malformed(#[from] x402::DecodeError),
    /// Several payment headers that disagree.
    #[error("conflicting payment headers")]
    ConflictingHeaders,
    /// A payment header with bytes outside visible ASCII.
    #[error("payment header is not ASCII")]
    UnreadableHeader,
    /// A local check failed (requirement, time window, signature).
    #[error("payment rejected: {0}")]
    Rejected(#[from] x402::Rejection),
    /// A local check of an `upto` payment failed (requirement, spender, amount, deadline,
    /// signature).
    #[error("upto payment rejected: {0}")]
    UptoRejected(#[from] x402::verify::UptoRejection),
    /// An `upto` payment on a route that does not sell `upto` (not metered, not in gateway mode,
    /// or its facilitator offers no `upto` settlement on the network).
    #[error("this route does not accept the upto scheme")]
    UptoNotOffered,
    /// The payment cannot be expressed for this route (e.g. v1 on a chain without a v1 name).
    #[error("payment version not supported on this route")]
    UnsupportedVersion,
    /// This `(payer, nonce)` is in flight or already settled.
    #[error("payment nonce already used")]
    Replayed,
    /// The reservation table is full of payments in flight: refuse rather than forget.
    #[error("too many payments in flight")]
    Busy,
    /// Another request holds this authorization right now (a concurrent copy, or a settled
    /// answer still being delivered): retry after `retry_after` seconds.
    #[error("this payment is in use by another request")]
    InFlight {
        /// Seconds until the other request's deadline.
        retry_after: u64,
    },
    /// The shared reservation store did not answer: fail closed.
    #[error("the reservation store is unavailable")]
    ReservationsUnavailable,
    /// The chain could not be asked whether this authorization was already settled here.
    #[error("cannot check the chain for an earlier settlement")]
    ChainUnavailable,
    /// The gateway listener got a request without a route header and no route matches its path.
    #[error("no paid route serves this path")]
    NoRoute,
    /// The route header is not `<namespace>/<name>`.
    #[error("the route header is not namespace/name")]
    InvalidRouteHeader,
    /// The route is not in gateway mode `proxy`: the gateway listener does not serve it.
    #[error("this route is not served by the gateway")]
    NotProxied,
    /// A WebSocket upgrade on a route that does not allow them; nothing was charged.
    #[error("WebSocket upgrades are not allowed on this route")]
    WebSocketRefused,
    /// The request body is larger than the gateway forwards.
    #[error("request body too large")]
    RequestTooLarge,
    /// The upstream could not be reached, broke off, or sent no answer in time; nothing was
    /// charged.
    #[error("the upstream did not answer")]
    UpstreamFailed {
        /// Whether its time budget ran out.
        timed_out: bool,
    },
    /// The upstream answered but settlement did not go through, for the facilitator's own
    /// reasons; nothing moved, the authorization may be retried.
    #[error("settlement failed; nothing was charged")]
    SettlementFailed,
    /// The settle's outcome is unknown (it may have moved funds): the answer is withheld and the
    /// authorization stays used.
    #[error("settlement outcome unknown")]
    SettlementUnknown {
        /// A transaction hash, if one is known.
        transaction: Option<String>,
    },
    /// The facilitator said no, or could not be asked.
    #[error("{}", .0.summary)]
    Facilitator(Box<FacilitatorDenial>),
}

/// A facilitator's "no" (or silence), with what it means and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilitatorDenial {
    /// Which call.
    pub endpoint: Endpoint,
    /// What it means for the payer ([`meaning`]).
    pub meaning: Meaning,
    /// The failure family's metric label (`rejected`, `timeout`, ...).
    pub kind: &'static str,
    /// The facilitator's reason code, if it gave one.
    pub code: Option<String>,
    /// Its own words, on one line and bounded.
    pub words: Option<String>,
    /// The failed settlement's answer, when it named a transaction (sent on as
    /// `PAYMENT-RESPONSE`).
    pub settle: Option<SettleResponse>,
    /// The signature was left to the facilitator (not proven locally): a signature refusal
    /// then names the route's EIP-712 domain and what the signature recovers to under it.
    pub deferred_signature: Option<DeferredSignature>,
    /// The error's own text.
    pub summary: String,
}

impl FacilitatorDenial {
    /// Reads a facilitator failure; `signature` is how far the local check proved the
    /// signature (`None` when no payment was checked, e.g. a client that cannot be built).
    pub fn new(err: &FacilitatorError, signature: Option<&SignatureCheck>) -> Self {
        let proven = matches!(
            signature,
            Some(SignatureCheck::Proven | SignatureCheck::ProvenNormalized(_))
        );
        let meaning = if proven {
            facilitator::meaning_with_proven_signature(err)
        } else {
            facilitator::meaning(err)
        };
        let settle = err
            .settle_response()
            .filter(|s| s.transaction().is_some())
            .cloned();
        Self {
            endpoint: err.endpoint(),
            meaning,
            kind: err.metric_label(),
            code: err.reason().map(|c| facilitator::one_line(c, 100)),
            words: err.facilitator_words(),
            settle,
            deferred_signature: match signature {
                Some(SignatureCheck::Deferred(d)) => Some(*d),
                _ => None,
            },
            summary: err.to_string(),
        }
    }

    /// A facilitator client that cannot be built for a route: nothing was asked.
    pub fn not_configured() -> Self {
        Self {
            endpoint: Endpoint::Verify,
            meaning: Meaning::Unavailable,
            kind: "facilitator_config",
            code: None,
            words: None,
            settle: None,
            deferred_signature: None,
            summary: "no facilitator client for this route's facilitatorURL".into(),
        }
    }

    fn said(&self) -> String {
        let mut out = format!("{} refused", self.endpoint);
        if let Some(code) = &self.code {
            out.push_str(&format!(": {code}"));
        }
        if let Some(words) = &self.words {
            out.push_str(&format!(" ({words})"));
        }
        out
    }

    fn metric_label(&self) -> &'static str {
        match (self.endpoint, self.meaning) {
            (_, Meaning::Unavailable) if self.kind == "facilitator_config" => "facilitator_config",
            (Endpoint::Settle, Meaning::Refused) => "settle_rejected",
            (Endpoint::Settle, Meaning::AlreadyUsed) => "settle_already_used",
            (Endpoint::Settle, Meaning::Unavailable) => "settle_unavailable",
            (Endpoint::Settle, Meaning::SettleUnknown) => "settle_unknown",
            (_, Meaning::Refused) => "verify_rejected",
            (_, Meaning::AlreadyUsed) => "verify_already_used",
            (_, Meaning::Unavailable | Meaning::SettleUnknown) => "facilitator_unavailable",
        }
    }

    fn refusal(&self, requirement: Option<&Requirement>) -> Refusal {
        let settle = self.endpoint == Endpoint::Settle;
        match self.meaning {
            Meaning::AlreadyUsed => Refusal::new(
                Reason::Replayed,
                format!(
                    "the facilitator says this authorization was already used: {}",
                    self.said()
                ),
            ),
            Meaning::Unavailable if settle && self.kind == "rejected" => Refusal::new(
                Reason::SettlementFailed,
                format!("nothing was sent on chain: {}", self.said()),
            )
            .with_retriable(true),
            Meaning::Unavailable if self.kind == "rejected" => Refusal::new(
                Reason::FacilitatorUnreachable,
                format!(
                    "the facilitator could not check the payment: {}",
                    self.said()
                ),
            ),
            Meaning::Unavailable => Refusal::new(Reason::FacilitatorUnreachable, &self.summary),
            Meaning::SettleUnknown => {
                let detail = match self.settle.as_ref().and_then(SettleResponse::transaction) {
                    Some(tx) => format!("transaction {tx} did not succeed: {}", self.said()),
                    None if self.kind == "rejected" => {
                        format!("the outcome of the settlement is unknown: {}", self.said())
                    }
                    None => format!("the outcome of the settlement is unknown: {}", self.summary),
                };
                Refusal::new(Reason::SettlementFailed, detail)
            }
            Meaning::Refused => {
                let reason = if settle {
                    Reason::SettlementRejected
                } else {
                    Reason::PaymentInvalid
                };
                let signature = self
                    .code
                    .as_deref()
                    .is_some_and(facilitator::is_signature_code);
                match (signature, self.deferred_signature, requirement) {
                    (true, Some(deferred), Some(req)) => {
                        let recovered = match deferred {
                            DeferredSignature::NotFrom {
                                recovered: Some(addr),
                            } => format!(
                                "; under this route's domain it recovers to {}, not to authorization.from",
                                addr.to_checksum(None)
                            ),
                            _ => String::new(),
                        };
                        Refusal::new(reason, format!("{}{recovered}", self.said())).with_hint(
                            format!(
                                "Sign TransferWithAuthorization with the route's {} (accepts[0].extra), or pay from a wallet whose signature the token accepts.",
                                req.domain_words()
                            ),
                        )
                    }
                    _ => Refusal::new(reason, self.said()),
                }
            }
        }
    }
}

impl Denial {
    /// A facilitator failure, read with what the local check proved about the signature.
    pub fn from_facilitator(err: &FacilitatorError, signature: Option<&SignatureCheck>) -> Self {
        Self::Facilitator(Box::new(FacilitatorDenial::new(err, signature)))
    }

    /// The refusal: stable reason, detail and hint. `requirement` is the route's, when one was
    /// matched (hints then name its EIP-712 domain).
    pub fn refusal(&self, requirement: Option<&Requirement>) -> Refusal {
        let bounded = |text: String| facilitator::one_line(&text, MAX_DETAIL_LEN);
        match self {
            Self::MissingForwardedUri => Refusal::new(
                Reason::MissingForwardedUri,
                "the ForwardAuth request has no X-Forwarded-Uri header",
            ),
            Self::InvalidForwardedHeader(name) => Refusal::new(
                Reason::InvalidForwardedHeader,
                format!("{name} is not visible ASCII"),
            ),
            Self::UriTooLong { .. } => Refusal::new(Reason::UriTooLong, self.to_string()),
            Self::NotReady => Refusal::new(
                Reason::NotReady,
                "the verifier has not finished loading its payment routes",
            ),
            Self::UnknownRoute => Refusal::new(
                Reason::UnknownRoute,
                "the gateway asked about a payment route this verifier has not loaded",
            ),
            Self::PathNotPriced => Refusal::new(
                Reason::NoPaidRule,
                "the path is under this offer's prefix, but none of its paid patterns covers it",
            ),
            Self::NotListed => Refusal::new(
                Reason::RouteNotListed,
                "the path is under this offer's prefix, but its route table does not list it",
            ),
            Self::MethodNotAllowed { allow } => Refusal::new(
                Reason::MethodNotAllowed,
                format!("this path is served for {allow} only"),
            ),
            Self::Malformed(e) => {
                Refusal::new(Reason::InvalidPaymentHeader, bounded(e.to_string()))
            }
            Self::ConflictingHeaders => Refusal::new(
                Reason::InvalidPaymentHeader,
                "several payment headers (PAYMENT-SIGNATURE, X-PAYMENT) with different values",
            ),
            Self::UnreadableHeader => Refusal::new(
                Reason::InvalidPaymentHeader,
                "the payment header has bytes outside visible ASCII",
            ),
            Self::UptoRejected(r) => {
                let reason = if r.is_mismatch() {
                    Reason::NoMatchingRequirement
                } else {
                    Reason::PaymentInvalid
                };
                Refusal::new(reason, bounded(r.to_string()))
            }
            Self::UptoNotOffered => Refusal::new(
                Reason::NoMatchingRequirement,
                "this route does not accept the upto scheme",
            )
            .with_hint("Pay with a scheme listed in the 402's accepts."),
            Self::Rejected(r) => {
                let detail = bounded(r.to_string());
                if !r.is_mismatch() {
                    return Refusal::new(Reason::PaymentInvalid, detail);
                }
                let refusal = Refusal::new(Reason::NoMatchingRequirement, detail);
                match (r, requirement) {
                    (x402::Rejection::DomainMismatch, Some(req)) => refusal.with_hint(format!(
                        "Copy accepts[0].extra as it is and sign with the route's {}.",
                        req.domain_words()
                    )),
                    _ => refusal,
                }
            }
            Self::UnsupportedVersion => Refusal::new(
                Reason::NoMatchingRequirement,
                "this route's network has no x402 v1 name; pay with x402 v2 (PAYMENT-SIGNATURE)",
            ),
            Self::Replayed => Refusal::new(
                Reason::Replayed,
                "this authorization (payer and nonce) is being settled or was settled already",
            ),
            Self::Busy => Refusal::new(
                Reason::Busy,
                "the verifier's table of payments in flight is full",
            ),
            Self::InFlight { retry_after } => Refusal::new(
                Reason::InFlight,
                format!("another request holds this authorization for up to {retry_after} s"),
            ),
            Self::ReservationsUnavailable => Refusal::new(
                Reason::ReservationsUnavailable,
                "the reservation store shared by the verifier's replicas did not answer",
            ),
            Self::ChainUnavailable => Refusal::new(
                Reason::ChainUnavailable,
                "the chain could not be asked whether this authorization was settled here before",
            ),
            Self::NoRoute => Refusal::new(Reason::NoRoute, self.to_string()),
            Self::InvalidRouteHeader => Refusal::new(Reason::InvalidRouteHeader, self.to_string()),
            Self::NotProxied => Refusal::new(Reason::NotProxied, self.to_string()),
            Self::WebSocketRefused => Refusal::new(Reason::WebsocketRefused, self.to_string()),
            Self::RequestTooLarge => Refusal::new(Reason::RequestTooLarge, self.to_string()),
            Self::UpstreamFailed { timed_out: true } => Refusal::new(
                Reason::UpstreamFailed,
                "the upstream sent no answer in time; the payment was not settled",
            )
            .with_status(504),
            Self::UpstreamFailed { timed_out: false } => Refusal::new(
                Reason::UpstreamFailed,
                "the upstream could not be reached or broke off; the payment was not settled",
            ),
            Self::SettlementFailed => Refusal::new(
                Reason::SettlementFailed,
                "the facilitator could not settle for its own reasons; nothing was sent on chain",
            )
            .with_retriable(true),
            Self::SettlementUnknown { transaction } => Refusal::new(
                Reason::SettlementFailed,
                match transaction {
                    Some(tx) => format!("the outcome of settlement transaction {tx} is unknown"),
                    None => "the outcome of the settlement is unknown".to_owned(),
                },
            ),
            Self::Facilitator(f) => f.refusal(requirement),
        }
    }

    /// The stable reason (what [`Self::refusal`] answers with).
    pub fn reason(&self) -> Reason {
        self.refusal(None).reason
    }

    /// The HTTP status (what [`Self::refusal`] answers with).
    pub fn status(&self) -> axum::http::StatusCode {
        let status = self.refusal(None).status();
        axum::http::StatusCode::from_u16(status)
            .unwrap_or(axum::http::StatusCode::SERVICE_UNAVAILABLE)
    }

    /// A bounded label for metrics (finer than the reason: which check failed).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::MissingForwardedUri => "missing_forwarded_uri",
            Self::InvalidForwardedHeader(_) => "invalid_forwarded_header",
            Self::UriTooLong { .. } => "uri_too_long",
            Self::NotReady => "not_ready",
            Self::UnknownRoute => "unknown_route",
            Self::PathNotPriced => "path_not_priced",
            Self::NotListed => "route_not_listed",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Malformed(e) => e.metric_label(),
            Self::ConflictingHeaders => "conflicting_payment_headers",
            Self::UnreadableHeader => "unreadable_payment_header",
            Self::Rejected(r) => r.metric_label(),
            Self::UptoRejected(r) => r.reason(),
            Self::UptoNotOffered => "upto_not_offered",
            Self::UnsupportedVersion => "unsupported_version_for_route",
            Self::Replayed => "nonce_already_used",
            Self::Busy => "busy",
            Self::InFlight { .. } => "payment_in_flight",
            Self::ReservationsUnavailable => "reservations_unavailable",
            Self::ChainUnavailable => "chain_unavailable",
            Self::NoRoute => "no_route",
            Self::InvalidRouteHeader => "invalid_route_header",
            Self::NotProxied => "route_not_proxied",
            Self::WebSocketRefused => "websocket_not_allowed",
            Self::RequestTooLarge => "request_too_large",
            Self::UpstreamFailed { timed_out: true } => "upstream_timeout",
            Self::UpstreamFailed { timed_out: false } => "upstream_failed",
            Self::SettlementFailed => "settlement_failed",
            Self::SettlementUnknown { .. } => "settlement_unknown",
            Self::Facilitator(f) => f.metric_label(),
        }
    }

    /// The x402 `error` string of a 402 answer.
    pub fn x402_error(&self) -> String {
        match self {
            Self::Malformed(_) | Self::ConflictingHeaders | Self::UnreadableHeader => {
                "invalid_payload".to_owned()
            }
            Self::Rejected(r) => r.x402_error_code().to_owned(),
            Self::UptoRejected(r) => r.x402_error_code().to_owned(),
            Self::Replayed => "invalid_exact_evm_nonce_already_used".to_owned(),
            Self::UnsupportedVersion => "invalid_x402_version".to_owned(),
            Self::Facilitator(f) => f
                .code
                .clone()
                .unwrap_or_else(|| f.metric_label().to_owned()),
            _ => self.metric_label().to_owned(),
        }
    }

    /// Seconds a client should wait before retrying, when the answer says so.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::InFlight { retry_after } => Some((*retry_after).max(1)),
            _ if self.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
                Some(RETRY_AFTER_SECS)
            }
            _ => None,
        }
    }

    /// The failed settlement's answer, when it named a transaction: the payer's funds may
    /// have moved, so it is reported (`PAYMENT-RESPONSE`) and the nonce stays burned.
    pub fn failed_settlement(&self) -> Option<SettleResponse> {
        match self {
            Self::Facilitator(f) => f.settle.clone(),
            Self::SettlementUnknown {
                transaction: Some(tx),
            } => Some(SettleResponse {
                success: false,
                error_reason: Some("settlement_unknown".into()),
                error_message: None,
                transaction: tx.clone(),
                network: String::new(),
                payer: None,
                amount: None,
                extensions: None,
            }),
            _ => None,
        }
    }

    /// Whether the facilitator said the authorization was already used (its nonce consumed),
    /// in any facilitator's wording ([`facilitator::meaning`]).
    pub fn says_already_used(&self) -> bool {
        matches!(self, Self::Facilitator(f) if f.meaning == Meaning::AlreadyUsed)
    }

    /// Whether the authorization may be offered again: nothing was, or could have been, sent
    /// on chain. `false` keeps its nonce burned in the replay cache.
    pub fn releases_authorization(&self) -> bool {
        match self {
            Self::Facilitator(f) => matches!(f.meaning, Meaning::Refused | Meaning::Unavailable),
            _ => true,
        }
    }
}

/// Longest `detail` built from our own errors (they may quote a fragment of the input).
pub const MAX_DETAIL_LEN: usize = 300;

/// What stops the verifier process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen socket could not be bound or served.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Kubernetes client could not be built.
    #[error("cannot build the Kubernetes client")]
    Kube(#[source] kube::Error),
    /// The facilitator client could not be built.
    #[error("cannot build the facilitator client")]
    Facilitator(#[source] x402::Error),
    /// A command-line value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// A bounded label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Kube(_) => "kube",
            Self::Facilitator(_) => "facilitator_config",
            Self::Config(_) => "config",
        }
    }
}

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
