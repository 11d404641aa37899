//! The CRD YAML in `deploy/crds/`, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{PaymentRoute, PurchaseRequest, RegistrationRequest, ServiceOffer};

/// The command that rewrites `deploy/crds/` (from the repository root).
pub const REGENERATE: &str = "cargo run -p obol-cli --bin obol -- crdgen --out deploy/crds";

/// The project's CRDs.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        ServiceOffer::crd(),
        PaymentRoute::crd(),
        RegistrationRequest::crd(),
        PurchaseRequest::crd(),
    ]
}

/// Each CRD as `(file name, YAML text)`, the file named after the CRD (`serviceoffers.obol.org.yaml`).
pub fn render() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let body = serde_yaml::to_string(&crd)?;
            let text = format!(
                "# Generated from the Rust types; do not edit. Regenerate: {REGENERATE}\n{body}"
            );
            Ok((format!("{name}.yaml"), text))
        })
        .collect()
}
