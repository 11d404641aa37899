//! The buyer-state regression test (obol-reference §6.4, M1): parses `deploy/buyer/*.yaml` and
//! pins the invariants that keep the spend journal single-writer and durable.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde::Deserialize as _;
use serde_yaml::Value;

fn docs() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/buyer/x402-buyer.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[test]
fn state_volume_is_a_read_write_once_claim() {
    let docs = docs();
    let pvc = find(&docs, "PersistentVolumeClaim", "x402-buyer-state");
    assert_eq!(s(&pvc["metadata"]["namespace"]), "llm");
    let modes: Vec<&str> = pvc["spec"]["accessModes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(modes, ["ReadWriteOnce"]);
    assert_eq!(s(&pvc["spec"]["storageClassName"]), "local-path");
    assert!(!s(&pvc["spec"]["resources"]["requests"]["storage"]).is_empty());
}

#[test]
fn deployment_is_a_single_recreated_writer_on_the_claim() {
    let docs = docs();
    let d = find(&docs, "Deployment", "x402-buyer");
    assert_eq!(d["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(s(&d["spec"]["strategy"]["type"]), "Recreate");
    let pod = &d["spec"]["template"]["spec"];
    let vols = pod["volumes"].as_sequence().unwrap();
    let state = vols
        .iter()
        .find(|v| v["name"] == "x402-buyer-state")
        .unwrap();
    assert!(
        state.get("emptyDir").is_none(),
        "state must not be an emptyDir"
    );
    assert_eq!(
        s(&state["persistentVolumeClaim"]["claimName"]),
        "x402-buyer-state"
    );
    let c = pod["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "x402-buyer")
        .unwrap();
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "x402-buyer-state")
        .unwrap();
    assert_eq!(s(&mount["mountPath"]), "/state");
    assert_ne!(mount["readOnly"].as_bool(), Some(true));
    let args: Vec<&str> = c["args"].as_sequence().unwrap().iter().map(s).collect();
    assert!(args.contains(&"--state=/state/consumed.json"), "{args:?}");
    assert!(args.contains(&"--source=kube"), "{args:?}");
    // Always a chain reader: healing lost state must not depend on what sellers remember.
    let env = c["env"].as_sequence().unwrap();
    let rpc = env
        .iter()
        .find(|e| e["name"] == "OBOL_BUYER_RPC_URL")
        .expect("a chain reader (OBOL_BUYER_RPC_URL)");
    let from = &rpc["valueFrom"]["configMapKeyRef"];
    let chain = find(&docs, "ConfigMap", s(&from["name"]));
    assert!(s(&chain["data"][s(&from["key"])]).starts_with("https://"));
    assert!(
        pod.get("volumes")
            .and_then(|v| v.as_sequence())
            .unwrap()
            .iter()
            .all(|v| v.get("configMap").is_none()),
        "the pool is read through the API, not a mounted volume"
    );
    assert!(
        s(&c["image"]).contains("@sha256:"),
        "image must be pinned by digest"
    );
}

#[test]
fn pod_security_is_restricted() {
    let docs = docs();
    let pod = &find(&docs, "Deployment", "x402-buyer")["spec"]["template"]["spec"];
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"].as_bool(), Some(true));
    assert!(
        psc["fsGroup"].as_u64().is_some(),
        "fsGroup owns the volume for the non-root user"
    );
    assert_eq!(s(&psc["fsGroupChangePolicy"]), "OnRootMismatch");
    assert_eq!(s(&psc["seccompProfile"]["type"]), "RuntimeDefault");
    for c in pod["containers"].as_sequence().unwrap() {
        let sc = &c["securityContext"];
        let name = s(&c["name"]);
        assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true), "{name}");
        assert!(
            sc.get("runAsUser").is_none() && sc.get("runAsGroup").is_none(),
            "{name}: ids come from the pod"
        );
        assert_eq!(
            sc["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{name}"
        );
        assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "{name}");
        let drop: Vec<&str> = sc["capabilities"]["drop"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        assert_eq!(drop, ["ALL"], "{name}");
        assert!(sc["capabilities"].get("add").is_none(), "{name}");
    }
}

#[test]
fn rbac_is_exactly_reading_purchases_and_their_config_maps_and_writing_their_status() {
    let docs = docs();
    let role = find(&docs, "Role", "x402-buyer");
    let mut rules: Vec<(String, String, Vec<String>)> = role["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let groups: Vec<String> = r["apiGroups"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|g| s(g).to_owned())
                .collect();
            let verbs: Vec<String> = r["verbs"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|v| s(v).to_owned())
                .collect();
            r["resources"]
                .as_sequence()
                .unwrap()
                .iter()
                .flat_map(move |res| {
                    let verbs = verbs.clone();
                    groups
                        .clone()
                        .into_iter()
                        .map(move |g| (g, s(res).to_owned(), verbs.clone()))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    rules.sort();
    let read = vec!["get".to_owned(), "list".into(), "watch".into()];
    assert_eq!(
        rules,
        vec![
            (String::new(), "configmaps".into(), read.clone()),
            ("obol.org".into(), "purchaserequests".into(), read),
            (
                "obol.org".into(),
                "purchaserequests/status".into(),
                vec!["get".into(), "patch".into()]
            ),
        ]
    );
    let binding = find(&docs, "RoleBinding", "x402-buyer");
    assert_eq!(s(&binding["roleRef"]["name"]), "x402-buyer");
    assert_eq!(s(&binding["subjects"][0]["name"]), "x402-buyer");
    let d = find(&docs, "Deployment", "x402-buyer");
    assert_eq!(
        s(&d["spec"]["template"]["spec"]["serviceAccountName"]),
        "x402-buyer"
    );
    assert!(
        docs.iter().all(|d| d["kind"] != "ClusterRole"),
        "no cluster-wide rights"
    );
}
