//! One loaded route: a PaymentRoute spec turned into what the gate needs, checked once at load
//! time so the request path never re-parses a string.

use std::fmt;
use std::sync::Arc;

use axum::http::HeaderValue;
use obol_api::PaymentRouteSpec;
use obol_api::routes::Gate;
use obol_x402 as x402;
use x402::{Address, Network, Requirement, U256};

use crate::error::{Denial, LoadError};
use crate::gateway::charge::media_type;
use crate::gateway::forward::Target;
use crate::matcher::Matcher;
use crate::rule_scan::RuleScan;
use crate::unpaid_cache::UnpaidCache;
use crate::unpaid_template::{TemplateSlot, UnpaidTemplate};

/// Default `maxTimeoutSeconds` when the route sets none (the x402 v2 default).
pub const DEFAULT_MAX_TIMEOUT_SECS: u64 = 60;
/// Largest `maxTimeoutSeconds` accepted (the CRD's bound).
pub const MAX_MAX_TIMEOUT_SECS: u64 = 86_400;

/// A route's identity: the PaymentRoute's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl RouteKey {
    /// A key from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The bounded metric labels of a route (never a payer or a nonce).
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern.
    pub route: String,
    /// Namespace of the offer (= of the PaymentRoute).
    pub offer_namespace: String,
    /// Name of the offer (the owning ServiceOffer, else the PaymentRoute).
    pub offer_name: String,
    /// CAIP-2 id of the network.
    pub chain: String,
}

/// The `Authorization` value handed upstream; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamAuth(HeaderValue);

impl UpstreamAuth {
    /// Checks that the value can be sent as a header; it is marked sensitive.
    pub fn new(value: &str) -> Result<Self, LoadError> {
        let mut v = HeaderValue::from_str(value.trim()).map_err(|_| LoadError::UpstreamAuth)?;
        if v.is_empty() {
            return Err(LoadError::UpstreamAuth);
        }
        v.set_sensitive(true);
        Ok(Self(v))
    }

    /// The header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpstreamAuth(<redacted>)")
    }
}

/// How the verifier serves a route in gateway mode `proxy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRoute {
    /// Where requests go.
    pub target: Target,
    /// Content types streamed besides `text/event-stream` (lower-case media types).
    pub streaming_types: Vec<String>,
    /// WebSocket upgrades allowed.
    pub allow_websocket: bool,
}

impl ProxyRoute {
    fn load(spec: &obol_api::ProxyTarget) -> Result<Self, LoadError> {
        let target = Target::parse(&spec.upstream, spec.strip_prefix.as_deref())
            .map_err(LoadError::Proxy)?;
        Ok(Self {
            target,
            streaming_types: spec
                .streaming_content_types
                .iter()
                .map(|t| media_type(t))
                .filter(|t| !t.is_empty())
                .collect(),
            allow_websocket: spec.allow_web_socket,
        })
    }
}

/// One route of a loaded route table (`spec.routes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The route as it is gated: its own pattern, price (no requirement when free),
    /// description and 402 caches; the PaymentRoute's key, upstream and labels otherwise.
    pub entry: Arc<RouteEntry>,
    /// Paid or free.
    pub gate: Gate,
    /// Methods served; empty: any.
    pub methods: Vec<String>,
    /// One line for buyers and agents.
    pub summary: Option<String>,
    /// JSON Schema of the request body.
    pub input_schema: Option<serde_json::Value>,
    /// JSON Schema of the answer.
    pub output_schema: Option<serde_json::Value>,
}

