//! Each component of the local stack acts under its own ServiceAccount with the RBAC that
//! `deploy/` ships, never as cluster admin: a permission missing from `deploy/` fails here
//! first, not in a user's cluster. The stack applies `deploy/`'s namespaces, ServiceAccounts,
//! roles and bindings, asks the API server for a token of each account (TokenRequest), and
//! hands each component a kubeconfig of its own (mode 0600).
//!
//! The dev gateway adapter plays Traefik, which `deploy/` does not ship; it gets a dev-only
//! role with what Traefik's Gateway provider reads and writes.

use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::Kubeconfig;
use kube::{Api, Client};
use obol_deploy::{Object, kustomize};
use serde_json::json;

use crate::files::write_secret;

/// Field manager of what the local stack applies.
pub const FIELD_MANAGER: &str = "obol-dev";
/// How long a component's token is valid (a year: the stack is restarted long before).
pub const TOKEN_SECONDS: i64 = 365 * 24 * 3600;

/// A component's identity in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Component (file names, messages).
    pub component: &'static str,
    /// ServiceAccount namespace.
    pub namespace: &'static str,
    /// ServiceAccount name.
    pub service_account: &'static str,
}

/// The verifier, as `deploy/verifier.yaml` runs it.
pub const VERIFIER: Identity = Identity {
    component: "verifier",
    namespace: "x402",
    service_account: "x402-verifier",
};
/// The controller, as `deploy/controller.yaml` runs it.
pub const CONTROLLER: Identity = Identity {
    component: "controller",
    namespace: "obol-system",
    service_account: "serviceoffer-controller",
};
/// The registrar, as `deploy/registrar.yaml` runs it.
pub const REGISTRAR: Identity = Identity {
    component: "registrar",
    namespace: "obol-system",
    service_account: "erc8004-registrar",
};
/// The buyer, as `deploy/buyer/x402-buyer.yaml` runs it.
pub const BUYER: Identity = Identity {
    component: "buyer",
    namespace: "llm",
    service_account: "x402-buyer",
};
/// The dev gateway adapter (dev only).
pub const GATEWAY_ADAPTER: Identity = Identity {
    component: "gateway-adapter",
    namespace: "obol-system",
    service_account: "obol-dev-gateway-adapter",
};

/// Kinds of `deploy/` the local stack applies: who may do what, and the discovery route. The
/// workloads themselves run as local processes; the CRDs come with the control plane.
pub const APPLIED_KINDS: [&str; 7] = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "HTTPRoute",
];

/// The objects of the rendered base the local stack applies, in an order the API server
/// accepts (namespaces first). Pure.
pub fn dev_objects(base: Vec<Object>) -> Vec<Object> {
    let mut out: Vec<Object> = base
        .into_iter()
        .filter(|o| APPLIED_KINDS.contains(&o.kind()))
        .collect();
    out.sort_by_key(|o| APPLIED_KINDS.iter().position(|k| *k == o.kind()));
    out
}

/// The dev adapter's own account and role: read routes, Middlewares, Services and Gateways,
/// write route and Gateway status.
pub fn adapter_objects() -> Vec<Object> {
    let id = GATEWAY_ADAPTER;
    [
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": id.service_account, "namespace": id.namespace}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": id.service_account},
               "rules": [
                   {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes/status"], "verbs": ["patch", "update"]},
                   {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gateways"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gateways/status"], "verbs": ["patch", "update"]},
                   {"apiGroups": ["traefik.io"], "resources": ["middlewares"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": id.service_account},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": id.service_account},
               "subjects": [{"kind": "ServiceAccount", "name": id.service_account, "namespace": id.namespace}]}),
    ]
    .into_iter()
    .map(Object)
    .collect()
}

