//! `obol buy refill NAME --count N`: more authorizations on a purchase's own terms.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use obol_api::purchase_request::PurchaseRequest;
use obol_x402::{Address, Network, U256};

use super::http::{ask, owner, rfc3339, wait_loaded, write_config_maps};
use super::inspect::get_purchase;
use super::plan::{self, Refusal, Want};
use super::pool::{self, Terms};
use super::{KeyArgs, parse_validity};
use crate::failure::{Failure, REFUSED};
use crate::kube_args::KubeArgs;

/// `obol buy refill NAME --count N`.
#[derive(Debug, clap::Args)]
pub struct RefillArgs {
    /// Purchase name.
    name: String,
    /// How many more requests to buy.
    #[arg(long)]
    count: u64,
    /// How long the new authorizations stay valid.
    #[arg(long, default_value = "7d", value_parser = parse_validity)]
    valid_for: Duration,
    #[command(flatten)]
    key: KeyArgs,
    /// Do not ask before signing.
    #[arg(short = 'y', long)]
    yes: bool,
    /// Do not wait for the buyer to load them.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the buyer.
    #[arg(long, default_value = "30s", value_parser = crate::sell::parse_duration)]
    timeout: Duration,
}

fn refuse(r: Refusal) -> anyhow::Error {
    Failure::new(REFUSED, r.to_string()).into()
}

impl RefillArgs {
    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        if self.count == 0 || self.count > super::http::MAX_COUNT {
            return Err(refuse(Refusal::Invalid(format!(
                "--count must be 1 to {}",
                super::http::MAX_COUNT
            ))));
        }
        let key = self
            .key
            .load()
            .map_err(|e| refuse(Refusal::Invalid(e.to_string())))?;
        let (client, ns) = kube.connect().await?;
        let api: Api<PurchaseRequest> = Api::namespaced(client.clone(), &ns);
        let p = get_purchase(&api, &ns, &self.name).await?;
        let spec = &p.spec;
        if spec.scheme.as_deref() == Some(obol_x402::wire::SCHEME_UPTO) {
            // Refill signs EIP-3009 items, which the buyer would skip in an upto pool.
            return Err(refuse(Refusal::Invalid(format!(
                "{} is an upto (per-token) purchase: obol buy refill signs exact authorizations only; buy more with obol buy http NAME URL --scheme upto",
                self.name
            ))));
        }
        let payer: Address = spec
            .payer
            .parse()
            .map_err(|_| refuse(Refusal::Invalid("spec.payer is not an address".into())))?;
        if key.address() != payer {
            return Err(refuse(Refusal::OtherPayer {
                name: self.name.clone(),
                key: key.address().to_checksum(None),
                payer: spec.payer.clone(),
            }));
        }
        let network = Network::resolve(&spec.network)
            .map_err(|e| refuse(Refusal::Invalid(format!("spec.network: {e}"))))?;
        let price: U256 = spec
            .price
            .parse()
            .map_err(|_| refuse(Refusal::Invalid("spec.price is not a number".into())))?;
        let decimals = obol_x402::USDC_DECIMALS;
        let url = plan::check_url(&spec.seller_url).map_err(refuse)?;
        let probed = super::probe::probe(&url).await?;
        let (offers, _) = plan::offered(&probed.required);
        // The purchase's own terms: the same network, asset, payTo and price, nothing else.
        let want = Want {
            network,
            asset: spec
                .asset
                .parse()
                .map_err(|_| refuse(Refusal::Invalid("spec.asset is not an address".into())))?,
            max_price: Some(price),
            confirmed: true,
            decimals,
        };
        let terms_changed = |detail: String| {
            refuse(Refusal::TermsChanged {
                name: self.name.clone(),
                detail,
            })
        };
        let choice = plan::choose(&offers, &want).map_err(|r| terms_changed(r.to_string()))?;
        if choice.offered.amount != price {
            return Err(terms_changed(format!(
                "price {} instead of {}",
                choice.offered.amount, price
            )));
        }
        if spec.pay_to.parse::<Address>().ok() != Some(choice.offered.pay_to) {
            return Err(terms_changed(format!(
                "payTo {} instead of {}",
                choice.offered.pay_to, spec.pay_to
            )));
        }
        let total = plan::decimal(price * U256::from(self.count), decimals);
        let question = format!(
            "Buy {} more requests of {} at {} each ({total} at most)?",
            self.count,
            self.name,
            plan::decimal(price, decimals)
        );
        if !self.yes && !ask(&question)? {
            return Err(Failure::new(
                REFUSED,
                "not confirmed (pass --yes to skip this question); nothing was signed",
            )
            .into());
        }
        let valid_before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + self.valid_for.as_secs();
        let terms = Terms {
            domain: choice.domain.clone(),
            pay_to: choice.offered.pay_to,
            amount: price,
            valid_before,
        };
        let count = usize::try_from(self.count)?;
        let items =
            tokio::task::spawn_blocking(move || pool::sign(&key, &terms, &pool::nonces(count)))
                .await??;
        let owner = owner(&p)?;
        let first = p.spec.pool.len();
        let batch = pool::config_maps(
            &self.name,
            &ns,
            &owner,
            first,
            &items,
            &rfc3339(valid_before),
        );
        let cms: Vec<ConfigMap> = batch.iter().map(|(cm, _)| cm.clone()).collect();
        let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        write_config_maps(&cm_api, &cms).await?;
        let mut pool_spec = p.spec.pool.clone();
        pool_spec.extend(batch.into_iter().map(|(_, s)| s));
        // resourceVersion: a concurrent change makes this fail instead of losing the other one.
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": p.metadata.resource_version},
            "spec": {"count": p.spec.count + self.count, "pool": pool_spec},
        });
        if let Err(e) = api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            for cm in &cms {
                let name = cm.metadata.name.clone().unwrap_or_default();
                let _ = cm_api.delete(&name, &Default::default()).await;
            }
            return Err(anyhow::anyhow!(
                "updating {}: {e}; the new authorizations were removed, nothing was bought",
                self.name
            ));
        }
        println!(
            "PurchaseRequest {ns}/{}: {} more authorizations in {} ConfigMaps ({} bought in total).",
            self.name,
            self.count,
            cms.len(),
            p.spec.count + self.count
        );
        if self.no_wait {
            return Ok(());
        }
        let waited = wait_loaded(&client, &ns, &self.name, self.timeout).await?;
        println!(
            "The buyer loaded them {} ms after they were written.",
            waited.as_millis()
        );
        Ok(())
    }
}
