//! The registrar binary against a real chain (anvil, chain id 84532, the committed test
//! registry) and the local Kubernetes control plane: registration, confirmation, the served
//! documents, tombstoning on delete, no key, reverts. Crashes and outages: `recovery.rs`.
//!
//! A missing anvil is installed (`scripts/tools/anvil.sh`) or fails the test; it never skips.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

mod support;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi as _;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent as _;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt as _};
use obol_api::{RegistrationPhase as Phase, RegistrationRequest};
use obol_registrar::contracts::IdentityRegistry::{self, URIUpdated};
use obol_registrar::document;
use obol_testenv::TestEnv;
use support::anvil::RegistryKind;
use support::registrar::{
    Options, Registrar, Scene, create, golden, mk_rr, phase, registered_events, wait_gone, wait_rr,
};

async fn registers_confirms_serves_and_tombstones(kind: RegistryKind) {
    let s = Scene::start("rr-happy").await;
    let (anvil, ns, api) = (&s.anvil, &s.ns, &s.api);
    let registry = anvil.deploy(kind).await;
    // Pause the miner so that Submitted (hash recorded, not mined) is observable.
    let chain = anvil.provider(None);
    chain.anvil_set_auto_mine(false).await.unwrap();
    let registrar = Registrar::start(&s.options());
    create(api, &mk_rr("demo", Some(&registry.to_string()))).await;

    let submitted = wait_rr(api, "demo", &registrar, "Submitted", |rr| {
        phase(rr) == Some(Phase::Submitted)
    })
    .await;
    let status = submitted.status.clone().unwrap();
    assert!(
        status.tx_hash.is_some() && status.search_from_block.is_some(),
        "{status:?}"
    );
    assert!(status.agent_id.is_none());

    chain.anvil_set_auto_mine(true).await.unwrap();
    chain.evm_mine(None).await.unwrap();
    let confirmed = wait_rr(api, "demo", &registrar, "Confirmed and synced", |rr| {
        phase(rr) == Some(Phase::Confirmed)
            && rr.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| c.type_ == "MetadataSynced")
                    && s.error_message.is_none()
            })
    })
    .await;
    // Our finalizer holds the request; status is written under the registrar's field manager.
    assert!(
        confirmed
            .finalizers()
            .iter()
            .any(|f| f == obol_api::REGISTRAR_FINALIZER)
    );
    let managers: Vec<_> = confirmed
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert!(
        managers.contains(&obol_api::REGISTRAR_FIELD_MANAGER),
        "{managers:?}"
    );
    let status = confirmed.status.unwrap();
    let events = registered_events(anvil, registry).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        status.agent_id.as_deref(),
        Some(events[0].0.to_string().as_str())
    );
    assert_eq!(status.agent_id.as_deref(), Some("0"));
    assert_eq!(status.tx_hash, submitted.status.unwrap().tx_hash);

    // On chain: the agent URI now carries `registrations`; metadata is set.
    let r = IdentityRegistry::new(registry, &chain);
    let uri = r.tokenURI(U256::ZERO).call().await.unwrap();
    assert_eq!(Some(&uri), status.registration_uri.as_ref());
    let on_chain = document::parse_data_uri(&uri).expect("data: URI");
    assert_eq!(on_chain.registrations[0].agent_id, 0);
    let gpu = r
        .getMetadata(U256::ZERO, "metadata.gpu".into())
        .call()
        .await
        .unwrap();
    assert_eq!(gpu.as_ref(), b"A100");

    // Served documents: the request's own, and the aggregate.
    let (code, body) = registrar
        .get(&format!("/registrations/{}/demo.json", ns.name()))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut want = golden("served-demo-agent-0.json");
    want["registrations"][0]["agentRegistry"] =
        format!("eip155:84532:{}", registry.to_checksum(None)).into();
    assert_eq!(served, want);
    assert_eq!(serde_json::to_value(&on_chain).unwrap(), served);
    let (code, body) = registrar
        .get("/.well-known/agent-registration.json")
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        served
    );
    let (code, metrics) = registrar.get("/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("obol_registrar_transactions_total{kind=\"register\"} 1"),
        "{metrics}"
    );

    // The official register made the registrar's hot key the agent's wallet: cleared.
    assert_eq!(
        r.getAgentWallet(U256::ZERO).call().await.unwrap(),
        Address::ZERO
    );

    // Delete: a tombstone transaction, then the finalizer is released.
    api.delete("demo", &DeleteParams::default()).await.unwrap();
    wait_gone(api, "demo", &registrar).await;
    let updates = chain
        .get_logs(
            &Filter::new()
                .address(registry)
                .event_signature(URIUpdated::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .unwrap();
    let last = URIUpdated::decode_log_data(updates.last().unwrap().data()).unwrap();
    let tomb = document::parse_data_uri(&last.newURI).expect("tombstone data: URI");
    assert!(!tomb.active && !tomb.x402_support && tomb.services.is_empty());
    assert_eq!(tomb.registrations[0].agent_id, 0);
    assert_eq!(r.tokenURI(U256::ZERO).call().await.unwrap(), last.newURI);
    assert_eq!(registered_events(anvil, registry).await.len(), 1);
}

#[tokio::test]
async fn without_a_key_requests_are_off_chain_only_and_still_served() {
    let env = TestEnv::get().await;
    let ns = env.namespace("rr-nokey").await;
    let api: Api<RegistrationRequest> = Api::namespaced(env.client(), ns.name());
    let registrar = Registrar::start(&Options {
        kubeconfig: env.kubeconfig_path(),
        namespace: ns.name(),
        rpc_url: None,
        with_key: false,
        // As deployed with an optional Secret that does not exist: the path is set, the file
        // is absent.
        extra: vec!["--key-file".into(), "/nonexistent/erc8004/key".into()],
    });
    create(&api, &mk_rr("offchain", None)).await;
    let rr = wait_rr(&api, "offchain", &registrar, "OffChainOnly", |rr| {
        phase(rr) == Some(Phase::OffChainOnly)
    })
    .await;
    assert!(rr.status.unwrap().agent_id.is_none());
    let path = format!("/registrations/{}/offchain.json", ns.name());
    let (code, body) = registrar.get(&path).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (doc["active"].as_bool(), doc.get("registrations")),
        (Some(true), None)
    );
    let (code, _) = registrar
        .get("/.well-known/agent-registration.json")
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(registrar.get("/readyz").await.unwrap().0, 200);
    // Nothing on chain to retire: deletion is not held up.
    api.delete("offchain", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&api, "offchain", &registrar).await;
}

