//! The Gateway API and Traefik CRDs present, and the Gateway(s) the shipped routes attach to
//! taken by their controller (Traefik): `Accepted` and `Programmed`.

use std::collections::BTreeSet;

use kube::{Api, Client, CustomResourceExt as _};
use obol_api::gateway::{Gateway, HttpRoute};
use obol_api::traefik::Middleware;
use obol_deploy::Object;

use super::Verdict;

/// The CRDs of others the product needs: HTTPRoutes (the controller's routes), the Gateways
/// they attach to, Traefik's Middlewares (gateway mode `forwardAuth`).
pub fn needed_crds() -> Vec<String> {
    vec![
        HttpRoute::crd_name().to_owned(),
        Gateway::crd_name().to_owned(),
        Middleware::crd_name().to_owned(),
    ]
}

/// Every needed CRD is in the cluster.
pub fn judge_gateway_crds(needed: &[String], found: &BTreeSet<String>) -> Verdict {
    const CHECK: &str = "gateway-crds";
    let missing: Vec<&str> = needed
        .iter()
        .filter(|n| !found.contains(*n))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Verdict::ok(CHECK, format!("{} present", needed.join(", ")))
    } else {
        Verdict::bad(
            CHECK,
            format!("missing: {}", missing.join(", ")),
            "install the Gateway API CRDs (standard channel) and Traefik with its CRDs and its kubernetesGateway provider",
        )
    }
}

