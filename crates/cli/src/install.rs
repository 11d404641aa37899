//! `obol install` and `obol uninstall`: the shipped manifests (`deploy/`, or the release overlay
//! `scripts/images` writes) applied to the current cluster with server-side apply, and removed.
//!
//! Both resolve every kind the manifests use before writing anything, so a cluster that lacks
//! one (an old Kubernetes, missing Gateway API CRDs) is refused with nothing applied. Decisions
//! (what to wait for, what blocks an uninstall, the removal order) are pure functions below.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::{Api, Client};
use obol_deploy::Object;
use obol_deploy::apply::{Kinds, apply};

use crate::failure::{self, Failure};
use crate::kube_args::KubeArgs;

/// The field manager of every object `obol install` writes.
pub const FIELD_MANAGER: &str = "obol-install";

/// `obol install` flags.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The kustomization to apply: `deploy` (the base), or `target/images/release` (the overlay
    /// pinning the images `scripts/images` built).
    #[arg(
        short = 'k',
        long = "kustomize",
        default_value = "deploy",
        value_name = "DIR"
    )]
    dir: PathBuf,
    /// Ask the API server to validate every object (server-side dry run); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for the Deployments to be available (0: do not wait).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
    #[command(flatten)]
    kube: KubeArgs,
}

/// `obol uninstall` flags.
#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    /// The kustomization that was installed.
    #[arg(
        short = 'k',
        long = "kustomize",
        default_value = "deploy",
        value_name = "DIR"
    )]
    dir: PathBuf,
    /// Remove even while ServiceOffers exist (they stop being served and lose their CRD).
    #[arg(long)]
    force: bool,
    /// Ask the API server to validate every deletion (server-side dry run); change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    kube: KubeArgs,
}

/// A Deployment's readiness as `obol install` waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// `Deployment ns/name`.
    pub id: String,
    /// Replicas wanted.
    pub wanted: i64,
    /// Replicas available with the current template.
    pub available: i64,
    /// The controller has seen the current generation.
    pub observed: bool,
}

impl Rollout {
    /// Reads a Deployment's spec and status.
    pub fn of(id: String, deployment: &serde_json::Value) -> Self {
        let int = |p: &str| deployment.pointer(p).and_then(serde_json::Value::as_i64);
        let generation = int("/metadata/generation").unwrap_or(0);
        Self {
            id,
            wanted: int("/spec/replicas").unwrap_or(1),
            available: int("/status/updatedReplicas")
                .unwrap_or(0)
                .min(int("/status/availableReplicas").unwrap_or(0)),
            observed: int("/status/observedGeneration").unwrap_or(0) >= generation,
        }
    }

    /// All wanted replicas run the current template.
    pub fn done(&self) -> bool {
        self.observed && self.available >= self.wanted
    }

    /// One line: what is waited for.
    pub fn describe(&self) -> String {
        format!(
            "{}: {}/{} replicas available{}",
            self.id,
            self.available.max(0),
            self.wanted,
            if self.observed {
                ""
            } else {
                " (the new generation not seen yet)"
            }
        )
    }
}

