//! The desired children of an offer, as pure functions of its spec and the [`Settings`].

use std::collections::BTreeMap;

use kube::Resource;
use kube::api::ObjectMeta;
use obol_api as api;
use obol_api::gateway::{
    BackendRef, HttpRoute, HttpRouteFilter, HttpRouteMatch, HttpRouteRule, HttpRouteSpec,
    LocalObjectReference, ParentReference, PathMatch, PathModifier, UrlRewrite,
};
use obol_api::price::{self, PriceSource};
use obol_api::traefik::{ForwardAuth, Middleware, MiddlewareSpec};
use obol_api::{
    PaymentRoute, PaymentRouteSpec, PriceModel, RegistrationRequest, RegistrationRequestSpec,
    ServiceOffer,
};

use super::{InvalidSpec, Settings};

/// The children an offer should have. The RegistrationRequest is `None` when registration is
/// disabled; whether it is applied yet is decided later ([`super::status::registration_due`]).
#[derive(Clone, Debug)]
pub struct Desired {
    /// The path the offer is published at.
    pub path: String,
    /// ForwardAuth to the verifier, for this offer's PaymentRoute.
    pub middleware: Middleware,
    /// The verifier's view of the offer.
    pub payment_route: PaymentRoute,
    /// The Gateway route (applied only once the payment gate is ready: fail closed).
    pub http_route: HttpRoute,
    /// The ERC-8004 registration, when enabled.
    pub registration: Option<RegistrationRequest>,
}

/// Computes the children of `offer`, or says why its spec is invalid.
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

    let path = spec.effective_path(name);
    if !api::validation::is_path(&path) {
        return Err(InvalidSpec(format!(
            "spec.path {path:?} is not a URL path of [a-zA-Z0-9/_.-]"
        )));
    }
    let up = &spec.upstream;
    if up.service.is_empty() || !api::names::is_dns1123_label(&up.service) {
        return Err(InvalidSpec(format!(
            "spec.upstream.service {:?} is not a Service name",
            up.service
        )));
    }
    if !(1..=65535).contains(&up.port) {
        return Err(InvalidSpec(format!(
            "spec.upstream.port {} is outside 1..65535",
            up.port
        )));
    }
    if !up.health_path.starts_with('/') {
        return Err(InvalidSpec(format!(
            "spec.upstream.healthPath {:?} must start with /",
            up.health_path
        )));
    }
    let payment = &spec.payment;
    if !api::validation::is_address(&payment.pay_to) {
        return Err(InvalidSpec(format!(
            "spec.payment.payTo {:?} is not an address",
            payment.pay_to
        )));
    }
    let network = obol_x402::Network::resolve(&payment.network)
        .map_err(|e| InvalidSpec(format!("spec.payment.network: {e}")))?;
    let (asset, decimals) = match &payment.asset {
        Some(a) if api::validation::is_address(&a.address) => (Some(a.address.clone()), a.decimals),
        Some(a) => {
            return Err(InvalidSpec(format!(
                "spec.payment.asset.address {:?} is not an address",
                a.address
            )));
        }
        None if network.usdc.is_some() => (None, api::price::USDC_DECIMALS),
        None => {
            return Err(InvalidSpec(format!(
                "network {} has no known USDC; set spec.payment.asset",
                network.name
            )));
        }
    };
    let price = price::effective_price(spec.price_input(), decimals)
        .map_err(|e| InvalidSpec(format!("spec.payment.price: {e}")))?;
    let per_mtok = match price.source {
        PriceSource::PerMTok => Some(
            price
                .original
                .to_atomic(decimals)
                .map_err(|e| InvalidSpec(format!("spec.payment.price.perMTok: {e}")))?
                .to_string(),
        ),
        _ => None,
    };

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

    let middleware = Middleware {
        metadata: meta(mw_name.clone()),
        spec: MiddlewareSpec {
            forward_auth: Some(ForwardAuth::to_verifier(format!(
                "{}/verify/{namespace}/{pr_name}",
                settings.verifier_url.trim_end_matches('/')
            ))),
        },
    };
    let payment_route = PaymentRoute {
        metadata: meta(pr_name),
        spec: PaymentRouteSpec {
            pattern: format!("{}/*", path.trim_end_matches('/')),
            price: price.atomic.to_string(),
            pay_to: payment.pay_to.clone(),
            network: network.caip2().to_string(),
            asset,
            facilitator_url: None,
            price_model: Some(match price.source {
                PriceSource::PerRequest => PriceModel::PerRequest,
                PriceSource::PerMTok => PriceModel::PerMTok,
                PriceSource::PerHour => PriceModel::PerHour,
            }),
            per_mtok,
            approx_tokens_per_request: price.approx_tokens_per_request,
            description: Some(description.clone()),
            max_timeout_seconds: Some(payment.max_timeout_seconds),
            upstream_auth: None,
            proxy: None,
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
                filters: vec![
                    HttpRouteFilter {
                        type_: "ExtensionRef".into(),
                        extension_ref: Some(LocalObjectReference {
                            group: "traefik.io".into(),
                            kind: "Middleware".into(),
                            name: mw_name,
                        }),
                        url_rewrite: None,
                    },
                    HttpRouteFilter {
                        type_: "URLRewrite".into(),
                        extension_ref: None,
                        url_rewrite: Some(UrlRewrite {
                            path: Some(PathModifier {
                                type_: "ReplacePrefixMatch".into(),
                                replace_prefix_match: Some("/".into()),
                                replace_full_path: None,
                            }),
                        }),
                    },
                ],
                backend_refs: vec![BackendRef {
                    name: up.service.clone(),
                    namespace: Some(spec.upstream_namespace(namespace).to_owned()),
                    port: Some(up.port),
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
                    chain: network.caip2().to_string(),
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
        middleware,
        payment_route,
        http_route,
        registration,
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
