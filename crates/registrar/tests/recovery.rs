//! The registrar's crash and outage behaviour against a real chain (anvil) and the local
//! Kubernetes control plane: exactly one registration across crashes, retries while the RPC is
//! down, and deletes that complete although the RPC died.
//!
//! A missing anvil is installed (`scripts/tools/anvil.sh`) or fails the test; it never skips.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

mod support;

use std::time::Duration;

use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi as _;
use kube::Api;
use kube::api::DeleteParams;
use obol_api::{RegistrationPhase as Phase, RegistrationRequest};
use obol_testenv::TestEnv;
use support::anvil::{Anvil, RegistryKind};
use support::registrar::{
    Options, Registrar, Scene, create, mk_rr, phase, registered_events, wait_gone, wait_rr,
};
use support::rpc_proxy::{Kill, RpcProxy, Script};

async fn a_crash_between_send_and_confirmation_registers_exactly_once(kind: RegistryKind) {
    let s = Scene::start("rr-crash").await;
    let (anvil, api) = (&s.anvil, &s.api);
    let registry = anvil.deploy(kind).await;
    let chain = anvil.provider(None);
    chain.anvil_set_auto_mine(false).await.unwrap();
    let options = s.options();
    let mut first = Registrar::start(&options);
    create(api, &mk_rr("crash", Some(&registry.to_string()))).await;
    let submitted = wait_rr(api, "crash", &first, "Submitted", |rr| {
        phase(rr) == Some(Phase::Submitted)
    })
    .await;
    // The transaction sits in the pool; the registrar dies before any receipt.
    first.kill();
    let tx = submitted.status.unwrap().tx_hash.unwrap();

    // A new process recovers from the stored hash and must not send again while it is pending.
    let second = Registrar::start(&options);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pending = chain
        .get_transaction_count(support::anvil::DEV_0)
        .pending()
        .await
        .unwrap();
    assert_eq!(
        pending,
        1,
        "exactly one transaction sent:\n{}",
        second.log_text()
    );
    let still = api.get("crash").await.unwrap();
    assert_eq!(phase(&still), Some(Phase::Submitted));

    chain.anvil_set_auto_mine(true).await.unwrap();
    chain.evm_mine(None).await.unwrap();
    let confirmed = wait_rr(api, "crash", &second, "Confirmed", |rr| {
        phase(rr) == Some(Phase::Confirmed)
    })
    .await;
    let status = confirmed.status.unwrap();
    assert_eq!(status.tx_hash.as_deref(), Some(tx.as_str()));
    let events = registered_events(anvil, registry).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(status.agent_id.as_deref(), Some("0"));
}

async fn a_crash_before_the_hash_is_stored_recovers_from_the_logs(kind: RegistryKind) {
    let s = Scene::start("rr-fence").await;
    let (anvil, api) = (&s.anvil, &s.api);
    let registry = anvil.deploy(kind).await;
    let chain = anvil.provider(None);
    chain.anvil_set_auto_mine(false).await.unwrap();
    let options = s.options();
    let mut first = Registrar::start(&options);
    create(api, &mk_rr("fence", Some(&registry.to_string()))).await;
    let submitted = wait_rr(api, "fence", &first, "Submitted", |rr| {
        phase(rr) == Some(Phase::Submitted)
    })
    .await;
    first.kill();
    // Simulate the crash window between `eth_sendRawTransaction` and the status write: the
    // fence is persisted, the hash is not.
    let tx = submitted.status.unwrap().tx_hash.unwrap();
    api.patch_status(
        "fence",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            &serde_json::json!({"status": {"txHash": null, "phase": "Pending"}}),
        ),
    )
    .await
    .unwrap();
    chain.anvil_set_auto_mine(true).await.unwrap();
    chain.evm_mine(None).await.unwrap();

    let second = Registrar::start(&options);
    let confirmed = wait_rr(api, "fence", &second, "Confirmed", |rr| {
        phase(rr) == Some(Phase::Confirmed)
    })
    .await;
    let status = confirmed.status.unwrap();
    assert_eq!(status.agent_id.as_deref(), Some("0"));
    assert_eq!(
        status.tx_hash.as_deref(),
        Some(tx.as_str()),
        "found in the logs"
    );
    assert_eq!(registered_events(anvil, registry).await.len(), 1);
}

