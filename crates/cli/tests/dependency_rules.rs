//! The workspace's dependency rules (STYLE.md §2), read from `cargo metadata`:
//! - `obol-api`, `obol-x402` and `obol-runtime` depend on no other crate of the workspace;
//! - service crates (controller, verifier, registrar, buyer) never depend on each other;
//! - `obol-testenv` is only ever a dev-dependency.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

const SERVICES: [&str; 4] = [
    "obol-controller",
    "obol-verifier",
    "obol-registrar",
    "obol-buyer",
];

/// Crates every other may build on, which build on no crate of the workspace themselves.
const LEAVES: [&str; 3] = ["obol-api", "obol-x402", "obol-runtime"];

/// package name -> [(dependency name, kind)] for workspace-internal dependencies.
fn internal_deps() -> BTreeMap<String, Vec<(String, String)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| names.contains(&d["name"].as_str().unwrap_or_default()))
                .map(|d| {
                    let kind = d["kind"].as_str().unwrap_or("normal").to_owned();
                    (d["name"].as_str().unwrap().to_owned(), kind)
                })
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

#[test]
fn dependency_rules_hold() {
    let deps = internal_deps();
    assert!(deps.len() >= 8, "workspace packages: {:?}", deps.keys());
    let mut broken = vec![];
    for (package, list) in &deps {
        for (dep, kind) in list {
            if LEAVES.contains(&package.as_str()) && kind != "dev" {
                broken.push(format!("{package} depends on {dep}"));
            }
            if SERVICES.contains(&package.as_str()) && SERVICES.contains(&dep.as_str()) {
                broken.push(format!("service {package} depends on service {dep}"));
            }
            if dep == "obol-testenv" && kind != "dev" {
                broken.push(format!("{package} has obol-testenv as a {kind} dependency"));
            }
        }
    }
    assert!(broken.is_empty(), "dependency rules broken: {broken:#?}");
}
