//! The buyer-state regression test (obol-reference §6.4, M1): parses `deploy/buyer/*.yaml` and
//! pins the invariants that keep the spend journal single-writer and durable; and the
//! StatefulSet option (`deploy/buyer-statefulset/`): one journal per replica, the replica's
//! name and count reach the buyer, everything else equal to the single buyer's.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde::Deserialize as _;
use serde_yaml::Value;

fn docs() -> Vec<Value> {
    read("buyer/x402-buyer.yaml")
}

fn replica_docs() -> Vec<Value> {
    read("buyer-statefulset/x402-buyer.yaml")
}

fn read(under_deploy: &str) -> Vec<Value> {
    let path = format!("{}/../../deploy/{under_deploy}", env!("CARGO_MANIFEST_DIR"));
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
    restricted(&find(&docs, "Deployment", "x402-buyer")["spec"]["template"]["spec"]);
    let docs = replica_docs();
    restricted(&find(&docs, "StatefulSet", "x402-buyer")["spec"]["template"]["spec"]);
}

fn restricted(pod: &Value) {
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

type Rule = (String, String, Vec<String>, Vec<String>);

/// (group, resource, verbs, resourceNames), sorted.
fn rules(role: &Value) -> Vec<Rule> {
    let names = |r: &Value| -> Vec<String> {
        r.get("resourceNames")
            .and_then(Value::as_sequence)
            .map(|n| n.iter().map(|v| s(v).to_owned()).collect())
            .unwrap_or_default()
    };
    let mut rules: Vec<Rule> = role["rules"]
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
                    let names = names(r);
                    groups
                        .clone()
                        .into_iter()
                        .map(move |g| (g, s(res).to_owned(), verbs.clone(), names.clone()))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    rules.sort();
    rules
}

fn single_buyer_rules() -> Vec<Rule> {
    let read = vec!["get".to_owned(), "list".into(), "watch".into()];
    vec![
        (String::new(), "configmaps".into(), read.clone(), vec![]),
        ("obol.org".into(), "purchaserequests".into(), read, vec![]),
        (
            "obol.org".into(),
            "purchaserequests/status".into(),
            vec!["get".into(), "patch".into()],
            vec![],
        ),
    ]
}

#[test]
fn rbac_is_exactly_reading_purchases_and_their_config_maps_and_writing_their_status() {
    let docs = docs();
    let role = find(&docs, "Role", "x402-buyer");
    assert_eq!(rules(role), single_buyer_rules());
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

#[test]
fn the_single_buyer_stays_the_default() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/kustomization.yaml"
    );
    let k: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let resources: Vec<&str> = k["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert!(
        resources.contains(&"buyer/x402-buyer.yaml"),
        "{resources:?}"
    );
    assert!(
        !resources.iter().any(|r| r.starts_with("buyer-statefulset")),
        "the StatefulSet is an option, and never beside the single buyer"
    );
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/buyer-statefulset/kustomization.yaml"
    );
    let k: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(k["resources"][0], "x402-buyer.yaml");
}

#[test]
fn statefulset_gives_each_replica_its_own_journal_its_name_and_the_count() {
    let docs = replica_docs();
    assert!(
        docs.iter()
            .all(|d| d["kind"] != "Deployment" && d["kind"] != "PersistentVolumeClaim"),
        "no single writer's Deployment or shared claim beside the replicas"
    );
    let set = find(&docs, "StatefulSet", "x402-buyer");
    assert!(set["spec"]["replicas"].as_u64().unwrap() > 1);
    assert_eq!(s(&set["spec"]["updateStrategy"]["type"]), "RollingUpdate");
    let headless = find(&docs, "Service", s(&set["spec"]["serviceName"]));
    assert_eq!(s(&headless["spec"]["clusterIP"]), "None");
    // Journals outlive scaling down: a replica scaled back up knows what it sent.
    let retention = &set["spec"]["persistentVolumeClaimRetentionPolicy"];
    assert_eq!(s(&retention["whenScaled"]), "Retain");
    assert_eq!(s(&retention["whenDeleted"]), "Retain");
    let claims = set["spec"]["volumeClaimTemplates"].as_sequence().unwrap();
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(s(&claim["metadata"]["name"]), "x402-buyer-state");
    let modes: Vec<&str> = claim["spec"]["accessModes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(modes, ["ReadWriteOnce"]);
    let pod = &set["spec"]["template"]["spec"];
    assert!(
        pod.get("volumes").is_none(),
        "the journal is the claim template's, never a shared volume"
    );
    let c = &pod["containers"][0];
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "x402-buyer-state")
        .unwrap();
    assert_eq!(s(&mount["mountPath"]), "/state");
    assert_ne!(mount["readOnly"].as_bool(), Some(true));
    let env = c["env"].as_sequence().unwrap();
    let replica = env
        .iter()
        .find(|e| e["name"] == "OBOL_BUYER_REPLICA")
        .expect("the replica's pod name");
    assert_eq!(
        s(&replica["valueFrom"]["fieldRef"]["fieldPath"]),
        "metadata.name"
    );
    let args: Vec<&str> = c["args"].as_sequence().unwrap().iter().map(s).collect();
    assert!(
        args.contains(&format!("--statefulset={}", s(&set["metadata"]["name"])).as_str()),
        "the count is read from this StatefulSet: {args:?}"
    );
    // The replica count may be read, of this StatefulSet only; nothing else beyond the single
    // buyer's rights.
    let mut want = single_buyer_rules();
    want.push((
        "apps".into(),
        "statefulsets".into(),
        vec!["get".into()],
        vec![s(&set["metadata"]["name"]).to_owned()],
    ));
    want.sort();
    assert_eq!(rules(find(&docs, "Role", "x402-buyer")), want);
    assert!(docs.iter().all(|d| d["kind"] != "ClusterRole"));
}

#[test]
fn statefulset_runs_the_single_buyers_pod_plus_the_replica_settings() {
    let single = docs();
    let replicas = replica_docs();
    for (kind, name) in [
        ("ServiceAccount", "x402-buyer"),
        ("RoleBinding", "x402-buyer"),
        ("ConfigMap", "x402-buyer-chain"),
        ("Service", "x402-buyer"),
    ] {
        assert_eq!(
            find(&single, kind, name),
            find(&replicas, kind, name),
            "{kind} {name} differs between the two buyer manifests"
        );
    }
    let d = find(&single, "Deployment", "x402-buyer");
    let set = find(&replicas, "StatefulSet", "x402-buyer");
    assert_eq!(d["spec"]["selector"], set["spec"]["selector"]);
    let mut want = d["spec"]["template"].clone();
    let mut got = set["spec"]["template"].clone();
    // The single buyer's shared claim is the StatefulSet's claim template.
    want["spec"].as_mapping_mut().unwrap().remove("volumes");
    for t in [&mut want, &mut got] {
        let c = &mut t["spec"]["containers"][0];
        let env = c["env"].as_sequence_mut().unwrap();
        env.retain(|e| e["name"] != "OBOL_BUYER_REPLICA");
        let args = c["args"].as_sequence_mut().unwrap();
        args.retain(|a| !s(a).starts_with("--statefulset="));
    }
    assert_eq!(want, got, "the pods differ beyond the replica settings");
}
