//! HTTPRoutes + Middlewares + Services → Traefik dynamic configuration. Pure.

use std::collections::BTreeMap;

use obol_api::gateway::HttpRoute;
use obol_api::traefik::Middleware;
use serde::Serialize;

/// The Gateway the local stack creates and its adapter plays: the one `deploy/` attaches routes
/// to (`parentRefs` of its HTTPRoutes, the controller's `--gateway-name/-namespace`).
pub const DEV_GATEWAY_NAME: &str = "traefik-gateway";
/// Namespace of [`DEV_GATEWAY_NAME`].
pub const DEV_GATEWAY_NAMESPACE: &str = "traefik";
/// Traefik's entry point (and the Gateway's listener) routes attach to.
pub const DEV_ENTRY_POINT: &str = "web";
/// The GatewayClass of the local Gateway.
pub const DEV_GATEWAY_CLASS: &str = "traefik";

/// The Gateway this adapter plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRef {
    /// Gateway name (`traefik-gateway`).
    pub name: String,
    /// Gateway namespace (`traefik`).
    pub namespace: String,
    /// Traefik entry point the routes attach to (`web`).
    pub entry_point: String,
}

/// Where a Service can be reached from this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAddr {
    /// An `ExternalName` Service: its host name, and Service port → numeric `targetPort`.
    Host(String, BTreeMap<i32, i32>),
    /// A Service with no address usable from here.
    Unreachable,
}

/// Traefik's dynamic configuration (the parts we write).
///
/// Traefik refuses empty sections (`middlewares: {}`, `http: {}`) and then keeps serving the
/// previous configuration, which would keep a withdrawn route alive: empty sections are left
/// out, and a configuration without routes is the empty mapping `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DynamicConfig {
    /// HTTP section.
    #[serde(skip_serializing_if = "HttpConfig::is_empty")]
    pub http: HttpConfig,
}

/// `http:` of the dynamic configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpConfig {
    /// Routers by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub routers: BTreeMap<String, Router>,
    /// Middlewares by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub middlewares: BTreeMap<String, serde_json::Value>,
    /// Services by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, serde_json::Value>,
}

impl HttpConfig {
    /// No router, middleware or service.
    pub fn is_empty(&self) -> bool {
        self.routers.is_empty() && self.middlewares.is_empty() && self.services.is_empty()
    }
}

/// A Traefik router.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Router {
    /// Match rule.
    pub rule: String,
    /// Entry points.
    pub entry_points: Vec<String>,
    /// Middlewares, in order.
    pub middlewares: Vec<String>,
    /// Target service.
    pub service: String,
}

/// One route's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Route namespace.
    pub namespace: String,
    /// Route name.
    pub name: String,
    /// Route generation the verdict is about.
    pub generation: Option<i64>,
    /// `Ok` when served; otherwise (reason, message).
    pub result: Result<(), (String, String)>,
}

/// The rendered configuration and what to report on each route attached to the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The file content.
    pub config: DynamicConfig,
    /// One verdict per route that names this gateway.
    pub verdicts: Vec<Verdict>,
}

