//! The deployment (`kubectl kustomize deploy`): least privilege per component, restricted Pod
//! Security, the buyer's single-writer invariants, flags the binaries really have, pinned
//! images; then applied to the real control plane, where RBAC is checked with `kubectl auth can-i`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

use obol_testenv::{TestEnv, repo_root};
use serde_json::Value;

fn render() -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", "deploy"])
        .current_dir(repo_root())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split("\n---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml::from_str::<Value>(d).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn least_privilege_per_component() {
    let docs = render();
    // The verifier reads PaymentRoutes and patches their status; nothing else.
    let verifier = named(&docs, "ClusterRole", "x402-verifier");
    let rules: Vec<(Vec<String>, Vec<String>)> = verifier["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (strings(&r["resources"]), strings(&r["verbs"])))
        .collect();
    assert_eq!(
        rules,
        [
            (
                vec!["paymentroutes".into()],
                vec!["get".into(), "list".into(), "watch".into()]
            ),
            (vec!["paymentroutes/status".into()], vec!["patch".into()]),
        ]
    );
    // Nobody may read Secrets through the API, and there are no wildcards.
    for role in of_kind(&docs, "ClusterRole")
        .into_iter()
        .chain(of_kind(&docs, "Role"))
    {
        for rule in role["rules"].as_array().unwrap() {
            let resources = strings(&rule["resources"]);
            let verbs = strings(&rule["verbs"]);
            let name = &role["metadata"]["name"];
            assert!(
                !resources.iter().any(|r| r == "secrets" || r == "*"),
                "{name}: {resources:?}"
            );
            assert!(!verbs.iter().any(|v| v == "*"), "{name}: {verbs:?}");
            assert!(
                !strings(&rule["apiGroups"]).iter().any(|g| g == "*"),
                "{name}"
            );
        }
    }
    // Only the registrar mounts a Secret (its signing key).
    for d in of_kind(&docs, "Deployment") {
        let name = d["metadata"]["name"].as_str().unwrap();
        let mounts_secret = d["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .is_some_and(|v| v.iter().any(|vol| vol.get("secret").is_some()));
        assert_eq!(mounts_secret, name == "erc8004-registrar", "{name}");
    }
    // The buyer reads PurchaseRequests and ConfigMaps of its own namespace, nothing cluster-wide
    // (the exact rules are pinned by the buyer's own manifest test).
    let buyer = named(&docs, "Deployment", "x402-buyer");
    assert_eq!(
        buyer["spec"]["template"]["spec"]["serviceAccountName"],
        "x402-buyer"
    );
    for binding in of_kind(&docs, "ClusterRoleBinding") {
        for subject in binding["subjects"].as_array().unwrap() {
            assert_ne!(
                subject["name"], "x402-buyer",
                "no cluster-wide rights for the buyer"
            );
        }
    }
    let role = named(&docs, "Role", "x402-buyer");
    assert_eq!(role["metadata"]["namespace"], "llm");
}

#[test]
fn restricted_pod_security_everywhere() {
    let docs = render();
    for ns in of_kind(&docs, "Namespace") {
        let labels = &ns["metadata"]["labels"];
        assert_eq!(
            labels["pod-security.kubernetes.io/enforce"], "restricted",
            "{}",
            ns["metadata"]["name"]
        );
    }
    let deployments = of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 4);
    for d in deployments {
        let name = &d["metadata"]["name"];
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        for c in pod["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{name}");
            for k in ["requests", "limits"] {
                assert!(c["resources"][k]["memory"].is_string(), "{name}: {k}");
            }
            assert!(c["readinessProbe"]["httpGet"].is_object(), "{name}");
            assert!(c["livenessProbe"]["httpGet"].is_object(), "{name}");
            let image = c["image"].as_str().unwrap();
            assert!(
                image.contains("@sha256:") && !image.contains(":latest"),
                "{name}: {image}"
            );
        }
    }
}

#[test]
fn buyer_is_a_single_writer_on_its_own_volume() {
    let docs = render();
    let pvc = named(&docs, "PersistentVolumeClaim", "x402-buyer-state");
    assert_eq!(strings(&pvc["spec"]["accessModes"]), ["ReadWriteOnce"]);
    let buyer = named(&docs, "Deployment", "x402-buyer");
    assert_eq!(buyer["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(buyer["spec"]["replicas"], 1);
    let pod = &buyer["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["fsGroupChangePolicy"],
        "OnRootMismatch"
    );
    assert!(pod["securityContext"]["fsGroup"].is_number());
    let claims: Vec<&Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.get("persistentVolumeClaim"))
        .collect();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["claimName"], "x402-buyer-state");
}

