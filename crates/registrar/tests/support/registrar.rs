//! The `erc8004-registrar` binary as a child process (killed on drop), and RegistrationRequest
//! fixtures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider as _;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent as _;
use kube::Api;
use kube::api::PostParams;
use obol_api::{RegistrationPhase, RegistrationRequest, RegistrationRequestSpec};
use obol_registrar::contracts::IdentityRegistry::Registered;

use super::anvil::Anvil;

/// A running registrar.
pub struct Registrar {
    child: Child,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    /// Where its log goes.
    pub log: PathBuf,
}

/// One registrar test's world: the shared control plane, a fresh anvil, a namespace and its
/// RegistrationRequests.
pub struct Scene {
    /// The control plane.
    pub env: obol_testenv::TestEnv,
    /// The chain.
    pub anvil: Anvil,
    /// The namespace (deleted when dropped).
    pub ns: obol_testenv::TestNamespace,
    /// RegistrationRequests in `ns`.
    pub api: Api<RegistrationRequest>,
}

impl Scene {
    /// A scene in a new namespace named after `prefix`, on an anvil started with no extra flags.
    pub async fn start(prefix: &str) -> Self {
        let env = obol_testenv::TestEnv::get().await;
        let anvil = Anvil::start(&[]).await;
        let ns = env.namespace(prefix).await;
        let api = Api::namespaced(env.client(), ns.name());
        Self {
            env,
            anvil,
            ns,
            api,
        }
    }

    /// A registrar on this anvil with dev key #0, watching this namespace.
    pub fn options(&self) -> Options<'_> {
        Options {
            kubeconfig: self.env.kubeconfig_path(),
            namespace: self.ns.name(),
            rpc_url: Some(self.anvil.url()),
            with_key: true,
            extra: vec![],
        }
    }
}

/// How to start one.
pub struct Options<'a> {
    /// Kubeconfig of the test control plane.
    pub kubeconfig: &'a Path,
    /// Namespace to watch (and hold the lease in).
    pub namespace: &'a str,
    /// `--rpc-url`.
    pub rpc_url: Option<String>,
    /// Write dev key #0 to a file and pass `--key-file`.
    pub with_key: bool,
    /// Extra flags.
    pub extra: Vec<String>,
}

fn scratch_dir() -> PathBuf {
    let dir = obol_testenv::repo_root().join("target/obol-run/registrar-tests");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

impl Registrar {
    /// Starts the binary; the same `namespace` keeps the same lease identity across restarts.
    pub fn start(o: &Options<'_>) -> Self {
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = scratch_dir();
        let log = dir.join(format!("{}-{}-{n}.log", o.namespace, std::process::id()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_erc8004-registrar"));
        cmd.env("KUBECONFIG", o.kubeconfig)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--namespace", o.namespace, "--lease-namespace", o.namespace])
            .args(["--lease-duration", "3s", "--lease-grace", "1s"])
            .args(["--retry-initial", "200ms", "--retry-max", "1s"])
            .args(["--poll-interval", "100ms", "--receipt-timeout", "10s"])
            .args(["--log", "info,obol_registrar=debug"])
            .args(&o.extra)
            .stdin(Stdio::null());
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stderr(file.try_clone().expect("log file")).stdout(file);
        if !o.extra.iter().any(|a| a == "--identity") {
            cmd.args(["--identity", &format!("test-{}", o.namespace)]);
        }
        if let Some(url) = &o.rpc_url {
            cmd.args(["--rpc-url", url]);
        }
        if o.with_key {
            let key = dir.join(format!("{}.key", o.namespace));
            std::fs::write(&key, format!("{}\n", super::anvil::DEV_KEY_0)).expect("key file");
            cmd.arg("--key-file").arg(&key);
        }
        let mut child = cmd.spawn().expect("spawn erc8004-registrar");
        // The bound port, from the startup log line (port 0: no race for a free port).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let port = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let bound = text
                .lines()
                .filter(|l| l.contains("Serving registration documents"))
                .find_map(|l| l.split("bound=127.0.0.1:").nth(1))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|p| p.parse::<u16>().ok());
            if let Some(port) = bound {
                break port;
            }
            if let Ok(Some(exit)) = child.try_wait() {
                panic!("erc8004-registrar exited ({exit}):\n{text}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "registrar did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, port, log }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// GET a path of its HTTP server; `(status, body)`.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path).await
    }

    /// The log so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        self.kill();
    }
}

pub use obol_testenv::net::http_get;

/// A RegistrationRequest for `registry` on the test chain.
pub fn mk_rr(name: &str, registry: Option<&str>) -> RegistrationRequest {
    let spec = RegistrationRequestSpec {
        name: format!("{name} agent"),
        description: Some("Test agent".into()),
        endpoint: format!("https://example.com/services/{name}"),
        chain: "eip155:84532".into(),
        registry: registry.map(str::to_owned),
        image: None,
        services: vec![],
        supported_trust: vec![],
        skills: vec![],
        domains: vec![],
        metadata: [("gpu".to_owned(), "A100".to_owned())].into(),
        provenance: Default::default(),
        service_offer_name: Some(name.into()),
    };
    RegistrationRequest::new(name, spec)
}

/// Polls the request until `pred` holds on it; panics with the registrar log on timeout.
pub async fn wait_rr(
    api: &Api<RegistrationRequest>,
    name: &str,
    registrar: &Registrar,
    what: &str,
    pred: impl Fn(&RegistrationRequest) -> bool,
) -> RegistrationRequest {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(rr) = api.get(name).await
            && pred(&rr)
        {
            return rr;
        }
        if tokio::time::Instant::now() > deadline {
            let status = api.get(name).await.ok().and_then(|r| r.status);
            panic!(
                "{name}: not {what} within 60 s; status {status:#?}\nregistrar log:\n{}",
                registrar.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The request's phase.
pub fn phase(rr: &RegistrationRequest) -> Option<RegistrationPhase> {
    rr.status.as_ref().and_then(|s| s.phase)
}

/// Waits until the request is gone (its finalizer released).
pub async fn wait_gone(api: &Api<RegistrationRequest>, name: &str, registrar: &Registrar) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match api.get_opt(name).await {
            Ok(None) => return,
            Ok(Some(rr)) if tokio::time::Instant::now() > deadline => panic!(
                "{name}: still present after 60 s: {:#?}\nregistrar log:\n{}",
                rr.status,
                registrar.log_text()
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub async fn registered_events(anvil: &Anvil, registry: Address) -> Vec<(U256, String)> {
    let p = anvil.provider(None);
    let logs = p
        .get_logs(
            &Filter::new()
                .address(registry)
                .event_signature(Registered::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .expect("eth_getLogs");
    logs.iter()
        .map(|l| {
            let ev = Registered::decode_log_data(l.data()).expect("Registered log");
            (ev.agentId, ev.agentURI)
        })
        .collect()
}

pub async fn create(api: &Api<RegistrationRequest>, rr: &RegistrationRequest) {
    api.create(&PostParams::default(), rr)
        .await
        .expect("create rr");
}

pub fn golden(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("golden file");
    serde_json::from_str(&text).expect("golden JSON")
}
