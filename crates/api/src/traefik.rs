//! The minimal Traefik `Middleware` (`traefik.io/v1alpha1`) the controller writes: ForwardAuth to
//! the verifier. Only the fields we set are modelled; unknown fields are not preserved, so this
//! type is for writing our own Middlewares, not for editing others'.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Headers Traefik copies from a 2xx verifier answer onto the upstream request.
pub const AUTH_RESPONSE_HEADERS: [&str; 4] = [
    "Authorization",
    "X-Payment-Status",
    "X-Payment-Payer",
    "X-Payment-Tx",
];

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
