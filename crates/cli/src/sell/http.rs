//! `obol sell http NAME`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use obol_api::ServiceOffer;
use obol_api::condition::{self, Condition};
use obol_api::service_offer::GatewayMode;
use obol_api::validation;

use super::offer::{OfferRequest, Refusal, gateway_mode, plan_offer, schema_files};
use super::{FIELD_MANAGER, parse_duration, render};
use crate::failure::{Failure, REFUSED, TIMEOUT};
use crate::kube_args::KubeArgs;

/// Flags of `obol sell http` (the Go CLI's names).
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Offer name.
    name: String,
    /// Upstream Service that serves the paid requests.
    #[arg(long)]
    upstream: String,
    /// Upstream Service namespace (default the offer's).
    #[arg(long)]
    upstream_namespace: Option<String>,
    /// Upstream port.
    #[arg(long, default_value_t = validation::DEFAULT_UPSTREAM_PORT)]
    port: i32,
    /// Upstream health path.
    #[arg(long, default_value = validation::DEFAULT_HEALTH_PATH)]
    health_path: String,
    /// Published path (default /services/NAME).
    #[arg(long)]
    path: Option<String>,
    /// Seller wallet (0x address).
    #[arg(short = 'w', long, env = "X402_WALLET")]
    wallet: Option<String>,
    /// Chain: a name (base-sepolia) or a CAIP-2 id.
    #[arg(long, visible_alias = "chain", default_value = "base-sepolia")]
    network: String,
    /// Price per request in USDC.
    #[arg(long, visible_alias = "per-request")]
    price: Option<String>,
    /// Price per million tokens in USDC.
    #[arg(long)]
    per_mtok: Option<String>,
    /// Price per hour in USDC (each request is charged five minutes).
    #[arg(long)]
    per_hour: Option<String>,
    /// Price per million prompt (input) tokens in USDC (default --per-mtok).
    #[arg(long)]
    per_mtok_input: Option<String>,
    /// Price per million completion (output) tokens in USDC (default --per-mtok).
    #[arg(long)]
    per_mtok_output: Option<String>,
    /// Tokens per request assumed with per-token prices: the exact-scheme price, and what an
    /// answer without usage is charged.
    #[arg(long)]
    approx_tokens: Option<u64>,
    /// Most tokens one metered (upto) request may be charged for (default 10 x --approx-tokens).
    #[arg(long)]
    max_tokens: Option<u64>,
    /// Longest payment validity window, seconds.
    #[arg(long, default_value_t = validation::DEFAULT_TIMEOUT_SECONDS)]
    max_timeout: i64,
    /// Register the offer as an ERC-8004 agent.
    #[arg(long)]
    register: bool,
    /// Agent name.
    #[arg(long)]
    register_name: Option<String>,
    /// Agent description.
    #[arg(long)]
    register_description: Option<String>,
    /// Agent image URL.
    #[arg(long)]
    register_image: Option<String>,
    /// OASF skill (repeatable).
    #[arg(long)]
    register_skills: Vec<String>,
    /// OASF domain (repeatable).
    #[arg(long)]
    register_domains: Vec<String>,
    /// Metadata key=value (repeatable).
    #[arg(long)]
    register_metadata: Vec<String>,
    /// Who forwards paid requests: `proxy` (the verifier; no charge for failed answers, streams
    /// settled at their end) or `forwardAuth` (settled before the upstream is asked). Default:
    /// an existing offer's mode, else `proxy`.
    #[arg(long)]
    gateway_mode: Option<GatewayMode>,
    /// A content type streamed and settled at its end besides text/event-stream (repeatable;
    /// proxy mode).
    #[arg(long = "streaming-type")]
    streaming_types: Vec<String>,
    /// Allow WebSocket upgrades, settled when the upstream accepts them (proxy mode).
    #[arg(long = "allow-websocket")]
    allow_web_socket: bool,
    /// A route of the offer's table (repeatable):
    /// `path=/v1/chat/completions,gate=paid,price=0.01,methods=POST,summary=Chat`. With routes,
    /// only the listed paths are served (others answer 404); `gate=free` ones need no payment.
    /// `input-schema=@in.json` and `output-schema=@out.json` give the route's request and
    /// answer JSON Schemas (files): agents find them in the catalogue and in every 402.
    #[arg(long = "route")]
    routes: Vec<String>,
    /// Print the manifest and write nothing (no cluster needed).
    #[arg(long)]
    dry_run: bool,
    /// Follow the conditions until the offer is Ready.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    timeout: Duration,
    /// Skip the upstream health probe from this machine.
    #[arg(long)]
    skip_health_check: bool,
}