/// One loaded route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// namespace/name.
    pub key: RouteKey,
    /// `metadata.generation` this entry was loaded from (kube source only).
    pub generation: Option<i64>,
    /// The pattern as written.
    pub pattern: String,
    /// The compiled pattern.
    pub matcher: Matcher,
    /// What a payment must be. `None` for a route priced at `0`: gated by nothing but still
    /// handed `upstreamAuth`.
    pub requirement: Option<Requirement>,
    /// Shown in the 402 answer.
    pub description: Option<String>,
    /// `Authorization` for the upstream on success.
    pub upstream_auth: Option<UpstreamAuth>,
    /// This route's facilitator, when not the verifier's default.
    pub facilitator_url: Option<String>,
    /// Set in gateway mode `proxy`: the verifier forwards the paid requests itself.
    pub proxy: Option<ProxyRoute>,
    /// Set for a route priced per token: its tariff (the `upto` maximum, the rates, and the
    /// fallback = the `exact` price). Only the gateway (mode `proxy`) meters; ForwardAuth
    /// never sees the answer and keeps selling `exact` at the fallback.
    pub metering: Option<obol_api::metering::Tariff>,
    /// Metric labels.
    pub labels: RouteLabels,
    /// The route table, most specific first; empty: `pattern` alone at `requirement`.
    pub rules: Vec<Rule>,
    /// `rules` compiled for the per-request scan (patterns and methods only).
    pub scan: RuleScan,
    /// The x402 Bazaar description of a table's route with schemas
    /// ([`crate::discovery::bazaar`]): every 402 of the route carries it.
    pub bazaar: Option<serde_json::Value>,
    /// Whether discovery lists the route: `false` when the controller marked its offer not
    /// Ready ([`obol_api::labels::OFFER_READY_ANNOTATION`]); the route still gates.
    pub listed: bool,
    /// Set while the offer drains (RFC 3339, from the PaymentRoute): discovery shows the
    /// route as unavailable until then; it still gates.
    pub drain_ends_at: Option<String>,
    /// The last unpaid 402 (ignored by equality).
    pub unpaid: UnpaidCache,
    /// The unpaid JSON 402 with holes for the URL and description (ignored by equality).
    pub unpaid_template: TemplateSlot,
}

impl RouteEntry {
    /// Loads a route from a PaymentRoute spec; `offer_name` labels its metrics.
    pub fn load(
        key: RouteKey,
        generation: Option<i64>,
        spec: &PaymentRouteSpec,
        offer_name: Option<&str>,
    ) -> Result<Self, LoadError> {
        if !spec.pattern.starts_with('/') || spec.pattern.len() > 1024 {
            return Err(LoadError::Pattern);
        }
        let network =
            Network::resolve(spec.network.trim()).map_err(|_| LoadError::UnknownNetwork {
                network: spec.network.clone(),
            })?;
        let amount = x402::wire::scalar::parse_decimal_u256(spec.price.trim())
            .map_err(|_| LoadError::Price)?;
        let pay_to = parse_address(&spec.pay_to).ok_or(LoadError::PayTo)?;
        let max_timeout = match spec.max_timeout_seconds {
            None => DEFAULT_MAX_TIMEOUT_SECS,
            Some(s) => u64::try_from(s)
                .ok()
                .filter(|s| (1..=MAX_MAX_TIMEOUT_SECS).contains(s))
                .ok_or(LoadError::MaxTimeout)?,
        };
        let requirement =
            Requirement::usdc(network, pay_to, amount, max_timeout).map_err(|_| {
                LoadError::NoUsdc {
                    network: network.name,
                }
            })?;
        if let Some(asset) = &spec.asset {
            // Only USDC is priced: its EIP-712 domain is known. Another token's is not.
            if parse_address(asset) != Some(requirement.asset) {
                return Err(LoadError::Asset);
            }
        }
        let facilitator_url = match spec.facilitator_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => {
                let parsed = reqwest::Url::parse(url).map_err(|_| LoadError::FacilitatorUrl)?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(LoadError::FacilitatorUrl);
                }
                Some(url.to_owned())
            }
        };
        let upstream_auth = match spec.upstream_auth.as_deref() {
            None | Some("") => None,
            Some(v) => Some(UpstreamAuth::new(v)?),
        };
        let proxy = spec.proxy.as_ref().map(ProxyRoute::load).transpose()?;
        let metering = spec
            .metering
            .as_ref()
            .map(|m| m.tariff(spec.price.trim()).ok_or(LoadError::Metering))
            .transpose()?;
        // Ordered here too, by the one rule (the controller writes them ordered already).
        let patterns: Vec<&str> = spec.routes.iter().map(|r| r.pattern.as_str()).collect();
        let rules = obol_api::pattern::most_specific_first(&patterns)
            .into_iter()
            .map(|i| Rule::load(&key, generation, spec, &spec.routes[i], offer_name))
            .collect::<Result<Vec<_>, _>>()?;
        let scan = RuleScan::new(
            rules
                .iter()
                .map(|r| (&r.entry.matcher, r.methods.as_slice())),
        )
        .ok_or(LoadError::Pattern)?;
        let labels = RouteLabels {
            route: spec.pattern.clone(),
            offer_namespace: key.namespace.clone(),
            offer_name: offer_name.unwrap_or(&key.name).to_owned(),
            chain: network.caip2().to_string(),
        };
        Ok(Self {
            generation,
            matcher: Matcher::new(&spec.pattern),
            pattern: spec.pattern.clone(),
            requirement: (amount != U256::ZERO).then_some(requirement),
            description: spec.description.clone().filter(|d| !d.is_empty()),
            upstream_auth,
            facilitator_url,
            proxy,
            metering,
            labels,
            rules,
            scan,
            bazaar: None,
            listed: true,
            drain_ends_at: spec.drain_ends_at.clone(),
            key,
            unpaid: UnpaidCache::default(),
            unpaid_template: TemplateSlot::default(),
        })
        .map(|mut entry: Self| {
            entry.unpaid_template = TemplateSlot(
                entry
                    .requirement
                    .as_ref()
                    .and_then(|r| UnpaidTemplate::new(r, entry.description.as_deref(), None)),
            );
            entry
        })
    }
}

