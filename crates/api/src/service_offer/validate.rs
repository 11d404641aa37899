//! [`ServiceOfferSpec::validate`]: the one rule deciding whether an offer can be sold. The CLI
//! refuses with it before writing anything, the controller reports its error as
//! `Ready=False/InvalidSpec`; neither checks anything else about a spec. Pure: the chain table
//! (in obol-x402, which this crate does not depend on) is passed in as a lookup.

use std::fmt;

use crate::price::{self, Decimal, EffectivePrice, PriceError, PriceSource};
use crate::validation as v;

use super::ServiceOfferSpec;

/// What validation needs to know about a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// CAIP-2 id (`eip155:84532`).
    pub caip2: String,
    /// Whether the chain's USDC is known; when not, the offer must name its asset.
    pub has_usdc: bool,
}

/// The spec field a refusal is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OfferField {
    /// `metadata.name`.
    Name,
    /// `spec.path`.
    Path,
    /// `spec.upstream.service`.
    UpstreamService,
    /// `spec.upstream.namespace`.
    UpstreamNamespace,
    /// `spec.upstream.port`.
    UpstreamPort,
    /// `spec.upstream.healthPath`.
    HealthPath,
    /// `spec.payment.payTo`.
    PayTo,
    /// `spec.payment.network`.
    Network,
    /// `spec.payment.asset` (absent where it is needed).
    Asset,
    /// `spec.payment.asset.address`.
    AssetAddress,
    /// `spec.payment.asset.decimals`.
    AssetDecimals,
    /// `spec.payment.maxTimeoutSeconds`.
    MaxTimeout,
    /// `spec.payment.approxTokensPerRequest`.
    ApproxTokens,
    /// `spec.payment.maxTokensPerRequest`.
    MaxTokens,
    /// `spec.payment.price` as a whole (none set, or the gating one unusable).
    Price,
    /// `spec.payment.price.perRequest`.
    PerRequest,
    /// `spec.payment.price.perMTok`.
    PerMTok,
    /// `spec.payment.price.perMTokInput`.
    PerMTokInput,
    /// `spec.payment.price.perMTokOutput`.
    PerMTokOutput,
    /// `spec.payment.price.perHour`.
    PerHour,
    /// `spec.payment.price.perEpoch`.
    PerEpoch,
    /// `spec.model.name`.
    ModelName,
    /// `spec.registration.services`.
    RegistrationServices,
    /// `spec.gateway.streamingContentTypes`.
    StreamingTypes,
    /// `spec.gateway.allowWebSocket`.
    AllowWebSocket,
    /// `spec.routes` as a whole (how many).
    Routes,
    /// `spec.routes[].path`.
    RoutePath,
    /// `spec.routes[].price`.
    RoutePrice,
    /// `spec.routes[].methods`.
    RouteMethods,
    /// `spec.routes[].summary`.
    RouteSummary,
    /// `spec.routes[].inputSchema` or `outputSchema`.
    RouteSchema,
    /// `spec.drainAt`.
    DrainAt,
    /// `spec.drainGracePeriod`.
    DrainGracePeriod,
}

