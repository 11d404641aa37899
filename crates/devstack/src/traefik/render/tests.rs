use super::*;

fn gw() -> GatewayRef {
    GatewayRef {
        name: "traefik-gateway".into(),
        namespace: "traefik".into(),
        entry_point: "web".into(),
    }
}

fn route(ns: &str, name: &str, gateway: &str, middleware: &str, service: &str) -> HttpRoute {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns, "generation": 2},
        "spec": {
            "parentRefs": [{"name": gateway, "namespace": "traefik", "sectionName": "web"}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/services/demo"}}],
                "filters": [
                    {"type": "ExtensionRef", "extensionRef": {"group": "traefik.io", "kind": "Middleware", "name": middleware}},
                    {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}
                ],
                "backendRefs": [{"name": service, "port": 18082}]
            }]
        }
    }))
    .unwrap()
}

fn middleware(ns: &str, name: &str) -> Middleware {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"forwardAuth": {"address": "http://127.0.0.1:18081/verify/llm/x402-demo",
                 "authResponseHeaders": ["Authorization", "X-Payment-Tx"]}}
    }))
    .unwrap()
}

fn services() -> BTreeMap<(String, String), ServiceAddr> {
    BTreeMap::from([
        (
            ("llm".into(), "demo".into()),
            ServiceAddr::Host("localhost".into(), BTreeMap::new()),
        ),
        (
            ("llm".into(), "mapped".into()),
            ServiceAddr::Host("localhost".into(), BTreeMap::from([(18082, 31000)])),
        ),
        (("llm".into(), "incluster".into()), ServiceAddr::Unreachable),
    ])
}

#[test]
fn renders_a_gated_route() {
    let out = render(
        &gw(),
        &[route(
            "llm",
            "so-demo",
            "traefik-gateway",
            "x402-demo",
            "demo",
        )],
        &[middleware("llm", "x402-demo")],
        &services(),
    );
    assert_eq!(out.verdicts.len(), 1);
    assert_eq!(out.verdicts[0].result, Ok(()));
    assert_eq!(out.verdicts[0].generation, Some(2));
    let router = &out.config.http.routers["llm-so-demo-0"];
    assert_eq!(
        router.rule,
        "(Path(`/services/demo`) || PathPrefix(`/services/demo/`))"
    );
    assert_eq!(router.middlewares, ["llm-x402-demo", "llm-so-demo-0-strip"]);
    assert_eq!(router.entry_points, ["web"]);
    let mw = &out.config.http.middlewares["llm-x402-demo"]["forwardAuth"];
    assert_eq!(mw["address"], "http://127.0.0.1:18081/verify/llm/x402-demo");
    assert_eq!(mw["trustForwardHeader"], false);
    let strip = &out.config.http.middlewares["llm-so-demo-0-strip"];
    assert_eq!(strip["stripPrefix"]["prefixes"][0], "/services/demo");
    let svc = &out.config.http.services["llm-so-demo-0"];
    assert_eq!(
        svc["loadBalancer"]["servers"][0]["url"],
        "http://localhost:18082"
    );
    let yaml = serde_yaml::to_string(&out.config).unwrap();
    assert!(yaml.starts_with("http:\n"), "{yaml}");
}

#[test]
fn external_name_ports_map_to_their_target_port() {
    let out = render(
        &gw(),
        &[route(
            "llm",
            "so-demo",
            "traefik-gateway",
            "x402-demo",
            "mapped",
        )],
        &[middleware("llm", "x402-demo")],
        &services(),
    );
    let svc = &out.config.http.services["llm-so-demo-0"];
    assert_eq!(
        svc["loadBalancer"]["servers"][0]["url"],
        "http://localhost:31000"
    );
}

