//! Table tests of the pure plan: children, invalid specs, path conflicts.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use obol_api::ServiceOffer;
use obol_api::payment_route::PriceModel;
use serde_json::json;

use super::conflict::path_owner;
use super::*;

mod drain_tests;
mod shell_tests;
mod status_tests;
mod status_write_tests;

pub(crate) fn settings() -> Settings {
    Settings {
        verifier_url: "http://x402-verifier.x402.svc.cluster.local:8080".into(),
        verifier_gateway: ServiceRef {
            name: "x402-verifier".into(),
            namespace: "x402".into(),
            port: 8081,
        },
        gateway: GatewayRef {
            name: "traefik-gateway".into(),
            namespace: "traefik".into(),
        },
        public_base_url: "https://example.com/".into(),
    }
}

/// An offer `name` in `llm` with upstream `litellm`/4000, priced per request, plus `patch`
/// merged into its spec.
pub(crate) fn mk_offer(name: &str, spec_patch: serde_json::Value) -> ServiceOffer {
    let mut spec = json!({
        "upstream": {"service": "litellm", "namespace": "llm", "port": 4000, "healthPath": "/health"},
        "payment": {
            "network": "base-sepolia",
            "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "price": {"perRequest": "0.001"}
        }
    });
    merge(&mut spec, spec_patch);
    let mut offer: ServiceOffer = serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": name, "namespace": "llm", "uid": format!("uid-{name}"), "generation": 1},
        "spec": spec,
    }))
    .expect("offer");
    offer.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
    offer
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

#[test]
fn children_of_a_plain_offer() {
    // C1, C2, C12 of the Go controller, with the seed's atomic price and CAIP-2 network.
    let d = desired(&mk_offer("demo", json!({})), &settings()).unwrap();
    assert_eq!(d.path, "/services/demo");

    assert_eq!(d.mode, obol_api::service_offer::GatewayMode::ForwardAuth);
    let mw = d
        .middleware
        .as_ref()
        .expect("a Middleware in ForwardAuth mode");
    assert_eq!(mw.metadata.name.as_deref(), Some("x402-demo"));
    assert_eq!(mw.metadata.namespace.as_deref(), Some("llm"));
    let fa = mw.spec.forward_auth.as_ref().unwrap();
    assert_eq!(
        fa.address,
        "http://x402-verifier.x402.svc.cluster.local:8080/verify/llm/x402-demo"
    );
    assert!(!fa.trust_forward_header);

    let pr = &d.payment_route;
    assert_eq!(pr.metadata.name.as_deref(), Some("x402-demo"));
    assert_eq!(pr.spec.pattern, "/services/demo/*");
    assert_eq!(pr.spec.price, "1000");
    assert_eq!(pr.spec.network, "eip155:84532");
    assert_eq!(pr.spec.pay_to, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    assert_eq!(pr.spec.price_model, Some(PriceModel::PerRequest));
    assert_eq!(pr.spec.max_timeout_seconds, Some(300));
    assert_eq!(pr.spec.per_mtok, None);
    assert_eq!(
        pr.spec.proxy, None,
        "ForwardAuth: the verifier forwards nothing"
    );

    let route = serde_json::to_value(&d.http_route).unwrap();
    assert_eq!(route["metadata"]["name"], "so-demo");
    assert_eq!(
        route["spec"],
        json!({
            "parentRefs": [{"name": "traefik-gateway", "namespace": "traefik"}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/services/demo"}}],
                "filters": [
                    {"type": "ExtensionRef", "extensionRef": {"group": "traefik.io", "kind": "Middleware", "name": "x402-demo"}},
                    {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}
                ],
                "backendRefs": [{"name": "litellm", "namespace": "llm", "port": 4000}]
            }]
        })
    );
    assert!(d.registration.is_none(), "registration disabled by default");
}

