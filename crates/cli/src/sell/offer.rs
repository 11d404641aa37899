//! `obol sell http`: flags to a ServiceOffer, with every check that needs no cluster. Pure.

use std::collections::BTreeMap;

use obol_api::ServiceOffer;
use obol_api::price::format_atomic;
use obol_api::routes::{Gate, OfferRoute};
use obol_api::service_offer::{
    Chain, GatewayMode, InvalidOffer, OfferField, OfferGateway, OfferType, Payment, Price,
    Registration, Scheme, ServiceOfferSpec, Upstream,
};
use obol_x402::chain::Network;

/// What `obol sell http` was asked to create.
#[derive(Debug, Clone, Default)]
pub struct OfferRequest {
    /// Offer name.
    pub name: String,
    /// Offer namespace.
    pub namespace: String,
    /// Upstream Service name.
    pub upstream: String,
    /// Upstream Service namespace (default the offer's).
    pub upstream_namespace: Option<String>,
    /// Upstream port.
    pub port: i32,
    /// Upstream health path.
    pub health_path: String,
    /// Published path (default `/services/<name>`).
    pub path: Option<String>,
    /// Seller wallet.
    pub wallet: Option<String>,
    /// Chain name or CAIP-2 id.
    pub network: String,
    /// `--price` / `--per-request`.
    pub per_request: Option<String>,
    /// `--per-mtok`.
    pub per_mtok: Option<String>,
    /// `--per-hour`.
    pub per_hour: Option<String>,
    /// `--per-mtok-input`.
    pub per_mtok_input: Option<String>,
    /// `--per-mtok-output`.
    pub per_mtok_output: Option<String>,
    /// `--approx-tokens`.
    pub approx_tokens_per_request: Option<u64>,
    /// `--max-tokens`.
    pub max_tokens_per_request: Option<u64>,
    /// `--max-timeout` in seconds.
    pub max_timeout_seconds: i64,
    /// `--register`.
    pub register: bool,
    /// `--register-name`.
    pub register_name: Option<String>,
    /// `--register-description`.
    pub register_description: Option<String>,
    /// `--register-image`.
    pub register_image: Option<String>,
    /// `--register-skills`.
    pub register_skills: Vec<String>,
    /// `--register-domains`.
    pub register_domains: Vec<String>,
    /// `--register-metadata k=v`.
    pub register_metadata: Vec<String>,
    /// The gateway mode written ([`gateway_mode`]); `None`: `proxy`.
    pub gateway_mode: Option<GatewayMode>,
    /// `--streaming-type` (repeatable).
    pub streaming_types: Vec<String>,
    /// `--allow-websocket`.
    pub allow_web_socket: bool,
    /// `--route` (repeatable), unparsed ([`parse_route`]).
    pub routes: Vec<String>,
    /// The text of each file the routes name with `@` ([`schema_files`]), read by the caller.
    pub schema_files: BTreeMap<String, String>,
}

/// The gateway mode `obol sell http` writes: the flag's; else, updating an offer, the mode it
/// has (an offer without the field keeps `forwardAuth`); else `proxy`, the default for new
/// offers. (Not a schema default: the API server would apply it to stored offers on read and
/// switch every existing offer's mode.)
pub fn gateway_mode(flag: Option<GatewayMode>, existing: Option<&ServiceOfferSpec>) -> GatewayMode {
    flag.or(existing.map(ServiceOfferSpec::gateway_mode))
        .unwrap_or(GatewayMode::Proxy)
}

