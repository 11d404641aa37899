//! The desired children of an offer, as pure functions of its spec and the [`Settings`].

use std::collections::BTreeMap;

use kube::Resource;
use kube::api::ObjectMeta;
use obol_api as api;
use obol_api::gateway::{
    BackendRef, HeaderModifier, HttpHeader, HttpRoute, HttpRouteFilter, HttpRouteMatch,
    HttpRouteRule, HttpRouteSpec, LocalObjectReference, ParentReference, PathMatch, PathModifier,
    UrlRewrite,
};
use obol_api::price::PriceSource;
use obol_api::service_offer::{Chain, GatewayMode};
use obol_api::traefik::{ForwardAuth, Middleware, MiddlewareSpec};
use obol_api::{
    PaymentRoute, PaymentRouteSpec, PriceModel, ProxyTarget, RegistrationRequest,
    RegistrationRequestSpec, ServiceOffer,
};

use super::{InvalidSpec, Settings};

/// The children an offer should have. The RegistrationRequest is `None` when registration is
/// disabled; whether it is applied yet is decided later ([`super::status::registration_due`]).
#[derive(Clone, Debug)]
pub struct Desired {
    /// The path the offer is published at.
    pub path: String,
    /// The gateway mode.
    pub mode: GatewayMode,
    /// ForwardAuth to the verifier, for this offer's PaymentRoute; `None` in mode `proxy`
    /// (the HTTPRoute's backend is the verifier itself).
    pub middleware: Option<Middleware>,
    /// The verifier's view of the offer.
    pub payment_route: PaymentRoute,
    /// The Gateway route (applied only once the payment gate is ready: fail closed).
    pub http_route: HttpRoute,
    /// The ERC-8004 registration, when enabled.
    pub registration: Option<RegistrationRequest>,
    /// Whether the offer declares a route table.
    pub has_routes: bool,
    /// Routes (published patterns) that match a common path as specifically as each other:
    /// the first wins, the offer says so in its `RouteTable` condition.
    pub ambiguous: Vec<(String, String)>,
    /// When the offer drains, if it does ([`super::status::carry_drain`] puts the end into
    /// the PaymentRoute once the drain started).
    pub drain: Option<obol_api::drain::Drain>,
}