impl Rule {
    fn load(
        key: &RouteKey,
        generation: Option<i64>,
        spec: &PaymentRouteSpec,
        rule: &obol_api::routes::RouteRule,
        offer_name: Option<&str>,
    ) -> Result<Self, LoadError> {
        let overridden = rule.gate == Gate::Free || rule.price.is_some();
        let sub = PaymentRouteSpec {
            pattern: rule.pattern.clone(),
            price: match rule.gate {
                Gate::Free => "0".to_owned(),
                Gate::Paid => rule.price.clone().unwrap_or_else(|| spec.price.clone()),
            },
            description: rule.summary.clone().or_else(|| spec.description.clone()),
            metering: spec.metering.clone().filter(|_| !overridden),
            routes: Vec::new(),
            ..spec.clone()
        };
        let mut entry = RouteEntry::load(key.clone(), generation, &sub, offer_name)?;
        entry.bazaar = crate::discovery::bazaar(
            &rule.methods,
            rule.input_schema.as_ref(),
            rule.output_schema.as_ref(),
        );
        if let (Some(bazaar), Some(requirement)) = (&entry.bazaar, &entry.requirement) {
            entry.unpaid_template = TemplateSlot(UnpaidTemplate::new(
                requirement,
                entry.description.as_deref(),
                Some(bazaar),
            ));
        }
        if rule.gate == Gate::Paid && entry.requirement.is_none() {
            // A paid route priced at 0 would be a free pass-through: refuse to load it.
            return Err(LoadError::Price);
        }
        Ok(Self {
            entry: Arc::new(entry),
            gate: rule.gate,
            methods: rule.methods.clone(),
            summary: rule.summary.clone(),
            input_schema: rule.input_schema.clone(),
            output_schema: rule.output_schema.clone(),
        })
    }
}

impl RouteEntry {
    /// The route that serves `path` (no query) with `method` (`None`: not known, then only
    /// routes open to every method serve). Without a table: this route when its pattern
    /// matches, else [`Denial::PathNotPriced`]. With one: the most specific rule matching path
    /// and method; a path no rule lists is [`Denial::NotListed`] (404, never a free pass), a
    /// path listed for other methods [`Denial::MethodNotAllowed`].
    pub fn resolve(
        self: &Arc<Self>,
        path: &str,
        method: Option<&str>,
    ) -> Result<Arc<Self>, Denial> {
        if self.rules.is_empty() {
            return if self.matcher.matches(path) {
                Ok(self.clone())
            } else {
                Err(Denial::PathNotPriced)
            };
        }
        if let Some(rule) = self
            .scan
            .first(path, method)
            .and_then(|i| self.rules.get(i))
        {
            return Ok(rule.entry.clone());
        }
        // No rule serves: why (listed for other methods, or not listed).
        let mut allow: Vec<&str> = self
            .rules
            .iter()
            .filter(|r| r.entry.matcher.matches(path))
            .flat_map(|r| r.methods.iter().map(String::as_str))
            .collect();
        if allow.is_empty() {
            return Err(Denial::NotListed);
        }
        if allow.contains(&"GET") && !allow.contains(&"HEAD") {
            allow.push("HEAD");
        }
        allow.sort_unstable();
        allow.dedup();
        Err(Denial::MethodNotAllowed {
            allow: allow.join(", "),
        })
    }
}