/// Why an offer is refused before anything is written. Each message says what is wrong and
/// what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No wallet.
    #[error("wallet required: use --wallet <0x address> or set X402_WALLET")]
    MissingWallet,
    /// No price flag.
    #[error(
        "price required: use --price <USDC per request>, --per-mtok (and/or --per-mtok-input, --per-mtok-output) or --per-hour"
    )]
    MissingPrice,
    /// More than one price flag.
    #[error(
        "give exactly one kind of price: --price/--per-request, per token (--per-mtok, --per-mtok-input, --per-mtok-output) or --per-hour"
    )]
    SeveralPrices,
    /// A `k=v` without `=`.
    #[error("invalid --register-metadata {0:?}: use key=value")]
    Metadata(String),
    /// Empty upstream name.
    #[error("--upstream is required: the Service that serves the paid requests")]
    Upstream,
    /// The offer breaks a rule of [`ServiceOfferSpec::validate`] (the controller's rules).
    #[error("{}", .0.message_for(subject(.0.field)))]
    Invalid(InvalidOffer),
    /// The upstream Service does not exist.
    #[error(
        "upstream Service {namespace}/{name} not found: create it first, or fix --upstream / --upstream-namespace"
    )]
    MissingService {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The upstream answered its health path with an error.
    #[error(
        "upstream {url} answered HTTP {status}: fix the upstream or --health-path before selling it"
    )]
    Unhealthy {
        /// Probed URL.
        url: String,
        /// Status code.
        status: u16,
    },
    /// A `--route` that does not parse.
    #[error(
        "invalid --route {0:?}: {1}; write path=/v1/chat/completions,gate=paid,price=0.01,methods=POST|GET,summary=text,input-schema=@in.json,output-schema=@out.json"
    )]
    Route(String, String),
    /// A schema file `--route` names cannot be read.
    #[error("cannot read the --route schema file {path:?}: {error}")]
    SchemaFile {
        /// The path as given after `@`.
        path: String,
        /// Why.
        error: String,
    },
    /// An offer with this name exists and belongs to someone else's flags.
    #[error("ServiceOffer {0} is being deleted: wait for it to disappear, then try again")]
    Deleting(String),
}

/// What a refusal calls a spec field: the flag that sets it.
fn subject(field: OfferField) -> &'static str {
    use OfferField as F;
    match field {
        F::Name => "offer name",
        F::Path => "--path",
        F::UpstreamService => "--upstream",
        F::UpstreamNamespace => "--upstream-namespace",
        F::UpstreamPort => "port",
        F::HealthPath => "--health-path",
        F::PayTo => "wallet",
        F::Network => "network",
        F::MaxTimeout => "--max-timeout",
        F::ApproxTokens => "--approx-tokens",
        F::MaxTokens => "--max-tokens",
        F::Price => "price",
        F::PerRequest => "--price",
        F::PerMTok => "--per-mtok",
        F::PerMTokInput => "--per-mtok-input",
        F::PerMTokOutput => "--per-mtok-output",
        F::PerHour => "--per-hour",
        F::StreamingTypes => "--streaming-type",
        F::AllowWebSocket => "--allow-websocket",
        F::RoutePath => "--route path",
        F::RoutePrice => "--route price",
        F::RouteMethods => "--route methods",
        F::RouteSummary => "--route summary",
        F::RouteSchema => "--route input-schema/output-schema of",
        F::Routes => "--route",
        other => other.spec_path(),
    }
}

/// How the CLI resolves chains for [`ServiceOfferSpec::validate`]: obol-x402's table.
pub fn chain(network: &str) -> Result<Chain, String> {
    let n = Network::resolve(network).map_err(|e| format!("use one of: {}", e.known))?;
    Ok(Chain {
        caip2: n.caip2().to_string(),
        has_usdc: n.usdc.is_some(),
    })
}

/// The offer, plus what the operator should know about how it will be charged.
#[derive(Debug, Clone)]
pub struct PlannedOffer {
    /// The resource to apply.
    pub offer: ServiceOffer,
    /// Human lines to print (e.g. the effective per-request price).
    pub notes: Vec<String>,
}