/// The window, on the real binary: the registrar dies right after its `register`
/// reached the node (the hash never stored), and the transaction is mined between the next
/// process's recovery queries. Recovery must find it, never send a second one.
async fn a_register_mined_between_the_recovery_queries_is_found_not_sent_again(kind: RegistryKind) {
    let env = TestEnv::get().await;
    let anvil = Anvil::start(&[]).await;
    let registry = anvil.deploy(kind).await;
    let chain = anvil.provider(None);
    chain.anvil_set_auto_mine(false).await.unwrap();
    let proxy = RpcProxy::start(anvil.url()).await;
    proxy.reset(Script {
        kill_at_nth: Some(("eth_sendRawTransaction", 0, Kill::After)),
        ..Script::default()
    });
    let ns = env.namespace("rr-window").await;
    let api: Api<RegistrationRequest> = Api::namespaced(env.client(), ns.name());
    let options = Options {
        kubeconfig: env.kubeconfig_path(),
        namespace: ns.name(),
        rpc_url: Some(proxy.url()),
        with_key: true,
        extra: vec![],
    };
    let mut first = Registrar::start(&options);
    create(&api, &mk_rr("window", Some(&registry.to_string()))).await;
    tokio::time::timeout(Duration::from_secs(60), proxy.killed())
        .await
        .unwrap_or_else(|_| panic!("register never sent:\n{}", first.log_text()));
    first.kill();
    let fenced = api.get("window").await.unwrap().status.unwrap();
    assert!(
        fenced.tx_hash.is_none() && fenced.nonce.is_some(),
        "the hash was never stored: {fenced:?}"
    );
    let pending = chain
        .get_transaction_count(support::anvil::DEV_0)
        .pending()
        .await
        .unwrap();
    assert_eq!(pending, 1, "the register sits in the pool");

    // The next process pins block B, reads the signer's nonce at B and the logs up to B; the
    // register is mined right after, before it reads the pool.
    proxy.reset(Script {
        mine_before_nth: Some(("eth_getTransactionCount", 1)),
        ..Script::default()
    });
    let second = Registrar::start(&options);
    let confirmed = wait_rr(&api, "window", &second, "Confirmed", |rr| {
        phase(rr) == Some(Phase::Confirmed)
    })
    .await;
    let status = confirmed.status.unwrap();
    assert_eq!(status.agent_id.as_deref(), Some("0"));
    // Whatever the second process sent after confirming (on the upgradeable registry it clears
    // the agent wallet its own register set) is mined too; none of it may be a register.
    chain.anvil_set_auto_mine(true).await.unwrap();
    chain.evm_mine(None).await.unwrap();
    let events = registered_events(&anvil, registry).await;
    assert_eq!(events.len(), 1, "{events:?}\n{}", second.log_text());
    assert_eq!(
        register_calls_sent(&anvil).await,
        1,
        "one register transaction in all:\n{}",
        second.log_text()
    );
}

/// How many transactions of the registrar's key, mined or pending, call `register`.
async fn register_calls_sent(anvil: &Anvil) -> usize {
    use alloy::sol_types::SolCall as _;
    let chain = anvil.provider(None);
    let latest = chain.get_block_number().await.unwrap();
    let mut count = 0;
    for number in 0..=latest {
        let block = chain
            .get_block_by_number(number.into())
            .full()
            .await
            .unwrap()
            .unwrap();
        for tx in block.transactions.into_transactions() {
            let from = tx.inner.signer();
            let input = alloy::consensus::Transaction::input(&tx);
            if from == support::anvil::DEV_0
                && input
                    .starts_with(&obol_registrar::abi::IIdentityRegistry::registerCall::SELECTOR)
            {
                count += 1;
            }
        }
    }
    count
}

async fn rpc_down_retries_with_backoff_then_recovers(kind: RegistryKind) {
    let env = TestEnv::get().await;
    let ns = env.namespace("rr-rpcdown").await;
    let api: Api<RegistrationRequest> = Api::namespaced(env.client(), ns.name());
    let port = obol_testenv::net::reserved_port();
    let registrar = Registrar::start(&Options {
        kubeconfig: env.kubeconfig_path(),
        namespace: ns.name(),
        rpc_url: Some(format!("http://127.0.0.1:{port}")),
        with_key: true,
        extra: vec![],
    });
    // Where the registry will be once the chain runs.
    let registry = kind.address_on_a_fresh_chain();
    create(&api, &mk_rr("down", Some(&registry.to_string()))).await;
    let failing = wait_rr(&api, "down", &registrar, "retrying", |rr| {
        rr.status
            .as_ref()
            .is_some_and(|s| s.attempts.unwrap_or(0) >= 2)
    })
    .await;
    let status = failing.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Pending));
    assert!(status.next_attempt_time.is_some());
    let message = status.error_message.unwrap();
    assert!(message.contains("RPC unavailable"), "{message}");

    // The chain comes up with the registry fully deployed (the upgradeable one takes four
    // transactions, and a registry half-way through its upgrade is refused for good), then
    // becomes reachable on the port the registrar was given.
    let anvil = Anvil::start(&[]).await;
    assert_eq!(anvil.deploy(kind).await, registry);
    let _reachable = RpcProxy::start_on(port, anvil.url()).await;
    let confirmed = wait_rr(&api, "down", &registrar, "Confirmed", |rr| {
        phase(rr) == Some(Phase::Confirmed)
    })
    .await;
    let status = confirmed.status.unwrap();
    assert_eq!(status.agent_id.as_deref(), Some("0"));
    assert_eq!((status.attempts, status.error_message), (None, None));
    assert_eq!(registered_events(&anvil, registry).await.len(), 1);
}

