//! A minimal typed Gateway API `HTTPRoute` and `Gateway` (`gateway.networking.k8s.io/v1`).
//!
//! Own types instead of the `gateway-api` crate: we need a handful of fields, and its generated
//! CRD is refused by the 1.20 API server of the local control plane (see TOOLING.md §1.3).
//! Field names follow the Gateway API exactly.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// Condition type a Gateway sets on a route parent when it takes the route, and its controller
/// sets on the Gateway when it takes the Gateway.
pub const ACCEPTED: &str = "Accepted";
/// Condition type a Gateway's controller sets once the Gateway's configuration is in its data
/// plane (Traefik: the entry points serve it).
pub const PROGRAMMED: &str = "Programmed";

/// An HTTPRoute.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    root = "HttpRoute",
    namespaced,
    status = "HttpRouteStatus",
    doc = "Gateway API HTTPRoute (only the fields this project uses)."
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// Gateways (listeners) the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// Host names matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Routing rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
}

/// A reference to a Gateway (listener).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group (default `gateway.networking.k8s.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (default `Gateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Gateway name.
    pub name: String,
    /// Gateway namespace (default the route's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Listener name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// One rule: matches, filters, backends.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Request matches (any of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
}

/// A request match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
}

/// A path match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PathMatch {
    /// `PathPrefix`, `Exact` or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The path.
    pub value: String,
}

/// A filter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// `ExtensionRef`, `URLRewrite` or `RequestHeaderModifier`.
    #[serde(rename = "type")]
    pub type_: String,
    /// For `ExtensionRef`: the Traefik Middleware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_ref: Option<LocalObjectReference>,
    /// For `URLRewrite`.
    #[serde(
        default,
        rename = "urlRewrite",
        skip_serializing_if = "Option::is_none"
    )]
    pub url_rewrite: Option<UrlRewrite>,
    /// For `RequestHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
}

/// Request headers set (replacing any value the client sent), added or removed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderModifier {
    /// Headers set, replacing any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HttpHeader>,
    /// Headers added to any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HttpHeader>,
    /// Header names removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// One header name and value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct HttpHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// A reference to an object in the route's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectReference {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// A URL rewrite.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    /// Path rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// A path rewrite.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PathModifier {
    /// `ReplacePrefixMatch` or `ReplaceFullPath`.
    #[serde(rename = "type")]
    pub type_: String,
    /// For `ReplacePrefixMatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
    /// For `ReplaceFullPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
}

/// A backend Service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// Service name.
    pub name: String,
    /// Service namespace (default the route's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// Route status, written by Gateways.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteStatus {
    /// One entry per parent Gateway.
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// A Gateway's view of the route.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parent.
    pub parent_ref: ParentReference,
    /// The controller that wrote this entry.
    pub controller_name: String,
    /// `Accepted`, `ResolvedRefs`, ….
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl HttpRoute {
    /// Whether the Gateway named `gateway` (in `gateway_namespace`, when the parent reference
    /// names one) accepted the route at its current generation or at an unspecified one.
    pub fn accepted_by(&self, gateway: &str, gateway_namespace: &str) -> bool {
        let route_ns = self.metadata.namespace.as_deref().unwrap_or_default();
        let generation = self.metadata.generation;
        self.status.iter().flat_map(|s| &s.parents).any(|p| {
            let ns = p.parent_ref.namespace.as_deref().unwrap_or(route_ns);
            p.parent_ref.name == gateway
                && ns == gateway_namespace
                && p.conditions.iter().any(|c| {
                    c.type_ == ACCEPTED
                        && c.is_true()
                        && (c.observed_generation.is_none() || c.observed_generation == generation)
                })
        })
    }
}

/// A Gateway: the listeners a gateway implementation (here Traefik) serves routes on.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "Gateway",
    namespaced,
    status = "GatewayStatus",
    doc = "Gateway API Gateway (only the fields this project uses)."
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The GatewayClass (which implementation serves it).
    pub gateway_class_name: String,
    /// Listeners.
    #[serde(default)]
    pub listeners: Vec<Listener>,
}

/// One listener of a Gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Listener name (what a route's `sectionName` names).
    pub name: String,
    /// Port.
    pub port: i32,
    /// `HTTP`, `HTTPS`, ….
    pub protocol: String,
}

/// Gateway status, written by its controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// `Accepted`, `Programmed`, ….
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl Gateway {
    /// The conditions of [`ACCEPTED`] and [`PROGRAMMED`] that are not true at the Gateway's
    /// current generation (or an unspecified one); empty when its controller took it.
    pub fn not_taken(&self) -> Vec<&'static str> {
        let generation = self.metadata.generation;
        let conditions = self.status.iter().flat_map(|s| &s.conditions);
        [ACCEPTED, PROGRAMMED]
            .into_iter()
            .filter(|t| {
                !conditions.clone().any(|c| {
                    c.type_ == *t
                        && c.is_true()
                        && (c.observed_generation.is_none() || c.observed_generation == generation)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::ConditionStatus;

    #[test]
    fn a_gateway_is_taken_when_accepted_and_programmed_at_its_generation() {
        let gateway = |generation: i64, conditions: &[(&str, ConditionStatus, Option<i64>)]| {
            let mut g = Gateway::new(
                "gw",
                GatewaySpec {
                    gateway_class_name: "traefik".into(),
                    listeners: vec![],
                },
            );
            g.metadata.generation = Some(generation);
            g.status = Some(GatewayStatus {
                conditions: conditions
                    .iter()
                    .map(|(t, s, observed)| {
                        let mut c = Condition::new(t, *s, "R", "m");
                        c.observed_generation = *observed;
                        c
                    })
                    .collect(),
            });
            g
        };
        use ConditionStatus::{False, True};
        let cases: [(Gateway, Vec<&str>); 5] = [
            (
                gateway(2, &[(ACCEPTED, True, Some(2)), (PROGRAMMED, True, None)]),
                vec![],
            ),
            (gateway(2, &[]), vec![ACCEPTED, PROGRAMMED]),
            (
                gateway(
                    2,
                    &[(ACCEPTED, True, Some(2)), (PROGRAMMED, False, Some(2))],
                ),
                vec![PROGRAMMED],
            ),
            (
                gateway(3, &[(ACCEPTED, True, Some(2)), (PROGRAMMED, True, Some(3))]),
                vec![ACCEPTED],
            ),
            (
                Gateway::new(
                    "gw",
                    GatewaySpec {
                        gateway_class_name: "traefik".into(),
                        listeners: vec![],
                    },
                ),
                vec![ACCEPTED, PROGRAMMED],
            ),
        ];
        for (g, pending) in cases {
            assert_eq!(g.not_taken(), pending, "{:?}", g.status);
        }
    }
}
