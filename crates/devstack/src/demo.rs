//! The demo of the local stack: its upstream and its offer (the buyer's purchase of it is made
//! by `obol buy http`).

use std::io::Write as _;
use std::time::Duration;

use alloy::primitives::{B256, U256};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use obol_api::ServiceOffer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::chain::Rpc;
use crate::stack::{DEMO_PRICE_ATOMIC, State};

/// Namespace and name of the demo offer.
pub const DEMO: &str = "demo";
/// Name of the metered demo offer (namespace [`DEMO`]): the fake LLM upstream sold per token.
pub const LLM: &str = "llm";
/// The `llm` offer's prices, in USDC per million prompt and completion tokens.
pub const LLM_PER_MTOK_INPUT: &str = "0.15";
/// See [`LLM_PER_MTOK_INPUT`].
pub const LLM_PER_MTOK_OUTPUT: &str = "0.6";
/// Tokens an `llm` request is assumed to use: its `exact` price, and what an answer without
/// usage is charged.
pub const LLM_APPROX_TOKENS: u64 = 1000;
/// Most tokens one `llm` request may be charged for (the `upto` maximum).
pub const LLM_MAX_TOKENS: u64 = 4000;
const FIELD_MANAGER: &str = "obol-dev";

/// A client with the stack's admin kubeconfig.
pub async fn client(state: &State) -> Result<Client, String> {
    let kc = Kubeconfig::read_from(&state.kubeconfig).map_err(|e| e.to_string())?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Client::try_from(config).map_err(|e| e.to_string())
}

/// The verifier's Service as the controller names it in gateway mode `proxy` (and is told by
/// `up`): name, namespace, and the Service port of its gateway listener.
pub struct VerifierService {
    /// Service name.
    pub name: &'static str,
    /// Service namespace.
    pub namespace: &'static str,
    /// Service port of the gateway listener.
    pub gateway_port: u16,
    /// Service port of the ForwardAuth, probe and metrics listener.
    pub port: u16,
}

/// The deploy's names and ports (`deploy/verifier.yaml`).
pub const VERIFIER_SERVICE: VerifierService = VerifierService {
    name: "x402-verifier",
    namespace: "x402",
    gateway_port: 8081,
    port: 8080,
};

async fn apply_namespace(client: &Client, name: &str) -> Result<(), String> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    Api::<Namespace>::all(client.clone())
        .patch(name, &params, &Patch::Apply(&ns))
        .await
        .map(|_| ())
        .map_err(|e| format!("namespace {name}: {e}"))
}

/// Applies the verifier's Service as an `ExternalName` Service to `localhost` whose ports map to
/// the verifier's loopback listeners: the gateway reaches it like any upstream.
pub async fn create_verifier_service(
    state: &State,
    port: u16,
    gateway_port: u16,
) -> Result<(), String> {
    let client = client(state).await?;
    let v = &VERIFIER_SERVICE;
    apply_namespace(&client, v.namespace).await?;
    let svc = json!({"apiVersion": "v1", "kind": "Service",
    "metadata": {"name": v.name, "namespace": v.namespace},
    "spec": {"type": "ExternalName", "externalName": "localhost", "ports": [
        {"name": "http", "port": v.port, "targetPort": port, "protocol": "TCP"},
        {"name": obol_api::proxy::GATEWAY_PORT_NAME, "port": v.gateway_port,
         "targetPort": gateway_port, "protocol": "TCP"},
    ]}});
    Api::<Service>::namespaced(client, v.namespace)
        .patch(
            v.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&svc),
        )
        .await
        .map_err(|e| format!("service: {e}"))?;
    Ok(())
}

/// Applies namespace `demo`, an `ExternalName` Service `demo` for the loopback upstream, and
/// the ServiceOffer `demo` (0.001 USDC per request to the seller account, registered as an
/// ERC-8004 agent; gateway mode `proxy`, as `obol sell http` writes for new offers).
pub async fn create_offer(state: &State, upstream_port: u16) -> Result<(), String> {
    let client = client(state).await?;
    apply_namespace(&client, DEMO).await?;
    let payment = json!({"price": {"perRequest": "0.001"}});
    let registration = json!({"enabled": true, "name": "obol-demo",
        "description": "The local stack's demo service: 0.001 test USDC per request"});
    apply_offer(&client, state, DEMO, upstream_port, payment, registration).await
}

