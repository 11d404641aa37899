//! Where an upstream Service is reached when it is an `ExternalName` Service: how the
//! one-machine stack points at processes on loopback (Endpoints may not name 127.0.0.0/8).
//! The controller's probe, the dev gateway adapter and the CLI preflight share this rule.

use k8s_openapi::api::core::v1::Service;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
