//! `PaymentRoute` (`pr`): the verifier's whole view of one offer, derived by the controller.

// kube's printcolumn(...) attributes repeat `type_ = "string"` on purpose.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// One priced route the verifier gates. `price` is in atomic units of the asset.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "obol.org",
    version = "v1alpha1",
    kind = "PaymentRoute",
    namespaced,
    shortname = "pr",
    status = "PaymentRouteStatus",
    doc = "A priced route loaded by the x402 verifier; written by the ServiceOffer controller.",
    printcolumn(name = "Pattern", type_ = "string", json_path = ".spec.pattern"),
    printcolumn(name = "Price", type_ = "string", json_path = ".spec.price"),
    printcolumn(name = "Network", type_ = "string", json_path = ".spec.network"),
    printcolumn(name = "Admitted", type_ = "boolean", json_path = ".status.admitted"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRouteSpec {
    /// Request path pattern: exact, `<prefix>/*`, or a segment glob.
    #[schemars(regex(pattern = crate::validation::ROUTE_PATTERN), length(max = crate::validation::MAX_PATH_LEN))]
    pub pattern: String,
    /// Price per request in atomic units of the asset (`"1000"` = 0.001 USDC).
    #[schemars(regex(pattern = crate::validation::UINT), length(max = 78))]
    pub price: String,
    /// The seller's wallet.
    #[serde(rename = "payTo")]
    #[schemars(regex(pattern = crate::validation::ADDRESS))]
    pub pay_to: String,
    /// Chain as a CAIP-2 id (`eip155:84532`); legacy names are accepted too.
    #[schemars(regex(pattern = crate::validation::NETWORK))]
    pub network: String,
    /// Token contract; default the chain's USDC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::validation::ADDRESS))]
    pub asset: Option<String>,
    /// Facilitator for this route; default the verifier's.
    #[serde(
        default,
        rename = "facilitatorURL",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = crate::validation::HTTP_URL))]
    pub facilitator_url: Option<String>,
    /// How the price was derived (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_model: Option<PriceModel>,
    /// The offer's per-million-token price in atomic units, when priced that way.
    #[serde(default, rename = "perMTok", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::validation::UINT))]
    pub per_mtok: Option<String>,
    /// Tokens per request assumed by the per-MTok conversion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub approx_tokens_per_request: Option<u64>,
    /// Shown to buyers in the 402 answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::validation::MAX_DESCRIPTION_LEN))]
    pub description: Option<String>,
    /// Longest validity window a payment may ask for, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = crate::validation::MIN_TIMEOUT_SECONDS, max = crate::validation::MAX_TIMEOUT_SECONDS))]
    pub max_timeout_seconds: Option<i64>,
    /// `Authorization` value the verifier hands to the gateway for the upstream on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_auth: Option<String>,
    /// Set in gateway mode `proxy`: the verifier itself forwards paid requests to this upstream
    /// and settles only after it answered. Absent: ForwardAuth (settle, then let through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyTarget>,
    /// Set when the offer is priced per token: the route also accepts x402 `upto` payments up to
    /// `maxAmount`, each charged for the tokens its answer used; `price` stays the `exact`
    /// price and what an answer without usage is charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metering: Option<Metering>,
    /// The offer's route table, most specific first (equally specific ones in declaration
    /// order). Set, it is exhaustive: a path under `pattern` that no rule matches is refused
    /// with 404. Empty: `pattern` at `price`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<crate::routes::RouteRule>,
    /// Set while the offer drains (RFC 3339): the route gates until then and is withdrawn at
    /// that moment; discovery lists it as unavailable meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::validation::TIMESTAMP), extend("format" = "date-time"))]
    pub drain_ends_at: Option<String>,
}

/// The metered terms of a per-token route, in atomic units of the route's asset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metering {
    /// Atomic units per million prompt (input) tokens.
    #[serde(rename = "inputPerMTok")]
    #[schemars(regex(pattern = r"^[0-9]+$"), length(max = 38))]
    pub input_per_mtok: String,
    /// Atomic units per million completion (output) tokens.
    #[serde(rename = "outputPerMTok")]
    #[schemars(regex(pattern = r"^[0-9]+$"), length(max = 38))]
    pub output_per_mtok: String,
    /// Tokens the maximum is priced at.
    #[schemars(range(min = 1))]
    pub max_tokens_per_request: u64,
    /// The most one request may cost: the `amount` of the `upto` requirement.
    #[schemars(regex(pattern = r"^[0-9]+$"), length(max = 38))]
    pub max_amount: String,
}

