//! `obol buy delete NAME`.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::DeleteParams;
use obol_api::purchase_request::PurchaseRequest;

use super::http::ask;
use super::inspect::get_purchase;
use crate::failure::{Failure, REFUSED, TIMEOUT};
use crate::kube_args::KubeArgs;

/// `obol buy delete NAME`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Purchase name.
    name: String,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    yes: bool,
    /// How long to wait for the ConfigMaps to be removed.
    #[arg(long, default_value = "1m", value_parser = crate::sell::parse_duration)]
    timeout: Duration,
}

/// What deleting throws away: (never spent, held).
pub fn unspent(p: &PurchaseRequest) -> (u64, u64) {
    let s = p.status.clone().unwrap_or_default();
    let spent = s.spent.unwrap_or(0);
    let held = s.held.unwrap_or(0);
    (p.spec.count.saturating_sub(spent + held), held)
}

impl DeleteArgs {
    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        let (client, ns) = kube.connect().await?;
        let api: Api<PurchaseRequest> = Api::namespaced(client.clone(), &ns);
        let p = get_purchase(&api, &ns, &self.name).await?;
        let (never, held) = unspent(&p);
        let question = format!(
            "Delete PurchaseRequest {ns}/{} and its {never} never-spent authorizations?",
            self.name
        );
        if !self.yes && !ask(&question)? {
            return Err(Failure::new(
                REFUSED,
                "not confirmed (pass --yes to delete without asking); nothing was deleted",
            )
            .into());
        }
        api.delete(&self.name, &DeleteParams::foreground()).await?;
        let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
        let names: Vec<String> = p.spec.pool.iter().map(|s| s.config_map.clone()).collect();
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let mut left = Vec::new();
            if api.get_opt(&self.name).await?.is_some() {
                left.push(format!("PurchaseRequest {}", self.name));
            }
            for n in &names {
                if cms.get_opt(n).await?.is_some() {
                    left.push(format!("ConfigMap {n}"));
                }
            }
            if left.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Failure::new(
                    TIMEOUT,
                    format!(
                        "still present after {}s: {}",
                        self.timeout.as_secs(),
                        left.join(", ")
                    ),
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!(
            "Deleted {ns}/{}: {never} authorizations were never spent and are gone from the cluster{}.",
            self.name,
            if held > 0 {
                format!("; {held} were held (sent without an answer) and may have been spent")
            } else {
                String::new()
            }
        );
        println!(
            "Signed authorizations stay valid on chain until they expire: anyone holding a copy could still spend them."
        );
        Ok(())
    }
}