/// Applies an `ExternalName` Service `name` for the loopback upstream at `upstream_port` and
/// the ServiceOffer `name` selling it (namespace [`DEMO`], to the seller account on Base
/// Sepolia, gateway mode `proxy`); `payment` adds its price fields, `registration` is its
/// registration.
async fn apply_offer(
    client: &Client,
    state: &State,
    name: &str,
    upstream_port: u16,
    payment: serde_json::Value,
    registration: serde_json::Value,
) -> Result<(), String> {
    apply_loopback_service(client, name).await?;
    let mut offer = json!({"apiVersion": "obol.org/v1alpha1", "kind": "ServiceOffer",
        "metadata": {"name": name, "namespace": DEMO},
        "spec": {"type": "http",
            "upstream": {"service": name, "namespace": DEMO, "port": upstream_port, "healthPath": "/health"},
            "payment": {"network": "base-sepolia", "payTo": state.seller, "maxTimeoutSeconds": 300},
            "registration": registration,
            "gateway": {"mode": "proxy"}}});
    if let (Some(into), serde_json::Value::Object(fields)) =
        (offer["spec"]["payment"].as_object_mut(), payment)
    {
        into.extend(fields);
    }
    Api::<ServiceOffer>::namespaced(client.clone(), DEMO)
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&offer),
        )
        .await
        .map_err(|e| format!("offer {name}: {e}"))?;
    Ok(())
}

/// An `ExternalName` Service `name` in namespace [`DEMO`] for an upstream on loopback (the
/// offer names the port).
async fn apply_loopback_service(client: &Client, name: &str) -> Result<(), String> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": DEMO},
        "spec": {"type": "ExternalName", "externalName": "localhost"}});
    Api::<Service>::namespaced(client.clone(), DEMO)
        .patch(name, &params, &Patch::Apply(&svc))
        .await
        .map(|_| ())
        .map_err(|e| format!("service {name}: {e}"))
}

/// The metered offer `llm` (namespace [`DEMO`], after [`create_offer`] made it): the fake LLM
/// upstream at `upstream_port` sold per token ([`LLM_PER_MTOK_INPUT`] / [`LLM_PER_MTOK_OUTPUT`],
/// at most [`LLM_MAX_TOKENS`] per request), gateway mode `proxy` (only the gateway sees the
/// usage), so its 402 offers `upto` (the maximum) and `exact` (the approximate price). Not
/// registered on chain: the stack's one agent is the demo.
pub async fn create_llm_offer(state: &State, upstream_port: u16) -> Result<(), String> {
    let client = client(state).await?;
    let payment = json!({
        "price": {"perMTokInput": LLM_PER_MTOK_INPUT, "perMTokOutput": LLM_PER_MTOK_OUTPUT},
        "approxTokensPerRequest": LLM_APPROX_TOKENS,
        "maxTokensPerRequest": LLM_MAX_TOKENS});
    let registration = json!({"enabled": false,
        "description": "The local stack's fake OpenAI-compatible LLM, charged per token"});
    apply_offer(&client, state, LLM, upstream_port, payment, registration).await
}

