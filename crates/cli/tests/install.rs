//! `obol install` / `obol uninstall` on the local control plane. The plane is shared by every
//! test (deploy/'s CRDs must stay) and runs Kubernetes 1.20 without a kubelet, so these use
//! kustomizations of their own in a fresh namespace: a kind the cluster does not serve (policy/v1
//! PodDisruptionBudget, as deploy/ ships) refuses the whole install with nothing applied; a real
//! install applies server-side, says which Deployment it waits for and times out (no kubelet
//! ever runs it); uninstall is refused while a ServiceOffer exists, then --force removes exactly
//! the kustomization's objects.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Output;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::PostParams;
use obol_api::ServiceOffer;
use obol_testenv::TestEnv;
use obol_testenv::process::described as text;
use serde_json::json;

async fn obol(env: &TestEnv, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(args)
        .env("KUBECONFIG", env.kubeconfig_path())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

/// A kustomization in `dir`: a namespace `ns`, a ConfigMap and a Deployment in it, plus `extra`.
fn kustomization(dir: &Path, ns: &str, extra: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let manifests = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {ns}}}\n\
         data: {{a: \"1\"}}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: worker, namespace: {ns}}}\n\
         spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: worker}}}}\n  template:\n    \
         metadata: {{labels: {{app: worker}}}}\n    spec:\n      containers:\n      \
         - {{name: worker, image: obol-x402-verifier}}\n{extra}"
    );
    std::fs::write(dir.join("all.yaml"), manifests).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources: [all.yaml]\nimages:\n  - name: obol-x402-verifier\n    digest: sha256:1111111111111111111111111111111111111111111111111111111111111111\n",
    )
    .unwrap();
}

#[tokio::test]
async fn install_applies_waits_and_uninstall_refuses_while_offers_exist() {
    let env = TestEnv::get().await;
    let ns = format!("install-{}", std::process::id());
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&ns);
    let namespaces: Api<Namespace> = Api::all(env.client());

    // A kind the cluster does not serve: refused before anything is written.
    let unserved = work.join("unserved");
    kustomization(
        &unserved,
        &ns,
        &format!(
            "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: worker, \
             namespace: {ns}}}\nspec: {{maxUnavailable: 1, selector: {{matchLabels: {{app: worker}}}}}}\n"
        ),
    );
    let out = obol(
        &env,
        &[
            "install",
            "-k",
            unserved.to_str().unwrap(),
            "--timeout",
            "1",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "policy/v1 PodDisruptionBudget (for PodDisruptionBudget {ns}/worker)"
        )) && said.contains("nothing was changed"),
        "{said}"
    );
    assert!(
        namespaces.get_opt(&ns).await.unwrap().is_none(),
        "a refused install created {ns}"
    );

    // Dry run: validated by the server, nothing written.
    let good = work.join("good");
    kustomization(&good, &ns, "");
    let out = obol(
        &env,
        &["install", "-k", good.to_str().unwrap(), "--dry-run"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!("validated (dry run) Namespace {ns}"))
            && said.contains(&format!(
                "not validated (its namespace {ns} does not exist yet) Deployment {ns}/worker"
            )),
        "{said}"
    );
    assert!(namespaces.get_opt(&ns).await.unwrap().is_none());

    // The install: applied server-side, the image pinned, then it waits for the Deployment,
    // which never runs here, and says so.
    let out = obol(
        &env,
        &["install", "-k", good.to_str().unwrap(), "--timeout", "2"],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "waiting for Deployment {ns}/worker: 0/1 replicas available"
        )),
        "{said}"
    );
    let deployment = Api::<Deployment>::namespaced(env.client(), &ns)
        .get("worker")
        .await
        .unwrap();
    let image = deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert_eq!(
        image,
        "obol-x402-verifier@sha256:1111111111111111111111111111111111111111111111111111111111111111"
    );
    let managers: Vec<String> = deployment
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&obol_cli::install::FIELD_MANAGER.to_owned()),
        "{managers:?}"
    );

    // Installed, a dry run validates every object.
    let out = obol(
        &env,
        &["install", "-k", good.to_str().unwrap(), "--dry-run"],
    )
    .await;
    assert!(
        out.status.success()
            && text(&out).contains(&format!("validated (dry run) Deployment {ns}/worker")),
        "{}",
        text(&out)
    );

    // Uninstall while an offer exists: refused, nothing deleted.
    let offer: ServiceOffer = serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": "kept", "namespace": ns},
        "spec": {
            "upstream": {"service": "demo", "port": 8080},
            "payment": {
                "network": "base-sepolia",
                "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "price": {"perRequest": "0.001"}
            }
        }
    }))
    .unwrap();
    Api::<ServiceOffer>::namespaced(env.client(), &ns)
        .create(&PostParams::default(), &offer)
        .await
        .unwrap();
    let out = obol(&env, &["uninstall", "-k", good.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{ns}/kept")) && text(&out).contains("--force"),
        "{}",
        text(&out)
    );
    let configmaps = Api::<ConfigMap>::namespaced(env.client(), &ns);
    assert!(configmaps.get_opt("settings").await.unwrap().is_some());

    // --dry-run deletes nothing; --force deletes the kustomization's objects, in reverse order.
    let out = obol(
        &env,
        &[
            "uninstall",
            "-k",
            good.to_str().unwrap(),
            "--force",
            "--dry-run",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(configmaps.get_opt("settings").await.unwrap().is_some());
    let out = obol(
        &env,
        &["uninstall", "-k", good.to_str().unwrap(), "--force"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let order: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        order,
        [
            format!("deleted Deployment {ns}/worker"),
            format!("deleted ConfigMap {ns}/settings"),
            format!("deleted Namespace {ns}"),
        ],
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&work);
}
