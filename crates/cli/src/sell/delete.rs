//! `obol sell delete NAME`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject};
use kube::core::ApiResource;
use kube::{Api, Client, Resource};
use obol_api::gateway::HttpRoute;
use obol_api::traefik::Middleware;
use obol_api::{PaymentRoute, RegistrationRequest, ServiceOffer, names};

use super::parse_duration;
use crate::failure::{Failure, NOT_FOUND, REFUSED, TIMEOUT};
use crate::kube_args::KubeArgs;

/// `obol sell delete NAME`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Offer name.
    name: String,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long, visible_alias = "force")]
    yes: bool,
    /// How long to wait for the cleanup.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    timeout: Duration,
}

/// The children an offer can have: (kind, name).
fn children(offer: &str) -> Vec<(&'static str, ApiResource, String)> {
    vec![
        (
            "Middleware",
            ApiResource::erase::<Middleware>(&()),
            names::middleware(offer),
        ),
        (
            "PaymentRoute",
            ApiResource::erase::<PaymentRoute>(&()),
            names::payment_route(offer),
        ),
        (
            "HTTPRoute",
            ApiResource::erase::<HttpRoute>(&()),
            names::http_route(offer),
        ),
        (
            "RegistrationRequest",
            ApiResource::erase::<RegistrationRequest>(&()),
            names::registration_request(offer),
        ),
    ]
}

async fn existing_children(
    client: &Client,
    ns: &str,
    offer: &ServiceOffer,
) -> Vec<(String, Api<DynamicObject>, String)> {
    let uid = offer.meta().uid.clone();
    let mut found = vec![];
    for (kind, ar, name) in children(offer.metadata.name.as_deref().unwrap_or_default()) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        // Missing CRDs (e.g. no Traefik) or objects owned by someone else are not ours to report.
        if let Ok(Some(obj)) = api.get_opt(&name).await {
            let ours = obj
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| Some(&r.uid) == uid.as_ref());
            if ours {
                found.push((kind.to_owned(), api, name));
            }
        }
    }
    found
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            REFUSED,
            "not a terminal: pass --yes to delete without asking",
        )
        .into());
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

impl DeleteArgs {
    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        let (client, ns) = kube.connect().await?;
        let offers: Api<ServiceOffer> = Api::namespaced(client.clone(), &ns);
        let Some(offer) = offers.get_opt(&self.name).await? else {
            return Err(Failure::new(
                NOT_FOUND,
                format!("ServiceOffer {ns}/{} not found", self.name),
            )
            .into());
        };
        if !self.yes
            && !confirm(&format!(
                "Delete ServiceOffer {ns}/{} and stop selling it?",
                self.name
            ))?
        {
            println!("Nothing deleted.");
            return Ok(());
        }
        let kids = existing_children(&client, &ns, &offer).await;
        offers
            .delete(&self.name, &DeleteParams::background())
            .await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut pending: Vec<String> = vec![format!("ServiceOffer {}", self.name)];
        let mut delay = Duration::from_millis(50);
        loop {
            pending.clear();
            if offers.get_opt(&self.name).await?.is_some() {
                pending.push(format!("ServiceOffer {}", self.name));
            }
            for (kind, api, name) in &kids {
                if api.get_opt(name).await?.is_some() {
                    pending.push(format!("{kind} {name}"));
                }
            }
            if pending.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
        if !pending.is_empty() {
            return Err(Failure::new(
                TIMEOUT,
                format!(
                    "cleanup not finished after {}s; still present: {}",
                    self.timeout.as_secs(),
                    pending.join(", ")
                ),
            )
            .into());
        }
        println!("Removed ServiceOffer {ns}/{}", self.name);
        for (kind, _, name) in &kids {
            println!("Removed {kind} {ns}/{name}");
        }
        Ok(())
    }
}