/// Computes the children of `offer`, or says why its spec is invalid.
///
/// Mode `forwardAuth`: the HTTPRoute calls the Middleware (ForwardAuth to the verifier's
/// `/verify/<ns>/<paymentroute>`), strips the published path and goes to the upstream.
/// Mode `proxy`: the HTTPRoute sets the route header and goes to the verifier's gateway port;
/// the PaymentRoute carries the upstream's in-cluster address ([`in_cluster_url`], or where an
/// `ExternalName` Service points, [`reach_upstream_at`]) and the prefix the verifier strips.
pub fn desired(offer: &ServiceOffer, settings: &Settings) -> Result<Desired, InvalidSpec> {
    let name = offer
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| InvalidSpec("the offer has no name".into()))?;
    let namespace = offer
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| InvalidSpec("the offer has no namespace".into()))?;
    let mut owner = offer
        .controller_owner_ref(&())
        .ok_or_else(|| InvalidSpec("the offer has no uid yet".into()))?;
    // Foreground deletion of the offer waits for its children.
    owner.block_owner_deletion = Some(true);
    let spec = &offer.spec;

    let valid = spec
        .validate(name, chain)
        .map_err(|e| InvalidSpec(e.to_string()))?;
    let path = valid.path;
    let up = &spec.upstream;
    let payment = &spec.payment;
    let price = valid.price;
    let metered = valid.metered;
    let decimals = valid.decimals;
    let has_routes = !valid.routes.is_empty();
    let ambiguous = valid.ambiguous;
    let drain = valid.drain;

    let meta = |child: String| ObjectMeta {
        name: Some(child),
        namespace: Some(namespace.to_owned()),
        owner_references: Some(vec![owner.clone()]),
        labels: Some(labels(name)),
        ..ObjectMeta::default()
    };
    let pr_name = api::names::payment_route(name);
    let mw_name = api::names::middleware(name);
    let description = spec
        .registration
        .as_ref()
        .and_then(|r| r.description.clone())
        .unwrap_or_else(|| format!("ServiceOffer {name}"));
    let symbol = payment
        .asset
        .as_ref()
        .and_then(|a| a.symbol.clone())
        .unwrap_or_else(|| "USDC".to_owned());
    let mode = spec.gateway_mode();
    // Only the gateway (mode proxy) sees the answer, so only it sells `upto`.
    let upto = mode == GatewayMode::Proxy;
    let route_description = match &metered {
        Some(m) => metered_description(
            &description,
            &api::metering::describe(m, decimals, &symbol, upto),
        ),
        None => description.clone(),
    };

    let upstream_ns = spec.upstream_namespace(namespace).to_owned();
    let middleware = (mode == GatewayMode::ForwardAuth).then(|| Middleware {
        metadata: meta(mw_name.clone()),
        spec: MiddlewareSpec {
            forward_auth: Some(ForwardAuth::to_verifier(api::traefik::verify_address(
                &settings.verifier_url,
                namespace,
                &pr_name,
            ))),
        },
    });
    let proxy = (mode == GatewayMode::Proxy).then(|| {
        let gw = spec.gateway.as_ref();
        ProxyTarget {
            upstream: in_cluster_url(&up.service, &upstream_ns, up.port),
            strip_prefix: Some(path.trim_end_matches('/').to_owned()).filter(|p| !p.is_empty()),
            streaming_content_types: gw
                .map(|g| g.streaming_content_types.clone())
                .unwrap_or_default(),
            allow_web_socket: gw.is_some_and(|g| g.allow_web_socket),
        }
    });
    let route_header = api::proxy::route_header_value(namespace, &pr_name);
    let payment_route = PaymentRoute {
        metadata: meta(pr_name.clone()),
        spec: PaymentRouteSpec {
            pattern: format!("{}/*", path.trim_end_matches('/')),
            price: price.atomic.to_string(),
            pay_to: payment.pay_to.clone(),
            network: valid.chain.caip2.clone(),
            asset: valid.asset,
            facilitator_url: None,
            price_model: Some(match price.source {
                PriceSource::PerRequest => PriceModel::PerRequest,
                PriceSource::PerMTok => PriceModel::PerMTok,
                PriceSource::PerHour => PriceModel::PerHour,
            }),
            per_mtok: valid.per_mtok_atomic.map(|atomic| atomic.to_string()),
            approx_tokens_per_request: price.approx_tokens_per_request,
            description: Some(route_description),
            max_timeout_seconds: Some(payment.max_timeout_seconds),
            upstream_auth: None,
            proxy,
            metering: metered.as_ref().map(api::Metering::from_price),
            routes: valid.routes,
            drain_ends_at: None,
        },
        status: None,
    };
    let http_route = HttpRoute {
        metadata: meta(api::names::http_route(name)),
        spec: HttpRouteSpec {
            parent_refs: vec![ParentReference {
                name: settings.gateway.name.clone(),
                namespace: Some(settings.gateway.namespace.clone()),
                ..ParentReference::default()
            }],
            hostnames: Vec::new(),
            rules: vec![HttpRouteRule {
                matches: vec![HttpRouteMatch {
                    path: Some(PathMatch {
                        type_: "PathPrefix".into(),
                        value: path.clone(),
                    }),
                }],
                filters: match mode {
                    GatewayMode::ForwardAuth => vec![
                        HttpRouteFilter {
                            type_: "ExtensionRef".into(),
                            extension_ref: Some(LocalObjectReference {
                                group: "traefik.io".into(),
                                kind: "Middleware".into(),
                                name: mw_name,
                            }),
                            ..HttpRouteFilter::default()
                        },
                        HttpRouteFilter {
                            type_: "URLRewrite".into(),
                            url_rewrite: Some(UrlRewrite {
                                path: Some(PathModifier {
                                    type_: "ReplacePrefixMatch".into(),
                                    replace_prefix_match: Some("/".into()),
                                    replace_full_path: None,
                                }),
                            }),
                            ..HttpRouteFilter::default()
                        },
                    ],
                    // The verifier needs the published path (it matches the route's pattern
                    // and names the resource in the 402) and strips it itself.
                    GatewayMode::Proxy => vec![HttpRouteFilter {
                        type_: "RequestHeaderModifier".into(),
                        request_header_modifier: Some(HeaderModifier {
                            set: vec![HttpHeader {
                                name: api::proxy::ROUTE_HEADER.to_owned(),
                                value: route_header,
                            }],
                            ..HeaderModifier::default()
                        }),
                        ..HttpRouteFilter::default()
                    }],
                },
                backend_refs: vec![match mode {
                    GatewayMode::ForwardAuth => BackendRef {
                        name: up.service.clone(),
                        namespace: Some(upstream_ns),
                        port: Some(up.port),
                    },
                    GatewayMode::Proxy => BackendRef {
                        name: settings.verifier_gateway.name.clone(),
                        namespace: Some(settings.verifier_gateway.namespace.clone()),
                        port: Some(settings.verifier_gateway.port),
                    },
                }],
            }],
        },
        status: None,
    };
    let registration =
        spec.registration
            .as_ref()
            .filter(|r| r.enabled)
            .map(|r| RegistrationRequest {
                metadata: meta(api::names::registration_request(name)),
                spec: RegistrationRequestSpec {
                    name: r.name.clone().unwrap_or_else(|| name.to_owned()),
                    description: Some(description),
                    endpoint: format!("{}{}", settings.public_base_url.trim_end_matches('/'), path),
                    chain: valid.chain.caip2,
                    registry: None,
                    image: r.image.clone(),
                    services: r.services.clone(),
                    supported_trust: r.supported_trust.clone(),
                    skills: r.skills.clone(),
                    domains: r.domains.clone(),
                    metadata: r.metadata.clone(),
                    provenance: spec.provenance.clone(),
                    service_offer_name: Some(name.to_owned()),
                },
                status: None,
            });
    Ok(Desired {
        path,
        mode,
        middleware,
        payment_route,
        http_route,
        registration,
        has_routes,
        ambiguous,
        drain,
    })
}