#[test]
fn unresolvable_routes_are_never_served() {
    let mut no_auth = middleware("llm", "x402-demo");
    no_auth.spec.forward_auth = None;
    let mut odd_filter = route("llm", "odd", "traefik-gateway", "x402-demo", "demo");
    odd_filter.spec.rules[0].filters[1].type_ = "RequestMirror".into();
    let cases: Vec<(&str, HttpRoute, Vec<Middleware>, &str)> = vec![
        (
            "missing middleware",
            route("llm", "r", "traefik-gateway", "x402-nope", "demo"),
            vec![middleware("llm", "x402-demo")],
            "UnresolvedMiddleware",
        ),
        (
            "middleware without forwardAuth",
            route("llm", "r", "traefik-gateway", "x402-demo", "demo"),
            vec![no_auth],
            "UnresolvedMiddleware",
        ),
        (
            "middleware in another namespace",
            route("llm", "r", "traefik-gateway", "x402-demo", "demo"),
            vec![middleware("other", "x402-demo")],
            "UnresolvedMiddleware",
        ),
        (
            "missing service",
            route("llm", "r", "traefik-gateway", "x402-demo", "nope"),
            vec![middleware("llm", "x402-demo")],
            "BackendNotFound",
        ),
        (
            "unreachable service",
            route("llm", "r", "traefik-gateway", "x402-demo", "incluster"),
            vec![middleware("llm", "x402-demo")],
            "BackendNotFound",
        ),
        (
            "unsupported filter",
            odd_filter,
            vec![middleware("llm", "x402-demo")],
            "UnsupportedValue",
        ),
    ];
    for (case, r, mws, reason) in cases {
        let out = render(&gw(), &[r], &mws, &services());
        assert!(
            out.config.http.routers.is_empty(),
            "{case}: rendered anyway"
        );
        assert!(out.config.http.services.is_empty(), "{case}");
        let verdict = &out.verdicts[0].result;
        assert_eq!(
            verdict.as_ref().unwrap_err().0,
            reason,
            "{case}: {verdict:?}"
        );
    }
}

#[test]
fn other_gateways_are_ignored_and_one_bad_route_spares_the_others() {
    let routes = [
        route("llm", "mine", "traefik-gateway", "x402-demo", "demo"),
        route("llm", "broken", "traefik-gateway", "x402-missing", "demo"),
        route("llm", "theirs", "other-gateway", "x402-demo", "demo"),
    ];
    let out = render(
        &gw(),
        &routes,
        &[middleware("llm", "x402-demo")],
        &services(),
    );
    let names: Vec<(&str, bool)> = out
        .verdicts
        .iter()
        .map(|v| (v.name.as_str(), v.result.is_ok()))
        .collect();
    assert_eq!(names, [("broken", false), ("mine", true)]);
    // Nothing to serve: no empty sections, which Traefik would refuse (keeping the old routes).
    let none = render(&gw(), &routes[1..], &[], &services());
    assert_eq!(serde_yaml::to_string(&none.config).unwrap(), "{}\n");
    assert_eq!(out.config.http.routers.len(), 1);
}

/// Gateway mode `proxy`: the route header is set (replacing any client value) and the backend
/// is the verifier's gateway port, reached through its ExternalName Service; no strip.
#[test]
fn renders_a_proxy_mode_route_to_the_verifier() {
    let route: HttpRoute = serde_json::from_value(serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "so-demo", "namespace": "llm", "generation": 1},
        "spec": {
            "parentRefs": [{"name": "traefik-gateway", "namespace": "traefik"}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/services/demo"}}],
                "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                    "set": [{"name": "x-obol-payment-route", "value": "llm/x402-demo"}],
                    "remove": ["x-debug"]}}],
                "backendRefs": [{"name": "x402-verifier", "namespace": "x402", "port": 8081}]
            }]
        }
    }))
    .unwrap();
    let mut svcs = services();
    svcs.insert(
        ("x402".into(), "x402-verifier".into()),
        ServiceAddr::Host("localhost".into(), BTreeMap::from([(8081, 31081)])),
    );
    let out = render(&gw(), std::slice::from_ref(&route), &[], &svcs);
    assert_eq!(out.verdicts[0].result, Ok(()));
    let router = &out.config.http.routers["llm-so-demo-0"];
    assert_eq!(router.middlewares, ["llm-so-demo-0-headers-0"]);
    assert_eq!(
        out.config.http.middlewares["llm-so-demo-0-headers-0"],
        serde_json::json!({"headers": {"customRequestHeaders": {
            "x-obol-payment-route": "llm/x402-demo", "x-debug": ""}}})
    );
    assert_eq!(
        out.config.http.services["llm-so-demo-0"],
        serde_json::json!({"loadBalancer": {"servers": [{"url": "http://localhost:31081"}]}})
    );

    // `add` has no Traefik equivalent here: the route is refused, not served half-configured.
    let mut adding = route;
    adding.spec.rules[0].filters[0]
        .request_header_modifier
        .as_mut()
        .unwrap()
        .add = vec![obol_api::gateway::HttpHeader {
        name: "x".into(),
        value: "y".into(),
    }];
    let out = render(&gw(), &[adding], &[], &svcs);
    assert_eq!(
        out.verdicts[0].result.as_ref().unwrap_err().0,
        "UnsupportedValue"
    );
    assert!(out.config.http.routers.is_empty());
}
