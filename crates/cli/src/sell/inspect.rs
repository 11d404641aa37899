//! `obol sell status`, `obol sell list`, `obol sell test`.

use std::time::Duration;

use kube::Api;
use kube::api::ListParams;
use obol_api::ServiceOffer;
use obol_api::service_offer::GatewayMode;

use super::{Output, render};
use crate::failure::{Failure, NOT_FOUND, NOT_GATED, REFUSED};
use crate::kube_args::KubeArgs;

/// `obol sell status [NAME]`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Offer name (all offers of the namespace when omitted).
    name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
}

/// `obol sell list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// All namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
}

/// `obol sell test NAME`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Offer name.
    name: String,
    /// Gateway base URL.
    #[arg(
        long,
        env = "OBOL_GATEWAY_URL",
        default_value = "http://obol.stack:8080"
    )]
    gateway: String,
    /// Path below the offer's endpoint to request.
    #[arg(long, default_value = "/")]
    path: String,
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn print_offers(offers: &[ServiceOffer], output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(offers)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(offers)?),
        Output::Text => {
            let texts: Vec<String> = offers.iter().map(|o| render::status(o, now())).collect();
            print!("{}", texts.join("\n"));
        }
    }
    Ok(())
}

async fn get_offer(api: &Api<ServiceOffer>, ns: &str, name: &str) -> anyhow::Result<ServiceOffer> {
    api.get_opt(name).await?.ok_or_else(|| {
        Failure::new(
            NOT_FOUND,
            format!("ServiceOffer {ns}/{name} not found (obol sell list -A)"),
        )
        .into()
    })
}

impl StatusArgs {
    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        let (client, ns) = kube.connect().await?;
        let api: Api<ServiceOffer> = Api::namespaced(client, &ns);
        let offers = match &self.name {
            Some(name) => vec![get_offer(&api, &ns, name).await?],
            None => api.list(&ListParams::default()).await?.items,
        };
        if offers.is_empty() && matches!(self.output, Output::Text) {
            println!("No ServiceOffers in namespace {ns}.");
            return Ok(());
        }
        match (&self.name, self.output) {
            (Some(_), Output::Json) => println!("{}", serde_json::to_string_pretty(&offers[0])?),
            (Some(_), Output::Yaml) => print!("{}", serde_yaml::to_string(&offers[0])?),
            _ => print_offers(&offers, self.output)?,
        }
        Ok(())
    }
}

impl ListArgs {
    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        let (client, ns) = kube.connect().await?;
        let api: Api<ServiceOffer> = if self.all_namespaces {
            Api::all(client)
        } else {
            Api::namespaced(client, &ns)
        };
        let mut offers = api.list(&ListParams::default()).await?.items;
        offers.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        match self.output {
            Output::Text => print!("{}", render::list(&offers, now())),
            Output::Json => println!("{}", serde_json::to_string_pretty(&offers)?),
            Output::Yaml => print!("{}", serde_yaml::to_string(&offers)?),
        }
        Ok(())
    }
}

/// What a probe through the gateway means, for an offer in gateway mode `mode`.
pub fn explain(status: u16, mode: GatewayMode) -> (bool, &'static str) {
    match (status, mode) {
        (500 | 502, GatewayMode::Proxy) => (
            false,
            "The gateway could not reach the verifier's gateway port (the verifier Service's 'gateway' port, its --gateway-listen), or the verifier could not reach the upstream.",
        ),
        (503, GatewayMode::Proxy) => (
            false,
            "The verifier has not loaded this offer's route yet, or cannot take payments now (its answer's reason says which).",
        ),
        _ => explain_any(status),
    }
}

fn explain_any(status: u16) -> (bool, &'static str) {
    match status {
        402 => (true, "Endpoint is live and payment-gated."),
        200..=299 => (
            false,
            "The endpoint answered without payment: it is NOT payment-gated.",
        ),
        503 => (
            false,
            "The gate is not ready: the verifier has not loaded this offer's route yet.",
        ),
        404 => (
            false,
            "The gateway has no route for this path: the offer is not published (yet).",
        ),
        500 | 502 => (
            false,
            "The gateway could not reach the verifier or the upstream.",
        ),
        _ => (false, "Unexpected answer; see obol sell status."),
    }
}

impl TestArgs {
    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        let (client, ns) = kube.connect().await?;
        let api: Api<ServiceOffer> = Api::namespaced(client, &ns);
        let offer = get_offer(&api, &ns, &self.name).await?;
        let endpoint = offer
            .status
            .as_ref()
            .and_then(|s| s.endpoint.clone())
            .unwrap_or_default();
        if endpoint.is_empty() {
            return Err(Failure::new(
                REFUSED,
                format!("{} has no endpoint (not yet reconciled?)", self.name),
            )
            .into());
        }
        if !endpoint.starts_with('/') || endpoint.contains("..") || self.path.contains("..") {
            return Err(Failure::new(
                REFUSED,
                format!("refusing to probe suspicious endpoint {endpoint:?}"),
            )
            .into());
        }
        let url = format!(
            "{}{}{}",
            self.gateway.trim_end_matches('/'),
            endpoint.trim_end_matches('/'),
            if self.path.starts_with('/') {
                self.path.clone()
            } else {
                format!("/{}", self.path)
            }
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let resp = http
            .get(&url)
            .header("accept", "application/json")
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let mode = offer.spec.gateway_mode();
        println!("GET {url} → HTTP {status} (gateway mode {mode})");
        if status == 402
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&body)
        {
            let accept = &json["accepts"][0];
            let amount = accept["maxAmountRequired"]
                .as_str()
                .or(accept["amount"].as_str());
            println!(
                "Price: {} atomic units on {} to {}",
                amount.unwrap_or("?"),
                accept["network"].as_str().unwrap_or("?"),
                accept["payTo"].as_str().unwrap_or("?")
            );
        }
        let (ok, meaning) = explain(status, mode);
        println!("{meaning}");
        if ok {
            Ok(())
        } else {
            Err(Failure::new(
                NOT_GATED,
                format!("{} is not live and gated (HTTP {status})", self.name),
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{GatewayMode, explain};

    #[test]
    fn probe_answers_are_explained_in_each_mode() {
        for mode in [GatewayMode::Proxy, GatewayMode::ForwardAuth] {
            assert!(explain(402, mode).0);
            for status in [200, 204, 503, 404, 500, 502, 418] {
                let (ok, text) = explain(status, mode);
                assert!(!ok, "{status}");
                assert!(!text.is_empty());
            }
            assert!(explain(200, mode).1.contains("NOT payment-gated"));
        }
        assert!(explain(502, GatewayMode::Proxy).1.contains("gateway port"));
        assert!(
            explain(502, GatewayMode::ForwardAuth)
                .1
                .contains("verifier or the upstream")
        );
        assert_ne!(
            explain(503, GatewayMode::Proxy).1,
            explain(503, GatewayMode::ForwardAuth).1
        );
    }
}
