//! `ServiceOffer` (`so`): what is sold, written by the operator (or `obol sell http`).

// kube's printcolumn(...) attributes repeat `type_ = "string"` on purpose.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::{Condition, Phase};
use crate::validation as V;

mod validate;

pub use validate::{Chain, InvalidOffer, OfferField, Problem, ValidOffer};

/// What an operator sells: an upstream HTTP service behind an x402 payment gate, optionally
/// announced as an ERC-8004 agent.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "obol.org",
    version = "v1alpha1",
    kind = "ServiceOffer",
    namespaced,
    shortname = "so",
    status = "ServiceOfferStatus",
    doc = "An HTTP service sold for x402 micropayments, optionally registered as an ERC-8004 agent.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "Price",
        type_ = "string",
        json_path = ".spec.payment.price.perRequest"
    ),
    printcolumn(
        name = "Network",
        type_ = "string",
        json_path = ".spec.payment.network"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceOfferSpec {
    /// Kind of service.
    #[serde(default, rename = "type")]
    pub type_: OfferType,
    /// The model served, for inference offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
    /// The Service the paid traffic goes to.
    pub upstream: Upstream,
    /// Path the offer is published at; default `/services/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = V::PATH), length(max = V::MAX_PATH_LEN))]
    pub path: Option<String>,
    /// How buyers pay.
    pub payment: Payment,
    /// ERC-8004 announcement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<Registration>,
    /// Free-form provenance copied into the registration document.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provenance: BTreeMap<String, String>,
    /// How paid traffic reaches the upstream. Absent: `forwardAuth` (offers written before the
    /// field existed keep what they had); `obol sell http` writes `proxy` for new offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<OfferGateway>,
    /// The route table: the paths sold under the offer's path, each paid or free, optionally
    /// with its own price, methods and schemas. Declared, it is exhaustive: a path no route
    /// lists answers 404. Absent: the whole prefix at the offer's price.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::routes::MAX_ROUTES))]
    pub routes: Vec<crate::routes::OfferRoute>,
    /// When the offer stops being sold (RFC 3339, see `obol_api::drain`): from then on
    /// discovery lists it as unavailable, and its route keeps gating for `drainGracePeriod`,
    /// then is withdrawn (phase `Drained`). Remove it to sell again. `obol sell stop` sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = V::TIMESTAMP), extend("format" = "date-time"))]
    pub drain_at: Option<String>,
    /// How long the route keeps gating after `drainAt` (`90s`, `15m`, `1h`; at most 720h);
    /// absent: the route goes at `drainAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = V::GRACE_PERIOD))]
    pub drain_grace_period: Option<String>,
}

/// How paid traffic reaches the upstream, and what the gateway may pass on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferGateway {
    /// `proxy`: the verifier forwards paid requests and settles only answers the upstream gave
    /// and the client got. `forwardAuth`: the verifier settles, then the gateway forwards.
    pub mode: GatewayMode,
    /// Content types streamed as they arrive and settled at their end, besides
    /// `text/event-stream` (lower-case, no parameters: `application/x-ndjson`). `proxy` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = V::MAX_STREAMING_TYPES))]
    pub streaming_content_types: Vec<String>,
    /// WebSocket upgrades are allowed (settled when the upstream accepts the upgrade);
    /// otherwise refused before any payment is taken. `proxy` only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_web_socket: bool,
}

/// Who forwards paid requests to the upstream.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum GatewayMode {
    /// The verifier itself, on its gateway listener: no charge for errors, streams settled at
    /// their end, the receipt reaches the client.
    #[serde(rename = "proxy")]
    Proxy,
    /// The gateway, after the verifier's ForwardAuth answer: settled before the upstream is
    /// asked.
    #[serde(rename = "forwardAuth")]
    ForwardAuth,
}

impl GatewayMode {
    /// The spelling in the resource (`proxy`, `forwardAuth`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::ForwardAuth => "forwardAuth",
        }
    }
}

impl std::fmt::Display for GatewayMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for GatewayMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "proxy" => Ok(Self::Proxy),
            "forwardAuth" | "forward-auth" => Ok(Self::ForwardAuth),
            _ => Err(format!(
                "unknown gateway mode {s:?}: use proxy or forwardAuth"
            )),
        }
    }
}

/// Kind of service sold.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OfferType {
    /// Model inference (OpenAI-compatible).
    Inference,
    /// Fine-tuning jobs.
    FineTuning,
    /// Any HTTP API.
    #[default]
    Http,
}

/// The model of an inference offer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Model {
    /// Model name, e.g. `qwen3.5:35b`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Serving runtime.
    pub runtime: ModelRuntime,
}

/// Serving runtime of a model.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelRuntime {
    /// Ollama.
    Ollama,
    /// vLLM.
    Vllm,
    /// Text Generation Inference.
    Tgi,
}

/// Where paid requests go.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Upstream {
    /// Service name.
    #[schemars(regex(pattern = V::DNS_LABEL), length(min = 1, max = crate::names::MAX_LABEL_LEN))]
    pub service: String,
    /// Service namespace; default the offer's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = V::DNS_LABEL_OR_EMPTY), length(max = crate::names::MAX_LABEL_LEN))]
    pub namespace: Option<String>,
    /// Service port.
    #[serde(default = "default_port")]
    #[schemars(range(min = V::MIN_PORT, max = V::MAX_PORT))]
    pub port: i32,
    /// Path probed for health (any answer below 400 counts as healthy).
    #[serde(default = "default_health_path")]
    #[schemars(regex(pattern = V::HEALTH_PATH))]
    pub health_path: String,
}

fn default_port() -> i32 {
    V::DEFAULT_UPSTREAM_PORT
}

fn default_health_path() -> String {
    V::DEFAULT_HEALTH_PATH.to_owned()
}

