//! Shared test support: tools from `scripts/tools`, anvil on loopback, the registrar binary.
#![allow(dead_code)]

pub mod anvil;
pub mod registrar;
pub mod rpc_proxy;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A real tool from `scripts/tools` (installed on first use): `anvil` (the binary; `ANVIL_BIN`
/// overrides) or `solc` (solc-js's `node_modules`, for `NODE_PATH`; `SOLC_NODE_PATH` overrides).
/// A tool that cannot be provided fails the test, with the command that installs it.
pub fn tool_path(tool: &str) -> PathBuf {
    match tool {
        "anvil" => obol_testenv::tools::tool("ANVIL_BIN", "anvil.sh"),
        "solc" => obol_testenv::tools::tool("SOLC_NODE_PATH", "solc.sh"),
        other => panic!("unknown tool {other}"),
    }
}

/// Runs each named `async fn(RegistryKind)` as two tests, `<name>::simple_registry` and
/// `<name>::upgradeable_registry`.
#[macro_export]
macro_rules! on_both_registries {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[tokio::test]
                async fn simple_registry() {
                    super::$test($crate::support::anvil::RegistryKind::Simple).await;
                }

                #[tokio::test]
                async fn upgradeable_registry() {
                    super::$test($crate::support::anvil::RegistryKind::Upgradeable).await;
                }
            }
        )*
    };
}