#[tokio::test]
async fn a_reverting_registry_fails_with_the_message() {
    let s = Scene::start("rr-revert").await;
    let (anvil, api) = (&s.anvil, &s.api);
    let registry = anvil.deploy_reverting_registry().await;
    let registrar = Registrar::start(&s.options());
    create(api, &mk_rr("revert", Some(&registry.to_string()))).await;
    let failed = wait_rr(api, "revert", &registrar, "Failed", |rr| {
        phase(rr) == Some(Phase::Failed)
    })
    .await;
    let message = failed.status.unwrap().error_message.unwrap();
    assert!(message.contains("registrations closed"), "{message}");
    let nonce = anvil
        .provider(None)
        .get_transaction_count(support::anvil::DEV_0)
        .await
        .unwrap();
    assert_eq!(nonce, 0, "nothing was mined");
}

/// The official registry makes whoever registers the agent's wallet; a registrar's hot key is
/// no payment address, so the registrar clears it. A wallet its owner verified (here: dev key
/// #1 signs, the registrar's key submits, as an operator would for the offer's payTo) is
/// cleared when the agent retires.
async fn the_agent_wallet_is_never_the_hot_key_and_is_cleared_on_retirement() {
    use alloy::signers::SignerSync as _;
    use alloy::signers::local::PrivateKeySigner;
    use alloy::sol_types::SolStruct as _;
    use obol_registrar::contracts::UpgradeableIdentityRegistry as Upgradeable;

    alloy::sol! {
        struct AgentWalletSet {
            uint256 agentId;
            address newWallet;
            address owner;
            uint256 deadline;
        }
    }
    let s = Scene::start("rr-wallet").await;
    let (anvil, api) = (&s.anvil, &s.api);
    let registry = anvil.deploy(RegistryKind::Upgradeable).await;
    let registrar = Registrar::start(&s.options());
    create(api, &mk_rr("wallet", Some(&registry.to_string()))).await;
    let synced = |rr: &RegistrationRequest| {
        phase(rr) == Some(Phase::Confirmed)
            && rr
                .status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "MetadataSynced"))
    };
    wait_rr(api, "wallet", &registrar, "Confirmed and synced", synced).await;
    let registrar_key = anvil.provider(Some(support::anvil::DEV_KEY_0));
    let r = Upgradeable::new(registry, &registrar_key);
    assert_eq!(
        r.getAgentWallet(U256::ZERO).call().await.unwrap(),
        Address::ZERO,
        "the hot key is not the agent's wallet:\n{}",
        registrar.log_text()
    );

    // The payTo's owner signs; the agent's owner submits within five minutes.
    let pay_to: PrivateKeySigner = support::anvil::DEV_KEY_1.parse().unwrap();
    let now = anvil
        .provider(None)
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    let deadline = U256::from(now + 120);
    let domain = alloy::sol_types::eip712_domain! {
        name: "ERC8004IdentityRegistry",
        version: "1",
        chain_id: support::anvil::CHAIN_ID,
        verifying_contract: registry,
    };
    let message = AgentWalletSet {
        agentId: U256::ZERO,
        newWallet: pay_to.address(),
        owner: support::anvil::DEV_0,
        deadline,
    };
    let signature = pay_to
        .sign_hash_sync(&message.eip712_signing_hash(&domain))
        .unwrap();
    r.setAgentWallet(
        U256::ZERO,
        pay_to.address(),
        deadline,
        signature.as_bytes().to_vec().into(),
    )
    .send()
    .await
    .unwrap()
    .get_receipt()
    .await
    .unwrap();
    assert_eq!(
        r.getAgentWallet(U256::ZERO).call().await.unwrap(),
        pay_to.address()
    );

    api.delete("wallet", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(api, "wallet", &registrar).await;
    assert_eq!(
        r.getAgentWallet(U256::ZERO).call().await.unwrap(),
        Address::ZERO,
        "a retired agent advertises no wallet:\n{}",
        registrar.log_text()
    );
    let tomb = document::parse_data_uri(&r.tokenURI(U256::ZERO).call().await.unwrap()).unwrap();
    assert!(!tomb.active);
}