/// The gateway serves the discovery documents free: the storefront's (x402 manifest, OpenAPI)
/// from the verifier's gateway listener, the ERC-8004 one from the registrar. Each path is an
/// `Exact` match of an HTTPRoute on the Gateway the controller attaches offers to, whose
/// backend is a port of a Service `deploy/` ships, and that port is the listener that serves it.
#[test]
fn gateway_routes_the_discovery_documents() {
    use obol_api::routes::{AGENT_REGISTRATION, OPENAPI, WELL_KNOWN_X402};
    let docs = render();
    let cases = [
        (
            WELL_KNOWN_X402,
            "x402-verifier",
            obol_api::proxy::GATEWAY_PORT_NAME,
        ),
        (OPENAPI, "x402-verifier", obol_api::proxy::GATEWAY_PORT_NAME),
        (AGENT_REGISTRATION, "erc8004-registrar", "http"),
    ];
    for (path, service, port_name) in cases {
        let matching: Vec<(&Value, &Value)> = of_kind(&docs, "HTTPRoute")
            .into_iter()
            .flat_map(|r| {
                r["spec"]["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |rule| (r, rule))
            })
            .filter(|(_, rule)| {
                rule["matches"].as_array().into_iter().flatten().any(|m| {
                    m["path"]["type"] == "Exact" && m["path"]["value"].as_str() == Some(path)
                })
            })
            .collect();
        assert_eq!(matching.len(), 1, "{path}: one route rule serves it");
        let (route, rule) = matching[0];
        let ns = route["metadata"]["namespace"].as_str().unwrap();
        assert_eq!(
            route["spec"]["parentRefs"][0],
            serde_json::json!({"name": "traefik-gateway", "namespace": "traefik", "sectionName": "web"}),
            "{path}: the controller's default Gateway"
        );
        let backends = rule["backendRefs"].as_array().unwrap();
        assert_eq!(backends.len(), 1, "{path}");
        assert_eq!(backends[0]["name"], service, "{path}");
        let svc = docs
            .iter()
            .find(|d| {
                d["kind"] == "Service"
                    && d["metadata"]["name"] == service
                    && d["metadata"]["namespace"] == ns
            })
            .unwrap_or_else(|| panic!("{path}: no Service {ns}/{service} beside its route"));
        let port = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == backends[0]["port"])
            .unwrap_or_else(|| panic!("{path}: {service} has no port {}", backends[0]["port"]));
        assert_eq!(port["name"], port_name, "{path}: {port}");
    }
}

/// Every flag and `OBOL_*` variable a manifest sets exists in that binary's `--help`.
#[test]
fn manifests_only_use_flags_the_binaries_have() {
    let docs = render();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_obol"))
        .parent()
        .unwrap()
        .to_owned();
    for d in of_kind(&docs, "Deployment") {
        for c in d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            let name = c["name"].as_str().unwrap();
            let bin = bin_dir.join(name);
            if !bin.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let built = Command::new(cargo)
                    .args(["build", "--bin", name])
                    .current_dir(repo_root())
                    .status()
                    .unwrap();
                assert!(built.success(), "cannot build {name}");
            }
            let help = Command::new(&bin).arg("--help").output().unwrap();
            let help = String::from_utf8_lossy(&help.stdout).to_string();
            for env in c["env"].as_array().into_iter().flatten() {
                let var = env["name"].as_str().unwrap();
                assert!(help.contains(var), "{name} has no {var}:\n{help}");
            }
            for arg in strings(&c["args"]) {
                let flag = arg.split('=').next().unwrap();
                assert!(help.contains(flag), "{name} has no {flag}");
            }
        }
    }
}

#[tokio::test]
async fn applies_to_the_control_plane_with_working_rbac() {
    let env = TestEnv::get().await;
    // policy/v1 PodDisruptionBudgets need Kubernetes 1.21; the local plane is 1.20.
    let docs: Vec<Value> = render()
        .into_iter()
        .filter(|d| d["kind"] != "PodDisruptionBudget")
        .collect();
    let text: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
        .collect();
    let mut child = Command::new("kubectl")
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=obol-deploy-test",
            "-f",
            "-",
        ])
        .env("KUBECONFIG", env.kubeconfig_path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // (service account, verb, resource, namespace, allowed)
    let checks = [
        (
            "x402:x402-verifier",
            "list",
            "paymentroutes.obol.org",
            "llm",
            true,
        ),
        (
            "x402:x402-verifier",
            "patch",
            "paymentroutes.obol.org/status",
            "llm",
            true,
        ),
        (
            "x402:x402-verifier",
            "create",
            "paymentroutes.obol.org",
            "llm",
            false,
        ),
        ("x402:x402-verifier", "get", "secrets", "x402", false),
        (
            "x402:x402-verifier",
            "list",
            "serviceoffers.obol.org",
            "llm",
            false,
        ),
        (
            "obol-system:serviceoffer-controller",
            "create",
            "httproutes.gateway.networking.k8s.io",
            "llm",
            true,
        ),
        (
            "obol-system:serviceoffer-controller",
            "get",
            "secrets",
            "llm",
            false,
        ),
        (
            "obol-system:serviceoffer-controller",
            "update",
            "leases.coordination.k8s.io",
            "obol-system",
            true,
        ),
        (
            "obol-system:erc8004-registrar",
            "patch",
            "registrationrequests.obol.org/status",
            "llm",
            true,
        ),
        (
            "obol-system:erc8004-registrar",
            "create",
            "paymentroutes.obol.org",
            "llm",
            false,
        ),
        (
            "obol-system:erc8004-registrar",
            "list",
            "secrets",
            "obol-system",
            false,
        ),
        (
            "llm:default",
            "list",
            "paymentroutes.obol.org",
            "llm",
            false,
        ),
    ];
    let mut wrong = vec![];
    for (sa, verb, resource, ns, allowed) in checks {
        let (resource, sub) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (resource, None),
        };
        let mut args = vec!["auth", "can-i", verb, resource, "-n", ns];
        let as_user = format!("system:serviceaccount:{sa}");
        args.extend(["--as", &as_user]);
        let sub_arg = sub.map(|s| format!("--subresource={s}"));
        if let Some(s) = &sub_arg {
            args.push(s);
        }
        let out = Command::new("kubectl")
            .args(&args)
            .env("KUBECONFIG", env.kubeconfig_path())
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if (answer == "yes") != allowed {
            wrong.push(format!(
                "{sa} {verb} {resource}{} in {ns}: {answer}",
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