/// Waits until the offer `name` of namespace [`DEMO`] is Ready; the error names the blocking
/// condition.
pub async fn wait_ready(state: &State, name: &str, timeout: Duration) -> Result<(), String> {
    let api: Api<ServiceOffer> = Api::namespaced(client(state).await?, DEMO);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let offer = api.get(name).await.map_err(|e| e.to_string())?;
        let status = offer.status.clone().unwrap_or_default();
        if obol_api::condition::is_ready(
            offer.metadata.generation,
            status.observed_generation,
            &status.conditions,
        ) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let blocking: Vec<String> = status
                .conditions
                .iter()
                .filter(|c| !c.is_true())
                .map(|c| {
                    format!(
                        "{}={} {} {}",
                        c.type_,
                        c.status.as_str(),
                        c.reason,
                        c.message
                    )
                })
                .collect();
            return Err(format!(
                "not Ready after {}s: {}",
                timeout.as_secs(),
                blocking.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the demo offer asks for: 0.001 test USDC to the seller on Base Sepolia.
pub fn demo_requirement(state: &State) -> Result<obol_x402::Requirement, String> {
    let network = obol_x402::chain::Network::resolve("base-sepolia").map_err(|e| e.to_string())?;
    let pay_to = state
        .seller
        .parse()
        .map_err(|_| "seller address".to_owned())?;
    obol_x402::Requirement::usdc(network, pay_to, U256::from(DEMO_PRICE_ATOMIC), 300)
        .map_err(|e| e.to_string())
}

/// An authorization from `key` for `req`, valid now, with a fresh random nonce.
pub fn authorization(
    key: &obol_x402::PrivateKey,
    req: &obol_x402::Requirement,
) -> Result<obol_x402::wire::Authorization, String> {
    Ok(obol_x402::wire::Authorization {
        from: key.address(),
        to: req.pay_to,
        value: req.amount,
        valid_after: 0,
        valid_before: 4_294_967_295,
        nonce: B256::from(rand_bytes()?),
    })
}

/// A random 32-byte value.
pub fn rand_bytes() -> Result<[u8; 32], String> {
    let mut buf = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?;
    std::io::Read::read_exact(&mut f, &mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// The seller's and the buyer's test USDC.
pub async fn balances(state: &State) -> Result<(U256, U256), String> {
    let rpc = Rpc::new(&state.rpc_url);
    let usdc = state.usdc.parse().map_err(|_| "usdc address".to_owned())?;
    let seller = rpc
        .balance_of(usdc, state.seller.parse().map_err(|_| "seller".to_owned())?)
        .await
        .map_err(|e| e.to_string())?;
    let buyer = rpc
        .balance_of(usdc, state.buyer.parse().map_err(|_| "buyer".to_owned())?)
        .await
        .map_err(|e| e.to_string())?;
    Ok((seller, buyer))
}

/// The demo upstream: answers every request with a small JSON document naming the path and the
/// payer the gateway forwarded (`X-Payment-Payer`), and prints a line `<path> paidBy=<payer>`
/// for each. Runs until the process ends.
pub async fn serve_demo_upstream(listen: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (mut sock, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let Ok(n) = sock.read(&mut buf).await else {
                return;
            };
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let payer = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(obol_api::traefik::X_PAYMENT_PAYER)
                    .then(|| v.trim().to_owned())
            });
            // One line per request in its log: how many requests a payment let through is
            // visible from outside (the replicas test counts them).
            let _ = writeln!(
                std::io::stdout(),
                "{path} paidBy={}",
                payer.as_deref().unwrap_or("-")
            );
            let body = json!({"service": DEMO, "path": path, "paidBy": payer, "message": "hello from the demo upstream"}).to_string();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(reply.as_bytes()).await;
        });
    }
}

/// Waits until the demo purchase's status lists `replicas` buyer replicas, each with slots of
/// the pool's partition: every replica has claimed its share, so each one pays.
pub async fn wait_buyer_replicas(
    state: &State,
    replicas: usize,
    timeout: Duration,
) -> Result<(), String> {
    let api: Api<obol_api::PurchaseRequest> = Api::namespaced(client(state).await?, DEMO);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let listed: Vec<(String, String)> = api
            .get_status(DEMO)
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default()
            .buyers
            .into_iter()
            .map(|b| (b.name, b.slots))
            .collect();
        let claimed = listed.iter().filter(|(_, slots)| !slots.is_empty()).count();
        if claimed == replicas {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "{claimed} of {replicas} buyer replicas hold slots after {}s: {listed:?}",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