/// Validates the request and builds the resource: the flags' own checks, then
/// [`ServiceOfferSpec::validate`] and nothing else.
pub fn plan_offer(req: &OfferRequest) -> Result<PlannedOffer, Refusal> {
    let offer = offer_from_flags(req)?;
    let valid = offer
        .spec
        .validate(&req.name, chain)
        .map_err(Refusal::Invalid)?;
    let charged = format_atomic(valid.price.atomic, valid.decimals);
    let mut notes = vec![format!(
        "Each request is charged {charged} USDC on {} ({}).",
        req.network, valid.chain.caip2
    )];
    if let Some(tokens) = valid.price.approx_tokens_per_request {
        notes.push(format!(
            "Priced per million tokens: charged as an approximation at {tokens} tokens per request."
        ));
    }
    if let Some(metered) = &valid.metered {
        let upto = offer.spec.gateway_mode() == obol_api::service_offer::GatewayMode::Proxy;
        notes.push(obol_api::metering::describe(
            metered,
            valid.decimals,
            "USDC",
            upto,
        ));
    }
    if req.per_hour.is_some() {
        notes.push("Priced per hour: each request is charged five minutes.".into());
    }
    for r in &valid.routes {
        let methods = if r.methods.is_empty() {
            "any method".to_owned()
        } else {
            r.methods.join(", ")
        };
        let terms = match (r.gate, &r.price) {
            (Gate::Free, _) => "free".to_owned(),
            (Gate::Paid, Some(atomic)) => match atomic.parse::<u128>() {
                Ok(a) => format!("{} USDC per request", format_atomic(a, valid.decimals)),
                Err(_) => format!("{atomic} atomic units per request"),
            },
            (Gate::Paid, None) => "the offer's price".to_owned(),
        };
        notes.push(format!("Route {} ({methods}): {terms}.", r.pattern));
    }
    if !valid.routes.is_empty() {
        notes.push(format!(
            "Other paths under {} answer 404: the route table is exhaustive.",
            valid.path
        ));
    }
    for (first, second) in &valid.ambiguous {
        notes.push(format!(
            "Routes {first} and {second} match some paths equally specifically: {first} serves them."
        ));
    }
    Ok(PlannedOffer { offer, notes })
}

/// The resource the flags describe, before [`ServiceOfferSpec::validate`]: refuses only what
/// the flags themselves get wrong (no wallet, no or several prices, `key=value` syntax).
pub fn offer_from_flags(req: &OfferRequest) -> Result<ServiceOffer, Refusal> {
    if req.upstream.trim().is_empty() {
        return Err(Refusal::Upstream);
    }
    let wallet = req.wallet.as_deref().filter(|w| !w.is_empty());
    let wallet = wallet.ok_or(Refusal::MissingWallet)?;
    let per_token =
        req.per_mtok.is_some() || req.per_mtok_input.is_some() || req.per_mtok_output.is_some();
    let prices = [req.per_request.is_some(), per_token, req.per_hour.is_some()];
    match prices.iter().filter(|set| **set).count() {
        0 => return Err(Refusal::MissingPrice),
        1 => {}
        _ => return Err(Refusal::SeveralPrices),
    }
    let registration = registration(req)?;
    let routes = req
        .routes
        .iter()
        .map(|r| parse_route(r, &req.schema_files))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = ServiceOfferSpec {
        type_: OfferType::Http,
        model: None,
        upstream: Upstream {
            service: req.upstream.clone(),
            namespace: Some(
                req.upstream_namespace
                    .clone()
                    .unwrap_or_else(|| req.namespace.clone()),
            ),
            port: req.port,
            health_path: req.health_path.clone(),
        },
        path: req.path.clone(),
        payment: Payment {
            scheme: Scheme::Exact,
            network: req.network.clone(),
            pay_to: wallet.to_owned(),
            asset: None,
            max_timeout_seconds: req.max_timeout_seconds,
            price: Price {
                per_request: req.per_request.clone(),
                per_mtok: req.per_mtok.clone(),
                per_mtok_input: req.per_mtok_input.clone(),
                per_mtok_output: req.per_mtok_output.clone(),
                per_hour: req.per_hour.clone(),
                per_epoch: None,
            },
            approx_tokens_per_request: req.approx_tokens_per_request,
            max_tokens_per_request: req.max_tokens_per_request,
        },
        registration,
        provenance: BTreeMap::new(),
        gateway: Some(OfferGateway {
            mode: req.gateway_mode.unwrap_or(GatewayMode::Proxy),
            streaming_content_types: req.streaming_types.clone(),
            allow_web_socket: req.allow_web_socket,
        }),
        routes,
        drain_at: None,
        drain_grace_period: None,
    };
    let mut offer = ServiceOffer::new(&req.name, spec);
    offer.metadata.namespace = Some(req.namespace.clone());
    Ok(offer)
}

