//! Exactly once under every crash timing: the registrar's own step function
//! ([`obol_registrar::step::advance`], what each reconcile runs between reading a request and
//! writing its status) drives a registration against anvil with automine off, through an RPC
//! proxy that mines a block before a chosen call and "kills" the registrar at a chosen call
//! (the call is held before or after anvil saw it, and the step is dropped without writing its
//! status, as SIGKILL would). A restart is a new process: new clients and caches, only the
//! persisted status survives.
//!
//! Every scenario ends with the chain mined until the request is confirmed, and must leave
//! exactly one `Registered` event for the request, the status naming that agent, and nothing
//! of the signer pending. Scenarios, each on its own request:
//! - a kill in the first life (fence, send, first judging step), or none; then a restart;
//! - for each, a mine before every call from the one before the first `eth_sendRawTransaction`
//!   to the last one before settling (and once at the very start, and never);
//! - after the worst first kill (register sent, its hash not stored), a second kill in the
//!   recovery, with the same mines.
//!
//! Where the kills fall: by default (`Distinct`, what CI runs) at every point that leaves a
//! different state behind: before each step (the last status written, nothing of the step
//! done), and just before and just after every `eth_sendRawTransaction`. A kill between two
//! reads of a step leaves the same state as a kill before the step: reads change nothing on
//! chain, and what the step learnt dies with it; the mines, enumerated separately, cover the
//! chain moving at any point. `OBOL_INTERLEAVING_MATRIX=full` kills before every call instead
//! (and after every send). `OBOL_INTERLEAVING_LIST=1` prints every scenario covered.
//!
//! `OBOL_INTERLEAVING_RUNS=<n>` repeats the whole set n times (default 1).

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi as _;
use alloy::providers::{DynProvider, Provider as _};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent as _;
use jiff::Timestamp;
use obol_api::{RegistrationRequest, RegistrationRequestStatus as Status};
use obol_registrar::abi::IIdentityRegistry::Registered;
use obol_registrar::backoff::Backoff;
use obol_registrar::chain::Chains;
use obol_registrar::key::SigningKey;
use obol_registrar::metrics::RegistrarMetrics;
use obol_registrar::plan::Outcome;
use obol_registrar::step::{self, Env};
use support::anvil::{Anvil, DEV_0, DEV_KEY_0, DEV_KEY_1};
use support::registrar::mk_rr;
use support::rpc_proxy::{Kill, RpcProxy, Script};

/// Steps of one process at most (fence, send, and the first judging step end a life).
const LIFE_STEPS: usize = 4;
/// Processes per scenario at most.
const MAX_LIVES: usize = 4;
/// Steps allowed to settle (mine, step) before a scenario fails.
const SETTLE_STEPS: usize = 8;

struct Harness {
    _anvil: Anvil,
    proxy: RpcProxy,
    direct: DynProvider,
    registry: Address,
    metrics: RegistrarMetrics,
    backoff: Backoff,
    clock: Timestamp,
    scenarios: usize,
    step_starts: Vec<usize>,
}

/// How a life ended.
enum Ended {
    Killed,
    Judged,
    Confirmed,
}

#[derive(Debug, Clone)]
struct Scenario {
    kills: Vec<(usize, Kill)>,
    mine_before: Option<usize>,
}

struct Trace {
    calls: Vec<String>,
    /// Calls made before settling.
    before_settle: usize,
    /// Index of the first call of every step before settling (a status was written before
    /// each, except the first of a life).
    step_starts: Vec<usize>,
}