/// How the offer is paid for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// x402 scheme.
    #[serde(default)]
    pub scheme: Scheme,
    /// Chain: a name (`base-sepolia`) or a CAIP-2 id (`eip155:84532`).
    #[schemars(regex(pattern = V::NETWORK))]
    pub network: String,
    /// The seller's wallet.
    #[serde(rename = "payTo")]
    #[schemars(regex(pattern = V::ADDRESS))]
    pub pay_to: String,
    /// Token override; default the chain's USDC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<Asset>,
    /// Longest validity window a payment may ask for, in seconds.
    #[serde(default = "default_max_timeout")]
    #[schemars(range(min = V::MIN_TIMEOUT_SECONDS, max = V::MAX_TIMEOUT_SECONDS))]
    pub max_timeout_seconds: i64,
    /// Price in decimal units of the asset (USDC).
    pub price: Price,
    /// Tokens one request is assumed to use when priced per million tokens (default 1000): the
    /// `exact` price, and what a metered request is charged when its answer reports no usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub approx_tokens_per_request: Option<u64>,
    /// Most tokens one metered (`upto`) request may be charged for: the buyer authorizes this
    /// many at the higher rate (default 10 × approxTokensPerRequest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tokens_per_request: Option<u64>,
}

fn default_max_timeout() -> i64 {
    V::DEFAULT_TIMEOUT_SECONDS
}

/// x402 payment scheme.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Exactly the price, by EIP-3009 transfer authorization.
    #[default]
    Exact,
}

/// A token other than the chain's USDC.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    /// Token contract.
    #[schemars(regex(pattern = V::ADDRESS))]
    pub address: String,
    /// Ticker, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Token decimals.
    #[schemars(range(min = 0, max = V::MAX_ASSET_DECIMALS))]
    pub decimals: u8,
    /// How the transfer is authorized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_method: Option<TransferMethod>,
    /// EIP-712 domain name of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip712_name: Option<String>,
    /// EIP-712 domain version of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip712_version: Option<String>,
}

/// Token transfer authorization method.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransferMethod {
    /// EIP-3009 `transferWithAuthorization`.
    Eip3009,
    /// Uniswap Permit2.
    Permit2,
}

/// Decimal prices; the first set of perRequest > per-token (perMTok, perMTokInput,
/// perMTokOutput) > perHour gates (see [`crate::price`] and [`crate::metering`]).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// Per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = V::DECIMAL))]
    pub per_request: Option<String>,
    /// Per million tokens (prompt and completion alike, unless set apart below).
    #[serde(default, rename = "perMTok", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = V::DECIMAL))]
    pub per_mtok: Option<String>,
    /// Per million prompt (input) tokens; default `perMTok`.
    #[serde(
        default,
        rename = "perMTokInput",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub per_mtok_input: Option<String>,
    /// Per million completion (output) tokens; default `perMTok`.
    #[serde(
        default,
        rename = "perMTokOutput",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub per_mtok_output: Option<String>,
    /// Per hour of use (charged as five minutes per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = V::DECIMAL))]
    pub per_hour: Option<String>,
    /// Per epoch: informational, never gates (kept for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = V::DECIMAL))]
    pub per_epoch: Option<String>,
}

/// The ERC-8004 announcement of an offer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// Register on chain (or off chain only when the registrar has no key).
    #[serde(default)]
    pub enabled: bool,
    /// Agent name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Agent description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Extra service entries of the registration document.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<RegistrationService>,
    /// Trust models supported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_trust: Vec<String>,
    /// OASF skills.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// OASF domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Free-form metadata (on chain as `metadata.<key>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// One service entry of a registration document.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct RegistrationService {
    /// Service name (e.g. `A2A`, `MCP`, `web`).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Endpoint URL.
    #[schemars(length(min = 1))]
    pub endpoint: String,
    /// Protocol version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// What the controller observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceOfferStatus {
    /// One-word summary (see [`crate::condition::compute_phase`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// UpstreamHealthy, PaymentGateReady, RoutePublished, Registered, Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The effective path (not a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// ERC-8004 agent id (decimal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Registration transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_tx_hash: Option<String>,
}

impl ServiceOfferSpec {
    /// The path the offer is published at.
    pub fn effective_path(&self, offer_name: &str) -> String {
        match self.path.as_deref() {
            Some(p) if !p.is_empty() => p.to_owned(),
            _ => crate::names::default_path(offer_name),
        }
    }

    /// The upstream namespace: the spec's, else the offer's own.
    pub fn upstream_namespace<'a>(&'a self, offer_namespace: &'a str) -> &'a str {
        match self.upstream.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => offer_namespace,
        }
    }

    /// The gateway mode: the spec's, else `forwardAuth` (what every offer had before the field).
    pub fn gateway_mode(&self) -> GatewayMode {
        self.gateway
            .as_ref()
            .map_or(GatewayMode::ForwardAuth, |g| g.mode)
    }

    /// Whether on-chain registration is enabled.
    pub fn registration_enabled(&self) -> bool {
        self.registration.as_ref().is_some_and(|r| r.enabled)
    }

    /// The price fields as [`crate::price::PriceInput`].
    pub fn price_input(&self) -> crate::price::PriceInput<'_> {
        let p = &self.payment.price;
        crate::price::PriceInput {
            per_request: p.per_request.as_deref(),
            per_mtok: p.per_mtok.as_deref(),
            per_mtok_input: p.per_mtok_input.as_deref(),
            per_mtok_output: p.per_mtok_output.as_deref(),
            per_hour: p.per_hour.as_deref(),
            approx_tokens_per_request: self.payment.approx_tokens_per_request,
            max_tokens_per_request: self.payment.max_tokens_per_request,
        }
    }
}
