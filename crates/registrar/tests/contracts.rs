//! The committed artifacts in `contracts/out` match a fresh solc-js compile of `contracts/src`.
//!
//! Needs Node and solc-js (`scripts/tools/solc.sh`, run when `SOLC_NODE_PATH` is unset);
//! a compiler that cannot be provided fails the test.

use std::process::Command;

#[test]
fn artifacts_match_the_sources() {
    let root = obol_testenv::repo_root();
    let node_path = obol_testenv::tools::solc();
    let out = Command::new("node")
        .arg(root.join("contracts/compile.js"))
        .arg("--check")
        .env("NODE_PATH", &node_path)
        .output()
        .expect("run node (Node 20 is required for the contract check)");
    assert!(
        out.status.success(),
        "contracts/out is stale:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn artifacts_carry_abi_and_bytecode() {
    let dir = obol_testenv::repo_root().join("contracts/out");
    for name in [
        "IdentityRegistry",
        "RevertingIdentityRegistry",
        "TestUSDC",
        "Erc1967Proxy",
        "MinimalUupsPlaceholder",
        "UpgradeableIdentityRegistry",
    ] {
        let path = dir.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            json["abi"].as_array().is_some_and(|a| !a.is_empty()),
            "{name}: abi"
        );
        let code = json["bytecode"].as_str().unwrap_or_default();
        assert!(
            code.starts_with("0x") && code.len() > 100,
            "{name}: bytecode"
        );
    }
}