impl Harness {
    async fn start(registry_kind: &str) -> Self {
        let anvil = Anvil::start(&[]).await;
        let deployer = anvil.provider(Some(DEV_KEY_1));
        let registry = match registry_kind {
            "upgradeable" => {
                obol_registrar::contracts::deploy_upgradeable_registry(&deployer)
                    .await
                    .expect("deploy the upgradeable registry")
                    .proxy
            }
            _ => anvil.deploy_registry().await,
        };
        let direct = anvil.provider(None);
        direct.anvil_set_auto_mine(false).await.unwrap();
        let proxy = RpcProxy::start(anvil.url()).await;
        let mut registry_metrics = prometheus_client::registry::Registry::default();
        Self {
            proxy,
            direct,
            registry,
            metrics: RegistrarMetrics::register(&mut registry_metrics),
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(10),
            },
            clock: "2026-01-01T00:00:00Z".parse().unwrap(),
            scenarios: 0,
            step_starts: vec![],
            _anvil: anvil,
        }
    }

    /// A fresh process: new clients, nothing cached.
    fn chains(&self) -> Chains {
        Chains::new(
            Some(DEV_KEY_0.parse::<SigningKey>().unwrap()),
            Some(self.proxy.url().parse().unwrap()),
            BTreeMap::new(),
            Duration::from_millis(1),
            Duration::from_secs(5),
        )
    }

    fn mark_step(&mut self) {
        let at = self.proxy.calls().len();
        self.step_starts.push(at);
    }

    fn tick(&mut self) -> Timestamp {
        // An hour per step: every backoff has expired by the next step.
        self.clock = self
            .clock
            .checked_add(jiff::SignedDuration::from_hours(1))
            .unwrap();
        self.clock
    }

    /// Runs one process until it is killed, or until its first step that judged the chain
    /// without sending (`Sent` and `Fenced` steps continue), at most `steps` steps; `status`
    /// is what the API server holds.
    async fn life(
        &mut self,
        chains: &Chains,
        rr: &RegistrationRequest,
        status: &mut Status,
        steps: usize,
    ) -> Ended {
        for _ in 0..steps {
            if status.agent_id.is_some() {
                return Ended::Confirmed;
            }
            let now = self.tick();
            self.mark_step();
            let mut current = rr.clone();
            current.status = Some(status.clone());
            let env = Env {
                chains,
                metrics: &self.metrics,
                public_url: None,
                backoff: &self.backoff,
                poll_interval: Duration::from_millis(1),
            };
            let outcome = tokio::select! {
                biased;
                () = self.proxy.killed() => None,
                advanced = step::advance(&env, &current, now) => Some(advanced),
            };
            let Some(advanced) = outcome else {
                self.proxy.revive();
                return Ended::Killed;
            };
            if let Some(next) = advanced.status {
                *status = next;
            }
            if !matches!(
                advanced.outcome,
                Some(Outcome::Fenced { .. } | Outcome::Sent { .. })
            ) {
                break;
            }
        }
        if status.agent_id.is_some() {
            Ended::Confirmed
        } else {
            Ended::Judged
        }
    }

    /// One scenario on a new request; panics when the invariant breaks.
    async fn run(&mut self, scenario: &Scenario) -> Trace {
        self.scenarios += 1;
        let t0 = std::time::Instant::now();
        if std::env::var_os("OBOL_INTERLEAVING_TRACE").is_some() {
            eprintln!("scenario {}: {scenario:?}", self.scenarios);
        }
        let name = format!("s{}", self.scenarios);
        let mut rr = mk_rr(&name, Some(&self.registry.to_string()));
        rr.metadata.namespace = Some("interleavings".into());
        rr.metadata.generation = Some(1);
        let uri = obol_registrar::request::derive(&rr, None)
            .unwrap()
            .register_uri;
        self.proxy.reset(Script {
            mine_before: scenario.mine_before,
            kills: scenario.kills.clone(),
            ..Script::default()
        });
        let mut status = Status::default();
        self.step_starts.clear();
        let first_block = self.direct.get_block_number().await.unwrap();
        // A process per life: each kill restarts it; a life that reached its first judging
        // step ends the scripted part once every kill has fired (settling restarts it too).
        for _ in 0..MAX_LIVES {
            match self
                .life(&self.chains(), &rr, &mut status, LIFE_STEPS)
                .await
            {
                Ended::Killed => {}
                Ended::Judged | Ended::Confirmed if self.proxy.kills_left() > 0 => {}
                Ended::Judged | Ended::Confirmed => break,
            }
        }
        let before_settle = self.proxy.calls().len();
        let step_starts = std::mem::take(&mut self.step_starts);
        // Settle: mine, step, until confirmed (a last restart first).
        self.proxy.disarm();
        let chains = self.chains();
        for _ in 0..SETTLE_STEPS {
            if status.agent_id.is_some() {
                break;
            }
            self.direct.evm_mine(None).await.unwrap();
            self.life(&chains, &rr, &mut status, 1).await;
        }
        self.direct.evm_mine(None).await.unwrap();
        let calls = self.proxy.calls();
        let events = self.registered(&uri, first_block).await;
        let context = || format!("{scenario:?}\ncalls: {calls:?}\nstatus: {status:#?}");
        assert_eq!(
            events.len(),
            1,
            "Registered events {events:?}\n{}",
            context()
        );
        assert_eq!(
            status.agent_id.as_deref(),
            Some(events[0].to_string().as_str()),
            "{}",
            context()
        );
        let latest = self.direct.get_transaction_count(DEV_0).await.unwrap();
        let pending = self
            .direct
            .get_transaction_count(DEV_0)
            .pending()
            .await
            .unwrap();
        assert_eq!(pending, latest, "nothing left pending\n{}", context());
        if std::env::var_os("OBOL_INTERLEAVING_TRACE").is_some() {
            eprintln!("  {} calls in {:?}", calls.len(), t0.elapsed());
        }
        Trace {
            calls,
            before_settle,
            step_starts,
        }
    }

    async fn registered(&self, uri: &str, from_block: u64) -> Vec<U256> {
        let logs = self
            .direct
            .get_logs(
                &Filter::new()
                    .address(self.registry)
                    .event_signature(Registered::SIGNATURE_HASH)
                    .from_block(from_block),
            )
            .await
            .unwrap();
        logs.iter()
            .filter_map(|l| Registered::decode_log_data(l.data()).ok())
            .filter(|ev| ev.agentURI == uri && ev.owner == DEV_0)
            .map(|ev| ev.agentId)
            .collect()
    }
}