/// The keys of `--route` that name a JSON Schema file.
pub const SCHEMA_KEYS: [&str; 2] = ["input-schema", "output-schema"];

/// The files `routes` name with `input-schema=@FILE` / `output-schema=@FILE`, in order, each
/// once: what the caller reads into [`OfferRequest::schema_files`]. Pairs that do not parse
/// are left to [`parse_route`] to refuse. Pure.
pub fn schema_files(routes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for text in routes {
        for pair in text.split(',') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            if let Some(path) = value.trim().strip_prefix('@')
                && SCHEMA_KEYS.contains(&key.trim())
                && !path.is_empty()
                && !out.iter().any(|p| p == path)
            {
                out.push(path.to_owned());
            }
        }
    }
    out
}

/// One `--route`: comma-separated `key=value` pairs, `path` required; `gate` is `paid`
/// (default) or `free`; `price` in USDC per request; `methods` separated by `|`; `summary`
/// (no commas); `input-schema=@FILE` and `output-schema=@FILE`, JSON Schemas read from files
/// (`files`: their text by path, [`schema_files`]). Only the syntax is checked here (a schema
/// must be JSON); the rules are [`ServiceOfferSpec::validate`]'s.
pub fn parse_route(text: &str, files: &BTreeMap<String, String>) -> Result<OfferRoute, Refusal> {
    let refuse = |why: &str| Refusal::Route(text.to_owned(), why.to_owned());
    let mut route = OfferRoute::new(String::new());
    let mut seen = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| refuse(&format!("{pair:?} is not key=value")))?;
        let (key, value) = (key.trim(), value.trim());
        if seen.contains(&key) {
            return Err(refuse(&format!("{key} is given twice")));
        }
        seen.push(key);
        match key {
            "path" => route.path = value.to_owned(),
            "gate" => {
                route.gate = match value {
                    "paid" => Gate::Paid,
                    "free" => Gate::Free,
                    _ => return Err(refuse("gate is paid or free")),
                }
            }
            "price" => route.price = Some(value.to_owned()),
            "methods" => {
                route.methods = value
                    .split('|')
                    .map(|m| m.trim().to_ascii_uppercase())
                    .filter(|m| !m.is_empty())
                    .collect();
            }
            "summary" => route.summary = Some(value.to_owned()),
            "input-schema" | "output-schema" => {
                let path = value.strip_prefix('@').filter(|p| !p.is_empty());
                let path = path.ok_or_else(|| {
                    refuse(&format!(
                        "{key} takes @FILE, a file holding the JSON Schema (inline JSON would need commas)"
                    ))
                })?;
                let text = files
                    .get(path)
                    .ok_or_else(|| refuse(&format!("{path} was not read")))?;
                let schema = serde_json::from_str(text)
                    .map_err(|e| refuse(&format!("{key} file {path} is not JSON ({e})")))?;
                if key == "input-schema" {
                    route.input_schema = Some(schema);
                } else {
                    route.output_schema = Some(schema);
                }
            }
            other => {
                return Err(refuse(&format!(
                    "unknown key {other:?} (path, gate, price, methods, summary, input-schema, output-schema)"
                )));
            }
        }
    }
    if route.path.is_empty() {
        return Err(refuse("path is required"));
    }
    Ok(route)
}

fn registration(req: &OfferRequest) -> Result<Option<Registration>, Refusal> {
    let wanted = req.register
        || req.register_name.is_some()
        || req.register_description.is_some()
        || !req.register_skills.is_empty();
    if !wanted {
        return Ok(None);
    }
    let mut metadata = BTreeMap::new();
    for kv in &req.register_metadata {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| Refusal::Metadata(kv.clone()))?;
        metadata.insert(k.to_owned(), v.to_owned());
    }
    Ok(Some(Registration {
        enabled: req.register,
        name: req.register_name.clone(),
        description: req.register_description.clone(),
        image: req.register_image.clone(),
        services: vec![],
        supported_trust: vec![],
        skills: req.register_skills.clone(),
        domains: req.register_domains.clone(),
        metadata,
    }))
}

#[cfg(test)]
mod tests;
