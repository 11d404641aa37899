//! RBAC as shipped: the ServiceAccounts, roles and bindings of the manifests exist in the
//! cluster, and every permission their bindings give is granted (a SubjectAccessReview each).
//! What is wanted is derived from the manifests, never retyped here.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use obol_deploy::Object;
use serde_json::Value;

use super::Verdict;

/// The kinds that make up RBAC in the manifests.
pub const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
];

/// How many denied permissions a failing line names.
const SHOWN: usize = 3;

/// One permission a shipped binding gives a ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// `namespace/name` of the ServiceAccount.
    pub account: (String, String),
    /// Where it applies: a namespace (RoleBinding), or cluster-wide (`None`).
    pub namespace: Option<String>,
    /// API group (`""`: core).
    pub group: String,
    /// Resource (`paymentroutes`).
    pub resource: String,
    /// Subresource (`status`), if any.
    pub subresource: Option<String>,
    /// Verb.
    pub verb: String,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ns, name) = &self.account;
        write!(f, "{ns}/{name} may not {} {}", self.verb, self.resource)?;
        if let Some(sub) = &self.subresource {
            write!(f, "/{sub}")?;
        }
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in {ns}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Every permission the manifests' bindings give their ServiceAccounts: for each binding, the
/// rules of the role it references (a Role of the binding's namespace, or a ClusterRole) for
/// each ServiceAccount subject. Wildcards and roles the manifests do not ship are skipped
/// (nothing of ours is verifiable through them). Pure.
pub fn required_access(objects: &[Object]) -> Vec<Access> {
    let mut out = BTreeSet::new();
    for binding in objects
        .iter()
        .filter(|o| matches!(o.kind(), "RoleBinding" | "ClusterRoleBinding"))
    {
        let scope = (binding.kind() == "RoleBinding")
            .then(|| binding.namespace().unwrap_or("default").to_owned());
        let role_kind = binding.0["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = binding.0["roleRef"]["name"].as_str().unwrap_or_default();
        let Some(role) = objects.iter().find(|o| {
            o.kind() == role_kind
                && o.name() == role_name
                && (role_kind == "ClusterRole" || o.namespace() == binding.namespace())
        }) else {
            continue;
        };
        let accounts: Vec<(String, String)> = binding.0["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["kind"] == "ServiceAccount")
            .filter_map(|s| {
                let name = s["name"].as_str()?;
                let ns = s["namespace"]
                    .as_str()
                    .or(binding.namespace())
                    .unwrap_or("default");
                Some((ns.to_owned(), name.to_owned()))
            })
            .collect();
        for rule in role.0["rules"].as_array().into_iter().flatten() {
            for account in &accounts {
                for group in strings(rule.get("apiGroups")) {
                    for resource in strings(rule.get("resources")) {
                        for verb in strings(rule.get("verbs")) {
                            if group == "*" || resource.contains('*') || verb == "*" {
                                continue;
                            }
                            let (resource, subresource) = match resource.split_once('/') {
                                Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
                                None => (resource.clone(), None),
                            };
                            out.insert(Access {
                                account: account.clone(),
                                namespace: scope.clone(),
                                group: group.clone(),
                                resource,
                                subresource,
                                verb,
                            });
                        }
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The RBAC objects of the manifests. Pure.
pub fn rbac_objects(objects: &[Object]) -> Vec<&Object> {
    objects
        .iter()
        .filter(|o| RBAC_KINDS.contains(&o.kind()))
        .collect()
}

/// What the cluster said about the shipped RBAC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RbacFacts {
    /// RBAC objects in the manifests.
    pub shipped: usize,
    /// Permissions they give.
    pub permissions: usize,
    /// Shipped objects absent from the cluster (`Kind ns/name`).
    pub missing: Vec<String>,
    /// Permissions the API server denies.
    pub denied: Vec<Access>,
    /// Questions the API server did not answer.
    pub errors: Vec<String>,
}

/// RBAC as shipped: every object present and every permission granted.
pub fn judge_rbac(facts: &RbacFacts) -> Verdict {
    const CHECK: &str = "rbac";
    if let Some(e) = facts.errors.first() {
        return Verdict::bad(
            CHECK,
            format!("cannot check: {e}"),
            "run doctor with rights to read RBAC objects and create SubjectAccessReviews",
        );
    }
    if !facts.missing.is_empty() {
        return Verdict::bad(
            CHECK,
            format!("missing: {}", facts.missing.join(", ")),
            "obol install (applies the shipped ServiceAccounts, roles and bindings)",
        );
    }
    if !facts.denied.is_empty() {
        let mut shown: Vec<String> = facts
            .denied
            .iter()
            .take(SHOWN)
            .map(ToString::to_string)
            .collect();
        if facts.denied.len() > SHOWN {
            shown.push(format!("{} more", facts.denied.len() - SHOWN));
        }
        return Verdict::bad(
            CHECK,
            format!("not granted: {}", shown.join(", ")),
            "obol install, to apply the shipped roles and bindings (something changed them)",
        );
    }
    if facts.shipped == 0 {
        return Verdict::bad(
            CHECK,
            "the manifests ship no RBAC objects",
            "pass the kustomization that was installed (-k DIR)",
        );
    }
    Verdict::ok(
        CHECK,
        format!(
            "{} accounts, roles and bindings as shipped; {} permissions granted",
            facts.shipped, facts.permissions
        ),
    )
}

/// The review asking whether `access` is allowed.
fn review(access: &Access) -> SubjectAccessReview {
    let (ns, name) = &access.account;
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{ns}:{name}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                namespace: access.namespace.clone(),
                group: Some(access.group.clone()),
                resource: Some(access.resource.clone()),
                subresource: access.subresource.clone(),
                verb: Some(access.verb.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Asks the cluster about the manifests' RBAC.
pub async fn gather(client: &Client, objects: &[Object]) -> RbacFacts {
    use futures::StreamExt as _;

    let shipped = rbac_objects(objects);
    let wanted = required_access(objects);
    let mut facts = RbacFacts {
        shipped: shipped.len(),
        permissions: wanted.len(),
        ..Default::default()
    };
    let mut kinds = obol_deploy::apply::Kinds::default();
    for object in shipped {
        match kinds.api(client, object).await {
            Ok(api) => match api.get_opt(object.name()).await {
                Ok(Some(_)) => {}
                Ok(None) => facts.missing.push(object.id()),
                Err(e) => facts.errors.push(format!("reading {}: {e}", object.id())),
            },
            Err(e) => facts.errors.push(e.to_string()),
        }
    }
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let answers: Vec<(Access, Result<bool, String>)> = futures::stream::iter(wanted)
        .map(|access| {
            let reviews = reviews.clone();
            async move {
                let answer = reviews
                    .create(&PostParams::default(), &review(&access))
                    .await
                    .map(|r| r.status.is_some_and(|s| s.allowed))
                    .map_err(|e| format!("SubjectAccessReview: {e}"));
                (access, answer)
            }
        })
        .buffered(8)
        .collect()
        .await;
    for (access, answer) in answers {
        match answer {
            Ok(true) => {}
            Ok(false) => facts.denied.push(access),
            Err(e) => facts.errors.push(e),
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn access(
        account: (&str, &str),
        namespace: Option<&str>,
        group: &str,
        resource: &str,
        sub: Option<&str>,
        verb: &str,
    ) -> Access {
        Access {
            account: (account.0.into(), account.1.into()),
            namespace: namespace.map(Into::into),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.map(Into::into),
            verb: verb.into(),
        }
    }

    #[test]
    fn bindings_give_their_roles_rules_to_their_accounts() {
        let objects: Vec<Object> = [
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "c"},
                   "rules": [{"apiGroups": ["obol.org"], "resources": ["routes", "routes/status"], "verbs": ["get", "patch"]},
                             {"apiGroups": ["*"], "resources": ["x"], "verbs": ["get"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": "c"}, "roleRef": {"kind": "ClusterRole", "name": "c"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "a"},
                                {"kind": "User", "name": "someone"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "metadata": {"name": "r", "namespace": "b"},
                   "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}),
            // Same name in another namespace: not the one the binding means.
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "metadata": {"name": "r", "namespace": "c"},
                   "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "r", "namespace": "b"}, "roleRef": {"kind": "Role", "name": "r"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sb"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "x", "namespace": "b"}, "roleRef": {"kind": "ClusterRole", "name": "not-shipped"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sb"}]}),
        ]
        .into_iter()
        .map(Object)
        .collect();
        let a = ("a", "sa");
        assert_eq!(
            required_access(&objects),
            vec![
                access(a, None, "obol.org", "routes", None, "get"),
                access(a, None, "obol.org", "routes", None, "patch"),
                access(a, None, "obol.org", "routes", Some("status"), "get"),
                access(a, None, "obol.org", "routes", Some("status"), "patch"),
                access(("b", "sb"), Some("b"), "", "configmaps", None, "list"),
            ]
        );
        assert_eq!(rbac_objects(&objects).len(), objects.len());
    }

    #[test]
    fn the_shipped_manifests_give_each_component_what_it_uses() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
        let objects = obol_deploy::kustomize::render(&deploy).unwrap();
        let wanted = required_access(&objects);
        let verifier = ("x402", "x402-verifier");
        let controller = ("obol-system", "serviceoffer-controller");
        for expected in [
            access(verifier, None, "obol.org", "paymentroutes", None, "watch"),
            access(
                verifier,
                None,
                "obol.org",
                "paymentroutes",
                Some("status"),
                "patch",
            ),
            access(
                controller,
                Some("obol-system"),
                "coordination.k8s.io",
                "leases",
                None,
                "update",
            ),
            access(
                ("llm", "x402-buyer"),
                Some("llm"),
                "obol.org",
                "purchaserequests",
                Some("status"),
                "patch",
            ),
        ] {
            assert!(wanted.contains(&expected), "{expected}: {wanted:#?}");
        }
        assert!(
            !wanted.iter().any(
                |a| a.account == ("x402".to_owned(), "x402-verifier".to_owned())
                    && a.resource == "serviceoffers"
            ),
            "the verifier is given nothing on ServiceOffers"
        );
    }

    #[test]
    fn rbac_verdicts() {
        let denied = |n: usize| {
            (0..n)
                .map(|i| access(("x", "y"), None, "g", &format!("r{i}"), None, "get"))
                .collect::<Vec<_>>()
        };
        let healthy = RbacFacts {
            shipped: 12,
            permissions: 60,
            ..Default::default()
        };
        let cases = [
            (
                healthy.clone(),
                None,
                "12 accounts, roles and bindings as shipped; 60 permissions granted",
            ),
            (
                RbacFacts {
                    missing: vec!["ClusterRole x402-verifier".into()],
                    ..healthy.clone()
                },
                Some("obol install"),
                "missing: ClusterRole x402-verifier",
            ),
            (
                RbacFacts {
                    denied: denied(1),
                    ..healthy.clone()
                },
                Some("obol install"),
                "not granted: x/y may not get r0.g cluster-wide",
            ),
            (
                RbacFacts {
                    denied: denied(5),
                    ..healthy.clone()
                },
                Some("obol install"),
                "not granted: x/y may not get r0.g cluster-wide, x/y may not get r1.g cluster-wide, x/y may not get r2.g cluster-wide, 2 more",
            ),
            (
                RbacFacts {
                    errors: vec!["SubjectAccessReview: forbidden".into()],
                    denied: denied(1),
                    ..healthy.clone()
                },
                Some("SubjectAccessReviews"),
                "cannot check: SubjectAccessReview: forbidden",
            ),
            (
                RbacFacts::default(),
                Some("-k DIR"),
                "the manifests ship no RBAC objects",
            ),
        ];
        for (facts, fix, finding) in cases {
            let v = judge_rbac(&facts);
            assert_eq!(v.finding, finding);
            match fix {
                None => assert_eq!(v.fix, None, "{}", v.line()),
                Some(f) => assert!(
                    v.fix.as_deref().is_some_and(|x| x.contains(f)),
                    "{}",
                    v.line()
                ),
            }
        }
        let core = access(("a", "b"), Some("n"), "", "configmaps", None, "list");
        assert_eq!(core.to_string(), "a/b may not list configmaps in n");
    }
}
