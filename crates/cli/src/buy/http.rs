//! `obol buy http NAME SELLER_URL --count N`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource as _};
use obol_api::purchase_request::{PoolShard, PurchaseRequest, PurchaseRequestSpec, types};
use obol_x402::permit2::PERMIT2_ADDRESS;
use obol_x402::wire::SCHEME_UPTO;
use obol_x402::{Network, U256};

use super::plan::{self, Choice, Refusal, Want};
use super::pool::{self, Terms};
use super::upto;
use super::{KeyArgs, parse_validity};
use crate::failure::{Failure, REFUSED, TIMEOUT};
use crate::kube_args::KubeArgs;

/// Most authorizations one command buys.
pub const MAX_COUNT: u64 = 100_000;

/// Flags of `obol buy http`.
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Purchase name; the buyer serves it at `/upstream/NAME/`.
    name: String,
    /// The seller's endpoint (https; http only to this machine).
    seller_url: String,
    /// How many requests to buy (one authorization each).
    #[arg(long)]
    count: u64,
    /// Highest price per request accepted, in tokens (`0.001`). Without it, the price must be
    /// confirmed at the terminal.
    #[arg(long)]
    max_price: Option<String>,
    /// Chain the payment must be on: a name or a CAIP-2 id.
    #[arg(long, default_value = "base-sepolia")]
    network: String,
    /// Token the payment must be in (default the network's USDC).
    #[arg(long)]
    asset: Option<String>,
    /// How long the authorizations stay valid (`7d`, `12h`).
    #[arg(long, default_value = "7d", value_parser = parse_validity)]
    valid_for: Duration,
    /// Model the seller serves (routes `paid/<model>` on the buyer's OpenAI-compatible API).
    #[arg(long)]
    model: Option<String>,
    /// `exact`: one price per request (EIP-3009). `upto`: pay per token where the seller
    /// meters (x402 upto): Permit2 witness authorizations for the offer's maximum per request,
    /// each charged what its answer cost; needs --rpc-url for the one-time Permit2 approval.
    #[arg(long, value_enum, default_value_t = Scheme::Exact)]
    scheme: Scheme,
    /// JSON-RPC endpoint of the payment's chain (with --scheme upto: the payer's Permit2
    /// allowance is read and, if short, the approval sent there).
    #[arg(long)]
    rpc_url: Option<String>,
    #[command(flatten)]
    key: KeyArgs,
    /// Do not ask before signing (the price still needs --max-price or a confirmation).
    #[arg(short = 'y', long)]
    yes: bool,
    /// Do not wait for the buyer to load the purchase.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the buyer.
    #[arg(long, default_value = "30s", value_parser = crate::sell::parse_duration)]
    timeout: Duration,
}

/// `--scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheme {
    /// A fixed price per request.
    Exact,
    /// Per token, at most the offer's maximum per request.
    Upto,
}

fn refuse(r: Refusal) -> anyhow::Error {
    Failure::new(REFUSED, r.to_string()).into()
}

