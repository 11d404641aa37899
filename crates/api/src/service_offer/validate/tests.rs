//! The one table of offer rules: each row edits a valid spec and says what `validate` answers.

use serde_json::{Value, json};

use super::*;
use crate::drain::DrainError;
use crate::price::PriceError;

/// A stand-in for the chain table of obol-x402: two chains, one without USDC.
pub(crate) fn chains(network: &str) -> Result<Chain, String> {
    match network {
        "base-sepolia" | "eip155:84532" => Ok(Chain {
            caip2: "eip155:84532".into(),
            has_usdc: true,
        }),
        "sepolia" => Ok(Chain {
            caip2: "eip155:11155111".into(),
            has_usdc: false,
        }),
        _ => Err("use one of: base-sepolia, sepolia".into()),
    }
}

const ASSET: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";

fn spec(patch: &Value) -> ServiceOfferSpec {
    let mut base = json!({
        "upstream": {"service": "up", "port": 8080, "healthPath": "/health"},
        "payment": {"network": "base-sepolia",
                    "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    "price": {"perRequest": "0.001"}},
    });
    merge(&mut base, patch);
    serde_json::from_value(base).expect("the patched spec deserializes")
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

type Want = Result<(), (OfferField, Problem)>;

fn out(min: i64, max: i64) -> Problem {
    Problem::OutOfRange { min, max }
}

#[test]
fn offer_rules_table() {
    use OfferField as F;
    let ok: Want = Ok(());
    let no = |f: OfferField, p: Problem| -> Want { Err((f, p)) };
    let price = |e: PriceError| Problem::Price(e);
    // (name, spec patch, answer)
    let cases: Vec<(&str, Value, Want)> = vec![
        ("demo", json!({}), ok.clone()),
        ("a.b-c", json!({"path": "/.well-known/x"}), ok.clone()),
        ("Demo", json!({}), no(F::Name, Problem::NotASubdomain)),
        ("", json!({}), no(F::Name, Problem::NotASubdomain)),
        // upstream
        (
            "d",
            json!({"upstream": {"service": "Up_1"}}),
            no(F::UpstreamService, Problem::NotALabel),
        ),
        (
            "d",
            json!({"upstream": {"service": ""}}),
            no(F::UpstreamService, Problem::NotALabel),
        ),
        ("d", json!({"upstream": {"namespace": ""}}), ok.clone()),
        (
            "d",
            json!({"upstream": {"namespace": "other-ns"}}),
            ok.clone(),
        ),
        (
            "d",
            json!({"upstream": {"namespace": "Other"}}),
            no(F::UpstreamNamespace, Problem::NotALabel),
        ),
        (
            "d",
            json!({"upstream": {"port": 0}}),
            no(F::UpstreamPort, out(1, 65535)),
        ),
        (
            "d",
            json!({"upstream": {"port": 65536}}),
            no(F::UpstreamPort, out(1, 65535)),
        ),
        ("d", json!({"upstream": {"port": 65535}}), ok.clone()),
        // The schema admits a query in the health path; the CLI refused it.
        (
            "d",
            json!({"upstream": {"healthPath": "/health?full=1&x=%20"}}),
            ok.clone(),
        ),
        (
            "d",
            json!({"upstream": {"healthPath": "health"}}),
            no(F::HealthPath, Problem::NotAHealthPath),
        ),
        (
            "d",
            json!({"upstream": {"healthPath": "/a b"}}),
            no(F::HealthPath, Problem::NotAHealthPath),
        ),
        // path: `..` was refused by the CLI only.
        (
            "d",
            json!({"path": "/a/../b"}),
            no(F::Path, Problem::DotDot),
        ),
        ("d", json!({"path": "/a..b"}), no(F::Path, Problem::DotDot)),
        ("d", json!({"path": "/a b"}), no(F::Path, Problem::NotAPath)),
        ("d", json!({"path": ""}), no(F::Path, Problem::NotAPath)),
        (
            "d",
            json!({"path": format!("/{}", "a".repeat(1024))}),
            no(F::Path, Problem::TooLong { max: 1024 }),
        ),
        // payment
        (
            "d",
            json!({"payment": {"payTo": "0x123"}}),
            no(F::PayTo, Problem::NotAnAddress),
        ),
        (
            "d",
            json!({"payment": {"network": "eip155:84532"}}),
            ok.clone(),
        ),
        (
            "d",
            json!({"payment": {"network": "solana"}}),
            no(
                F::Network,
                Problem::UnknownNetwork("use one of: base-sepolia, sepolia".into()),
            ),
        ),
        // A chain without USDC needs an asset: the CLI used to accept it, the controller not.
        (
            "d",
            json!({"payment": {"network": "sepolia"}}),
            no(F::Network, Problem::NoUsdc),
        ),
        (
            "d",
            json!({"payment": {"network": "sepolia", "asset": {"address": ASSET, "decimals": 6}}}),
            ok.clone(),
        ),
        (
            "d",
            json!({"payment": {"asset": {"address": "nope", "decimals": 6}}}),
            no(F::AssetAddress, Problem::NotAnAddress),
        ),
        (
            "d",
            json!({"payment": {"asset": {"address": ASSET, "decimals": 37}}}),
            no(F::AssetDecimals, out(0, 36)),
        ),
        // maxTimeoutSeconds: the controller did not check it.
        (
            "d",
            json!({"payment": {"maxTimeoutSeconds": 0}}),
            no(F::MaxTimeout, out(1, 86400)),
        ),
        (
            "d",
            json!({"payment": {"maxTimeoutSeconds": 86401}}),
            no(F::MaxTimeout, out(1, 86400)),
        ),
        (
            "d",
            json!({"payment": {"maxTimeoutSeconds": 86400}}),
            ok.clone(),
        ),
        (
            "d",
            json!({"payment": {"approxTokensPerRequest": 0}}),
            no(F::ApproxTokens, price(PriceError::ZeroTokens)),
        ),
        // prices
        (
            "d",
            json!({"payment": {"price": {"perRequest": "-1"}}}),
            no(F::PerRequest, price(PriceError::Negative("-1".into()))),
        ),
        (
            "d",
            json!({"payment": {"price": {"perRequest": "cheap"}}}),
            no(F::PerRequest, price(PriceError::NotANumber("cheap".into()))),
        ),
        (
            "d",
            json!({"payment": {"price": {"perRequest": ""}}}),
            no(F::PerRequest, price(PriceError::Empty)),
        ),
        (
            "d",
            json!({"payment": {"price": {"perRequest": "0"}}}),
            no(F::Price, price(PriceError::Zero("0".into()))),
        ),
        (
            "d",
            json!({"payment": {"price": {"perRequest": null}}}),
            no(F::Price, price(PriceError::Missing)),
        ),
        // A malformed price that does not gate is refused too, as the schema refuses it.
        (
            "d",
            json!({"payment": {"price": {"perHour": "x"}}}),
            no(F::PerHour, price(PriceError::NotANumber("x".into()))),
        ),
        (
            "d",
            json!({"payment": {"price": {"perEpoch": "1,5"}}}),
            no(F::PerEpoch, price(PriceError::NotANumber("1,5".into()))),
        ),
        (
            "d",
            json!({"payment": {"price": {"perRequest": null, "perMTok": "1.0"}}}),
            ok.clone(),
        ),
        // Metered per-token terms.
        (
            "d",
            json!({"payment": {"price": {"perRequest": null, "perMTokInput": "0.15", "perMTokOutput": "0.6"}, "maxTokensPerRequest": 4000}}),
            ok.clone(),
        ),
        (
            "d",
            json!({"payment": {"price": {"perRequest": null, "perMTokOutput": "0.6x"}}}),
            no(
                F::PerMTokOutput,
                price(PriceError::NotANumber("0.6x".into())),
            ),
        ),
        (
            "d",
            json!({"payment": {"price": {"perRequest": null, "perMTokInput": "0.0000001", "perMTokOutput": "1"}}}),
            no(
                F::PerMTokInput,
                Problem::Metering(PriceError::TooPrecise {
                    field: "perMTokInput",
                    value: "0.0000001".into(),
                }),
            ),
        ),
        (
            "d",
            json!({"payment": {"price": {"perRequest": null, "perMTok": "1"}, "approxTokensPerRequest": 500, "maxTokensPerRequest": 499}}),
            no(
                F::MaxTokens,
                Problem::Metering(PriceError::MaxBelowApprox {
                    max: 499,
                    approx: 500,
                }),
            ),
        ),
        (
            "d",
            json!({"payment": {"price": {"perRequest": null, "perMTok": "1"}, "maxTokensPerRequest": 0}}),
            no(
                F::MaxTokens,
                Problem::Metering(PriceError::MaxBelowApprox {
                    max: 0,
                    approx: 1000,
                }),
            ),
        ),
        // A per-request price gates: per-token fields and maxTokensPerRequest do not meter it.
        (
            "d",
            json!({"payment": {"price": {"perMTok": "1"}, "maxTokensPerRequest": 1}}),
            ok.clone(),
        ),
        (
            "d",
            json!({"model": {"name": "", "runtime": "ollama"}}),
            no(F::ModelName, Problem::Empty),
        ),
        (
            "d",
            json!({"registration": {"services": [{"name": "A2A", "endpoint": ""}]}}),
            no(F::RegistrationServices, Problem::Empty),
        ),
        // gateway
        ("d", json!({"gateway": {"mode": "proxy"}}), ok.clone()),
        ("d", json!({"gateway": {"mode": "forwardAuth"}}), ok.clone()),
        (
            "d",
            json!({"gateway": {"mode": "proxy", "allowWebSocket": true,
                   "streamingContentTypes": ["application/x-ndjson", "application/json-seq"]}}),
            ok.clone(),
        ),
        (
            "d",
            json!({"gateway": {"mode": "proxy", "streamingContentTypes": ["Application/X-NDJSON"]}}),
            no(F::StreamingTypes, Problem::NotAMediaType),
        ),
        (
            "d",
            json!({"gateway": {"mode": "proxy", "streamingContentTypes": ["text/plain; charset=utf-8"]}}),
            no(F::StreamingTypes, Problem::NotAMediaType),
        ),
        (
            "d",
            json!({"gateway": {"mode": "proxy", "streamingContentTypes": vec!["a/b"; 17]}}),
            no(F::StreamingTypes, Problem::TooMany { max: 16 }),
        ),
        (
            "d",
            json!({"gateway": {"mode": "forwardAuth", "streamingContentTypes": ["application/x-ndjson"]}}),
            no(F::StreamingTypes, Problem::ProxyModeOnly),
        ),
        (
            "d",
            json!({"gateway": {"mode": "forwardAuth", "allowWebSocket": true}}),
            no(F::AllowWebSocket, Problem::ProxyModeOnly),
        ),
        // routes
        (
            "d",
            json!({"routes": [
                {"path": "/v1/chat/completions", "price": "0.01", "methods": ["POST"],
                 "inputSchema": {"type": "object"}, "summary": "Chat"},
                {"path": "/v1/*"},
                {"path": "/health", "gate": "free"},
            ]}),
            ok.clone(),
        ),
        (
            "d",
            json!({"routes": [{"path": "/x", "methods": ["GET"]}, {"path": "/x", "methods": ["POST"]}]}),
            ok.clone(),
        ),
        (
            "d",
            json!({"routes": [{"path": "v1"}]}),
            no(F::RoutePath, Problem::NotARoutePath),
        ),
        (
            "d",
            json!({"routes": [{"path": "/a b"}]}),
            no(F::RoutePath, Problem::NotARoutePath),
        ),
        (
            "d",
            json!({"routes": [{"path": "/a/../b"}]}),
            no(F::RoutePath, Problem::DotDot),
        ),
        (
            "d",
            json!({"routes": [{"path": "/.well-known/x402.json", "gate": "free"}]}),
            no(F::RoutePath, Problem::Reserved),
        ),
        (
            "d",
            json!({"path": "/", "routes": [{"path": "/openapi.json"}]}),
            no(F::RoutePath, Problem::Reserved),
        ),
        (
            "d",
            json!({"path": "/", "routes": [{"path": "/.well-known/*"}]}),
            no(F::RoutePath, Problem::Reserved),
        ),
        (
            "d",
            json!({"routes": [{"path": "/openapi.json"}]}),
            no(F::RoutePath, Problem::Reserved),
        ),
        (
            "d",
            json!({"routes": [{"path": "/v1/openapi.json"}]}),
            ok.clone(),
        ),
        (
            "d",
            json!({"routes": [{"path": "/x"}, {"path": "/x", "gate": "free"}]}),
            no(F::RoutePath, Problem::Duplicate),
        ),
        (
            "d",
            json!({"routes": [{"path": "/x", "methods": ["GET"]}, {"path": "/x"}]}),
            no(F::RoutePath, Problem::Duplicate),
        ),
        (
            "d",
            json!({"routes": [{"path": "/x", "methods": ["get"]}]}),
            no(F::RouteMethods, Problem::UnknownMethod),
        ),
        (
            "d",
            json!({"routes": [{"path": "/x", "gate": "free", "price": "0.01"}]}),
            no(F::RoutePrice, Problem::FreeWithPrice),
        ),
        (
            "d",
            json!({"routes": [{"path": "/x", "price": "0.0000001"}]}),
            no(F::RoutePrice, price(PriceError::Zero("0.0000001".into()))),
        ),
        (
            "d",
            json!({"routes": [{"path": "/x", "price": "-1"}]}),
            no(F::RoutePrice, price(PriceError::Negative("-1".into()))),
        ),
        (
            "d",
            json!({"routes": [{"path": "/x", "summary": "s".repeat(1025)}]}),
            no(F::RouteSummary, Problem::TooLong { max: 1024 }),
        ),
        (
            "d",
            json!({"routes": [{"path": "/x", "outputSchema": ["not", "an", "object"]}]}),
            no(F::RouteSchema, Problem::NotASchema),
        ),
        (
            "d",
            json!({"routes": [{"path": "/x", "inputSchema": {"description": "s".repeat(16 * 1024)}}]}),
            no(F::RouteSchema, Problem::NotASchema),
        ),
        (
            "d",
            json!({"routes": (0..65).map(|i| json!({"path": format!("/r{i}")})).collect::<Vec<_>>()}),
            no(F::Routes, Problem::TooMany { max: 64 }),
        ),
        ("d", json!({"drainAt": "2026-01-02T03:04:05Z"}), ok.clone()),
        (
            "d",
            json!({"drainAt": "2026-01-02T03:04:05+02:00", "drainGracePeriod": "720h"}),
            ok.clone(),
        ),
        (
            "d",
            json!({"drainAt": "2026-01-02T03:04:05", "drainGracePeriod": "1h"}),
            no(F::DrainAt, Problem::Drain(DrainError::NotATimestamp)),
        ),
        (
            "d",
            json!({"drainAt": "2026-13-02T03:04:05Z"}),
            no(F::DrainAt, Problem::Drain(DrainError::NotATimestamp)),
        ),
        (
            "d",
            json!({"drainAt": "2026-01-02T03:04:05Z", "drainGracePeriod": "721h"}),
            no(
                F::DrainGracePeriod,
                Problem::Drain(DrainError::NotAGracePeriod),
            ),
        ),
        (
            "d",
            json!({"drainAt": "2026-01-02T03:04:05Z", "drainGracePeriod": "1d"}),
            no(
                F::DrainGracePeriod,
                Problem::Drain(DrainError::NotAGracePeriod),
            ),
        ),
        (
            "d",
            json!({"drainGracePeriod": "1h"}),
            no(
                F::DrainGracePeriod,
                Problem::Drain(DrainError::GraceWithoutDrain),
            ),
        ),
    ];
    for (name, patch, want) in cases {
        let got = spec(&patch)
            .validate(name, chains)
            .map(|_| ())
            .map_err(|e| (e.field, e.problem));
        assert_eq!(got, want, "{name} {patch}");
    }
}

#[test]
fn an_offer_without_a_gateway_keeps_forward_auth_and_bad_modes_are_refused_on_read() {
    use crate::service_offer::GatewayMode;
    assert_eq!(spec(&json!({})).gateway_mode(), GatewayMode::ForwardAuth);
    let proxy = spec(&json!({"gateway": {"mode": "proxy"}}));
    assert_eq!(proxy.gateway_mode(), GatewayMode::Proxy);
    assert_eq!(
        serde_json::to_value(&proxy).unwrap()["gateway"],
        json!({"mode": "proxy"}),
        "written back without the defaults"
    );
    let mut bad = serde_json::to_value(spec(&json!({}))).unwrap();
    bad["gateway"] = json!({"mode": "sidecar"});
    assert!(serde_json::from_value::<ServiceOfferSpec>(bad).is_err());
    for (text, mode) in [
        ("proxy", GatewayMode::Proxy),
        ("forwardAuth", GatewayMode::ForwardAuth),
        ("forward-auth", GatewayMode::ForwardAuth),
    ] {
        assert_eq!(text.parse::<GatewayMode>(), Ok(mode));
    }
    assert!(
        "Proxy"
            .parse::<GatewayMode>()
            .unwrap_err()
            .contains("proxy or forwardAuth")
    );
    assert_eq!(GatewayMode::ForwardAuth.to_string(), "forwardAuth");
}

#[test]
fn a_valid_offer_carries_what_the_children_need() {
    let per_mtok = spec(
        &json!({"path": "/api/", "payment": {"price": {"perRequest": null, "perMTok": "1.25"}}}),
    );
    let valid = per_mtok.validate("demo", chains).unwrap();
    assert_eq!(valid.path, "/api/");
    assert_eq!(valid.chain.caip2, "eip155:84532");
    assert_eq!((valid.asset, valid.decimals), (None, 6));
    assert_eq!(valid.price.atomic, 1250);
    assert_eq!(valid.per_mtok_atomic, Some(1_250_000));
    let plain = spec(&json!({})).validate("demo", chains).unwrap();
    assert_eq!(plain.path, "/services/demo");
    assert_eq!(plain.per_mtok_atomic, None);
    assert_eq!(plain.metered, None);
    let metered = valid.metered.unwrap();
    assert_eq!(
        (
            metered.tariff.maximum,
            metered.tariff.fallback,
            metered.max_tokens
        ),
        (12_500, 1250, 10_000)
    );
}

#[test]
fn a_route_table_is_published_most_specific_first_with_its_ties() {
    let valid = spec(&json!({"path": "/p", "routes": [
        {"path": "/*", "gate": "free"},
        {"path": "/a/*"},
        {"path": "/*/b", "price": "0.5"},
        {"path": "/v1/chat/completions", "price": "0.01", "methods": ["POST"]},
    ]}))
    .validate("d", chains)
    .unwrap();
    let got: Vec<(&str, Option<&str>)> = valid
        .routes
        .iter()
        .map(|r| (r.pattern.as_str(), r.price.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("/p/v1/chat/completions", Some("10000")),
            ("/p/a/*", None),
            ("/p/*/b", Some("500000")),
            ("/p/*", None),
        ]
    );
    assert_eq!(valid.ambiguous, [("/p/a/*".into(), "/p/*/b".into())]);
    let plain = spec(&json!({})).validate("d", chains).unwrap();
    assert!(plain.routes.is_empty() && plain.ambiguous.is_empty());
}

#[test]
fn messages_name_the_field_or_the_callers_subject_and_say_what_to_do() {
    let e = spec(&json!({"upstream": {"port": 0}}))
        .validate("d", chains)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid spec.upstream.port 0: out of range, use 1-65535"
    );
    assert_eq!(
        e.message_for("--port"),
        "invalid --port 0: out of range, use 1-65535"
    );
    let missing = spec(&json!({"payment": {"price": {"perRequest": null}}}))
        .validate("d", chains)
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "invalid spec.payment.price: no price is set (one of perRequest, perMTok or perHour); use a positive decimal such as 0.001"
    );
    let grace = spec(&json!({"drainAt": "2026-01-02T03:04:05Z", "drainGracePeriod": "2d"}))
        .validate("d", chains)
        .unwrap_err();
    assert_eq!(
        grace.to_string(),
        "invalid spec.drainGracePeriod \"2d\": use a whole number of seconds, minutes or hours (90s, 15m, 1h), at most 720h"
    );
    assert_eq!(
        grace.message_for("--grace"),
        "invalid --grace \"2d\": use a whole number of seconds, minutes or hours (90s, 15m, 1h), at most 720h"
    );
}

#[test]
fn a_drain_is_carried_with_its_end() {
    let valid = spec(&json!({"drainAt": "2026-01-02T03:04:05Z", "drainGracePeriod": "15m"}))
        .validate("d", chains)
        .unwrap();
    let drain = valid.drain.unwrap();
    assert_eq!(
        (drain.starts.to_string(), drain.ends.to_string()),
        ("2026-01-02T03:04:05Z".into(), "2026-01-02T03:19:05Z".into())
    );
    assert_eq!(spec(&json!({})).validate("d", chains).unwrap().drain, None);
}
