//! The verifier of the local stack as one replica or several (`obol dev up --verifier-replicas
//! N`). One replica keeps its reservations in memory and is reached directly, as before. With
//! N > 1 a Debian `redis-server` on loopback holds the reservations every replica shares
//! (`--reservations redis://…`), and the stack's Traefik plays the verifier Service's
//! load balancer (what kube-proxy or the gateway's endpoint balancing does in a cluster): two
//! entry points of its own, one per Service port (ForwardAuth and probes; the gateway listener),
//! each balancing over every replica that answers `/readyz`. The verifier Service, the
//! controller's ForwardAuth address and `obol dev env` name these balanced addresses, so both
//! gateway modes use every replica.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Error, State, Up, fail, run_script, wait_http};
use crate::process;

/// The Redis process's name in the state file.
pub const REDIS: &str = "redis";
/// Traefik's entry point balancing the replicas' ForwardAuth, probe and metrics listeners.
pub const ENTRY_POINT: &str = "verifier";
/// Traefik's entry point balancing the replicas' gateway listeners (gateway mode `proxy`).
pub const GATEWAY_ENTRY_POINT: &str = "verifier-gateway";
/// The file, in Traefik's dynamic configuration directory, that holds the balancers.
pub const BALANCER_FILE: &str = "verifier-replicas.yml";
/// How often Traefik asks each replica's `/readyz`: a killed replica leaves the rotation within
/// about this long.
pub const HEALTH_INTERVAL: &str = "500ms";
/// How long Traefik waits for that answer.
pub const HEALTH_TIMEOUT: &str = "400ms";
/// Most replicas `up` starts.
pub const MAX_REPLICAS: u16 = 16;

/// One verifier replica as recorded in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// Its process name (`verifier` alone, `verifier-1`… of several).
    pub name: String,
    /// Its ForwardAuth, probe and metrics listener.
    pub url: String,
    /// Its gateway listener.
    pub gateway_url: String,
}

/// Loopback ports of one replica: (ForwardAuth/probes/metrics, gateway listener).
pub type Ports = (u16, u16);

/// The process name of replica `index` (from 0) of `count`: one replica keeps the name
/// `verifier`, which earlier state files and tools know.
pub fn replica_name(index: usize, count: usize) -> String {
    if count <= 1 {
        "verifier".to_owned()
    } else {
        format!("verifier-{}", index + 1)
    }
}

/// The arguments of one replica listening on `ports`, sharing `redis` when there is one.
pub fn verifier_args(ports: Ports, redis: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--route-source".into(),
        "kube".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", ports.0),
        "--gateway-listen".into(),
        format!("127.0.0.1:{}", ports.1),
    ];
    if let Some(url) = redis {
        args.extend(["--reservations".into(), url.to_owned()]);
    }
    args
}

/// Traefik's static arguments of the two balancing entry points on `balanced` (ForwardAuth,
/// gateway). The gateway itself is their client on loopback: its `X-Forwarded-*` headers (the
/// URI ForwardAuth asks about, the client's host and scheme) are kept.
pub fn entry_point_args(balanced: Ports) -> Vec<String> {
    [(ENTRY_POINT, balanced.0), (GATEWAY_ENTRY_POINT, balanced.1)]
        .iter()
        .flat_map(|(name, port)| {
            [
                format!("--entryPoints.{name}.address=127.0.0.1:{port}"),
                format!("--entryPoints.{name}.forwardedHeaders.trustedIPs=127.0.0.1/32"),
            ]
        })
        .collect()
}

/// Traefik's dynamic configuration of the balancers over `replicas`. Pure.
///
/// Each replica is a service of its own with a health check on its `/readyz` (the gateway
/// listener's check goes to the same replica's probe port), and a weighted service over them
/// follows their health: a replica that stops answering leaves the rotation, one that comes
/// back rejoins it.
pub fn balancer_config(replicas: &[Ports]) -> Value {
    let mut routers = serde_json::Map::new();
    let mut services = serde_json::Map::new();
    for (entry, gateway) in [(ENTRY_POINT, false), (GATEWAY_ENTRY_POINT, true)] {
        let mut children = vec![];
        for (i, (probe, listener)) in replicas.iter().enumerate() {
            let child = format!("obol-dev-{entry}-{}", i + 1);
            let port = if gateway { *listener } else { *probe };
            services.insert(
                child.clone(),
                json!({"loadBalancer": {
                    "servers": [{"url": format!("http://127.0.0.1:{port}")}],
                    "healthCheck": {"path": "/readyz", "port": probe,
                                    "interval": HEALTH_INTERVAL, "timeout": HEALTH_TIMEOUT},
                }}),
            );
            children.push(json!({"name": child, "weight": 1}));
        }
        let name = format!("obol-dev-{entry}");
        services.insert(
            name.clone(),
            json!({"weighted": {"services": children, "healthCheck": {}}}),
        );
        routers.insert(
            name.clone(),
            json!({"rule": "PathPrefix(`/`)", "entryPoints": [entry], "service": name}),
        );
    }
    json!({"http": {"routers": routers, "services": services}})
}

