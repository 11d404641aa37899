//! Changes after registration, against anvil and the local control plane: a spec change moves
//! the agent URI (`setAgentURI`) instead of registering again, and with `--public-url` the
//! agent URI is the served document, which gains `registrations` without a transaction.
//!
//! A missing anvil is installed (`scripts/tools/anvil.sh`) or fails the test; it never skips.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

mod support;

use alloy::primitives::U256;
use alloy::providers::Provider as _;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent as _;
use kube::api::{Patch, PatchParams};
use obol_api::{RegistrationPhase as Phase, RegistrationRequest};
use obol_registrar::contracts::IdentityRegistry::{self, URIUpdated};
use obol_registrar::document;
use support::anvil::RegistryKind;
use support::registrar::{
    Options, Registrar, Scene, create, mk_rr, phase, registered_events, wait_rr,
};

fn synced(rr: &RegistrationRequest) -> bool {
    phase(rr) == Some(Phase::Confirmed)
        && rr.status.as_ref().is_some_and(|s| {
            s.observed_generation == rr.metadata.generation
                && s.conditions.iter().any(|c| {
                    c.type_ == "MetadataSynced" && c.observed_generation == rr.metadata.generation
                })
        })
}

async fn a_spec_change_moves_the_agent_uri_without_a_second_registration(kind: RegistryKind) {
    let s = Scene::start("rr-update").await;
    let (anvil, api) = (&s.anvil, &s.api);
    let registry = anvil.deploy(kind).await;
    let registrar = Registrar::start(&s.options());
    create(api, &mk_rr("upd", Some(&registry.to_string()))).await;
    let first = wait_rr(api, "upd", &registrar, "Confirmed", synced).await;
    let old_uri = first.status.unwrap().registration_uri.unwrap();

    let patch = serde_json::json!({"spec": {"description": "Now with more GPUs", "metadata": {"gpu": "H100"}}});
    api.patch("upd", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let second = wait_rr(api, "upd", &registrar, "updated", |rr| {
        synced(rr) && rr.metadata.generation == Some(2)
    })
    .await;
    let new_uri = second.status.unwrap().registration_uri.unwrap();
    assert_ne!(new_uri, old_uri);
    let chain = anvil.provider(None);
    let r = IdentityRegistry::new(registry, &chain);
    assert_eq!(r.tokenURI(U256::ZERO).call().await.unwrap(), new_uri);
    let doc = document::parse_data_uri(&new_uri).unwrap();
    assert_eq!(doc.description, "Now with more GPUs");
    assert_eq!(doc.registrations[0].agent_id, 0);
    let gpu = r
        .getMetadata(U256::ZERO, "metadata.gpu".into())
        .call()
        .await
        .unwrap();
    assert_eq!(gpu.as_ref(), b"H100");
    assert_eq!(registered_events(anvil, registry).await.len(), 1);
}

async fn with_a_public_url_the_served_document_is_the_agent_uri(kind: RegistryKind) {
    let s = Scene::start("rr-public").await;
    let (env, anvil, ns, api) = (&s.env, &s.anvil, &s.ns, &s.api);
    let registry = anvil.deploy(kind).await;
    let registrar = Registrar::start(&Options {
        kubeconfig: env.kubeconfig_path(),
        namespace: ns.name(),
        rpc_url: Some(anvil.url()),
        with_key: true,
        extra: vec!["--public-url".into(), "https://agents.example/".into()],
    });
    create(api, &mk_rr("pub", Some(&registry.to_string()))).await;
    let rr = wait_rr(api, "pub", &registrar, "Confirmed", synced).await;
    let want = format!(
        "https://agents.example/registrations/{}/pub.json",
        ns.name()
    );
    assert_eq!(
        rr.status.unwrap().registration_uri.as_deref(),
        Some(want.as_str())
    );
    let chain = anvil.provider(None);
    let r = IdentityRegistry::new(registry, &chain);
    assert_eq!(r.tokenURI(U256::ZERO).call().await.unwrap(), want);
    let updates = chain
        .get_logs(
            &Filter::new()
                .address(registry)
                .event_signature(URIUpdated::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .unwrap();
    assert!(updates.is_empty(), "no setAgentURI needed");
    let (code, body) = registrar
        .get(&format!("/registrations/{}/pub.json", ns.name()))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["registrations"][0]["agentId"], 0);
}

on_both_registries!(
    a_spec_change_moves_the_agent_uri_without_a_second_registration,
    with_a_public_url_the_served_document_is_the_agent_uri,
);