fn parse_address(s: &str) -> Option<Address> {
    x402::wire::scalar::parse_address(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(pattern: &str, price: &str, network: &str) -> PaymentRouteSpec {
        PaymentRouteSpec::new(
            pattern,
            price,
            "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
            network,
        )
    }

    fn load(spec: &PaymentRouteSpec) -> Result<RouteEntry, LoadError> {
        RouteEntry::load(RouteKey::new("ns", "r"), Some(3), spec, Some("offer"))
    }

    #[test]
    fn loads_names_and_caip2_alike() {
        let a = load(&spec("/a/*", "1000", "base-sepolia")).unwrap();
        let b = load(&spec("/a/*", "1000", "eip155:84532")).unwrap();
        assert_eq!(a.requirement, b.requirement);
        let req = a.requirement.unwrap();
        assert_eq!(req.amount, U256::from(1000u64));
        assert_eq!(req.max_timeout_seconds, DEFAULT_MAX_TIMEOUT_SECS);
        assert_eq!(a.labels.chain, "eip155:84532");
        assert_eq!(a.labels.offer_name, "offer");
        assert_eq!(a.labels.offer_namespace, "ns");
    }

    #[test]
    fn load_error_table() {
        let mut bad_asset = spec("/a", "1", "base-sepolia");
        bad_asset.asset = Some("0x0000000000000000000000000000000000000001".into());
        let mut usdc_asset = spec("/a", "1", "base-sepolia");
        usdc_asset.asset = Some("0x036cbd53842c5426634e7929541ec2318f3dcf7e".into());
        let mut timeout = spec("/a", "1", "base-sepolia");
        timeout.max_timeout_seconds = Some(0);
        let mut auth = spec("/a", "1", "base-sepolia");
        auth.upstream_auth = Some("Bearer a\nb".into());
        let mut fac = spec("/a", "1", "base-sepolia");
        fac.facilitator_url = Some("ftp://x".into());
        let mut pay_to = spec("/a", "1", "base-sepolia");
        pay_to.pay_to = "0xABC".into();
        let mut proxy = spec("/a", "1", "base-sepolia");
        proxy.proxy = Some(obol_api::ProxyTarget {
            upstream: "https://remote.example".into(),
            ..Default::default()
        });
        let metered = |price: &str, max: &str, rate: &str| {
            let mut s = spec("/a", price, "base");
            s.metering = Some(obol_api::Metering {
                input_per_mtok: rate.into(),
                output_per_mtok: "2".into(),
                max_tokens_per_request: 100,
                max_amount: max.into(),
            });
            s
        };
        let cases: &[(&str, PaymentRouteSpec, Option<&str>)] = &[
            ("ok", spec("/a", "1", "base"), None),
            ("metered", metered("10", "20", "1"), None),
            (
                "metered, fallback = maximum",
                metered("20", "20", "1"),
                None,
            ),
            (
                "metered, fallback above the maximum",
                metered("21", "20", "1"),
                Some("InvalidMetering"),
            ),
            (
                "metered, zero maximum",
                metered("0", "0", "1"),
                Some("InvalidMetering"),
            ),
            (
                "metered, rate not a number",
                metered("10", "20", "1.5"),
                Some("InvalidMetering"),
            ),
            ("usdc asset any case", usdc_asset, None),
            (
                "unknown network",
                spec("/a", "1", "invalid-chain"),
                Some("UnknownNetwork"),
            ),
            ("no usdc", spec("/a", "1", "sepolia"), Some("NoUsdc")),
            (
                "bad price",
                spec("/a", "0.001", "base"),
                Some("InvalidPrice"),
            ),
            (
                "negative price",
                spec("/a", "-1", "base"),
                Some("InvalidPrice"),
            ),
            ("empty price", spec("/a", "", "base"), Some("InvalidPrice")),
            ("pattern", spec("a", "1", "base"), Some("InvalidPattern")),
            ("asset", bad_asset, Some("UnsupportedAsset")),
            ("timeout", timeout, Some("InvalidMaxTimeout")),
            ("auth", auth, Some("InvalidUpstreamAuth")),
            ("facilitator", fac, Some("InvalidFacilitatorURL")),
            ("payTo", pay_to, Some("InvalidPayTo")),
            ("proxy", proxy, Some("InvalidProxyTarget")),
        ];
        for (name, spec, want) in cases {
            let got = load(spec).err().map(|e| e.reason());
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn zero_price_is_free_and_auth_is_redacted() {
        let mut s = spec("/free", "0", "base");
        s.upstream_auth = Some("Bearer sk-secret".into());
        let e = load(&s).unwrap();
        assert!(e.requirement.is_none());
        let debug = format!("{e:?}");
        assert!(!debug.contains("sk-secret"), "{debug}");
    }
}