/// Which kills a run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matrix {
    /// A kill before every call, and after every send.
    Full,
    /// A kill at each distinct point of what survives a crash: before a step starts (the
    /// previous status written, this step's reads not made), and just before and just after
    /// every send. A kill inside a step of reads leaves what a kill before it leaves: reads
    /// change nothing on chain, and what the step learnt dies with it (the mines, enumerated
    /// separately, cover where the chain moved meanwhile).
    Distinct,
}

/// The kills between calls `from..to` of `trace`.
fn kill_points(trace: &Trace, from: usize, to: usize, matrix: Matrix) -> Vec<(usize, Kill)> {
    let mut kills = vec![];
    for (i, method) in trace.calls.iter().enumerate().take(to).skip(from) {
        let send = method == "eth_sendRawTransaction";
        if matrix == Matrix::Full || send || trace.step_starts.contains(&i) {
            kills.push((i, Kill::Before));
        }
        if send {
            kills.push((i, Kill::After));
        }
    }
    kills
}

fn first_send(calls: &[String], from: usize) -> Option<usize> {
    calls
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, m)| m.as_str() == "eth_sendRawTransaction")
        .map(|(i, _)| i)
}

/// Every mine position that can matter after `kills`: once at the start, then before each
/// call from the one before the register is first sent to the last one before settling.
async fn mines(h: &mut Harness, kills: Vec<(usize, Kill)>, covered: &mut Vec<String>) -> usize {
    let base = h
        .run(&Scenario {
            kills: kills.clone(),
            mine_before: None,
        })
        .await;
    let mut n = 1;
    let from = first_send(&base.calls, 0).map_or(0, |s| s.saturating_sub(1));
    let label = |calls: &[String], at: Option<usize>| {
        at.map_or("-".to_owned(), |i| {
            format!("{i}:{}", calls.get(i).map_or("?", String::as_str))
        })
    };
    for mine in std::iter::once(0).chain(from..base.before_settle) {
        let trace = h
            .run(&Scenario {
                kills: kills.clone(),
                mine_before: Some(mine),
            })
            .await;
        n += 1;
        let kill_labels: Vec<String> = kills
            .iter()
            .map(|(i, k)| format!("{k:?} {}", label(&base.calls, Some(*i))))
            .collect();
        covered.push(format!(
            "kill [{}] mine before {}",
            kill_labels.join(", "),
            label(&trace.calls, Some(mine))
        ));
    }
    n
}

async fn every_interleaving(registry_kind: &str) {
    let runs: usize = std::env::var("OBOL_INTERLEAVING_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let matrix = match std::env::var("OBOL_INTERLEAVING_MATRIX").as_deref() {
        Ok("full") => Matrix::Full,
        _ => Matrix::Distinct,
    };
    let mut h = Harness::start(registry_kind).await;
    for run in 0..runs {
        let mut covered = vec![];
        let started = std::time::Instant::now();
        // The undisturbed registration: where every call is.
        let base = h
            .run(&Scenario {
                kills: vec![],
                mine_before: None,
            })
            .await;
        let send = first_send(&base.calls, 0).expect("the first life sends register");
        if std::env::var_os("OBOL_INTERLEAVING_TRACE").is_some() {
            eprintln!(
                "base calls: {:?}, steps at {:?}",
                base.calls, base.step_starts
            );
        }
        let mut n = 1 + mines(&mut h, vec![], &mut covered).await;
        // One kill in the first life (fence, send, first judging step), then a restart.
        for kill in kill_points(&base, 0, base.before_settle, matrix) {
            n += mines(&mut h, vec![kill], &mut covered).await;
        }
        // The worst first kill (register sent, its hash not stored), then a second kill in
        // the recovery.
        let worst = h
            .run(&Scenario {
                kills: vec![(send, Kill::After)],
                mine_before: None,
            })
            .await;
        for kill in kill_points(&worst, send + 1, worst.before_settle, matrix) {
            n += mines(&mut h, vec![(send, Kill::After), kill], &mut covered).await;
        }
        eprintln!(
            "run {}/{runs} ({registry_kind} registry, {matrix:?} matrix): {n} scenarios, each \
             with exactly one registration, in {:.1} s; first life: {:?}",
            run + 1,
            started.elapsed().as_secs_f64(),
            &base.calls[..base.before_settle]
        );
        if std::env::var_os("OBOL_INTERLEAVING_LIST").is_some() {
            for c in &covered {
                eprintln!("  {c}");
            }
        }
    }
}

#[tokio::test]
async fn every_kill_mine_restart_interleaving_registers_once_on_the_test_registry() {
    every_interleaving("simple").await;
}

#[tokio::test]
async fn every_kill_mine_restart_interleaving_registers_once_on_the_upgradeable_registry() {
    every_interleaving("upgradeable").await;
}