impl HttpArgs {
    /// The request the flags describe, with the schema files `--route` names read.
    fn request(&self, namespace: String) -> Result<OfferRequest, Refusal> {
        let schema_files = read_schema_files(&self.routes)?;
        Ok(OfferRequest {
            name: self.name.clone(),
            namespace,
            upstream: self.upstream.clone(),
            upstream_namespace: self.upstream_namespace.clone(),
            port: self.port,
            health_path: self.health_path.clone(),
            path: self.path.clone(),
            wallet: self.wallet.clone(),
            network: self.network.clone(),
            per_request: self.price.clone(),
            per_mtok: self.per_mtok.clone(),
            per_hour: self.per_hour.clone(),
            per_mtok_input: self.per_mtok_input.clone(),
            per_mtok_output: self.per_mtok_output.clone(),
            approx_tokens_per_request: self.approx_tokens,
            max_tokens_per_request: self.max_tokens,
            max_timeout_seconds: self.max_timeout,
            register: self.register,
            register_name: self.register_name.clone(),
            register_description: self.register_description.clone(),
            register_image: self.register_image.clone(),
            register_skills: self.register_skills.clone(),
            register_domains: self.register_domains.clone(),
            register_metadata: self.register_metadata.clone(),
            gateway_mode: self.gateway_mode,
            streaming_types: self.streaming_types.clone(),
            allow_web_socket: self.allow_web_socket,
            routes: self.routes.clone(),
            schema_files,
        })
    }

    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        let refuse = |r: Refusal| Failure::new(REFUSED, r.to_string());
        if self.dry_run {
            let ns = kube.namespace.clone().unwrap_or_else(|| "default".into());
            let planned = plan_offer(&self.request(ns).map_err(refuse)?).map_err(refuse)?;
            print!("{}", serde_yaml::to_string(&planned.offer)?);
            return Ok(());
        }
        let (client, ns) = kube.connect().await?;
        let offers: Api<ServiceOffer> = Api::namespaced(client.clone(), &ns);
        let existing = offers.get_opt(&self.name).await?;
        let mut request = self.request(ns.clone()).map_err(refuse)?;
        request.gateway_mode = Some(gateway_mode(
            self.gateway_mode,
            existing.as_ref().map(|o| &o.spec),
        ));
        let planned = plan_offer(&request).map_err(refuse)?;
        let spec = &planned.offer.spec;
        let upstream_ns = spec.upstream_namespace(&ns).to_owned();
        preflight_upstream(&client, &upstream_ns, spec, self.skip_health_check)
            .await
            .map_err(refuse)?;
        if existing
            .as_ref()
            .is_some_and(|o| o.metadata.deletion_timestamp.is_some())
        {
            return Err(refuse(Refusal::Deleting(format!("{ns}/{}", self.name))).into());
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        offers
            .patch(&self.name, &params, &Patch::Apply(&planned.offer))
            .await?;
        let verb = if existing.is_some() {
            "updated"
        } else {
            "created"
        };
        println!(
            "ServiceOffer {ns}/{} {verb} (type: http, gateway mode: {})",
            self.name,
            planned.offer.spec.gateway_mode()
        );
        for note in &planned.notes {
            println!("{note}");
        }
        if !self.wait {
            println!("The controller reconciles: health check → payment gate → route.");
            println!("Check status: obol sell status {} -n {ns}", self.name);
            return Ok(());
        }
        wait_ready(&offers, &self.name, self.timeout).await
    }
}

