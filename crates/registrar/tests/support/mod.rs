//! Shared test support: tools from `scripts/tools`, anvil on loopback, the registrar binary.
#![allow(dead_code)]

pub mod anvil;
pub mod registrar;

use std::path::PathBuf;
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether this is a CI run (a missing tool fails instead of skipping).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OBOL_TOOLS_DIR") {
        return dir.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("obol-tools")
}

/// The path `scripts/tools/<tool>.sh` prints (anvil: the binary; solc: its node_modules), from
/// `env_var` or the tools directory. Missing: under CI the script installs it (failure
/// panics); locally `None`, after saying how to install it.
fn find_tool(
    tool: &str,
    env_var: Option<&str>,
    installed: PathBuf,
    marker: &str,
) -> Option<PathBuf> {
    if let Some(p) = env_var.and_then(std::env::var_os) {
        return Some(p.into());
    }
    let present = if marker.is_empty() {
        installed.exists()
    } else {
        installed.join(marker).exists()
    };
    if present {
        return Some(installed);
    }
    let script = repo_root().join(format!("scripts/tools/{tool}.sh"));
    if !in_ci() {
        eprintln!(
            "SKIP: {tool} is not installed; run {} first",
            script.display()
        );
        return None;
    }
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("CI=true: cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "CI=true: {} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        path.exists(),
        "CI=true: {tool} missing after {}",
        script.display()
    );
    Some(path)
}

/// `anvil` or `solc` (see [`find_tool`]).
pub fn tool_path(tool: &str) -> Option<PathBuf> {
    match tool {
        "anvil" => find_tool(
            "anvil",
            Some("ANVIL_BIN"),
            tools_dir().join("chain/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"),
            "",
        ),
        "solc" => find_tool(
            "solc",
            None,
            tools_dir().join("solc/node_modules"),
            "solc/package.json",
        ),
        other => panic!("unknown tool {other}"),
    }
}