async fn a_dead_rpc_never_wedges_a_delete(kind: RegistryKind) {
    let env = TestEnv::get().await;
    let mut anvil = Anvil::start(&[]).await;
    let registry = anvil.deploy(kind).await;
    let ns = env.namespace("rr-deadrpc").await;
    let api: Api<RegistrationRequest> = Api::namespaced(env.client(), ns.name());
    let registrar = Registrar::start(&Options {
        kubeconfig: env.kubeconfig_path(),
        namespace: ns.name(),
        rpc_url: Some(anvil.url()),
        with_key: true,
        extra: vec!["--tombstone-attempts".into(), "3".into()],
    });
    create(&api, &mk_rr("stuck", Some(&registry.to_string()))).await;
    wait_rr(&api, "stuck", &registrar, "Confirmed", |rr| {
        phase(rr) == Some(Phase::Confirmed)
    })
    .await;
    anvil.stop();
    api.delete("stuck", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "stuck", &registrar).await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client(), ns.name());
    let warned = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some("TombstoneAbandoned")
        });
    assert!(
        warned,
        "a Warning Event says the agent stays active:\n{}",
        registrar.log_text()
    );
}

async fn is_leader(r: &Registrar) -> bool {
    r.get("/metrics")
        .await
        .is_some_and(|(_, body)| body.lines().any(|l| l == "obol_registrar_leader 1"))
}

async fn one_leader_registers_and_a_standby_takes_over(kind: RegistryKind) {
    let s = Scene::start("rr-lease").await;
    let (env, anvil, ns, api) = (&s.env, &s.anvil, &s.ns, &s.api);
    let registry = anvil.deploy(kind).await;
    let start = |identity: &str| {
        Registrar::start(&Options {
            kubeconfig: env.kubeconfig_path(),
            namespace: ns.name(),
            rpc_url: Some(anvil.url()),
            with_key: true,
            extra: vec!["--identity".into(), identity.into()],
        })
    };
    let mut a = start("replica-a");
    let mut b = start("replica-b");
    create(api, &mk_rr("one", Some(&registry.to_string()))).await;
    wait_rr(api, "one", &a, "Confirmed", |rr| {
        phase(rr) == Some(Phase::Confirmed)
    })
    .await;
    let (a_leads, b_leads) = (is_leader(&a).await, is_leader(&b).await);
    assert!(
        a_leads != b_leads,
        "exactly one leader (a: {a_leads}, b: {b_leads})"
    );
    // Both serve documents, leader or not (each from its own cache, which may lag a little).
    for r in [&a, &b] {
        obol_testenv::eventually(Duration::from_secs(10), || async {
            let (code, _) = r.get("/.well-known/agent-registration.json").await?;
            (code == 200).then_some(())
        })
        .await;
    }

    let survivor = if a_leads {
        a.kill();
        &b
    } else {
        b.kill();
        &a
    };
    create(api, &mk_rr("two", Some(&registry.to_string()))).await;
    let two = wait_rr(api, "two", survivor, "Confirmed by the standby", |rr| {
        phase(rr) == Some(Phase::Confirmed)
    })
    .await;
    assert_eq!(two.status.unwrap().agent_id.as_deref(), Some("1"));
    assert!(is_leader(survivor).await);
    assert_eq!(registered_events(anvil, registry).await.len(), 2);
}

on_both_registries!(
    a_register_mined_between_the_recovery_queries_is_found_not_sent_again,
    a_crash_between_send_and_confirmation_registers_exactly_once,
    a_crash_before_the_hash_is_stored_recovers_from_the_logs,
    rpc_down_retries_with_backoff_then_recovers,
    a_dead_rpc_never_wedges_a_delete,
    one_leader_registers_and_a_standby_takes_over,
);
