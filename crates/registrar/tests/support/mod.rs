//! Shared test support of the registrar: anvil on loopback, the registrar binary. Tools come
//! from `obol_testenv::tools` (a missing one fails the test with the command that installs it).
#![allow(dead_code)]

pub mod anvil;
pub mod registrar;
pub mod rpc_proxy;

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