impl Metering {
    /// The route form of metered terms.
    pub fn from_price(price: &crate::metering::MeteredPrice) -> Self {
        let t = &price.tariff;
        Self {
            input_per_mtok: t.rates.input.to_string(),
            output_per_mtok: t.rates.output.to_string(),
            max_tokens_per_request: price.max_tokens,
            max_amount: t.maximum.to_string(),
        }
    }

    /// The tariff, with `fallback` the route's `price` (atomic units); `None` when a number does
    /// not parse or the fallback exceeds the maximum (a route the verifier refuses to load).
    pub fn tariff(&self, fallback: &str) -> Option<crate::metering::Tariff> {
        let n = |s: &str| s.parse::<u128>().ok();
        let tariff = crate::metering::Tariff {
            rates: crate::metering::TokenRates {
                input: n(&self.input_per_mtok)?,
                output: n(&self.output_per_mtok)?,
            },
            maximum: n(&self.max_amount)?,
            fallback: n(fallback)?,
        };
        (tariff.maximum > 0 && tariff.fallback <= tariff.maximum).then_some(tariff)
    }
}

/// Where the verifier forwards a paid request in gateway mode `proxy`, and how.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyTarget {
    /// Base URL of the upstream, scheme, host and port only (`http://llm.ns.svc:8080`).
    #[schemars(regex(pattern = r"^https?://[^\s/?#]+$"), length(max = 512))]
    pub upstream: String,
    /// Removed from the start of the request path before forwarding (the offer's published
    /// path), the way the ForwardAuth mode's HTTPRoute rewrites it: `/services/x/v1` → `/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/[a-zA-Z0-9/_.-]*$"), length(max = 1024))]
    pub strip_prefix: Option<String>,
    /// Content types streamed to the client as they arrive and settled at their end, besides
    /// `text/event-stream` (e.g. `application/x-ndjson`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub streaming_content_types: Vec<String>,
    /// WebSocket upgrades are allowed (the payment is settled when the upstream accepts the
    /// upgrade); otherwise they are refused before any payment is taken.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_web_socket: bool,
}

/// How a route's price was derived.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PriceModel {
    /// A fixed price per request.
    #[serde(rename = "per-request")]
    PerRequest,
    /// Per million tokens × tokens per request.
    #[serde(rename = "per-mtok")]
    PerMTok,
    /// Per hour, five minutes per request.
    #[serde(rename = "per-hour")]
    PerHour,
}

/// What the verifier reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRouteStatus {
    /// The verifier loaded the route (only after a successful load).
    #[serde(default)]
    pub admitted: bool,
    /// `metadata.generation` that was admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_admitted_generation: Option<i64>,
    /// `Admitted`, with the reason when the route could not be loaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl PaymentRouteSpec {
    /// A route with only the required fields: the asset is the chain's USDC, the price is per
    /// request, and every optional field is unset.
    pub fn new(
        pattern: impl Into<String>,
        price: impl Into<String>,
        pay_to: impl Into<String>,
        network: impl Into<String>,
    ) -> Self {
        Self {
            pattern: pattern.into(),
            price: price.into(),
            pay_to: pay_to.into(),
            network: network.into(),
            asset: None,
            facilitator_url: None,
            price_model: None,
            per_mtok: None,
            approx_tokens_per_request: None,
            description: None,
            max_timeout_seconds: None,
            upstream_auth: None,
            proxy: None,
            metering: None,
            routes: Vec::new(),
            drain_ends_at: None,
        }
    }
}

impl PaymentRoute {
    /// Whether the verifier admitted this route at its current generation.
    pub fn admitted_at_current_generation(&self) -> bool {
        let generation = self.metadata.generation;
        self.status.as_ref().is_some_and(|s| {
            s.admitted && generation.is_some() && s.last_admitted_generation == generation
        })
    }
}