#[tokio::test]
async fn wallet_on_the_upgradeable_registry() {
    the_agent_wallet_is_never_the_hot_key_and_is_cleared_on_retirement().await;
}

/// `getVersion()` is pure, so the implementation behind the proxy answers `2.0.0` too; an
/// agent minted there would live in the implementation's own storage. Refused by name.
#[tokio::test]
async fn the_registrys_implementation_address_is_refused() {
    let s = Scene::start("rr-impl").await;
    let (anvil, api) = (&s.anvil, &s.api);
    let deployer = anvil.provider(Some(support::anvil::DEV_KEY_1));
    let d = obol_registrar::contracts::deploy_upgradeable_registry(&deployer)
        .await
        .unwrap();
    let registrar = Registrar::start(&s.options());
    create(api, &mk_rr("impl", Some(&d.implementation.to_string()))).await;
    let failed = wait_rr(api, "impl", &registrar, "Failed", |rr| {
        phase(rr) == Some(Phase::Failed)
    })
    .await;
    let message = failed.status.unwrap().error_message.unwrap();
    assert!(
        message.contains(&d.implementation.to_string())
            && message.contains("implementation contract, not its proxy"),
        "{message}"
    );
    assert!(registered_events(anvil, d.implementation).await.is_empty());
    let sent = anvil
        .provider(None)
        .get_transaction_count(support::anvil::DEV_0)
        .await
        .unwrap();
    assert_eq!(sent, 0, "nothing was sent");
}

on_both_registries!(registers_confirms_serves_and_tombstones,);