/// Why an uninstall must not go on: the offers that exist, unless forced.
pub fn uninstall_blocked(offers: &[String], force: bool) -> Option<String> {
    if offers.is_empty() || force {
        return None;
    }
    let shown: Vec<&str> = offers.iter().take(5).map(String::as_str).collect();
    let more = offers.len().saturating_sub(shown.len());
    Some(format!(
        "{} ServiceOffer(s) exist ({}{}): delete them first (`obol sell delete NAME -n NS`), or \
         pass --force to remove the operator anyway (they stop being served and lose their CRD)",
        offers.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

/// The namespaces the manifests create.
pub fn declared_namespaces(objects: &[Object]) -> Vec<String> {
    objects
        .iter()
        .filter(|o| o.api_version() == "v1" && o.kind() == "Namespace")
        .map(|o| o.name().to_owned())
        .collect()
}

/// The order objects are removed in: the reverse of the install order (workloads before
/// their RBAC, namespaces and CRDs last).
pub fn removal_order(objects: &[Object]) -> Vec<&Object> {
    objects.iter().rev().collect()
}

async fn render_and_resolve(
    dir: &std::path::Path,
    client: &Client,
) -> anyhow::Result<(Vec<Object>, Kinds)> {
    let objects = obol_deploy::kustomize::render(dir)
        .map_err(|e| Failure::new(failure::REFUSED, format!("{e}")))?;
    let mut kinds = Kinds::default();
    // "apiVersion Kind" -> the objects of that kind
    let mut unserved: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for object in &objects {
        match kinds.api(client, object).await {
            Ok(_) => {}
            Err(obol_deploy::Error::Kube { source, .. })
                if matches!(
                    *source,
                    kube::Error::Api(ref s) if s.code == 404
                ) || matches!(*source, kube::Error::Discovery(_)) =>
            {
                unserved
                    .entry(format!("{} {}", object.api_version(), object.kind()))
                    .or_default()
                    .push(object.id());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !unserved.is_empty() {
        let lines: Vec<String> = unserved
            .iter()
            .map(|(kind, ids)| format!("{kind} (for {})", ids.join(", ")))
            .collect();
        return Err(Failure::new(
            failure::REFUSED,
            format!(
                "the cluster does not serve these kinds {} uses; nothing was changed \
                 (a newer Kubernetes, or the CRDs that define them, are needed):\n  {}",
                dir.display(),
                lines.join("\n  ")
            ),
        )
        .into());
    }
    Ok((objects, kinds))
}

impl InstallArgs {
    /// Applies, then waits.
    pub async fn run(self) -> anyhow::Result<()> {
        let (client, _) = self.kube.connect().await?;
        let (objects, mut kinds) = render_and_resolve(&self.dir, &client).await?;
        let verb = if self.dry_run {
            "validated (dry run)"
        } else {
            "applied"
        };
        // A dry run cannot validate objects in a namespace this install would create.
        let mut absent = std::collections::BTreeSet::new();
        if self.dry_run {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            for ns in declared_namespaces(&objects) {
                if namespaces.get_opt(&ns).await?.is_none() {
                    absent.insert(ns);
                }
            }
        }
        for object in &objects {
            if let Some(ns) = object.namespace().filter(|ns| absent.contains(*ns)) {
                println!(
                    "not validated (its namespace {ns} does not exist yet) {}",
                    object.id()
                );
                continue;
            }
            apply(&client, &mut kinds, object, FIELD_MANAGER, self.dry_run).await?;
            println!("{verb} {}", object.id());
        }
        if self.dry_run || self.timeout == 0 {
            return Ok(());
        }
        let deployments: Vec<&Object> = objects
            .iter()
            .filter(|o| o.kind() == "Deployment")
            .collect();
        let deadline = Instant::now() + Duration::from_secs(self.timeout);
        let mut said = std::collections::BTreeMap::new();
        loop {
            let mut waiting = vec![];
            for object in &deployments {
                let api = kinds.api(&client, object).await?;
                let found: DynamicObject = api.get(object.name()).await?;
                let rollout = Rollout::of(object.id(), &serde_json::to_value(&found)?);
                if !rollout.done() {
                    let line = rollout.describe();
                    if said.get(&rollout.id) != Some(&line) {
                        eprintln!("waiting for {line}");
                        said.insert(rollout.id.clone(), line);
                    }
                    waiting.push(rollout);
                }
            }
            if waiting.is_empty() {
                println!("installed: {} Deployment(s) available", deployments.len());
                return Ok(());
            }
            if Instant::now() >= deadline {
                let lines: Vec<String> = waiting.iter().map(Rollout::describe).collect();
                return Err(Failure::new(
                    failure::TIMEOUT,
                    format!(
                        "applied, but not available after {} s:\n  {}\n(kubectl describe the \
                         Deployment and its Pods; `obol install` again is safe)",
                        self.timeout,
                        lines.join("\n  ")
                    ),
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl UninstallArgs {
    /// Refuses while offers exist (unless forced), then deletes in reverse order.
    pub async fn run(self) -> anyhow::Result<()> {
        let (client, _) = self.kube.connect().await?;
        let offers = match Api::<obol_api::ServiceOffer>::all(client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => list
                .items
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}",
                        o.metadata.namespace.as_deref().unwrap_or(""),
                        o.metadata.name.as_deref().unwrap_or("")
                    )
                })
                .collect(),
            // No ServiceOffer CRD: nothing can be offered.
            Err(kube::Error::Api(e)) if e.code == 404 => vec![],
            Err(e) => return Err(e.into()),
        };
        if let Some(why) = uninstall_blocked(&offers, self.force) {
            return Err(Failure::new(failure::REFUSED, why).into());
        }
        let (objects, mut kinds) = render_and_resolve(&self.dir, &client).await?;
        let mut params = DeleteParams::foreground();
        params.dry_run = self.dry_run;
        for object in removal_order(&objects) {
            let api = kinds.api(&client, object).await?;
            match api.delete(object.name(), &params).await {
                Ok(_) if self.dry_run => println!("would delete {}", object.id()),
                Ok(_) => println!("deleted {}", object.id()),
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    println!("already gone {}", object.id())
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("deleting {}", object.id())));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_is_done_when_every_wanted_replica_is_current_and_available() {
        let cases = [
            (
                serde_json::json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
                "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2}}),
                true,
            ),
            (
                serde_json::json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
                "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2}}),
                false,
            ),
            (
                serde_json::json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
                "status": {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 2}}),
                false,
            ),
            (
                serde_json::json!({"metadata": {"generation": 1}, "spec": {"replicas": 1}}),
                false,
            ),
            (
                serde_json::json!({"metadata": {"generation": 1}, "spec": {"replicas": 0},
                "status": {"observedGeneration": 1}}),
                true,
            ),
        ];
        for (deployment, done) in cases {
            let r = Rollout::of("Deployment x/y".into(), &deployment);
            assert_eq!(r.done(), done, "{deployment} -> {}", r.describe());
        }
        let r = Rollout::of("Deployment x/y".into(), &cases_first_waiting());
        assert_eq!(r.describe(), "Deployment x/y: 0/1 replicas available");
    }

    fn cases_first_waiting() -> serde_json::Value {
        serde_json::json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1}})
    }

    #[test]
    fn offers_block_an_uninstall_unless_forced() {
        assert_eq!(uninstall_blocked(&[], false), None);
        let offers: Vec<String> = (0..7).map(|i| format!("ns/o{i}")).collect();
        assert_eq!(uninstall_blocked(&offers, true), None);
        let why = uninstall_blocked(&offers, false).unwrap();
        assert!(why.starts_with("7 ServiceOffer(s) exist (ns/o0, "), "{why}");
        assert!(
            why.contains("and 2 more") && why.contains("--force"),
            "{why}"
        );
    }
}