/// Applies `deploy/`'s namespaces, accounts, roles, bindings and routes, and the adapter's role.
pub async fn apply_rbac(client: &Client, repo: &Path) -> Result<(), String> {
    let base = kustomize::render(&repo.join("deploy")).map_err(|e| e.to_string())?;
    let mut kinds = obol_deploy::apply::Kinds::default();
    for object in dev_objects(base).iter().chain(&adapter_objects()) {
        obol_deploy::apply::apply(client, &mut kinds, object, FIELD_MANAGER, false)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `deploy/`'s buyer Role and RoleBinding, placed in `namespace` instead of their own: the
/// local stack's buyer serves the PurchaseRequests of the demo namespace with exactly the rules
/// `deploy/` gives it, under its own account. Pure.
pub fn buyer_objects(base: &[Object], namespace: &str) -> Result<Vec<Object>, String> {
    ["Role", "RoleBinding"]
        .into_iter()
        .map(|kind| {
            let shipped = base
                .iter()
                .find(|o| o.kind() == kind && o.name() == BUYER.service_account)
                .ok_or_else(|| format!("deploy/ ships no {kind} {}", BUYER.service_account))?;
            let mut moved = shipped.0.clone();
            moved["metadata"]["namespace"] = json!(namespace);
            Ok(Object(moved))
        })
        .collect()
}

/// Where `deploy/` ships the buyer as StatefulSet replicas (its Role also reads the replica
/// count).
pub const BUYER_STATEFULSET_DIR: &str = "deploy/buyer-statefulset";

/// [`buyer_objects`] of the StatefulSet variant (`shipped`, rendered from
/// [`BUYER_STATEFULSET_DIR`]) and its StatefulSet with `replicas`, all in `namespace`: what
/// partitioned buyers read their rules and replica count from. The local control plane runs no
/// StatefulSet controller, so no pod is ever made of it. Pure.
pub fn replicated_buyer_objects(
    shipped: &[Object],
    namespace: &str,
    replicas: usize,
) -> Result<Vec<Object>, String> {
    let mut objects = buyer_objects(shipped, namespace)?;
    let set = shipped
        .iter()
        .find(|o| o.kind() == "StatefulSet" && o.name() == BUYER.service_account)
        .ok_or_else(|| {
            format!(
                "{BUYER_STATEFULSET_DIR} ships no StatefulSet {}",
                BUYER.service_account
            )
        })?;
    let mut moved = set.0.clone();
    moved["metadata"]["namespace"] = json!(namespace);
    moved["spec"]["replicas"] = json!(replicas);
    // The local control plane (Kubernetes 1.20) predates this field and refuses the object;
    // it only decides what happens to volumes, and no pod or volume is made here.
    if let Some(spec) = moved["spec"].as_object_mut() {
        spec.remove("persistentVolumeClaimRetentionPolicy");
    }
    objects.push(Object(moved));
    Ok(objects)
}

/// Applies [`buyer_objects`] for `namespace`; for more than one buyer `replicas`, those of
/// [`replicated_buyer_objects`].
pub async fn apply_buyer_rbac(
    client: &Client,
    repo: &Path,
    namespace: &str,
    replicas: usize,
) -> Result<(), String> {
    let objects = if replicas > 1 {
        let shipped =
            kustomize::render(&repo.join(BUYER_STATEFULSET_DIR)).map_err(|e| e.to_string())?;
        replicated_buyer_objects(&shipped, namespace, replicas)?
    } else {
        let base = kustomize::render(&repo.join("deploy")).map_err(|e| e.to_string())?;
        buyer_objects(&base, namespace)?
    };
    let mut kinds = obol_deploy::apply::Kinds::default();
    for object in &objects {
        obol_deploy::apply::apply(client, &mut kinds, object, FIELD_MANAGER, false)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A token of `id`'s ServiceAccount from the API server (TokenRequest).
pub async fn token(client: &Client, id: Identity) -> Result<String, String> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), id.namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(TOKEN_SECONDS),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = api
        .create_token_request(id.service_account, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("token for {}/{}: {e}", id.namespace, id.service_account))?;
    answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("no token for {}/{}", id.namespace, id.service_account))
}

/// A kubeconfig for `id` with `token`, on the cluster of `admin` (the first cluster entry).
/// Pure.
pub fn kubeconfig(admin: &Kubeconfig, id: Identity, token: &str) -> Result<String, String> {
    let cluster = admin
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .ok_or("the admin kubeconfig names no cluster")?;
    let cluster = serde_json::to_value(cluster).map_err(|e| e.to_string())?;
    let user = format!(
        "system:serviceaccount:{}:{}",
        id.namespace, id.service_account
    );
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "obol-dev", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": id.component,
                      "context": {"cluster": "obol-dev", "user": user, "namespace": id.namespace}}],
        "current-context": id.component,
    });
    serde_yaml::to_string(&config).map_err(|e| e.to_string())
}

