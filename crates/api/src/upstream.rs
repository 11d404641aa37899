//! Where an upstream is reached, one rule for the controller's probe, the CLI preflight and the
//! dev gateway adapter:
//! - an `ExternalName` Service ([`external_target`]): its host name, at the matching port's
//!   numeric `targetPort` (how the one-machine stack points at processes on loopback, which
//!   Endpoints may not name);
//! - any other Service ([`targets`]): the ready addresses of its Endpoints, at the endpoint
//!   port **named** like the Service port the offer names (the Endpoints controller copies
//!   Service port names, and kube-proxy matches by name), else a subset's **only** port, else,
//!   for a subset that lists no ports, the Service port itself. Never "the first port" nor "the
//!   same number": endpoint ports are target ports, so a number match is a coincidence and the
//!   first of several ports may be another protocol (the CLI used to pick either and could
//!   refuse a healthy upstream).

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// For an `ExternalName` Service: its host name and the port to reach it at for Service port
/// `port` (the matching port's numeric `targetPort` when declared, else `port`). `None` for
/// any other Service.
pub fn external_target(service: &Service, port: i32) -> Option<(String, i32)> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() != Some("ExternalName") {
        return None;
    }
    let host = spec.external_name.clone().filter(|h| !h.is_empty())?;
    let target = spec
        .ports
        .iter()
        .flatten()
        .find(|p| p.port == port)
        .and_then(|p| match &p.target_port {
            Some(IntOrString::Int(target)) => Some(*target),
            _ => None,
        })
        .unwrap_or(port);
    Some((host, target))
}

/// The `(ip, port)` pairs a non-`ExternalName` upstream is reached at, by the rule above.
pub fn targets(service: &Service, endpoints: &Endpoints, port: i32) -> Vec<(String, u16)> {
    let svc_port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == port));
    let port_name = svc_port.and_then(|p| p.name.clone());
    let mut out = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = subset.ports.as_deref().unwrap_or_default();
        let chosen = match &port_name {
            Some(name) => ports.iter().find(|p| p.name.as_ref() == Some(name)),
            None => None,
        }
        .or(match ports {
            [only] => Some(only),
            _ => None,
        });
        let Some(number) = chosen
            .map(|p| p.port)
            .or(if ports.is_empty() { Some(port) } else { None })
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            out.push((address.ip.clone(), number));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "up"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn external_name_targets() {
        let mapped = svc(
            serde_json::json!({"type": "ExternalName", "externalName": "localhost",
            "ports": [{"name": "http", "port": 8080, "targetPort": 18082}]}),
        );
        assert_eq!(
            external_target(&mapped, 8080),
            Some(("localhost".into(), 18082))
        );
        assert_eq!(
            external_target(&mapped, 9000),
            Some(("localhost".into(), 9000))
        );
        let bare = svc(serde_json::json!({"type": "ExternalName", "externalName": "localhost"}));
        assert_eq!(
            external_target(&bare, 8080),
            Some(("localhost".into(), 8080))
        );
        let cluster_ip = svc(serde_json::json!({"ports": [{"port": 8080}]}));
        assert_eq!(external_target(&cluster_ip, 8080), None);
        let empty = svc(serde_json::json!({"type": "ExternalName", "externalName": ""}));
        assert_eq!(external_target(&empty, 8080), None);
    }

    fn with_ports(ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "up"}, "spec": {"ports": ports}}))
            .unwrap()
    }

    fn eps(subsets: serde_json::Value) -> Endpoints {
        serde_json::from_value(json!({"metadata": {"name": "up"}, "subsets": subsets})).unwrap()
    }

    #[test]
    fn endpoint_targets() {
        let one = with_ports(json!([{"port": 8080}]));
        let named =
            with_ports(json!([{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}]));
        let cases = [
            (
                &one,
                json!([{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 31000}]}]),
                vec![("127.0.0.1", 31000)],
            ),
            (
                &one,
                json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "notReadyAddresses": [{"ip": "10.0.0.3"}], "ports": [{"port": 80}]}]),
                vec![("10.0.0.1", 80), ("10.0.0.2", 80)],
            ),
            (
                &named,
                json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "admin", "port": 9}, {"name": "http", "port": 81}]}]),
                vec![("10.0.0.1", 81)],
            ),
            (
                &one,
                json!([{"notReadyAddresses": [{"ip": "10.0.0.3"}], "ports": [{"port": 80}]}]),
                vec![],
            ),
            (&one, json!([]), vec![]),
            // The Service port's name picks the endpoint port, not its number nor the first.
            (
                &named,
                json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "admin", "port": 8080}, {"name": "http", "port": 81}]}]),
                vec![("10.0.0.1", 81)],
            ),
            // No ports listed: the Service port.
            (
                &one,
                json!([{"addresses": [{"ip": "10.0.0.1"}]}]),
                vec![("10.0.0.1", 8080)],
            ),
        ];
        for (i, (service, subsets, want)) in cases.into_iter().enumerate() {
            let got = targets(service, &eps(subsets), 8080);
            let want: Vec<(String, u16)> =
                want.into_iter().map(|(a, p)| (a.to_owned(), p)).collect();
            assert_eq!(got, want, "case {i}");
        }
    }
}
