//! Discovery on the local stack: the registrar's Service (an `ExternalName` Service naming the
//! registrar's loopback port, so the `agent-registration` HTTPRoute that `deploy/` ships
//! reaches it through the gateway), and the waits that prove registration works and that the
//! gateway serves the storefront's catalogue (`deploy/`'s `storefront-discovery` HTTPRoute to
//! the verifier's gateway listener).

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use obol_api::ServiceOffer;
use obol_api::routes::WELL_KNOWN_X402;
use serde_json::{Value, json};

use crate::identity::{FIELD_MANAGER, REGISTRAR};

/// The path every agent's discovery document is served at.
pub const WELL_KNOWN: &str = obol_api::routes::AGENT_REGISTRATION;
/// The port `deploy/registrar.yaml` gives the registrar's Service.
pub const REGISTRAR_SERVICE_PORT: i32 = 8080;

/// Points the registrar's Service (`obol-system/erc8004-registrar`, port 8080) at the local
/// registrar on `port`.
pub async fn registrar_service(client: &Client, port: u16) -> Result<(), String> {
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": REGISTRAR.service_account, "namespace": REGISTRAR.namespace},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                 "ports": [{"name": "http", "port": REGISTRAR_SERVICE_PORT, "protocol": "TCP", "targetPort": i32::from(port)}]}});
    Api::<Service>::namespaced(client.clone(), REGISTRAR.namespace)
        .patch(
            REGISTRAR.service_account,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&svc),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("registrar Service: {e}"))
}

/// Waits until offer `namespace/name` shows an agent id; returns (agent id, transaction).
pub async fn wait_registered(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(String, String), String> {
    let api: Api<ServiceOffer> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let offer = api.get(name).await.map_err(|e| e.to_string())?;
        let status = offer.status.unwrap_or_default();
        if let (Some(id), Some(tx)) = (&status.agent_id, &status.registration_tx_hash) {
            return Ok((id.clone(), tx.clone()));
        }
        if tokio::time::Instant::now() >= deadline {
            let registered = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Registered")
                .map(|c| format!("{} {} {}", c.status.as_str(), c.reason, c.message))
                .unwrap_or_else(|| "no Registered condition".into());
            return Err(format!(
                "{namespace}/{name} not registered after {}s: {registered}",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the gateway serves the discovery document naming `agent_id`.
pub async fn wait_well_known(
    gateway_url: &str,
    agent_id: &str,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{gateway_url}{WELL_KNOWN}");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let answer = match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
            _ => None,
        };
        if let Some(doc) = answer
            && doc["registrations"].as_array().is_some_and(|r| {
                r.iter().any(|e| {
                    e["agentId"].as_u64().map(|id| id.to_string()).as_deref() == Some(agent_id)
                })
            })
        {
            return Ok(doc);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "{url} does not name agent {agent_id} after {}s",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The item of `offer` that the x402 discovery manifest ([`WELL_KNOWN_X402`]) lists as paid
/// and available, with at least one way to pay. The manifest names an item's offer by its
/// PaymentRoute (`namespace/x402-<offer>`, [`obol_api::names::payment_route`]), so `offer` is
/// that key ([`catalogue_key`]). Pure.
pub fn paid_item<'a>(manifest: &'a Value, offer: &str) -> Option<&'a Value> {
    manifest["items"].as_array()?.iter().find(|item| {
        item["offer"] == offer
            && item["gate"] == "paid"
            && item["available"] == true
            && item["accepts"].as_array().is_some_and(|a| !a.is_empty())
    })
}

/// How the discovery manifest names offer `namespace/name`: its PaymentRoute's key.
pub fn catalogue_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{}", obol_api::names::payment_route(name))
}

/// Waits until the gateway's catalogue lists `offer` ([`catalogue_key`]) as paid
/// ([`paid_item`]); returns the manifest.
pub async fn wait_catalogue(
    gateway_url: &str,
    offer: &str,
    timeout: Duration,
) -> Result<Value, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{gateway_url}{WELL_KNOWN_X402}");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (last, doc) = match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                Ok(doc) => (doc.to_string(), Some(doc)),
                Err(e) => (e.to_string(), None),
            },
            Ok(r) => (format!("HTTP {}", r.status()), None),
            Err(e) => (e.to_string(), None),
        };
        if let Some(doc) = doc
            && paid_item(&doc, offer).is_some()
        {
            return Ok(doc);
        }
        if tokio::time::Instant::now() >= deadline {
            let last: String = last.chars().take(2000).collect();
            return Err(format!(
                "{url} does not list {offer} as paid after {}s (last answer: {last})",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paid_item_table() {
        let pay = json!([{"scheme": "exact", "amount": "1000"}]);
        let item = |offer: &str, gate: &str, available: bool, accepts: &Value| json!({"offer": offer, "gate": gate, "available": available, "accepts": accepts});
        let cases = [
            (
                json!({"items": [item("demo/x402-demo", "paid", true, &pay)]}),
                true,
            ),
            (
                json!({"items": [item("demo/x402-demo", "free", true, &json!([])), item("demo/x402-demo", "paid", true, &pay)]}),
                true,
            ),
            (
                json!({"items": [item("demo/x402-other", "paid", true, &pay)]}),
                false,
            ),
            (
                json!({"items": [item("demo/x402-demo", "free", true, &pay)]}),
                false,
            ),
            (
                json!({"items": [item("demo/x402-demo", "paid", false, &pay)]}),
                false,
            ),
            (
                json!({"items": [item("demo/x402-demo", "paid", true, &json!([]))]}),
                false,
            ),
            (json!({"items": []}), false),
            (json!({"x402Version": 2}), false),
            (json!("not a manifest"), false),
        ];
        assert_eq!(catalogue_key("demo", "demo"), "demo/x402-demo");
        for (doc, listed) in cases {
            assert_eq!(paid_item(&doc, "demo/x402-demo").is_some(), listed, "{doc}");
        }
    }
}
