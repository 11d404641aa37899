//! Test support for integration tests against the real local control plane.
//!
//! - [`TestEnv::get`] connects to the control plane of `scripts/testenv`, starting it when absent
//!   (once per process; concurrent test processes serialize on the script's lock).
//! - [`TestEnv::namespace`] gives each test its own namespace, deleted when the guard drops.
//! - [`eventually`] and [`wait_for_object`] wait for a condition with a deadline instead of
//!   sleeping a guessed time.
//!
//! When the control plane cannot be provided, tests fail (never skip): under `CI=true` the
//! message says so loudly; elsewhere it names the one command to run.
//!
//! This crate is a dev-dependency only; like a binary it enables k8s-openapi's version feature.

pub mod gateway;
pub mod net;
pub mod process;
pub mod tools;
pub mod traefik;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Environment variable naming a kubeconfig of an already running control plane to reuse.
pub const KUBECONFIG_ENV: &str = "OBOL_TEST_KUBECONFIG";
/// Label put on every namespace a test creates.
pub const TEST_NAMESPACE_LABEL: &str = "obol.org/test";

/// Installs the one rustls crypto provider of this project (aws-lc-rs). Idempotent.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is what we want anyway.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The repository root (this crate lives in `crates/testenv`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh private directory for one test's files (logs, configs, chain state): under the system
/// temporary directory, named after `name`, this process and a counter, so tests running at the
/// same time never share one. It is left in place after the test, for its logs.
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("obol-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("scratch directory {}: {e}", dir.display()));
    dir
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn testenv_kubeconfig() -> PathBuf {
    match std::env::var_os("OBOL_TESTENV_DIR") {
        Some(dir) => PathBuf::from(dir).join("kubeconfig"),
        None => repo_root().join("target/obol-run/testenv/kubeconfig"),
    }
}

/// Finds or starts the control plane; returns its kubeconfig path or why it could not.
fn ensure_control_plane() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(KUBECONFIG_ENV) {
        return Ok(PathBuf::from(path));
    }
    let script = repo_root().join("scripts/testenv");
    let up = Command::new(&script)
        .arg("up")
        .status()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !up.success() {
        return Err(format!("`scripts/testenv up` failed ({up})"));
    }
    let path = testenv_kubeconfig();
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} missing after `scripts/testenv up`",
            path.display()
        ))
    }
}

fn control_plane() -> PathBuf {
    static KUBECONFIG: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match KUBECONFIG.get_or_init(ensure_control_plane) {
        Ok(path) => path.clone(),
        Err(why) if in_ci() => panic!(
            "CI=true and the local Kubernetes control plane could not be provided: {why}. \
             Integration tests need it; see scripts/testenv."
        ),
        Err(why) => panic!(
            "the local Kubernetes control plane is not available: {why}. \
             Run `scripts/testenv up` (the first run builds Kubernetes, ~7 min), then rerun the tests."
        ),
    }
}

/// A connection to the local control plane.
#[derive(Clone)]
pub struct TestEnv {
    client: Client,
    config: Config,
    kubeconfig: PathBuf,
}

impl TestEnv {
    /// Connects to the running control plane, starting it when absent. Panics when it cannot.
    pub async fn get() -> Self {
        install_crypto_provider();
        let kubeconfig = control_plane();
        let config = load_config(&kubeconfig)
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
        let client = Client::try_from(config.clone()).expect("kube client");
        Self {
            client,
            config,
            kubeconfig,
        }
    }

    /// A client (cheap to clone).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The kubeconfig file, for child processes (`KUBECONFIG=...`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Creates a fresh namespace `<prefix>-<unique>`, deleted when the guard drops.
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let unique = format!(
            "{:x}{:x}{:x}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let prefix: String = prefix.chars().take(30).collect();
        let name = format!("{prefix}-{unique}");
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {TEST_NAMESPACE_LABEL: "true"}},
        }))
        .expect("namespace object");
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        TestNamespace {
            name,
            config: self.config.clone(),
        }
    }
}

async fn load_config(path: &Path) -> Result<Config, kube::Error> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(kube::Error::InferKubeconfig)
}

/// A namespace owned by one test; deleted (asynchronously by the API server) on drop.
pub struct TestNamespace {
    name: String,
    config: Config,
}

impl TestNamespace {
    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("OBOL_TEST_KEEP_NAMESPACES").is_some() {
            return;
        }
        // Drop cannot await, and the test's runtime may be shutting down: delete from a thread
        // with its own small runtime and a new client.
        let name = self.name.clone();
        let config = self.config.clone();
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let client = Client::try_from(config).ok()?;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(deleted, Ok(Some(_))) {
            eprintln!("warning: could not delete test namespace {}", self.name);
        }
    }
}

/// Polls `check` until it returns `Some`, with a short backoff (10 ms doubling to 200 ms), and
/// returns the value. Panics when `timeout` passes first.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() >= timeout {
            panic!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(delay.min(timeout.saturating_sub(start.elapsed()))).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Watches the object `name` until `condition` holds (or the object is gone, for conditions
/// that accept `None`), and returns the object. Panics with the condition's description on
/// timeout.
pub async fn wait_for_object<K, C>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    condition: C,
) -> Option<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    C: kube::runtime::wait::Condition<K>,
{
    let wait = kube::runtime::wait::await_condition(api.clone(), name, condition);
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(obj)) => obj,
        Ok(Err(e)) => panic!("watching {name}: {e}"),
        Err(_) => panic!("{name}: condition not met within {timeout:?}"),
    }
}