#[test]
fn children_in_proxy_mode_route_to_the_verifier_which_forwards_to_the_upstream() {
    let offer = mk_offer(
        "demo",
        json!({"gateway": {"mode": "proxy", "allowWebSocket": true,
                           "streamingContentTypes": ["application/x-ndjson"]}}),
    );
    let mut d = desired(&offer, &settings()).unwrap();
    assert_eq!(d.mode, obol_api::service_offer::GatewayMode::Proxy);
    assert!(d.middleware.is_none(), "no ForwardAuth Middleware");
    let pr = &d.payment_route.spec;
    assert_eq!(pr.pattern, "/services/demo/*");
    assert_eq!(
        pr.proxy,
        Some(obol_api::ProxyTarget {
            upstream: "http://litellm.llm.svc.cluster.local:4000".into(),
            strip_prefix: Some("/services/demo".into()),
            streaming_content_types: vec!["application/x-ndjson".into()],
            allow_web_socket: true,
        })
    );
    let route = serde_json::to_value(&d.http_route).unwrap();
    assert_eq!(
        route["spec"],
        json!({
            "parentRefs": [{"name": "traefik-gateway", "namespace": "traefik"}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/services/demo"}}],
                "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                    "set": [{"name": "x-obol-payment-route", "value": "llm/x402-demo"}]}}],
                "backendRefs": [{"name": "x402-verifier", "namespace": "x402", "port": 8081}]
            }]
        }),
        "the published path is kept: the verifier matches and strips it"
    );
    // The route header names the PaymentRoute the verifier looks up.
    let header = &route["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"]["set"][0];
    assert_eq!(
        obol_api::proxy::parse_route_header(header["value"].as_str().unwrap()),
        Some(("llm", d.payment_route.metadata.name.as_deref().unwrap()))
    );

    // An ExternalName upstream is named where the probe reached it.
    reach_upstream_at(&mut d, Some(&("localhost".to_owned(), 18080)));
    assert_eq!(
        d.payment_route.spec.proxy.as_ref().unwrap().upstream,
        "http://localhost:18080"
    );
    // ForwardAuth children are untouched by it.
    let mut fa = desired(&mk_offer("demo", json!({})), &settings()).unwrap();
    reach_upstream_at(&mut fa, Some(&("localhost".to_owned(), 18080)));
    assert_eq!(fa.payment_route.spec.proxy, None);
    // A root path strips nothing.
    let root = desired(
        &mk_offer("demo", json!({"path": "/", "gateway": {"mode": "proxy"}})),
        &settings(),
    )
    .unwrap();
    assert_eq!(root.payment_route.spec.proxy.unwrap().strip_prefix, None);
    // Explicit forwardAuth is the same as no field.
    let explicit = desired(
        &mk_offer("demo", json!({"gateway": {"mode": "forwardAuth"}})),
        &settings(),
    )
    .unwrap();
    let implicit = desired(&mk_offer("demo", json!({})), &settings()).unwrap();
    assert_eq!(explicit.http_route.spec, implicit.http_route.spec);
    assert_eq!(explicit.payment_route.spec, implicit.payment_route.spec);
}

#[test]
fn every_child_is_owned_and_labelled() {
    let d = desired(
        &mk_offer("demo", json!({"registration": {"enabled": true}})),
        &settings(),
    )
    .unwrap();
    let metas = [
        &d.middleware.as_ref().unwrap().metadata,
        &d.payment_route.metadata,
        &d.http_route.metadata,
        &d.registration.as_ref().unwrap().metadata,
    ];
    for m in metas {
        assert_eq!(m.namespace.as_deref(), Some("llm"));
        let owners = m.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        let o = &owners[0];
        assert_eq!(
            (o.kind.as_str(), o.name.as_str(), o.uid.as_str()),
            ("ServiceOffer", "demo", "uid-demo")
        );
        assert_eq!(o.api_version, "obol.org/v1alpha1");
        assert_eq!(
            (o.controller, o.block_owner_deletion),
            (Some(true), Some(true))
        );
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels["obol.org/serviceoffer"], "demo");
        assert_eq!(labels["obol.org/managed-by"], "serviceoffer-controller");
    }
}

