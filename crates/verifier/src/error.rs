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