impl OfferField {
    /// The field's path in the resource, as the controller's condition names it.
    pub fn spec_path(self) -> &'static str {
        match self {
            Self::Name => "metadata.name",
            Self::Path => "spec.path",
            Self::UpstreamService => "spec.upstream.service",
            Self::UpstreamNamespace => "spec.upstream.namespace",
            Self::UpstreamPort => "spec.upstream.port",
            Self::HealthPath => "spec.upstream.healthPath",
            Self::PayTo => "spec.payment.payTo",
            Self::Network => "spec.payment.network",
            Self::Asset => "spec.payment.asset",
            Self::AssetAddress => "spec.payment.asset.address",
            Self::AssetDecimals => "spec.payment.asset.decimals",
            Self::MaxTimeout => "spec.payment.maxTimeoutSeconds",
            Self::ApproxTokens => "spec.payment.approxTokensPerRequest",
            Self::MaxTokens => "spec.payment.maxTokensPerRequest",
            Self::Price => "spec.payment.price",
            Self::PerRequest => "spec.payment.price.perRequest",
            Self::PerMTok => "spec.payment.price.perMTok",
            Self::PerMTokInput => "spec.payment.price.perMTokInput",
            Self::PerMTokOutput => "spec.payment.price.perMTokOutput",
            Self::PerHour => "spec.payment.price.perHour",
            Self::PerEpoch => "spec.payment.price.perEpoch",
            Self::ModelName => "spec.model.name",
            Self::RegistrationServices => "spec.registration.services",
            Self::StreamingTypes => "spec.gateway.streamingContentTypes",
            Self::AllowWebSocket => "spec.gateway.allowWebSocket",
            Self::Routes => "spec.routes",
            Self::RoutePath => "spec.routes[].path",
            Self::RoutePrice => "spec.routes[].price",
            Self::RouteMethods => "spec.routes[].methods",
            Self::RouteSummary => "spec.routes[].summary",
            Self::RouteSchema => "spec.routes[].inputSchema/outputSchema",
            Self::DrainAt => "spec.drainAt",
            Self::DrainGracePeriod => "spec.drainGracePeriod",
        }
    }
}

/// What is wrong with a value; its text says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not a DNS-1123 subdomain (offer names).
    NotASubdomain,
    /// Not a DNS-1123 label (Service and namespace names).
    NotALabel,
    /// Not an offer path.
    NotAPath,
    /// An offer path with `..`.
    DotDot,
    /// Not a health path.
    NotAHealthPath,
    /// Longer than allowed.
    TooLong {
        /// Most characters.
        max: usize,
    },
    /// A number outside its range.
    OutOfRange {
        /// Lowest allowed.
        min: i64,
        /// Highest allowed.
        max: i64,
    },
    /// Not an EVM address.
    NotAnAddress,
    /// The chain lookup does not know the network; what to use instead.
    UnknownNetwork(String),
    /// The chain has no known USDC and no asset is named.
    NoUsdc,
    /// A price that cannot be charged.
    Price(PriceError),
    /// Per-token terms that cannot be metered exactly (the error says why).
    Metering(PriceError),
    /// Empty where a value is required.
    Empty,
    /// Not a lower-case media type without parameters.
    NotAMediaType,
    /// More entries than allowed.
    TooMany {
        /// Most entries.
        max: usize,
    },
    /// A gateway option that only the `proxy` mode has.
    ProxyModeOnly,
    /// Not a route path.
    NotARoutePath,
    /// A path the storefront serves itself.
    Reserved,
    /// Not one of [`crate::routes::METHODS`].
    UnknownMethod,
    /// A free route with a price.
    FreeWithPrice,
    /// A route path declared twice for the same method.
    Duplicate,
    /// Not a JSON object.
    NotASchema,
    /// A drain field that cannot be read (see [`crate::drain`]).
    Drain(crate::drain::DrainError),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotASubdomain => write!(
                f,
                "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (at most {} characters)",
                crate::names::MAX_SUBDOMAIN_LEN
            ),
            Self::NotALabel => write!(
                f,
                "use lower-case letters, digits and '-', starting and ending with a letter or digit (at most {} characters)",
                crate::names::MAX_LABEL_LEN
            ),
            Self::NotAPath => f.write_str("start with '/' and use letters, digits, '/', '_', '.', '-'"),
            Self::DotDot => f.write_str("'..' is not allowed in a published path; name the path itself"),
            Self::NotAHealthPath => f.write_str(
                "start with '/' and use letters, digits, '/', '_', '.', '-', and '?', '=', '&', '%' for a query",
            ),
            Self::TooLong { max } => write!(f, "use at most {max} characters"),
            Self::OutOfRange { min, max } => write!(f, "out of range, use {min}-{max}"),
            Self::NotAnAddress => f.write_str("expected 0x followed by 40 hex digits"),
            Self::UnknownNetwork(hint) => write!(f, "unknown network, {hint}"),
            Self::NoUsdc => f.write_str(
                "this network has no known USDC: name the token in spec.payment.asset or use another network",
            ),
            Self::Price(e) => write!(f, "{e}; use a positive decimal such as 0.001"),
            Self::Metering(e) => write!(f, "{e}"),
            Self::Empty => f.write_str("must not be empty"),
            Self::NotAMediaType => f.write_str(
                "use a lower-case media type without parameters, such as application/x-ndjson",
            ),
            Self::TooMany { max } => write!(f, "use at most {max} entries"),
            Self::ProxyModeOnly => f.write_str(
                "only the proxy gateway mode forwards paid traffic itself: set spec.gateway.mode to proxy or drop this option",
            ),
            Self::NotARoutePath => f.write_str(
                "start with '/' (relative to the offer's path) and use letters, digits, '/', '_', '.', '-', and '*' for globs",
            ),
            Self::Reserved => write!(
                f,
                "{} and everything under /{}/ are served by the storefront itself (discovery); sell another path",
                crate::routes::OPENAPI,
                crate::routes::WELL_KNOWN_SEGMENT
            ),
            Self::UnknownMethod => write!(
                f,
                "use upper-case methods among {}",
                crate::routes::METHODS.join(", ")
            ),
            Self::FreeWithPrice => {
                f.write_str("a free route takes no price: drop the price or make the route paid")
            }
            Self::Duplicate => f.write_str(
                "this path is declared twice for the same method: keep one route per path and method",
            ),
            Self::NotASchema => write!(
                f,
                "use a JSON Schema object of at most {} bytes",
                crate::routes::MAX_SCHEMA_BYTES
            ),
            Self::Drain(e) => match e {
                crate::drain::DrainError::NotATimestamp => f.write_str(
                    "use an RFC 3339 time with an offset, such as 2026-01-02T15:04:05Z",
                ),
                crate::drain::DrainError::NotAGracePeriod => write!(
                    f,
                    "use a whole number of seconds, minutes or hours (90s, 15m, 1h), at most {}h",
                    v::MAX_DRAIN_GRACE_SECONDS / 3600
                ),
                crate::drain::DrainError::GraceWithoutDrain => f.write_str(
                    "a grace period needs spec.drainAt too (obol sell stop sets both)",
                ),
            },
        }
    }
}