#[test]
fn prices_networks_and_paths() {
    // (spec patch, price, network, pattern, model, perMTok)
    let cases = [
        (
            json!({}),
            "1000",
            "eip155:84532",
            "/services/p/*",
            PriceModel::PerRequest,
            None,
        ),
        (
            json!({"payment": {"price": {"perRequest": null, "perMTok": "1.0"}}}),
            "1000",
            "eip155:84532",
            "/services/p/*",
            PriceModel::PerMTok,
            Some("1000000"),
        ),
        (
            json!({"payment": {"price": {"perRequest": null, "perHour": "0.6"}}}),
            "50000",
            "eip155:84532",
            "/services/p/*",
            PriceModel::PerHour,
            None,
        ),
        (
            json!({"payment": {"network": "base"}, "path": "/api/v1/"}),
            "1000",
            "eip155:8453",
            "/api/v1/*",
            PriceModel::PerRequest,
            None,
        ),
        (
            json!({"payment": {"network": "eip155:84532", "price": {"perRequest": "0.01", "perMTok": "1"}}}),
            "10000",
            "eip155:84532",
            "/services/p/*",
            PriceModel::PerRequest,
            None,
        ),
    ];
    for (patch, price, network, pattern, model, per_mtok) in cases {
        let d = desired(&mk_offer("p", patch.clone()), &settings()).unwrap();
        let spec = &d.payment_route.spec;
        assert_eq!(spec.price, price, "{patch}");
        assert_eq!(spec.network, network, "{patch}");
        assert_eq!(spec.pattern, pattern, "{patch}");
        assert_eq!(spec.price_model, Some(model), "{patch}");
        assert_eq!(spec.per_mtok.as_deref(), per_mtok, "{patch}");
    }
}

#[test]
fn invalid_specs_are_refused_with_the_reason() {
    let cases = [
        (
            json!({"payment": {"price": {"perRequest": "abc"}}}),
            "price",
        ),
        (json!({"payment": {"price": {"perRequest": "0"}}}), "zero"),
        (
            json!({"payment": {"price": {"perRequest": "0.0000001"}}}),
            "zero",
        ),
        (
            json!({"payment": {"price": {"perRequest": null}}}),
            "no price",
        ),
        (
            json!({"payment": {"network": "no-such-chain"}}),
            "unknown network",
        ),
        (json!({"payment": {"payTo": "0x123"}}), "payTo"),
        (json!({"path": "/a b"}), "spec.path"),
        (json!({"upstream": {"port": 0}}), "port"),
        (
            json!({"upstream": {"service": "Not_A_Service"}}),
            "upstream.service",
        ),
        (json!({"upstream": {"healthPath": "health"}}), "healthPath"),
        // Disagreements with the CLI and the schema, fixed by one `validate`:
        (json!({"path": "/a/../b"}), "'..' is not allowed"),
        (json!({"upstream": {"healthPath": "/a b"}}), "healthPath"),
        (
            json!({"upstream": {"namespace": "Not_A_Namespace"}}),
            "upstream.namespace",
        ),
        (
            json!({"payment": {"maxTimeoutSeconds": 0}}),
            "maxTimeoutSeconds",
        ),
        (
            json!({"payment": {"price": {"perHour": "soon"}}}),
            "perHour",
        ),
        (
            json!({"payment": {"asset": {"address": "nope", "decimals": 6}}}),
            "asset",
        ),
    ];
    for (patch, needle) in cases {
        let err = desired(&mk_offer("bad", patch.clone()), &settings()).unwrap_err();
        assert!(err.0.contains(needle), "{patch}: {err}");
    }
}