/// Lines of `obol dev status` about the verifier replicas and their Redis (none for a state
/// file written before replicas were recorded). Pure.
pub fn status_lines(state: &State) -> Vec<String> {
    let mut lines: Vec<String> = state
        .verifiers
        .iter()
        .map(|r| {
            format!(
                "{:<16} {} (gateway listener {})",
                r.name, r.url, r.gateway_url
            )
        })
        .collect();
    if state.verifiers.len() > 1 {
        lines.push(format!(
            "{:<16} {} and {} balance the {} replicas",
            "verifier Service",
            state.verifier_url,
            state.verifier_gateway_url,
            state.verifiers.len()
        ));
    }
    if !state.redis_url.is_empty() {
        lines.push(format!(
            "{REDIS:<16} {} (reservations shared by the replicas)",
            state.redis_url
        ));
    }
    lines
}

/// How many verifier replicas a recorded stack runs (a state file from before replicas were
/// recorded ran one).
pub fn replica_count(state: &State) -> usize {
    state.verifiers.len().max(1)
}

impl Up<'_> {
    /// Starts `count` verifier replicas (and their Redis when `count > 1`), each waited for
    /// until ready, and records them. Returns their ports; `state.verifier_url` and
    /// `verifier_gateway_url` name the first replica until [`Up::balance_verifiers`] points them
    /// at the balancers.
    pub(super) async fn start_verifiers(
        &self,
        state: &mut State,
        count: usize,
        bin: &Path,
        envs: Vec<(String, String)>,
    ) -> Result<Vec<Ports>, Error> {
        let redis = if count > 1 {
            self.say("redis: Debian's redis-server on loopback, the replicas' shared reservations");
            let tools = self.paths.repo.join("scripts/tools");
            let redis_bin = run_script("redis", &tools.join("redis.sh"), &[])?;
            let port = process::free_port().map_err(|e| fail(REDIS, e))?;
            let p = self.start(
                state,
                REDIS,
                Path::new(&redis_bin),
                crate::redis::server_args(port),
                vec![],
            )?;
            if let Err(e) = crate::redis::wait_ready(port, Duration::from_secs(10)).await {
                return Err(fail(
                    REDIS,
                    format!("{e}; {}:\n{}", p.log.display(), process::tail(&p.log, 15)),
                ));
            }
            state.redis_url = crate::redis::url(port);
            Some(state.redis_url.clone())
        } else {
            None
        };
        let mut all = vec![];
        for i in 0..count {
            let name = replica_name(i, count);
            let ports = (
                process::free_port().map_err(|e| fail(&name, e))?,
                process::free_port().map_err(|e| fail(&name, e))?,
            );
            let args = verifier_args(ports, redis.as_deref());
            let p = self.start(state, &name, bin, args, envs.clone())?;
            let replica = Replica {
                name: name.clone(),
                url: format!("http://127.0.0.1:{}", ports.0),
                gateway_url: format!("http://127.0.0.1:{}", ports.1),
            };
            wait_http(
                &name,
                &format!("{}/readyz", replica.url),
                Some(&p),
                Duration::from_secs(30),
            )
            .await?;
            state.verifiers.push(replica);
            all.push(ports);
        }
        if let Some(first) = state.verifiers.first() {
            state.verifier_url = first.url.clone();
            state.verifier_gateway_url = first.gateway_url.clone();
        }
        self.paths.save(state)?;
        Ok(all)
    }

    /// With several replicas: writes the balancers into Traefik's dynamic configuration
    /// directory `dir` and returns the static arguments of their entry points; the stack's
    /// verifier addresses become the balanced ones. Nothing for one replica.
    pub(super) fn balance_verifiers(
        &self,
        state: &mut State,
        replicas: &[Ports],
        dir: &Path,
    ) -> Result<Vec<String>, Error> {
        if replicas.len() <= 1 {
            return Ok(vec![]);
        }
        let step = "verifier balancer";
        let balanced = (
            process::free_port().map_err(|e| fail(step, e))?,
            process::free_port().map_err(|e| fail(step, e))?,
        );
        let text = serde_yaml::to_string(&balancer_config(replicas)).map_err(|e| fail(step, e))?;
        std::fs::write(dir.join(BALANCER_FILE), text).map_err(|e| fail(step, e))?;
        state.verifier_url = format!("http://127.0.0.1:{}", balanced.0);
        state.verifier_gateway_url = format!("http://127.0.0.1:{}", balanced.1);
        Ok(entry_point_args(balanced))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_replica_keeps_its_name_and_memory_reservations() {
        assert_eq!(replica_name(0, 1), "verifier");
        assert_eq!(
            (0..3).map(|i| replica_name(i, 3)).collect::<Vec<_>>(),
            ["verifier-1", "verifier-2", "verifier-3"]
        );
        let one = verifier_args((1, 2), None);
        assert!(!one.contains(&"--reservations".to_owned()), "{one:?}");
        let shared = verifier_args((1, 2), Some("redis://127.0.0.1:7"));
        assert_eq!(
            shared,
            [
                "--route-source",
                "kube",
                "--listen",
                "127.0.0.1:1",
                "--gateway-listen",
                "127.0.0.1:2",
                "--reservations",
                "redis://127.0.0.1:7"
            ]
        );
    }

    #[test]
    fn the_balancers_cover_every_replica_with_health_checks_on_its_probe_port() {
        let config = balancer_config(&[(10, 11), (20, 21), (30, 31)]);
        let services = &config["http"]["services"];
        for (entry, served) in [
            (ENTRY_POINT, [10, 20, 30]),
            (GATEWAY_ENTRY_POINT, [11, 21, 31]),
        ] {
            let router = &config["http"]["routers"][format!("obol-dev-{entry}")];
            assert_eq!(router["entryPoints"], json!([entry]));
            assert_eq!(router["rule"], "PathPrefix(`/`)");
            let parent = &services[router["service"].as_str().unwrap()]["weighted"];
            assert_eq!(parent["healthCheck"], json!({}), "follows its children");
            let children: Vec<&str> = parent["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap())
                .collect();
            assert_eq!(children.len(), 3);
            for ((child, port), probe) in children.iter().zip(served).zip([10, 20, 30]) {
                let lb = &services[*child]["loadBalancer"];
                assert_eq!(
                    lb["servers"],
                    json!([{"url": format!("http://127.0.0.1:{port}")}])
                );
                assert_eq!(lb["healthCheck"]["path"], "/readyz");
                assert_eq!(lb["healthCheck"]["port"], probe);
            }
        }
        // Nothing else: no router of the gateway's own entry point.
        assert_eq!(config["http"]["routers"].as_object().unwrap().len(), 2);
        assert_eq!(services.as_object().unwrap().len(), 8);
    }

    #[test]
    fn the_entry_points_trust_only_the_gateway_on_loopback() {
        assert_eq!(
            entry_point_args((7000, 7001)),
            [
                "--entryPoints.verifier.address=127.0.0.1:7000",
                "--entryPoints.verifier.forwardedHeaders.trustedIPs=127.0.0.1/32",
                "--entryPoints.verifier-gateway.address=127.0.0.1:7001",
                "--entryPoints.verifier-gateway.forwardedHeaders.trustedIPs=127.0.0.1/32",
            ]
        );
    }

    #[test]
    fn status_names_each_replica_the_balancers_and_redis() {
        let mut state = State::default();
        assert!(status_lines(&state).is_empty(), "an old state file");
        assert_eq!(replica_count(&state), 1);
        for i in 0..3 {
            state.verifiers.push(Replica {
                name: replica_name(i, 3),
                url: format!("http://127.0.0.1:{}", 100 + i),
                gateway_url: format!("http://127.0.0.1:{}", 200 + i),
            });
        }
        state.verifier_url = "http://127.0.0.1:7000".into();
        state.verifier_gateway_url = "http://127.0.0.1:7001".into();
        state.redis_url = "redis://127.0.0.1:6400".into();
        let lines = status_lines(&state).join("\n");
        for part in [
            "verifier-1       http://127.0.0.1:100 (gateway listener http://127.0.0.1:200)",
            "verifier-3       http://127.0.0.1:102",
            "http://127.0.0.1:7000 and http://127.0.0.1:7001 balance the 3 replicas",
            "redis            redis://127.0.0.1:6400",
        ] {
            assert!(lines.contains(part), "{part}\n{lines}");
        }
        assert_eq!(replica_count(&state), 3);
    }

    #[test]
    fn a_state_file_without_replicas_still_loads() {
        let old = json!({"procs": [], "kubeconfig": "k", "gateway_url": "g", "rpc_url": "r",
            "usdc": "u", "facilitator_url": "f", "verifier_url": "v", "buyer_url": "b",
            "registrar_url": "x", "seller": "s", "buyer": "b"});
        let state: State = serde_json::from_value(old).unwrap();
        assert!(state.verifiers.is_empty() && state.redis_url.is_empty());
        assert_eq!(replica_count(&state), 1);
    }
}