/// Asks `question` at the terminal; `false` when there is none.
pub fn ask(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// What the seller asks, for people.
pub fn describe(url: &str, choice: &Choice, network: &Network, decimals: u8) -> String {
    let o = &choice.offered;
    let d = &choice.domain;
    format!(
        "Seller {url} asks (x402 v{}):\n  price    {} per request ({} atomic units)\n  network  {} ({})\n  asset    {} (EIP-712 domain {}/{}, chain {})\n  payTo    {}\n",
        o.version.as_u8(),
        plan::decimal(o.amount, decimals),
        o.amount,
        network.name,
        network.caip2().as_str(),
        o.asset.to_checksum(None),
        d.name,
        d.version,
        d.chain_id,
        o.pay_to.to_checksum(None),
    )
}

/// Parses a decimal token amount into atomic units.
pub fn atomic(amount: &str, decimals: u8) -> Result<U256, Refusal> {
    let price = obol_api::price::Decimal::parse(amount)
        .map_err(|e| Refusal::Invalid(format!("--max-price {amount:?}: {e}")))?;
    price
        .to_atomic(decimals)
        .map(U256::from)
        .map_err(|e| Refusal::Invalid(format!("--max-price {amount:?}: {e}")))
}

/// RFC 3339 of unix seconds.
pub fn rfc3339(secs: u64) -> String {
    jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
        .map_or_else(|_| secs.to_string(), |t| t.to_string())
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The owner reference of every pool ConfigMap.
pub fn owner(purchase: &PurchaseRequest) -> anyhow::Result<OwnerReference> {
    purchase
        .controller_owner_ref(&())
        .ok_or_else(|| anyhow::anyhow!("the PurchaseRequest has no uid"))
}

/// Creates the ConfigMaps; on the first failure deletes the ones created and returns the error.
pub async fn write_config_maps(api: &Api<ConfigMap>, cms: &[ConfigMap]) -> anyhow::Result<()> {
    let mut created: Vec<String> = Vec::new();
    for cm in cms {
        let name = cm.metadata.name.clone().unwrap_or_default();
        if let Err(e) = api.create(&PostParams::default(), cm).await {
            for n in created {
                let _ = api.delete(&n, &DeleteParams::default()).await;
            }
            return Err(anyhow::anyhow!("writing ConfigMap {name}: {e}"));
        }
        created.push(name);
    }
    Ok(())
}

impl HttpArgs {
    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        if !obol_api::names::is_dns1123_label(&self.name) {
            return Err(refuse(Refusal::Invalid(format!(
                "{:?} is not a valid name (lower-case letters, digits and -, at most 63)",
                self.name
            ))));
        }
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(refuse(Refusal::Invalid(format!(
                "--count must be 1 to {MAX_COUNT}"
            ))));
        }
        let url = plan::check_url(&self.seller_url).map_err(refuse)?;
        let network = Network::resolve(&self.network)
            .map_err(|e| refuse(Refusal::Invalid(format!("--network: {e}"))))?;
        let asset = match &self.asset {
            Some(a) => a.parse().map_err(|_| {
                refuse(Refusal::Invalid(format!("--asset {a:?} is not an address")))
            })?,
            None => network.usdc.as_ref().map(|u| u.address).ok_or_else(|| {
                refuse(Refusal::Invalid(format!(
                    "{} has no known USDC: pass --asset",
                    network.name
                )))
            })?,
        };
        let decimals = obol_x402::USDC_DECIMALS;
        let max_price = self
            .max_price
            .as_deref()
            .map(|p| atomic(p, decimals))
            .transpose()
            .map_err(refuse)?;
        let key = self
            .key
            .load()
            .map_err(|e| refuse(Refusal::Invalid(e.to_string())))?;
        let (client, ns) = kube.connect().await?;
        let purchases: Api<PurchaseRequest> = Api::namespaced(client.clone(), &ns);
        if purchases.get_opt(&self.name).await?.is_some() {
            return Err(refuse(Refusal::Invalid(format!(
                "PurchaseRequest {ns}/{} exists: obol buy refill {} --count N adds to it",
                self.name, self.name
            ))));
        }
        let probed = super::probe::probe(&url).await?;
        let (offers, unread) = plan::offered(&probed.required);
        let mut want = Want {
            network,
            asset,
            max_price,
            confirmed: false,
            decimals,
        };
        if self.scheme == Scheme::Upto {
            let bought = Bought {
                url,
                network,
                key,
                client,
                ns,
                unread,
            };
            return self.run_upto(bought, want, &offers, &purchases).await;
        }
        let choice = match plan::choose(&offers, &want) {
            Err(Refusal::NotConfirmed { price }) => {
                // Show what is asked, then ask; a refusal still writes nothing.
                want.confirmed = true;
                let choice = plan::choose(&offers, &want).map_err(refuse)?;
                print!("{}", describe(url.as_str(), &choice, network, decimals));
                if let Some(notice) = plan::metered_notice(&offers, &choice.offered, decimals) {
                    println!("{notice}");
                }
                let total = plan::decimal(choice.offered.amount * U256::from(self.count), decimals);
                if !ask(&format!(
                    "Pay {price} per request ({total} for {})?",
                    self.count
                ))? {
                    return Err(refuse(Refusal::NotConfirmed { price }));
                }
                choice
            }
            other => {
                let choice = other.map_err(refuse)?;
                print!("{}", describe(url.as_str(), &choice, network, decimals));
                if let Some(notice) = plan::metered_notice(&offers, &choice.offered, decimals) {
                    println!("{notice}");
                }
                choice
            }
        };
        if unread > 0 {
            println!("  ({unread} other payment options could not be read and were ignored)");
        }
        let valid_before = now_unix() + self.valid_for.as_secs();
        let total = plan::decimal(choice.offered.amount * U256::from(self.count), decimals);
        println!(
            "Buying {} requests: at most {total} in total, valid until {}, signed here by {} (the key stays on this machine).",
            self.count,
            rfc3339(valid_before),
            key.address().to_checksum(None)
        );
        if !self.yes && !ask("Sign and write them into the cluster?")? {
            return Err(Failure::new(
                REFUSED,
                "not confirmed (pass --yes to skip this question); nothing was signed",
            )
            .into());
        }
        let started = Instant::now();
        let terms = Terms {
            domain: choice.domain.clone(),
            pay_to: choice.offered.pay_to,
            amount: choice.offered.amount,
            valid_before,
        };
        let count = usize::try_from(self.count)?;
        let items = tokio::task::spawn_blocking(move || {
            pool::sign(&key, &terms, &pool::nonces(count)).map(|items| (items, key.address()))
        })
        .await??;
        let (items, payer) = items;
        let signed = started.elapsed();
        let spec = PurchaseRequestSpec {
            seller_url: url.to_string().trim_end_matches('/').to_owned(),
            upstream: Some(self.name.clone()),
            remote_model: self.model.clone(),
            network: network.caip2().as_str().to_owned(),
            asset: choice.offered.asset.to_checksum(None),
            pay_to: choice.offered.pay_to.to_checksum(None),
            price: choice.offered.amount.to_string(),
            scheme: None,
            payer: payer.to_checksum(None),
            eip712_name: Some(choice.domain.name.clone()),
            eip712_version: Some(choice.domain.version.clone()),
            count: self.count,
            pool: vec![],
        };
        self.publish(&client, &ns, spec, &items, valid_before, started, signed)
            .await
    }

    /// `--scheme upto`: the seller's upto requirement (within --max-price or confirmed), the
    /// one-time Permit2 approval when the payer's allowance does not cover this purchase and
    /// its outstanding upto authorizations (said, asked unless --yes, sent through
    /// --rpc-url), then Permit2 witness authorizations for the maximum, written as a
    /// PurchaseRequest of scheme `upto`.
    async fn run_upto(
        &self,
        b: Bought,
        mut want: Want,
        offers: &[plan::Offered],
        purchases: &Api<PurchaseRequest>,
    ) -> anyhow::Result<()> {
        let Bought {
            url,
            network,
            key,
            client,
            ns,
            unread,
        } = b;
        let Some(rpc_url) = self.rpc_url.clone() else {
            return Err(refuse(Refusal::Invalid(
                "--scheme upto needs --rpc-url (the payment's chain): the one-time Permit2 approval is read and sent there".into(),
            )));
        };
        let decimals = want.decimals;
        let (choice, confirm) = match upto::choose_upto(offers, &want) {
            Err(Refusal::NotConfirmed { price }) => {
                want.confirmed = true;
                (
                    upto::choose_upto(offers, &want).map_err(refuse)?,
                    Some(price),
                )
            }
            other => (other.map_err(refuse)?, None),
        };
        let choice = choice.ok_or_else(|| {
            refuse(Refusal::Invalid(
                "the seller offers no upto (per-token) payment: buy without --scheme upto".into(),
            ))
        })?;
        let maximum = choice.offered.amount;
        let most = plan::decimal(maximum, decimals);
        let total = plan::decimal(maximum * U256::from(self.count), decimals);
        print!(
            "Seller {url} charges per token (x402 upto):\n  maximum  {most} per request ({maximum} atomic units); each request is charged what its answer cost\n  network  {} ({})\n  asset    {} (by Permit2 {})\n  payTo    {}\n  settled by {}\n",
            network.name,
            network.caip2().as_str(),
            choice.offered.asset.to_checksum(None),
            PERMIT2_ADDRESS.to_checksum(None),
            choice.offered.pay_to.to_checksum(None),
            choice.facilitator.to_checksum(None),
        );
        if unread > 0 {
            println!("  ({unread} other payment options could not be read and were ignored)");
        }
        if let Some(price) = confirm
            && !ask(&format!(
                "Authorize at most {price} per request ({total} for {})?",
                self.count
            ))?
        {
            return Err(refuse(Refusal::NotConfirmed { price }));
        }
        let payer = key.address();
        let token = choice.offered.asset;
        let facts = super::chain::facts(&rpc_url, network.chain_id, payer, token).await?;
        let existing = purchases.list(&Default::default()).await?.items;
        let outstanding = upto::outstanding(&existing, payer, token).map_err(refuse)?;
        match upto::approval(facts, self.count, maximum, outstanding).map_err(refuse)? {
            upto::Approval::Enough => println!(
                "Permit2: {} has approved Permit2 for enough of the token ({} atomic units; this purchase and the payer's outstanding upto authorizations need {}).",
                payer.to_checksum(None),
                facts.allowance,
                maximum * U256::from(self.count) + outstanding
            ),
            upto::Approval::Approve { amount, short } => {
                println!(
                    "Permit2: {} must approve Permit2 ({}) once for this token: its allowance is {short} atomic units short of this purchase and the payer's outstanding upto authorizations. The approval is unlimited, as Permit2 payers give it (Permit2 moves only what a signed authorization allows); one transaction, gas paid by the payer.",
                    payer.to_checksum(None),
                    PERMIT2_ADDRESS.to_checksum(None)
                );
                if !self.yes && !ask("Send the approval?")? {
                    return Err(Failure::new(
                        REFUSED,
                        "approval not confirmed (pass --yes to skip this question); nothing was sent or signed",
                    )
                    .into());
                }
                let hash =
                    super::chain::approve(&rpc_url, network.chain_id, &key, token, amount).await?;
                println!("Permit2 approved in transaction {hash}.");
            }
        }
        let valid_before = now_unix() + self.valid_for.as_secs();
        println!(
            "Buying {} requests: at most {total} in total, valid until {}, signed here by {} (the key stays on this machine).",
            self.count,
            rfc3339(valid_before),
            payer.to_checksum(None)
        );
        if !self.yes && !ask("Sign and write them into the cluster?")? {
            return Err(Failure::new(
                REFUSED,
                "not confirmed (pass --yes to skip this question); nothing was signed",
            )
            .into());
        }
        let started = Instant::now();
        let count = usize::try_from(self.count)?;
        let chain_id = network.chain_id;
        let signing = choice.clone();
        let items = tokio::task::spawn_blocking(move || {
            pool::sign_upto(&key, chain_id, &signing, valid_before, &pool::nonces(count))
        })
        .await??;
        let signed = started.elapsed();
        let spec = PurchaseRequestSpec {
            seller_url: url.to_string().trim_end_matches('/').to_owned(),
            upstream: Some(self.name.clone()),
            remote_model: self.model.clone(),
            network: network.caip2().as_str().to_owned(),
            asset: token.to_checksum(None),
            pay_to: choice.offered.pay_to.to_checksum(None),
            price: maximum.to_string(),
            scheme: Some(SCHEME_UPTO.to_owned()),
            payer: payer.to_checksum(None),
            eip712_name: None,
            eip712_version: None,
            count: self.count,
            pool: vec![],
        };
        self.publish(&client, &ns, spec, &items, valid_before, started, signed)
            .await
    }

    /// Writes the request (`spec` without its pool) and its pool ConfigMaps, then waits for
    /// the buyer unless --no-wait.
    #[allow(clippy::too_many_arguments)]
    async fn publish(
        &self,
        client: &Client,
        ns: &str,
        mut spec: PurchaseRequestSpec,
        items: &[String],
        valid_before: u64,
        started: Instant,
        signed: Duration,
    ) -> anyhow::Result<()> {
        let expires_at = rfc3339(valid_before);
        // The request first (the ConfigMaps need its uid as their owner), listing the shards.
        let shard_plan = pool::config_maps(
            &self.name,
            ns,
            &OwnerReference::default(),
            0,
            items,
            &expires_at,
        );
        spec.pool = shard_plan
            .iter()
            .map(|(_, s)| s.clone())
            .collect::<Vec<PoolShard>>();
        let purchases: Api<PurchaseRequest> = Api::namespaced(client.clone(), ns);
        let mut request = PurchaseRequest::new(&self.name, spec);
        request.metadata.namespace = Some(ns.to_owned());
        let created = purchases.create(&PostParams::default(), &request).await?;
        let owner = owner(&created)?;
        let cms: Vec<ConfigMap> = pool::config_maps(&self.name, ns, &owner, 0, items, &expires_at)
            .into_iter()
            .map(|(cm, _)| cm)
            .collect();
        let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        if let Err(e) = write_config_maps(&cm_api, &cms).await {
            let _ = purchases.delete(&self.name, &DeleteParams::default()).await;
            return Err(anyhow::anyhow!(
                "{e}; the purchase was removed, nothing was bought"
            ));
        }
        let written = started.elapsed();
        println!(
            "PurchaseRequest {ns}/{} created: {} authorizations in {} ConfigMaps (signed in {} ms, written in {} ms).",
            self.name,
            self.count,
            cms.len(),
            signed.as_millis(),
            (written - signed).as_millis()
        );
        if self.no_wait {
            println!("Check: obol buy status {} -n {ns}", self.name);
            return Ok(());
        }
        let waited = wait_loaded(client, ns, &self.name, self.timeout).await?;
        println!(
            "The buyer loaded them {} ms after they were written; spend at <buyer>/upstream/{}/",
            waited.as_millis(),
            self.name
        );
        Ok(())
    }
}

/// What `run` has resolved before the scheme's own steps.
struct Bought {
    url: reqwest::Url,
    network: &'static Network,
    key: obol_x402::PrivateKey,
    client: Client,
    ns: String,
    unread: usize,
}

/// Waits until the buyer reports the purchase's current generation loaded (`PoolLoaded`).
pub async fn wait_loaded(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let api: Api<PurchaseRequest> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(p))) => {
                let status = p.status.unwrap_or_default();
                let loaded = status.observed_generation == p.metadata.generation
                    && obol_api::condition::is_true(&status.conditions, types::POOL_LOADED);
                if loaded {
                    return Ok(started.elapsed());
                }
            }
            Ok(Some(Err(_))) => continue,
            Ok(None) | Err(_) => {
                return Err(Failure::new(
                    TIMEOUT,
                    format!(
                        "no buyer reported {ns}/{name} loaded within {}s: is an x402-buyer with --source kube watching namespace {ns}? (the purchase is written; obol buy status {name})",
                        timeout.as_secs()
                    ),
                )
                .into());
            }
        }
    }
}