fn traefik_name(parts: &[&str]) -> String {
    parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn attaches(route: &HttpRoute, gw: &GatewayRef) -> bool {
    let route_ns = route.metadata.namespace.as_deref().unwrap_or_default();
    route.spec.parent_refs.iter().any(|p| {
        p.name == gw.name
            && p.namespace.as_deref().unwrap_or(route_ns) == gw.namespace
            && p.kind.as_deref().is_none_or(|k| k == "Gateway")
    })
}

/// Renders every route attached to `gateway`. `services` maps (namespace, name) to an address.
pub fn render(
    gateway: &GatewayRef,
    routes: &[HttpRoute],
    middlewares: &[Middleware],
    services: &BTreeMap<(String, String), ServiceAddr>,
) -> Rendered {
    let mut config = DynamicConfig::default();
    let mut verdicts = vec![];
    let mut sorted: Vec<&HttpRoute> = routes.iter().filter(|r| attaches(r, gateway)).collect();
    sorted.sort_by_key(|r| (r.metadata.namespace.clone(), r.metadata.name.clone()));
    for route in sorted {
        let ns = route.metadata.namespace.clone().unwrap_or_default();
        let name = route.metadata.name.clone().unwrap_or_default();
        let mut staged = HttpConfig::default();
        let result = render_route(
            gateway,
            route,
            &ns,
            &name,
            middlewares,
            services,
            &mut staged,
        );
        if result.is_ok() {
            config.http.routers.extend(staged.routers);
            config.http.middlewares.extend(staged.middlewares);
            config.http.services.extend(staged.services);
        }
        verdicts.push(Verdict {
            namespace: ns,
            name,
            generation: route.metadata.generation,
            result,
        });
    }
    Rendered { config, verdicts }
}

type Problem = (String, String);

fn problem(reason: &str, message: String) -> Problem {
    (reason.to_owned(), message)
}

fn render_route(
    gateway: &GatewayRef,
    route: &HttpRoute,
    ns: &str,
    name: &str,
    middlewares: &[Middleware],
    services: &BTreeMap<(String, String), ServiceAddr>,
    out: &mut HttpConfig,
) -> Result<(), Problem> {
    if route.spec.rules.is_empty() {
        return Err(problem("NoRules", "the route has no rules".into()));
    }
    for (i, rule) in route.spec.rules.iter().enumerate() {
        let index = i.to_string();
        let id = traefik_name(&[ns, name, &index]);
        let mut prefixes = vec![];
        let mut matchers = vec![];
        for m in &rule.matches {
            let Some(path) = &m.path else { continue };
            let value = path.value.trim_end_matches('/');
            match path.type_.as_str() {
                "PathPrefix" if value.is_empty() => matchers.push("PathPrefix(`/`)".to_owned()),
                // Gateway API prefixes match whole path segments: /a matches /a and /a/b, not /ab.
                "PathPrefix" => {
                    matchers.push(format!("(Path(`{value}`) || PathPrefix(`{value}/`))"));
                    prefixes.push(value.to_owned());
                }
                "Exact" => matchers.push(format!("Path(`{}`)", path.value)),
                other => {
                    return Err(problem(
                        "UnsupportedValue",
                        format!("path match type {other}"),
                    ));
                }
            }
        }
        if matchers.is_empty() {
            matchers.push("PathPrefix(`/`)".into());
        }
        let mut chain = vec![];
        for filter in &rule.filters {
            if filter.type_ == "RequestHeaderModifier" {
                let Some(m) = filter.request_header_modifier.as_ref() else {
                    return Err(problem(
                        "UnsupportedValue",
                        "RequestHeaderModifier without requestHeaderModifier".into(),
                    ));
                };
                if !m.add.is_empty() {
                    return Err(problem(
                        "UnsupportedValue",
                        "only RequestHeaderModifier set and remove are supported".into(),
                    ));
                }
                // Traefik's customRequestHeaders replace what the client sent; an empty value
                // removes the header.
                let mut headers = serde_json::Map::new();
                for h in &m.set {
                    headers.insert(h.name.clone(), serde_json::Value::from(h.value.clone()));
                }
                for name in &m.remove {
                    headers.insert(name.clone(), serde_json::Value::from(""));
                }
                let mw = format!("{id}-headers-{}", chain.len());
                out.middlewares.insert(
                    mw.clone(),
                    serde_json::json!({"headers": {"customRequestHeaders": headers}}),
                );
                chain.push(mw);
                continue;
            }
            match (
                filter.type_.as_str(),
                &filter.extension_ref,
                &filter.url_rewrite,
            ) {
                ("ExtensionRef", Some(ext), _) if ext.kind == "Middleware" => {
                    let found = middlewares.iter().find(|m| {
                        m.metadata.namespace.as_deref() == Some(ns)
                            && m.metadata.name.as_deref() == Some(ext.name.as_str())
                    });
                    let Some(fa) = found.and_then(|m| m.spec.forward_auth.as_ref()) else {
                        return Err(problem(
                            "UnresolvedMiddleware",
                            format!(
                                "Middleware {ns}/{} is missing or has no forwardAuth",
                                ext.name
                            ),
                        ));
                    };
                    let mw = traefik_name(&[ns, &ext.name]);
                    out.middlewares.insert(
                        mw.clone(),
                        serde_json::json!({"forwardAuth": {
                            "address": fa.address,
                            "trustForwardHeader": fa.trust_forward_header,
                            "authResponseHeaders": fa.auth_response_headers,
                            "maxResponseBodySize": fa.max_response_body_size.unwrap_or(65536),
                        }}),
                    );
                    chain.push(mw);
                }
                ("URLRewrite", _, Some(rw)) => {
                    let replace = rw.path.as_ref().filter(|p| p.type_ == "ReplacePrefixMatch");
                    let Some(p) =
                        replace.filter(|p| p.replace_prefix_match.as_deref() == Some("/"))
                    else {
                        return Err(problem(
                            "UnsupportedValue",
                            "only URLRewrite ReplacePrefixMatch \"/\" is supported".into(),
                        ));
                    };
                    let _ = p;
                    let strip = format!("{id}-strip");
                    out.middlewares.insert(
                        strip.clone(),
                        serde_json::json!({"stripPrefix": {"prefixes": prefixes}}),
                    );
                    chain.push(strip);
                }
                (other, _, _) => {
                    return Err(problem(
                        "UnsupportedValue",
                        format!("filter {other} is not supported"),
                    ));
                }
            }
        }
        let mut servers = vec![];
        for backend in &rule.backend_refs {
            let bns = backend.namespace.clone().unwrap_or_else(|| ns.to_owned());
            let port = backend.port.ok_or_else(|| {
                problem(
                    "BackendNotFound",
                    format!("backend {} has no port", backend.name),
                )
            })?;
            match services.get(&(bns.clone(), backend.name.clone())) {
                Some(ServiceAddr::Host(host, ports)) => {
                    let target = ports.get(&port).copied().unwrap_or(port);
                    servers.push(serde_json::json!({"url": format!("http://{host}:{target}")}));
                }
                Some(ServiceAddr::Unreachable) => {
                    return Err(problem(
                        "BackendNotFound",
                        format!(
                            "Service {bns}/{} has no address reachable from this machine (use an ExternalName Service)",
                            backend.name
                        ),
                    ));
                }
                None => {
                    return Err(problem(
                        "BackendNotFound",
                        format!("Service {bns}/{} not found", backend.name),
                    ));
                }
            }
        }
        if servers.is_empty() {
            return Err(problem("BackendNotFound", "the rule has no backend".into()));
        }
        out.services.insert(
            id.clone(),
            serde_json::json!({"loadBalancer": {"servers": servers}}),
        );
        out.routers.insert(
            id.clone(),
            Router {
                rule: matchers.join(" || "),
                entry_points: vec![gateway.entry_point.clone()],
                middlewares: chain,
                service: id,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
