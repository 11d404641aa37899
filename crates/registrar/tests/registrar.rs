//! The registrar binary against a real chain (anvil, chain id 84532, the committed test
//! registry) and the local Kubernetes control plane: registration, confirmation, the served
//! documents, tombstoning on delete, no key, reverts. Crashes and outages: `recovery.rs`.
//!
//! A missing anvil is installed (`scripts/tools/anvil.sh`) or fails the test; it never skips.

mod support;

use alloy::primitives::U256;
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
use support::anvil::Anvil;
use support::registrar::{
    Options, REGISTRY, Registrar, create, golden, mk_rr, phase, registered_events, wait_gone,
    wait_rr,
};

#[tokio::test]
async fn registers_confirms_serves_and_tombstones() {
    let env = TestEnv::get().await;
    let anvil = Anvil::start(&[]).await;
    assert_eq!(anvil.deploy_registry().await, REGISTRY);
    let ns = env.namespace("rr-happy").await;
    let api: Api<RegistrationRequest> = Api::namespaced(env.client(), ns.name());
    // Pause the miner so that Submitted (hash recorded, not mined) is observable.
    let chain = anvil.provider(None);
    chain.anvil_set_auto_mine(false).await.unwrap();
    let registrar = Registrar::start(&Options {
        kubeconfig: env.kubeconfig_path(),
        namespace: ns.name(),
        rpc_url: Some(anvil.url()),
        with_key: true,
        extra: vec![],
    });
    create(&api, &mk_rr("demo", Some(&REGISTRY.to_string()))).await;

    let submitted = wait_rr(&api, "demo", &registrar, "Submitted", |rr| {
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
    let confirmed = wait_rr(&api, "demo", &registrar, "Confirmed and synced", |rr| {
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
    let events = registered_events(&anvil, REGISTRY).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        status.agent_id.as_deref(),
        Some(events[0].0.to_string().as_str())
    );
    assert_eq!(status.agent_id.as_deref(), Some("0"));
    assert_eq!(status.tx_hash, submitted.status.unwrap().tx_hash);

    // On chain: the agent URI now carries `registrations`; metadata is set.
    let r = IdentityRegistry::new(REGISTRY, &chain);
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
    assert_eq!(served, golden("served-demo-agent-0.json"));
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

    // Delete: a tombstone transaction, then the finalizer is released.
    api.delete("demo", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "demo", &registrar).await;
    let updates = chain
        .get_logs(
            &Filter::new()
                .address(REGISTRY)
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
    assert_eq!(registered_events(&anvil, REGISTRY).await.len(), 1);
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
    let env = TestEnv::get().await;
    let anvil = Anvil::start(&[]).await;
    let registry = anvil.deploy_reverting_registry().await;
    let ns = env.namespace("rr-revert").await;
    let api: Api<RegistrationRequest> = Api::namespaced(env.client(), ns.name());
    let registrar = Registrar::start(&Options {
        kubeconfig: env.kubeconfig_path(),
        namespace: ns.name(),
        rpc_url: Some(anvil.url()),
        with_key: true,
        extra: vec![],
    });
    create(&api, &mk_rr("revert", Some(&registry.to_string()))).await;
    let failed = wait_rr(&api, "revert", &registrar, "Failed", |rr| {
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