/// Why an offer cannot be sold: the field, its value and what to do. `Display` names the spec
/// field (the controller's `InvalidSpec` message); [`InvalidOffer::message_for`] names another
/// subject (the CLI's flag).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message_for(self.field.spec_path()))]
pub struct InvalidOffer {
    /// The field.
    pub field: OfferField,
    /// The refused value as the message shows it (strings quoted), `None` for a whole field.
    pub value: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl InvalidOffer {
    fn new(field: OfferField, value: impl fmt::Debug, problem: Problem) -> Self {
        Self {
            field,
            value: Some(format!("{value:?}")),
            problem,
        }
    }

    fn absent(field: OfferField, problem: Problem) -> Self {
        Self {
            field,
            value: None,
            problem,
        }
    }

    /// `invalid <subject> <value>: <what to do>`.
    pub fn message_for(&self, subject: &str) -> String {
        match &self.value {
            Some(value) => format!("invalid {subject} {value}: {}", self.problem),
            None => format!("invalid {subject}: {}", self.problem),
        }
    }
}

/// An offer that passed [`ServiceOfferSpec::validate`], with what the checks derived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidOffer {
    /// The path the offer is published at.
    pub path: String,
    /// The chain.
    pub chain: Chain,
    /// The token override, when set (else the chain's USDC).
    pub asset: Option<String>,
    /// Decimals of the token charged.
    pub decimals: u8,
    /// The price one request is charged.
    pub price: EffectivePrice,
    /// The per-million-token price in atomic units, when that price gates (the higher of the
    /// input and output rates when they differ).
    pub per_mtok_atomic: Option<u128>,
    /// The metered (`upto`) terms, when a per-token price gates.
    pub metered: Option<crate::metering::MeteredPrice>,
    /// The route table as the PaymentRoute carries it: published patterns, prices in atomic
    /// units, most specific first (equally specific ones in declaration order).
    pub routes: Vec<crate::routes::RouteRule>,
    /// Pairs of routes (as published patterns) that match a common path and method equally
    /// specifically: the first wins; the controller reports them.
    pub ambiguous: Vec<(String, String)>,
    /// When the offer drains, if it does.
    pub drain: Option<crate::drain::Drain>,
}

