//! The minimal Traefik `Middleware` (`traefik.io/v1alpha1`) the controller writes: ForwardAuth to
//! the verifier. Only the fields we set are modelled; unknown fields are not preserved, so this
//! type is for writing our own Middlewares, not for editing others'.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The verifier's ForwardAuth route (axum path syntax): the Middleware of an offer calls it
/// with the namespace and name of the offer's PaymentRoute ([`verify_address`]).
pub const VERIFY_ROUTE: &str = "/verify/{namespace}/{name}";

/// Header the verifier sets on a paid answer: the payer's address (for the upstream). Header
/// names are case-insensitive; these are written in the lower case HTTP/2 sends.
pub const X_PAYMENT_PAYER: &str = "x-payment-payer";
/// Header the verifier sets on a paid answer: the settlement transaction (for the upstream).
pub const X_PAYMENT_TX: &str = "x-payment-tx";

/// Headers Traefik copies from a 2xx verifier answer onto the upstream request: the
/// `upstreamAuth` credential and the two payment headers above.
pub const AUTH_RESPONSE_HEADERS: [&str; 3] = ["Authorization", X_PAYMENT_PAYER, X_PAYMENT_TX];

/// The ForwardAuth address for PaymentRoute `name` in `namespace` at the verifier's base URL:
/// [`VERIFY_ROUTE`] filled in.
pub fn verify_address(verifier_url: &str, namespace: &str, name: &str) -> String {
    let path = VERIFY_ROUTE
        .replace("{namespace}", namespace)
        .replace("{name}", name);
    format!("{}{path}", verifier_url.trim_end_matches('/'))
}

/// A Traefik Middleware.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "traefik.io",
    version = "v1alpha1",
    kind = "Middleware",
    namespaced,
    doc = "Traefik Middleware (only the forwardAuth part)."
)]
#[serde(rename_all = "camelCase")]
pub struct MiddlewareSpec {
    /// ForwardAuth settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_auth: Option<ForwardAuth>,
}

/// Traefik's ForwardAuth middleware.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwardAuth {
    /// URL called (with GET) for every request.
    pub address: String,
    /// Trust the client's `X-Forwarded-*` headers. Always false: the verifier prices by them.
    #[serde(default)]
    pub trust_forward_header: bool,
    /// Headers copied from the auth answer onto the upstream request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_response_headers: Vec<String>,
    /// Largest auth answer body Traefik reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_body_size: Option<i64>,
}

impl ForwardAuth {
    /// ForwardAuth to `address` with the headers the verifier returns.
    pub fn to_verifier(address: String) -> Self {
        Self {
            address,
            trust_forward_header: false,
            auth_response_headers: AUTH_RESPONSE_HEADERS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            max_response_body_size: Some(65536),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_address_fills_the_route() {
        assert_eq!(
            verify_address("http://x402-verifier.x402.svc:8080/", "llm", "x402-demo"),
            "http://x402-verifier.x402.svc:8080/verify/llm/x402-demo"
        );
        // The route has exactly the two placeholders the builder fills.
        let placeholders: Vec<&str> = VERIFY_ROUTE
            .split('/')
            .filter(|s| s.starts_with('{'))
            .collect();
        assert_eq!(placeholders, ["{namespace}", "{name}"]);
    }
}