/// The Gateways (`namespace`, `name`) the manifests' HTTPRoutes attach to. Pure.
pub fn shipped_gateways(objects: &[Object]) -> BTreeSet<(String, String)> {
    objects
        .iter()
        .filter(|o| o.kind() == "HTTPRoute")
        .flat_map(|route| {
            let route_ns = route.namespace().unwrap_or("default").to_owned();
            route.0["spec"]["parentRefs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p["kind"].as_str().is_none_or(|k| k == "Gateway"))
                .filter_map(move |p| {
                    let name = p["name"].as_str()?.to_owned();
                    let ns = p["namespace"].as_str().unwrap_or(&route_ns).to_owned();
                    Some((ns, name))
                })
        })
        .collect()
}

/// Each Gateway as read: absent (`None`), or what its controller has not yet set.
pub type GatewayFacts = Vec<((String, String), Result<Option<Vec<&'static str>>, String>)>;

/// Every Gateway the routes attach to exists and its controller took it.
pub fn judge_gateways(facts: &GatewayFacts) -> Verdict {
    const CHECK: &str = "gateway";
    if facts.is_empty() {
        return Verdict::bad(
            CHECK,
            "the manifests attach no route to a Gateway",
            "pass the kustomization that was installed (-k DIR)",
        );
    }
    for ((ns, name), fact) in facts {
        match fact {
            Err(e) => {
                return Verdict::bad(
                    CHECK,
                    format!("Gateway {ns}/{name}: {e}"),
                    "fix the gateway-crds check first",
                );
            }
            Ok(None) => {
                return Verdict::bad(
                    CHECK,
                    format!("no Gateway {ns}/{name} (the routes attach to it)"),
                    "create it with Traefik (its Helm chart's gateway), or point the controller's --gateway-name/--gateway-namespace at yours",
                );
            }
            Ok(Some(pending)) if !pending.is_empty() => {
                return Verdict::bad(
                    CHECK,
                    format!("Gateway {ns}/{name} is not {}", pending.join(", ")),
                    format!(
                        "check that Traefik runs with its kubernetesGateway provider and serves the Gateway's class: kubectl -n {ns} describe gateway {name}"
                    ),
                );
            }
            Ok(Some(_)) => {}
        }
    }
    let names: Vec<String> = facts
        .iter()
        .map(|((ns, name), _)| format!("{ns}/{name}"))
        .collect();
    Verdict::ok(
        CHECK,
        format!("{} Accepted and Programmed", names.join(", ")),
    )
}

/// Reads each Gateway.
pub async fn gather(client: &Client, gateways: BTreeSet<(String, String)>) -> GatewayFacts {
    let mut facts = vec![];
    for (ns, name) in gateways {
        let api: Api<Gateway> = Api::namespaced(client.clone(), &ns);
        let fact = api
            .get_opt(&name)
            .await
            .map(|g| g.map(|g| g.not_taken()))
            .map_err(|e| match e {
                kube::Error::Api(s) if s.code == 404 => "the Gateway kind is not served".to_owned(),
                e => e.to_string(),
            });
        facts.push(((ns, name), fact));
    }
    facts
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn gateway_crds_must_be_present() {
        let needed = needed_crds();
        assert_eq!(
            needed,
            [
                "httproutes.gateway.networking.k8s.io",
                "gateways.gateway.networking.k8s.io",
                "middlewares.traefik.io"
            ]
        );
        let all: BTreeSet<String> = needed.iter().cloned().collect();
        assert!(judge_gateway_crds(&needed, &all).fix.is_none());
        let mut some = all.clone();
        some.remove("gateways.gateway.networking.k8s.io");
        let v = judge_gateway_crds(&needed, &some);
        assert_eq!(v.finding, "missing: gateways.gateway.networking.k8s.io");
        assert!(v.fix.is_some());
    }

    #[test]
    fn the_gateways_are_those_the_routes_attach_to() {
        let route = |ns: &str, parents: serde_json::Value| {
            Object(
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                          "metadata": {"name": "r", "namespace": ns},
                          "spec": {"parentRefs": parents}}),
            )
        };
        let objects = vec![
            route(
                "a",
                json!([{"name": "gw", "namespace": "traefik"}, {"name": "local"}]),
            ),
            route(
                "b",
                json!([{"name": "gw", "namespace": "traefik", "sectionName": "web"},
                       {"name": "svc", "kind": "Service"}]),
            ),
            Object(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                          "spec": {"parentRefs": [{"name": "no"}]}}),
            ),
        ];
        let found: Vec<(String, String)> = shipped_gateways(&objects).into_iter().collect();
        assert_eq!(
            found,
            [
                ("a".to_owned(), "local".to_owned()),
                ("traefik".to_owned(), "gw".to_owned())
            ]
        );
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
        let shipped = shipped_gateways(&obol_deploy::kustomize::render(&deploy).unwrap());
        assert_eq!(
            shipped.into_iter().collect::<Vec<_>>(),
            [("traefik".to_owned(), "traefik-gateway".to_owned())]
        );
    }

    #[test]
    fn gateway_verdicts() {
        let gw = || ("traefik".to_owned(), "gw".to_owned());
        let cases: Vec<(GatewayFacts, Option<&str>, &str)> = vec![
            (
                vec![(gw(), Ok(Some(vec![])))],
                None,
                "traefik/gw Accepted and Programmed",
            ),
            (
                vec![(gw(), Ok(Some(vec!["Programmed"])))],
                Some("kubernetesGateway provider"),
                "Gateway traefik/gw is not Programmed",
            ),
            (
                vec![(gw(), Ok(Some(vec!["Accepted", "Programmed"])))],
                Some("kubectl -n traefik describe gateway gw"),
                "Gateway traefik/gw is not Accepted, Programmed",
            ),
            (
                vec![(gw(), Ok(None))],
                Some("--gateway-name"),
                "no Gateway traefik/gw (the routes attach to it)",
            ),
            (
                vec![(gw(), Err("404 page not found".into()))],
                Some("gateway-crds"),
                "Gateway traefik/gw: 404 page not found",
            ),
            (
                vec![],
                Some("-k DIR"),
                "the manifests attach no route to a Gateway",
            ),
        ];
        for (facts, fix, finding) in cases {
            let v = judge_gateways(&facts);
            assert_eq!(v.finding, finding);
            match fix {
                None => assert_eq!(v.fix, None, "{}", v.line()),
                Some(f) => assert!(
                    v.fix.as_deref().is_some_and(|x| x.contains(f)),
                    "{}",
                    v.line()
                ),
            }
        }
    }
}