type Checked<T = ()> = Result<T, InvalidOffer>;

fn check(ok: bool, field: OfferField, value: &str, problem: Problem) -> Checked {
    if ok {
        Ok(())
    } else {
        Err(InvalidOffer::new(field, value, problem))
    }
}

fn in_range(field: OfferField, value: i64, min: i64, max: i64) -> Checked {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(InvalidOffer::new(
            field,
            value,
            Problem::OutOfRange { min, max },
        ))
    }
}

impl ServiceOfferSpec {
    /// Every rule of an offer named `name`, in one pass: the CRD schema's (generated from the
    /// same [`crate::validation`] constants) and those a schema cannot say (known chain, a
    /// price that charges something, no `..` in the path). `chains` resolves a network name or
    /// CAIP-2 id, or says what to use instead (`use one of: base, base-sepolia, …`).
    pub fn validate(
        &self,
        name: &str,
        chains: impl Fn(&str) -> Result<Chain, String>,
    ) -> Result<ValidOffer, InvalidOffer> {
        use OfferField as F;
        check(
            crate::names::is_dns1123_subdomain(name),
            F::Name,
            name,
            Problem::NotASubdomain,
        )?;
        let up = &self.upstream;
        check(
            crate::names::is_dns1123_label(&up.service),
            F::UpstreamService,
            &up.service,
            Problem::NotALabel,
        )?;
        if let Some(ns) = up.namespace.as_deref() {
            let ok = ns.is_empty() || crate::names::is_dns1123_label(ns);
            check(ok, F::UpstreamNamespace, ns, Problem::NotALabel)?;
        }
        in_range(
            F::UpstreamPort,
            up.port.into(),
            v::MIN_PORT.into(),
            v::MAX_PORT.into(),
        )?;
        let health = &up.health_path;
        check(
            v::is_health_path(health),
            F::HealthPath,
            health,
            Problem::NotAHealthPath,
        )?;
        if let Some(path) = &self.path {
            // `is_path` refuses `..` too; say which rule the path broke.
            check(!path.contains(".."), F::Path, path, Problem::DotDot)?;
            check(v::is_path(path), F::Path, path, Problem::NotAPath)?;
            let max = v::MAX_PATH_LEN;
            check(path.len() <= max, F::Path, path, Problem::TooLong { max })?;
        }
        let payment = &self.payment;
        check(
            v::is_address(&payment.pay_to),
            F::PayTo,
            &payment.pay_to,
            Problem::NotAnAddress,
        )?;
        let chain = chains(&payment.network).map_err(|why| {
            InvalidOffer::new(F::Network, &payment.network, Problem::UnknownNetwork(why))
        })?;
        let (asset, decimals) = match &payment.asset {
            Some(a) => {
                check(
                    v::is_address(&a.address),
                    F::AssetAddress,
                    &a.address,
                    Problem::NotAnAddress,
                )?;
                let max = v::MAX_ASSET_DECIMALS;
                in_range(F::AssetDecimals, a.decimals.into(), 0, max.into())?;
                (Some(a.address.clone()), a.decimals)
            }
            None if chain.has_usdc => (None, price::USDC_DECIMALS),
            None => {
                return Err(InvalidOffer::new(
                    F::Network,
                    &payment.network,
                    Problem::NoUsdc,
                ));
            }
        };
        in_range(
            F::MaxTimeout,
            payment.max_timeout_seconds,
            v::MIN_TIMEOUT_SECONDS,
            v::MAX_TIMEOUT_SECONDS,
        )?;
        if let Some(tokens) = payment.approx_tokens_per_request
            && tokens == 0
        {
            return Err(InvalidOffer::new(
                F::ApproxTokens,
                tokens,
                Problem::Price(PriceError::ZeroTokens),
            ));
        }
        let p = &payment.price;
        for (field, value) in [
            (F::PerRequest, &p.per_request),
            (F::PerMTok, &p.per_mtok),
            (F::PerMTokInput, &p.per_mtok_input),
            (F::PerMTokOutput, &p.per_mtok_output),
            (F::PerHour, &p.per_hour),
            (F::PerEpoch, &p.per_epoch),
        ] {
            if let Some(value) = value {
                Decimal::parse(value)
                    .map_err(|e| InvalidOffer::new(field, value, Problem::Price(e)))?;
            }
        }
        let price = price::effective_price(self.price_input(), decimals)
            .map_err(|e| InvalidOffer::absent(F::Price, Problem::Price(e)))?;
        let per_mtok_atomic = match price.source {
            PriceSource::PerMTok => Some(
                price
                    .original
                    .to_atomic(decimals)
                    .map_err(|e| InvalidOffer::absent(F::PerMTok, Problem::Price(e)))?,
            ),
            _ => None,
        };
        let metered =
            crate::metering::metered_price(self.price_input(), decimals).map_err(|e| {
                let field = match &e {
                    PriceError::MaxBelowApprox { .. } => F::MaxTokens,
                    PriceError::TooPrecise { field, .. } => match *field {
                        "perMTokInput" => F::PerMTokInput,
                        "perMTokOutput" => F::PerMTokOutput,
                        _ => F::PerMTok,
                    },
                    _ => F::Price,
                };
                InvalidOffer::absent(field, Problem::Metering(e))
            })?;
        if let Some(model) = &self.model {
            check(!model.name.is_empty(), F::ModelName, "", Problem::Empty)?;
        }
        for s in self.registration.iter().flat_map(|r| &r.services) {
            let ok = !s.name.is_empty() && !s.endpoint.is_empty();
            let value = format!("{} {}", s.name, s.endpoint);
            check(ok, F::RegistrationServices, value.trim(), Problem::Empty)?;
        }
        if let Some(gw) = &self.gateway {
            let proxy = gw.mode == super::GatewayMode::Proxy;
            let types = &gw.streaming_content_types;
            let max = v::MAX_STREAMING_TYPES;
            if types.len() > max {
                return Err(InvalidOffer::new(
                    F::StreamingTypes,
                    types.len(),
                    Problem::TooMany { max },
                ));
            }
            for t in types {
                check(
                    v::is_media_type(t),
                    F::StreamingTypes,
                    t,
                    Problem::NotAMediaType,
                )?;
                check(proxy, F::StreamingTypes, t, Problem::ProxyModeOnly)?;
            }
            check(
                proxy || !gw.allow_web_socket,
                F::AllowWebSocket,
                "true",
                Problem::ProxyModeOnly,
            )?;
        }
        let drain = drain(self)?;
        let path = self.effective_path(name);
        let routes = route_table(&self.routes, &path, decimals)?;
        let ambiguous = crate::routes::ambiguities(&routes)
            .into_iter()
            .map(|(a, b)| (routes[a].pattern.clone(), routes[b].pattern.clone()))
            .collect();
        Ok(ValidOffer {
            path,
            chain,
            asset,
            decimals,
            price,
            per_mtok_atomic,
            metered,
            routes,
            ambiguous,
            drain,
        })
    }
}