#[test]
fn asset_override_uses_its_decimals() {
    let d = desired(
        &mk_offer(
            "tok",
            json!({"payment": {"asset": {"address": "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "decimals": 18}}}),
        ),
        &settings(),
    )
    .unwrap();
    assert_eq!(d.payment_route.spec.price, "1000000000000000");
    assert_eq!(
        d.payment_route.spec.asset.as_deref(),
        Some("0x036CbD53842c5426634e7929541eC2318f3dCF7e")
    );
}

#[test]
fn registration_request_when_enabled() {
    let offer = mk_offer(
        "demo",
        json!({"registration": {"enabled": true, "name": "Demo Agent", "skills": ["a"]}, "provenance": {"k": "v"}}),
    );
    let rr = desired(&offer, &settings()).unwrap().registration.unwrap();
    assert_eq!(rr.metadata.name.as_deref(), Some("so-demo-registration"));
    assert_eq!(rr.spec.name, "Demo Agent");
    assert_eq!(rr.spec.endpoint, "https://example.com/services/demo");
    assert_eq!(rr.spec.chain, "eip155:84532");
    assert_eq!(rr.spec.skills, vec!["a".to_owned()]);
    assert_eq!(rr.spec.provenance["k"], "v");
    assert_eq!(rr.spec.service_offer_name.as_deref(), Some("demo"));
}

fn at(mut offer: ServiceOffer, ns: &str, created: &str) -> ServiceOffer {
    offer.metadata.namespace = Some(ns.into());
    offer.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
    offer
}

#[test]
fn path_conflicts_oldest_wins_ties_by_namespace_and_name() {
    let same = json!({"path": "/shared"});
    let older = at(mk_offer("older", same.clone()), "a", "2026-01-01T00:00:00Z");
    let newer = at(
        mk_offer("newer", json!({"path": "/shared/"})),
        "a",
        "2026-01-01T00:02:00Z",
    );
    let other = at(mk_offer("other", json!({})), "a", "2025-01-01T00:00:00Z");
    let all = [older.clone(), newer.clone(), other.clone()];
    assert_eq!(path_owner(&older, &all), None);
    assert_eq!(path_owner(&newer, &all).as_deref(), Some("a/older"));
    assert_eq!(path_owner(&other, &all), None);

    // Equal times: `aa/a` beats `zz/b`.
    let a = at(mk_offer("a", same.clone()), "aa", "2026-01-01T00:00:00Z");
    let b = at(mk_offer("b", same.clone()), "zz", "2026-01-01T00:00:00Z");
    let all = [b.clone(), a.clone()];
    assert_eq!(path_owner(&a, &all), None);
    assert_eq!(path_owner(&b, &all).as_deref(), Some("aa/a"));

    // A deleting owner releases the path; an empty list has no owner.
    let mut gone = older.clone();
    gone.metadata.deletion_timestamp = Some(Time("2026-02-01T00:00:00Z".parse().unwrap()));
    assert_eq!(path_owner(&newer, &[gone, newer.clone()]), None);
    assert_eq!(path_owner(&newer, &[]), None);
}

#[test]
fn per_token_offers_are_metered() {
    let per_request = desired(&mk_offer("flat", json!({})), &settings()).unwrap();
    assert_eq!(per_request.payment_route.spec.metering, None);
    assert_eq!(
        per_request.payment_route.spec.description.as_deref(),
        Some("ServiceOffer flat")
    );

    let offer = mk_offer(
        "llm",
        json!({"payment": {"price": {"perRequest": null, "perMTokInput": "0.15", "perMTokOutput": "0.6"},
                           "approxTokensPerRequest": 1000, "maxTokensPerRequest": 4000}}),
    );
    let spec = desired(&offer, &settings()).unwrap().payment_route.spec;
    // The exact price (and the no-usage fallback): 1000 tokens at the higher rate.
    assert_eq!(spec.price, "600");
    assert_eq!(spec.price_model, Some(PriceModel::PerMTok));
    let metering = spec.metering.as_ref().unwrap();
    assert_eq!(
        (
            metering.input_per_mtok.as_str(),
            metering.output_per_mtok.as_str(),
            metering.max_tokens_per_request,
            metering.max_amount.as_str()
        ),
        ("150000", "600000", 4000, "2400")
    );
    assert!(metering.tariff(&spec.price).is_some());
    let description = spec.description.unwrap();
    assert!(
        description.starts_with("ServiceOffer llm Metered per token: 0.15 USDC per million input"),
        "{description}"
    );
    // ForwardAuth never sees the answer: no per-token settlement (upto) is promised.
    assert!(!description.contains("upto"), "{description}");
    assert!(description.contains("A request costs 0.0006 USDC (1000 tokens)"));

    // The gateway (mode proxy) meters: the rule of upto, the maximum and the fallback.
    let offer = mk_offer(
        "llm",
        json!({"payment": {"price": {"perRequest": null, "perMTokInput": "0.15", "perMTokOutput": "0.6"},
                           "approxTokensPerRequest": 1000, "maxTokensPerRequest": 4000},
               "gateway": {"mode": "proxy"}}),
    );
    let spec = desired(&offer, &settings()).unwrap().payment_route.spec;
    assert!(spec.proxy.is_some());
    let description = spec.description.unwrap();
    assert!(
        description.ends_with(
            "Paid with upto, a request is charged the tokens its answer reports, rounded up to \
             the atomic unit, at most 0.0024 USDC (4000 tokens); an answer without usage is \
             charged 0.0006 USDC (1000 tokens). Paid with exact, a request costs 0.0006 USDC."
        ),
        "{description}"
    );
}

#[test]
fn a_long_description_is_cut_before_the_metering_rule() {
    let long = "é".repeat(700);
    let offer = mk_offer(
        "llm",
        json!({"payment": {"price": {"perRequest": null, "perMTok": "1"}},
               "registration": {"description": long}}),
    );
    let description = desired(&offer, &settings())
        .unwrap()
        .payment_route
        .spec
        .description
        .unwrap();
    assert!(description.len() <= 1024, "{}", description.len());
    assert!(description.starts_with("éé"));
    assert!(description.contains("… Metered per token: 1 USDC per million tokens."));
    assert!(description.ends_with("(1000 tokens), paid with the exact scheme."));
}

#[test]
fn metered_terms_that_cannot_be_charged_exactly_are_refused() {
    let cases = [
        (
            json!({"payment": {"price": {"perRequest": null, "perMTok": "0.0000001"}, "approxTokensPerRequest": 100000000}}),
            "finer than one atomic unit",
        ),
        (
            json!({"payment": {"price": {"perRequest": null, "perMTok": "1"}, "maxTokensPerRequest": 10}}),
            "maxTokensPerRequest 10 is below approxTokensPerRequest 1000",
        ),
    ];
    for (patch, needle) in cases {
        let err = desired(&mk_offer("bad", patch.clone()), &settings()).unwrap_err();
        assert!(err.0.contains(needle), "{patch}: {err}");
    }
}

#[test]
fn a_route_table_is_carried_and_ties_become_the_route_table_condition() {
    use obol_api::condition::{ConditionStatus, reasons, types};
    let plain = desired(&mk_offer("demo", json!({})), &settings()).unwrap();
    assert!(plain.payment_route.spec.routes.is_empty());
    assert_eq!(
        status::route_table_condition(plain.has_routes, &plain.ambiguous),
        None,
        "no table, no condition"
    );
    let tied = mk_offer(
        "demo",
        json!({"routes": [{"path": "/a/*"}, {"path": "/*/b", "gate": "free"}, {"path": "/h"}]}),
    );
    let d = desired(&tied, &settings()).unwrap();
    let patterns: Vec<&str> = d
        .payment_route
        .spec
        .routes
        .iter()
        .map(|r| r.pattern.as_str())
        .collect();
    assert_eq!(
        patterns,
        [
            "/services/demo/h",
            "/services/demo/a/*",
            "/services/demo/*/b"
        ]
    );
    let c = status::route_table_condition(d.has_routes, &d.ambiguous).unwrap();
    assert_eq!(
        (c.type_.as_str(), c.status, c.reason.as_str()),
        (
            types::ROUTE_TABLE,
            ConditionStatus::False,
            reasons::ROUTES_OVERLAP
        )
    );
    assert!(
        c.message
            .contains("/services/demo/a/* and /services/demo/*/b"),
        "{}",
        c.message
    );
    let clear = mk_offer(
        "demo",
        json!({"routes": [{"path": "/a/*"}, {"path": "/h"}]}),
    );
    let d = desired(&clear, &settings()).unwrap();
    let c = status::route_table_condition(d.has_routes, &d.ambiguous).unwrap();
    assert_eq!(
        (c.status, c.reason.as_str()),
        (ConditionStatus::True, reasons::ROUTES_DISTINCT)
    );
}