/// The in-cluster address of Service port `port` of `service` in `namespace`.
pub fn in_cluster_url(service: &str, namespace: &str, port: i32) -> String {
    format!("http://{service}.{namespace}.svc.cluster.local:{port}")
}

/// In mode `proxy`, when the upstream Service is an `ExternalName` Service (`host`, and the
/// port the probe reached it at), the PaymentRoute names that host and port directly, as the
/// probe and the gateway reach it: the verifier then needs no cluster DNS to follow it.
pub fn reach_upstream_at(desired: &mut Desired, external: Option<&(String, i32)>) {
    if let (Some(proxy), Some((host, port))) = (desired.payment_route.spec.proxy.as_mut(), external)
    {
        proxy.upstream = format!("http://{host}:{port}");
    }
}

/// How the controller resolves chains for [`obol_api::ServiceOfferSpec::validate`]: obol-x402's
/// table.
pub fn chain(network: &str) -> Result<Chain, String> {
    let n = obol_x402::Network::resolve(network).map_err(|e| format!("use one of: {}", e.known))?;
    Ok(Chain {
        caip2: n.caip2().to_string(),
        has_usdc: n.usdc.is_some(),
    })
}

/// Labels on every child of offer `name`.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    let value = if api::names::is_dns1123_label(name) {
        name.to_owned()
    } else {
        // Label values are at most 63 characters; the hashed child name is a valid one.
        api::names::child_name("", name, "")
    };
    BTreeMap::from([
        (api::labels::SERVICE_OFFER.to_owned(), value),
        (
            api::labels::MANAGED_BY.to_owned(),
            api::FIELD_MANAGER.to_owned(),
        ),
    ])
}

/// The offer's description followed by the metering rule, the offer's part cut (on a character
/// boundary, with `…`) when both would not fit the route's limit: the rule is never cut.
fn metered_description(offer: &str, rule: &str) -> String {
    let room = api::validation::MAX_DESCRIPTION_LEN.saturating_sub(rule.len() + 1);
    let offer = if offer.len() <= room {
        offer.to_owned()
    } else {
        let mut end = room.saturating_sub('…'.len_utf8());
        while !offer.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &offer[..end])
    };
    format!("{offer} {rule}")
}
