//! Route tables (`spec.routes[]` of a ServiceOffer, `spec.routes[]` of its PaymentRoute) and the
//! storefront's discovery paths: what the controller, the verifier and the CLI agree on.
//!
//! An offer that declares routes sells exactly those paths under its prefix: the most specific
//! matching route wins ([`crate::pattern::specificity`]; equally specific ones in declaration
//! order), a path no route lists answers 404, and a `free` route is served without payment. A
//! route's `price` overrides the offer's for that route (a fixed per-request price: no
//! metering). An offer without routes keeps one price for its whole prefix.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The x402 discovery manifest the gateway serves (no payment).
pub const WELL_KNOWN_X402: &str = "/.well-known/x402.json";
/// The OpenAPI 3.1 document the gateway serves (no payment).
pub const OPENAPI: &str = "/openapi.json";
/// The ERC-8004 registration document the gateway serves from the registrar (no payment).
pub const AGENT_REGISTRATION: &str = "/.well-known/agent-registration.json";
/// The `Link` header value every 402 carries, pointing at the catalog.
pub const CATALOG_LINK: &str = "</.well-known/x402.json>; rel=\"catalog\"";
/// The path segment reserved for well-known documents (RFC 8615).
pub const WELL_KNOWN_SEGMENT: &str = ".well-known";
/// Most routes one offer may declare.
pub const MAX_ROUTES: usize = 64;
/// Largest input or output JSON Schema of a route, serialized.
pub const MAX_SCHEMA_BYTES: usize = 16 * 1024;
/// Methods a route may be limited to.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// A route path, relative to the offer's path: [`crate::validation::ROUTE_PATTERN`]'s alphabet.
pub const ROUTE_PATH: &str = crate::validation::ROUTE_PATTERN;

/// Whether a route asks for payment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Gate {
    /// Paid: a 402 until a payment is made.
    #[default]
    Paid,
    /// Served without payment.
    Free,
}

impl Gate {
    /// The spelling in the resource.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::Free => "free",
        }
    }
}

fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// One route of an offer's table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferRoute {
    /// Path relative to the offer's path: exact (`/v1/chat/completions`) or a glob (`/v1/*`,
    /// `/models/*/info`).
    #[schemars(regex(pattern = ROUTE_PATH), length(max = crate::validation::MAX_PATH_LEN))]
    pub path: String,
    /// `paid` (default) or `free`.
    #[serde(default)]
    pub gate: Gate,
    /// Price per request in decimal units of the asset, overriding the offer's (paid only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::validation::DECIMAL))]
    pub price: Option<String>,
    /// Methods served (upper-case; `GET` also serves `HEAD`); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7))]
    pub methods: Vec<String>,
    /// One line for buyers and agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::validation::MAX_DESCRIPTION_LEN))]
    pub summary: Option<String>,
    /// JSON Schema (2020-12) of the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub input_schema: Option<serde_json::Value>,
    /// JSON Schema (2020-12) of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub output_schema: Option<serde_json::Value>,
}

impl OfferRoute {
    /// A paid route at `path` with nothing else set.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            gate: Gate::Paid,
            price: None,
            methods: Vec::new(),
            summary: None,
            input_schema: None,
            output_schema: None,
        }
    }
}

/// One route of a PaymentRoute's table, as the controller derived it from the offer's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteRule {
    /// The full request path pattern (the offer's path joined with the route's).
    #[schemars(regex(pattern = crate::validation::ROUTE_PATTERN), length(max = crate::validation::MAX_PATH_LEN))]
    pub pattern: String,
    /// `paid` or `free`.
    #[serde(default)]
    pub gate: Gate,
    /// Price per request in atomic units, overriding the PaymentRoute's `price` (and its
    /// metering) for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::validation::UINT), length(max = 78))]
    pub price: Option<String>,
    /// Methods served; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// One line for buyers and agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::validation::MAX_DESCRIPTION_LEN))]
    pub summary: Option<String>,
    /// JSON Schema of the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub input_schema: Option<serde_json::Value>,
    /// JSON Schema of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub output_schema: Option<serde_json::Value>,
}

/// The published pattern of a route: the offer's path joined with the route's relative path
/// (`/services/x` + `/v1/*` → `/services/x/v1/*`; `/` + `/a` → `/a`).
pub fn join(offer_path: &str, route_path: &str) -> String {
    let prefix = offer_path.trim_end_matches('/');
    if route_path == "/" && !prefix.is_empty() {
        return prefix.to_owned();
    }
    format!("{prefix}{route_path}")
}

/// Whether a published path (or pattern) names what the storefront serves itself: anything
/// under `/.well-known/`, and [`OPENAPI`]. A glob that merely could match them is not refused:
/// the gateway answers its discovery paths before it looks at routes.
pub fn is_reserved(published: &str) -> bool {
    let first = published
        .strip_prefix('/')
        .unwrap_or(published)
        .split('/')
        .next()
        .unwrap_or_default();
    published == OPENAPI || first == WELL_KNOWN_SEGMENT
}

/// Pairs of routes (positions) that match some common path and method with the same
/// specificity: the first declared wins, and the offer says so in a condition.
pub fn ambiguities(rules: &[RouteRule]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (i, a) in rules.iter().enumerate() {
        for (j, b) in rules.iter().enumerate().skip(i + 1) {
            let methods = a.methods.is_empty()
                || b.methods.is_empty()
                || a.methods.iter().any(|m| b.methods.contains(m));
            if methods
                && crate::pattern::specificity(&a.pattern)
                    == crate::pattern::specificity(&b.pattern)
                && crate::pattern::overlap(&a.pattern, &b.pattern)
            {
                out.push((i, j));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_and_reserved() {
        assert_eq!(join("/services/x", "/v1/*"), "/services/x/v1/*");
        assert_eq!(join("/services/x/", "/v1"), "/services/x/v1");
        assert_eq!(join("/", "/a"), "/a");
        assert_eq!(join("/services/x", "/"), "/services/x");
        assert_eq!(join("/", "/"), "/");
        for (path, want) in [
            ("/.well-known", true),
            ("/.well-known/x402.json", true),
            ("/.well-known/*", true),
            ("/*/x402.json", false),
            ("/*", false),
            ("/openapi.json", true),
            ("/open*.json", false),
            ("/services/x/.well-known/a", false),
            ("/services/x/openapi.json", false),
            ("/services/*", false),
            ("/well-known/x", false),
        ] {
            assert_eq!(is_reserved(path), want, "{path}");
        }
    }

    fn rule(pattern: &str, methods: &[&str]) -> RouteRule {
        RouteRule {
            pattern: pattern.into(),
            gate: Gate::Paid,
            price: None,
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            summary: None,
            input_schema: None,
            output_schema: None,
        }
    }

    #[test]
    fn ambiguity_table() {
        let rules = [
            rule("/p/a/*", &[]),
            rule("/p/*/b", &[]),
            rule("/p/v1/x", &[]),
            rule("/p/v1/*", &["GET"]),
            rule("/p/v2/*", &["GET"]),
            rule("/p/v2/*", &["POST"]),
            rule("/p/v3*", &["POST"]),
            rule("/p/*v3", &["GET"]),
        ];
        // /p/a/* and /p/*/b: same specificity, both match /p/a/b. The two /p/v2/* differ in
        // methods; /p/v3* and /p/*v3 differ in methods too.
        assert_eq!(ambiguities(&rules), [(0, 1)]);
    }
}