/// Checks `spec.drainAt` and `spec.drainGracePeriod`.
fn drain(spec: &ServiceOfferSpec) -> Checked<Option<crate::drain::Drain>> {
    use crate::drain::DrainError;
    let (at, grace) = (spec.drain_at.as_deref(), spec.drain_grace_period.as_deref());
    crate::drain::schedule(at, grace).map_err(|e| {
        let (field, value) = match e {
            DrainError::NotATimestamp => (OfferField::DrainAt, at),
            DrainError::NotAGracePeriod | DrainError::GraceWithoutDrain => {
                (OfferField::DrainGracePeriod, grace)
            }
        };
        InvalidOffer::new(field, value.unwrap_or_default(), Problem::Drain(e))
    })
}

/// Checks `spec.routes` of an offer published at `path` and derives the PaymentRoute's table.
fn route_table(
    routes: &[crate::routes::OfferRoute],
    path: &str,
    decimals: u8,
) -> Checked<Vec<crate::routes::RouteRule>> {
    use crate::routes::{Gate, MAX_ROUTES, MAX_SCHEMA_BYTES, METHODS, RouteRule};
    use OfferField as F;
    if routes.len() > MAX_ROUTES {
        return Err(InvalidOffer::new(
            F::Routes,
            routes.len(),
            Problem::TooMany { max: MAX_ROUTES },
        ));
    }
    let mut rules: Vec<RouteRule> = Vec::with_capacity(routes.len());
    for r in routes {
        let p = &r.path;
        check(!p.contains(".."), F::RoutePath, p, Problem::DotDot)?;
        check(
            v::is_route_pattern(p),
            F::RoutePath,
            p,
            Problem::NotARoutePath,
        )?;
        let pattern = crate::routes::join(path, p);
        let max = v::MAX_PATH_LEN;
        check(
            pattern.len() <= max,
            F::RoutePath,
            p,
            Problem::TooLong { max },
        )?;
        let reserved = crate::routes::is_reserved(p) || crate::routes::is_reserved(&pattern);
        check(!reserved, F::RoutePath, p, Problem::Reserved)?;
        for m in &r.methods {
            check(
                METHODS.contains(&m.as_str()),
                F::RouteMethods,
                m,
                Problem::UnknownMethod,
            )?;
        }
        let price = match (&r.price, r.gate) {
            (None, _) => None,
            (Some(value), Gate::Free) => {
                return Err(InvalidOffer::new(
                    F::RoutePrice,
                    value,
                    Problem::FreeWithPrice,
                ));
            }
            (Some(value), Gate::Paid) => {
                let bad = |e| InvalidOffer::new(F::RoutePrice, value, Problem::Price(e));
                let atomic = Decimal::parse(value)
                    .and_then(|d| d.to_atomic(decimals))
                    .map_err(bad)?;
                if atomic == 0 {
                    return Err(bad(PriceError::Zero(value.clone())));
                }
                Some(atomic.to_string())
            }
        };
        if let Some(summary) = &r.summary {
            let max = v::MAX_DESCRIPTION_LEN;
            check(
                summary.len() <= max,
                F::RouteSummary,
                summary,
                Problem::TooLong { max },
            )?;
        }
        for schema in [&r.input_schema, &r.output_schema].into_iter().flatten() {
            let len = serde_json::to_vec(schema).map_or(usize::MAX, |b| b.len());
            if !schema.is_object() || len > MAX_SCHEMA_BYTES {
                return Err(InvalidOffer::new(F::RouteSchema, p, Problem::NotASchema));
            }
        }
        let overlapping = |other: &RouteRule| {
            other.pattern == pattern
                && (other.methods.is_empty()
                    || r.methods.is_empty()
                    || other.methods.iter().any(|m| r.methods.contains(m)))
        };
        check(
            !rules.iter().any(overlapping),
            F::RoutePath,
            p,
            Problem::Duplicate,
        )?;
        rules.push(RouteRule {
            pattern,
            gate: r.gate,
            price,
            methods: r.methods.clone(),
            summary: r.summary.clone().filter(|s| !s.is_empty()),
            input_schema: r.input_schema.clone(),
            output_schema: r.output_schema.clone(),
        });
    }
    let patterns: Vec<&str> = rules.iter().map(|r| r.pattern.as_str()).collect();
    let order = crate::pattern::most_specific_first(&patterns);
    Ok(order.into_iter().map(|i| rules[i].clone()).collect())
}

#[cfg(test)]
mod tests;