/// The upstream Service must exist; when it answers from here, it must not answer 5xx. An
/// upstream that cannot be reached from here is not a refusal: the controller probes from inside
/// the cluster.
///
/// Where to probe: the controller's rule ([`obol_api::upstream`]), first target only.
async fn preflight_upstream(
    client: &Client,
    ns: &str,
    spec: &obol_api::ServiceOfferSpec,
    skip_health: bool,
) -> Result<(), Refusal> {
    let name = &spec.upstream.service;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let missing = || Refusal::MissingService {
        namespace: ns.to_owned(),
        name: name.clone(),
    };
    let service = services
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .ok_or_else(missing)?;
    if skip_health {
        return Ok(());
    }
    let port = spec.upstream.port;
    let health = &spec.upstream.health_path;
    let url = match obol_api::upstream::external_target(&service, port) {
        Some((host, target)) => Some(format!("http://{host}:{target}{health}")),
        None => {
            let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), ns);
            let ep = endpoints.get_opt(name).await.ok().flatten();
            ep.and_then(|ep| {
                let (ip, p) = obol_api::upstream::targets(&service, &ep, port)
                    .into_iter()
                    .next()?;
                Some(format!("http://{ip}:{p}{health}"))
            })
        }
    };
    let Some(url) = url else { return Ok(()) };
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return Ok(());
    };
    match http.get(&url).send().await {
        Ok(resp) if resp.status().is_server_error() => Err(Refusal::Unhealthy {
            url,
            status: resp.status().as_u16(),
        }),
        _ => Ok(()),
    }
}

fn describe(c: &Condition) -> String {
    let mut s = format!("{}={}", c.type_, c.status.as_str());
    if !c.reason.is_empty() {
        s.push_str(&format!(" ({})", c.reason));
    }
    if !c.message.is_empty() {
        s.push_str(&format!(": {}", c.message));
    }
    s
}

/// Follows the offer until Ready, printing each condition change; fails with the blocking
/// condition on timeout.
pub(super) async fn wait_ready(
    offers: &Api<ServiceOffer>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(offers.clone(), config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut last: Option<ServiceOffer> = None;
    let mut printed: Vec<Condition> = vec![];
    let deadline = tokio::time::Instant::now() + timeout;
    println!(
        "Waiting up to {}s for {name} to become Ready…",
        timeout.as_secs()
    );
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let offer = match next {
            Ok(Some(Ok(offer))) => offer,
            Ok(Some(Err(_))) => continue, // the watcher retries with backoff
            Ok(None) | Err(_) => break,
        };
        let status = offer.status.clone().unwrap_or_default();
        for c in &status.conditions {
            let seen = printed
                .iter()
                .any(|p| p.type_ == c.type_ && p.status == c.status && p.reason == c.reason);
            if !seen {
                println!("  {}", describe(c));
            }
        }
        printed = status.conditions.clone();
        if condition::is_ready(
            offer.metadata.generation,
            status.observed_generation,
            &status.conditions,
        ) {
            println!(
                "ServiceOffer {name} is Ready at {}",
                status.endpoint.as_deref().unwrap_or("-")
            );
            return Ok(());
        }
        last = Some(offer);
    }
    let blocking = last.as_ref().and_then(render::blocking).map_or_else(
        || "the controller has not reported any condition".to_owned(),
        |c| describe(&c),
    );
    Err(Failure::new(
        TIMEOUT,
        format!(
            "{name} not Ready after {}s; blocked by {blocking}",
            timeout.as_secs()
        ),
    )
    .into())
}

/// Reads the files `--route` names with `@` ([`schema_files`]), relative to the working
/// directory.
fn read_schema_files(routes: &[String]) -> Result<BTreeMap<String, String>, Refusal> {
    schema_files(routes)
        .into_iter()
        .map(|path| match std::fs::read_to_string(&path) {
            Ok(text) => Ok((path, text)),
            Err(e) => Err(Refusal::SchemaFile {
                path,
                error: e.to_string(),
            }),
        })
        .collect()
}
