//! Errors: why a route cannot be loaded ([`LoadError`]), why a request is not let through
//! ([`Denial`]), and what stops the process ([`Error`]). Each has a bounded `metric_label`.

use axum::http::StatusCode;
use obol_x402 as x402;
use x402::facilitator::{Endpoint, FacilitatorError, FailureKind};

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
        }
    }
}

/// Why a ForwardAuth call is not answered 200. Every variant has a deliberate status.
#[derive(Debug, thiserror::Error)]
pub enum Denial {
    /// `/verify` without `X-Forwarded-Uri`: nothing to match, fail closed.
    #[error("forbidden: missing forwarded URI")]
    MissingForwardedUri,
    /// A forwarded header that is not visible ASCII.
    #[error("forwarded header {0} is not valid")]
    InvalidForwardedHeader(&'static str),
    /// The route table has not finished its first sync.
    #[error("verifier is not ready")]
    NotReady,
    /// `/verify/{namespace}/{name}` names a route that is not loaded: fail closed.
    #[error("payment route is not loaded")]
    UnknownRoute,
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
    /// The path is outside the route's pattern (query and fragment never count).
    #[error("this path is not one the route sells")]
    PathNotPriced,
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
    /// The facilitator said no at `/verify`.
    #[error("payment verification failed")]
    VerifyRejected {
        /// Its reason, if any.
        reason: Option<String>,
    },
    /// The facilitator said no at `/settle`.
    #[error("payment settlement failed")]
    SettleRejected {
        /// Its reason, if any.
        reason: Option<String>,
        /// A transaction hash, if one is known.
        transaction: Option<String>,
    },
    /// The facilitator could not be asked (down, timed out, malformed answer): our outage.
    #[error("facilitator unavailable ({endpoint}, {label})")]
    FacilitatorUnavailable {
        /// Which call.
        endpoint: Endpoint,
        /// The failure's metric label.
        label: &'static str,
        /// A transaction hash a malformed settle answer still carried, if any.
        transaction: Option<String>,
    },
}

impl Denial {
    /// Maps a facilitator failure: a rejection is the payer's problem (402), anything else
    /// ours (503).
    pub fn from_facilitator(err: &FacilitatorError) -> Self {
        let endpoint = err.endpoint();
        match err.kind() {
            FailureKind::Rejected if endpoint == Endpoint::Settle => Self::SettleRejected {
                reason: err.reason().map(str::to_owned),
                transaction: err
                    .settle_response()
                    .and_then(|s| s.transaction())
                    .map(str::to_owned),
            },
            FailureKind::Rejected => Self::VerifyRejected {
                reason: err.reason().map(str::to_owned),
            },
            FailureKind::Unreachable | FailureKind::Malformed => Self::FacilitatorUnavailable {
                endpoint,
                label: err.metric_label(),
                transaction: None,
            },
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingForwardedUri => StatusCode::FORBIDDEN,
            Self::InvalidForwardedHeader(_) => StatusCode::BAD_REQUEST,
            Self::NotReady
            | Self::UnknownRoute
            | Self::Busy
            | Self::ReservationsUnavailable
            | Self::ChainUnavailable
            | Self::SettlementFailed
            | Self::FacilitatorUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::InFlight { .. } => StatusCode::CONFLICT,
            Self::NoRoute | Self::NotProxied => StatusCode::NOT_FOUND,
            Self::InvalidRouteHeader => StatusCode::BAD_REQUEST,
            Self::PathNotPriced | Self::WebSocketRefused => StatusCode::FORBIDDEN,
            Self::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UpstreamFailed { timed_out: true } => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamFailed { timed_out: false } | Self::SettlementUnknown { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Self::Malformed(_)
            | Self::ConflictingHeaders
            | Self::UnreadableHeader
            | Self::Rejected(_)
            | Self::UnsupportedVersion
            | Self::Replayed
            | Self::VerifyRejected { .. }
            | Self::SettleRejected { .. } => StatusCode::PAYMENT_REQUIRED,
        }
    }

    /// A stable machine-readable reason (the `reason` of the JSON body).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::MissingForwardedUri => "missing_forwarded_uri",
            Self::InvalidForwardedHeader(_) => "invalid_forwarded_header",
            Self::NotReady => "not_ready",
            Self::UnknownRoute => "unknown_route",
            Self::Malformed(e) => e.metric_label(),
            Self::ConflictingHeaders => "conflicting_payment_headers",
            Self::UnreadableHeader => "unreadable_payment_header",
            Self::Rejected(r) => r.metric_label(),
            Self::UnsupportedVersion => "unsupported_version_for_route",
            Self::Replayed => "nonce_already_used",
            Self::Busy => "busy",
            Self::InFlight { .. } => "payment_in_flight",
            Self::ReservationsUnavailable => "reservations_unavailable",
            Self::ChainUnavailable => "chain_unavailable",
            Self::NoRoute => "no_route",
            Self::InvalidRouteHeader => "invalid_route_header",
            Self::NotProxied => "route_not_proxied",
            Self::PathNotPriced => "path_not_priced",
            Self::WebSocketRefused => "websocket_not_allowed",
            Self::RequestTooLarge => "request_too_large",
            Self::UpstreamFailed { timed_out: true } => "upstream_timeout",
            Self::UpstreamFailed { timed_out: false } => "upstream_failed",
            Self::SettlementFailed => "settlement_failed",
            Self::SettlementUnknown { .. } => "settlement_unknown",
            Self::VerifyRejected { .. } => "verify_rejected",
            Self::SettleRejected { .. } => "settle_rejected",
            Self::FacilitatorUnavailable { .. } => "facilitator_unavailable",
        }
    }

    /// The x402 `error` string of a 402 answer.
    pub fn x402_error(&self) -> String {
        match self {
            Self::Malformed(_) | Self::ConflictingHeaders | Self::UnreadableHeader => {
                "invalid_payload".to_owned()
            }
            Self::Rejected(r) => r.x402_error_code().to_owned(),
            Self::Replayed => "invalid_exact_evm_nonce_already_used".to_owned(),
            Self::UnsupportedVersion => "invalid_x402_version".to_owned(),
            Self::VerifyRejected { reason } | Self::SettleRejected { reason, .. } => reason
                .clone()
                .unwrap_or_else(|| self.metric_label().to_owned()),
            _ => self.metric_label().to_owned(),
        }
    }

    /// Seconds a client should wait before retrying, when the answer says so.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::InFlight { retry_after } => Some((*retry_after).max(1)),
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// Whether the payer's funds may have moved (keep the nonce burned, report the tx).
    pub fn transaction(&self) -> Option<&str> {
        match self {
            Self::SettleRejected { transaction, .. }
            | Self::SettlementUnknown { transaction }
            | Self::FacilitatorUnavailable { transaction, .. } => transaction.as_deref(),
            _ => None,
        }
    }
}

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