/// Writes `<dir>/<component>.kubeconfig` (0600) for each identity; returns their paths.
pub async fn write_kubeconfigs(
    client: &Client,
    admin: &Path,
    dir: &Path,
    ids: &[Identity],
) -> Result<Vec<PathBuf>, String> {
    let admin = Kubeconfig::read_from(admin).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths = vec![];
    for id in ids {
        let text = kubeconfig(&admin, *id, &token(client, *id).await?)?;
        let path = dir.join(format!("{}.kubeconfig", id.component));
        write_secret(&path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rbac_namespaces_and_routes_are_applied_namespaces_first() {
        let mk = |kind: &str, name: &str| {
            Object(json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}))
        };
        let base = vec![
            mk("Deployment", "d"),
            mk("ClusterRole", "r"),
            mk("CustomResourceDefinition", "c"),
            mk("Namespace", "n"),
            mk("HTTPRoute", "h"),
            mk("ServiceAccount", "s"),
        ];
        let kinds: Vec<String> = dev_objects(base)
            .iter()
            .map(|o| o.kind().to_owned())
            .collect();
        assert_eq!(
            kinds,
            ["Namespace", "ServiceAccount", "ClusterRole", "HTTPRoute"]
        );
    }

    #[test]
    fn deploy_names_every_account_the_stack_uses() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let objects = dev_objects(kustomize::render(&repo.join("deploy")).unwrap());
        for id in [VERIFIER, CONTROLLER, REGISTRAR, BUYER] {
            assert!(
                objects.iter().any(|o| o.kind() == "ServiceAccount"
                    && o.name() == id.service_account
                    && o.namespace() == Some(id.namespace)),
                "deploy/ ships no ServiceAccount {}/{}",
                id.namespace,
                id.service_account
            );
        }
    }

    #[test]
    fn the_buyer_gets_deploys_rules_in_the_demo_namespace() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let base = kustomize::render(&repo.join("deploy")).unwrap();
        let moved = buyer_objects(&base, "demo").unwrap();
        assert_eq!(moved.len(), 2);
        for object in &moved {
            assert_eq!(object.namespace(), Some("demo"));
            let shipped = base
                .iter()
                .find(|o| o.kind() == object.kind() && o.name() == object.name())
                .unwrap();
            // Only the namespace differs: the rules and the subject are deploy/'s.
            let mut back = object.0.clone();
            back["metadata"]["namespace"] = json!(BUYER.namespace);
            assert_eq!(back, shipped.0);
        }
        assert!(buyer_objects(&[], "demo").unwrap_err().contains("no Role"));
    }

    #[test]
    fn replicated_buyers_get_the_statefulsets_rules_and_replica_count() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let shipped = kustomize::render(&repo.join(BUYER_STATEFULSET_DIR)).unwrap();
        let moved = replicated_buyer_objects(&shipped, "demo", 3).unwrap();
        let kinds: Vec<&str> = moved.iter().map(Object::kind).collect();
        assert_eq!(kinds, ["Role", "RoleBinding", "StatefulSet"]);
        assert!(moved.iter().all(|o| o.namespace() == Some("demo")));
        assert_eq!(moved[2].0["spec"]["replicas"], 3);
        assert!(moved[2].0["spec"]["persistentVolumeClaimRetentionPolicy"].is_null());
        // The Role lets a replica read the count.
        let rules = moved[0].0["rules"].to_string();
        assert!(rules.contains("statefulsets"), "{rules}");
        let base = kustomize::render(&repo.join("deploy")).unwrap();
        assert!(
            replicated_buyer_objects(&base, "demo", 3)
                .unwrap_err()
                .contains("no StatefulSet")
        );
    }

    #[test]
    fn a_component_kubeconfig_carries_only_its_token() {
        let admin: Kubeconfig = serde_yaml::from_str(
            "apiVersion: v1\nkind: Config\nclusters: [{name: a, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n\
             users: [{name: admin, user: {token: ADMIN}}]\ncontexts: [{name: a, context: {cluster: a, user: admin}}]\ncurrent-context: a\n",
        )
        .unwrap();
        let text = kubeconfig(&admin, VERIFIER, "SA-TOKEN").unwrap();
        assert!(!text.contains("ADMIN"), "{text}");
        let parsed: Kubeconfig = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed.current_context.as_deref(), Some("verifier"));
        assert_eq!(
            parsed.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some("https://127.0.0.1:1")
        );
        assert!(text.contains("SA-TOKEN"));
        assert!(text.contains("system:serviceaccount:x402:x402-verifier"));
    }
}
