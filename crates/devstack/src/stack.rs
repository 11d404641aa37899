//! `obol dev up | down | env | status`: the whole product on one machine, with real parts.
//!
//! Started, in order: the local control plane (`scripts/testenv`), anvil (chain id 84532) with
//! the test USDC at Base Sepolia's USDC address and a funded buyer, the official x402 reference
//! facilitator, the verifier, a demo upstream, Traefik with the dev adapter, the controller, the
//! registrar, the demo offer, the metered offer `llm` (the fake LLM upstream sold per token
//! with x402 `upto`; the test Permit2 and upto proxy on the chain), the buyer (PurchaseRequests of namespace `demo`, with a chain
//! reader), and a purchase of the demo offer made with `obol buy http`. Every process
//! binds 127.0.0.1, logs to `<run>/<name>.log`, and is recorded in `<run>/stack.json` so that
//! `down` stops exactly those pids.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use serde::{Deserialize, Serialize};

use crate::chain::{DEV_ACCOUNTS, Rpc, dev_address};
use crate::files::write_secret;
use crate::identity::{BUYER, CONTROLLER, GATEWAY_ADAPTER, Identity, REGISTRAR, VERIFIER};
use crate::process::{self, Proc};

pub mod replicas;

/// The run directory under the repository when `OBOL_DEV_RUN_DIR` is not set.
pub const DEFAULT_RUN_DIR: &str = "target/obol-run/dev";

/// The demo offer's price per request, in atomic USDC units (0.001 USDC).
pub const DEMO_PRICE_ATOMIC: u64 = 1000;
/// Authorizations `up` buys for the demo offer (`obol buy http demo`).
pub const DEMO_AUTHS: usize = 50;
/// Test USDC minted to the buyer account.
pub const BUYER_FUNDS_ATOMIC: u64 = 1_000_000_000;

/// Where things are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Repository root (contracts, tools, scripts).
    pub repo: PathBuf,
    /// Run directory (logs, state, configuration).
    pub run: PathBuf,
    /// Directory of the project's binaries.
    pub bin: PathBuf,
}

/// What runs, as recorded in `stack.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Processes started by `up` (the control plane has its own script).
    pub procs: Vec<Proc>,
    /// kubeconfig of the local control plane.
    pub kubeconfig: PathBuf,
    /// Gateway (Traefik) base URL.
    pub gateway_url: String,
    /// Chain RPC URL.
    pub rpc_url: String,
    /// Test USDC address.
    pub usdc: String,
    /// Facilitator URL.
    pub facilitator_url: String,
    /// Verifier URL.
    pub verifier_url: String,
    /// The verifier's gateway listener (gateway mode `proxy`).
    #[serde(default)]
    pub verifier_gateway_url: String,
    /// Buyer URL.
    pub buyer_url: String,
    /// Registrar URL.
    pub registrar_url: String,
    /// The controller's admin address (`/readyz`, `/metrics`).
    #[serde(default)]
    pub controller_url: String,
    /// The seller wallet of the demo offer.
    pub seller: String,
    /// The buyer account.
    pub buyer: String,
    /// The registrar's account (its key is in `<run>/registrar.key`, 0600).
    #[serde(default)]
    pub registrar: String,
    /// The ERC-8004 IdentityRegistry on the local chain.
    #[serde(default)]
    pub registry: String,
    /// The demo agent's id and registration transaction.
    #[serde(default)]
    pub demo_agent: Option<(String, String)>,
    /// Directory of the project's binaries (`obol dev env` puts it on `PATH`).
    #[serde(default)]
    pub bin_dir: PathBuf,
    /// The run directory.
    #[serde(default)]
    pub run_dir: PathBuf,
    /// The repository.
    #[serde(default)]
    pub repo: PathBuf,
    /// Upstream port of the demo (offers of the user may sell it too).
    #[serde(default)]
    pub demo_port: u16,
    /// Port of the fake OpenAI-compatible upstream of the metered offer `llm`.
    #[serde(default)]
    pub llm_port: u16,
    /// The installed official x402 packages (`scripts/tools/x402-peers.sh`): the "Try" line
    /// paying `llm` per token runs their client.
    #[serde(default)]
    pub x402_peers: PathBuf,
    /// The verifier replicas, each reached directly (`verifier_url` and `verifier_gateway_url`
    /// are the balanced addresses when there are several). Empty in state files written before
    /// replicas were recorded: one replica at `verifier_url`.
    #[serde(default)]
    pub verifiers: Vec<replicas::Replica>,
    /// The Redis holding the replicas' reservations (empty with one replica).
    #[serde(default)]
    pub redis_url: String,
    /// The buyer replicas' addresses, by ordinal (empty with one buyer, at `buyer_url`;
    /// `buyer_url` is replica 0's when there are several).
    #[serde(default)]
    pub buyers: Vec<String>,
}

/// Stack failures: what failed and where to look.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step failed.
    #[error("{step}: {message}")]
    Step {
        /// The step.
        step: String,
        /// What went wrong (with a log tail when there is one).
        message: String,
    },
}

fn fail(step: &str, message: impl std::fmt::Display) -> Error {
    Error::Step {
        step: step.to_owned(),
        message: message.to_string(),
    }
}

/// The file in the run directory that records the stack.
pub const STATE_FILE: &str = "stack.json";

/// The state recorded in `run`, if any.
pub fn recorded(run: &Path) -> Option<State> {
    let text = std::fs::read_to_string(run.join(STATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

impl Paths {
    fn state_file(&self) -> PathBuf {
        self.run.join(STATE_FILE)
    }

    /// The recorded state, if any.
    pub fn load(&self) -> Option<State> {
        recorded(&self.run)
    }

    fn save(&self, state: &State) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(state).map_err(|e| fail("saving state", e))?;
        std::fs::write(self.state_file(), text).map_err(|e| fail("saving state", e))
    }
}

/// Whether every recorded process is alive.
pub fn running(state: &State) -> bool {
    !state.procs.is_empty() && state.procs.iter().all(|p| process::alive(p.pid))
}

/// `export` lines for a shell.
pub fn env_lines(state: &State) -> String {
    let vars = [
        ("KUBECONFIG", state.kubeconfig.display().to_string()),
        ("OBOL_GATEWAY_URL", state.gateway_url.clone()),
        ("OBOL_RPC_URL", state.rpc_url.clone()),
        ("OBOL_USDC_ADDRESS", state.usdc.clone()),
        ("OBOL_BUYER_KEY", DEV_ACCOUNTS[1].1.to_owned()),
        ("OBOL_BUYER_ADDRESS", state.buyer.clone()),
        ("OBOL_SELLER_ADDRESS", state.seller.clone()),
        ("OBOL_BUYER_URL", state.buyer_url.clone()),
        ("OBOL_FACILITATOR_URL", state.facilitator_url.clone()),
        ("OBOL_VERIFIER_URL", state.verifier_url.clone()),
        ("OBOL_REGISTRAR_URL", state.registrar_url.clone()),
        ("OBOL_REGISTRAR_ADDRESS", state.registrar.clone()),
        // Where the registrar reads its key (`obol doctor` checks it and its balance).
        (
            "OBOL_REGISTRAR_KEY_FILE",
            state.run_dir.join(REGISTRAR_KEY_FILE).display().to_string(),
        ),
        ("OBOL_DEMO_PORT", state.demo_port.to_string()),
        ("OBOL_LLM_PORT", state.llm_port.to_string()),
        ("OBOL_X402_PEERS", state.x402_peers.display().to_string()),
        ("OBOL_REPO", state.repo.display().to_string()),
        ("OBOL_DEV_RUN_DIR", state.run_dir.display().to_string()),
    ];
    let mut out: String = vars
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect();
    // The project's binaries (obol, the services) first on PATH, so that the printed commands
    // work in a new shell.
    out.push_str(&format!(
        "export PATH={}:\"$PATH\"\n",
        shell_quote(&state.bin_dir.display().to_string())
    ));
    out
}

/// `value` single-quoted for a POSIX shell.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Stops every recorded process (newest first) and removes the state; the control plane is
/// left to `scripts/testenv down`.
pub fn down(paths: &Paths) -> Vec<String> {
    let mut stopped = vec![];
    if let Some(state) = paths.load() {
        for p in state.procs.iter().rev() {
            process::stop(p.pid, Duration::from_secs(5));
            stopped.push(format!("{} (pid {})", p.name, p.pid));
        }
    }
    let _ = std::fs::remove_file(paths.state_file());
    stopped
}

async fn wait_http(
    step: &str,
    url: &str,
    proc: Option<&Proc>,
    timeout: Duration,
) -> Result<(), Error> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| fail(step, e))?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(resp) = http.get(url).send().await
            && resp.status().is_success()
        {
            return Ok(());
        }
        if let Some(p) = proc
            && !process::alive(p.pid)
        {
            return Err(fail(
                step,
                format!(
                    "exited; {}:\n{}",
                    p.log.display(),
                    process::tail(&p.log, 15)
                ),
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            let log =
                proc.map(|p| format!("; {}:\n{}", p.log.display(), process::tail(&p.log, 15)));
            return Err(fail(
                step,
                format!(
                    "{url} not ready after {}s{}",
                    timeout.as_secs(),
                    log.unwrap_or_default()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The control plane's run directory (`OBOL_TESTENV_DIR` for `scripts/testenv`).
pub fn testenv_dir(paths: &Paths) -> PathBuf {
    paths.run.join("testenv")
}

async fn wait_gated(url: &str, timeout: Duration) -> Result<(), Error> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| fail("gateway", e))?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status = http.get(url).send().await.map(|r| r.status().as_u16());
        if let Ok(402) = status {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(fail(
                "gateway",
                format!(
                    "{url} answered {status:?}, not 402, after {}s",
                    timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn run_script_env(
    step: &str,
    script: &Path,
    args: &[&str],
    testenv: &Path,
) -> Result<String, Error> {
    run_script_with(step, script, args, Some(testenv))
}

fn run_script(step: &str, script: &Path, args: &[&str]) -> Result<String, Error> {
    run_script_with(step, script, args, None)
}

fn run_script_with(
    step: &str,
    script: &Path,
    args: &[&str],
    testenv: Option<&Path>,
) -> Result<String, Error> {
    let mut cmd = std::process::Command::new(script);
    if let Some(dir) = testenv {
        cmd.env("OBOL_TESTENV_DIR", dir);
    }
    let out = cmd
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| fail(step, format!("{}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(fail(
            step,
            format!("{} failed ({})", script.display(), out.status),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// Everything `up` needs from the outside, injected so the steps stay testable.
pub struct Up<'a> {
    /// Paths.
    pub paths: &'a Paths,
    /// Progress lines.
    pub progress: &'a dyn Fn(&str),
    /// Verifier replicas (at least 1; more share their reservations in Redis).
    pub verifier_replicas: usize,
    /// Buyer replicas (at least 1; more are partitioned, as the StatefulSet runs them).
    pub buyer_replicas: usize,
}

impl Up<'_> {
    fn say(&self, line: &str) {
        (self.progress)(line);
    }

    fn start(
        &self,
        state: &mut State,
        name: &str,
        program: &Path,
        args: Vec<String>,
        envs: Vec<(String, String)>,
    ) -> Result<Proc, Error> {
        let proc = process::spawn(&self.paths.run, name, program, &args, &envs)
            .map_err(|e| fail(name, format!("{}: {e}", program.display())))?;
        state.procs.push(proc.clone());
        // Record every pid at once: a failure later still lets `down` stop what started.
        self.paths.save(state)?;
        Ok(proc)
    }

    fn bin(&self, name: &str) -> Result<PathBuf, Error> {
        let path = self.paths.bin.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(fail(
                "binaries",
                format!(
                    "{} is missing: run `cargo build --release --workspace` first",
                    path.display()
                ),
            ))
        }
    }

    /// Brings the stack up (or reports the running one) and returns its state.
    pub async fn run(&self) -> Result<State, Error> {
        let paths = self.paths;
        if let Some(state) = paths.load()
            && running(&state)
        {
            let recorded = replicas::replica_count(&state);
            if recorded != self.verifier_replicas.max(1) {
                return Err(fail(
                    "already up",
                    format!(
                        "the running stack has {recorded} verifier replica(s): obol dev down first"
                    ),
                ));
            }
            let buyers = state.buyers.len().max(1);
            if buyers != self.buyer_replicas.max(1) {
                return Err(fail(
                    "already up",
                    format!("the running stack has {buyers} buyer replica(s): obol dev down first"),
                ));
            }
            self.say("already up");
            return Ok(state);
        }
        down(paths);
        std::fs::create_dir_all(&paths.run).map_err(|e| fail("run directory", e))?;
        let result = self.start_all().await;
        if result.is_err() {
            self.say("start failed: stopping what was started (logs stay in the run directory)");
            down(paths);
        }
        result
    }

    async fn start_all(&self) -> Result<State, Error> {
        let paths = self.paths;
        let tools = paths.repo.join("scripts/tools");
        let mut state = State {
            seller: format!("{}", dev_address(2)),
            buyer: format!("{}", dev_address(1)),
            bin_dir: absolute(&paths.bin),
            run_dir: absolute(&paths.run),
            repo: absolute(&paths.repo),
            ..Default::default()
        };
        // Its own control plane, apart from the one the tests share: the stack's controller and
        // verifier watch every namespace and must not act on test objects (nor tests on its).
        self.say("control plane (scripts/testenv up)");
        let testenv_dir = testenv_dir(paths);
        run_script_env(
            "control plane",
            &paths.repo.join("scripts/testenv"),
            &["up"],
            &testenv_dir,
        )?;
        state.kubeconfig = absolute(&testenv_dir.join("kubeconfig"));

        self.say("tools: anvil, Traefik, x402 reference packages");
        let anvil_bin = run_script("anvil", &tools.join("anvil.sh"), &[])?;
        let traefik_bin = run_script("traefik", &tools.join("traefik.sh"), &[])?;
        let peers = run_script("x402 peers", &tools.join("x402-peers.sh"), &[])?;
        state.x402_peers = absolute(Path::new(&peers));
        let bins = Bins {
            verifier: self.bin("x402-verifier")?,
            controller: self.bin("serviceoffer-controller")?,
            registrar: self.bin("erc8004-registrar")?,
            buyer: self.bin("x402-buyer")?,
            obol: self.bin("obol")?,
        };

        self.chain(&mut state, &anvil_bin).await?;
        let client = crate::demo::client(&state)
            .await
            .map_err(|e| fail("control plane", e))?;
        self.say("identities: deploy/'s ServiceAccounts and RBAC, a token and kubeconfig each");
        crate::identity::apply_rbac(&client, &paths.repo)
            .await
            .map_err(|e| fail("RBAC", e))?;
        let ids = [VERIFIER, CONTROLLER, REGISTRAR, GATEWAY_ADAPTER];
        let kubeconfigs = crate::identity::write_kubeconfigs(
            &client,
            &state.kubeconfig,
            &paths.run.join("kube"),
            &ids,
        )
        .await
        .map_err(|e| fail("identities", e))?;
        let kube_env = |id: Identity| {
            let i = ids.iter().position(|x| *x == id).unwrap_or_default();
            vec![(
                "KUBECONFIG".to_owned(),
                kubeconfigs[i].display().to_string(),
            )]
        };

        self.say("facilitator: official x402 reference packages (@x402/core, @x402/evm)");
        let port = process::free_port().map_err(|e| fail("facilitator", e))?;
        let envs = vec![
            ("NODE_PATH".to_owned(), format!("{peers}/node_modules")),
            ("RPC_URL".to_owned(), state.rpc_url.clone()),
            ("FACILITATOR_KEY".to_owned(), DEV_ACCOUNTS[0].1.to_owned()),
            ("FACILITATOR_PORT".to_owned(), port.to_string()),
        ];
        let script = paths
            .repo
            .join("tools/x402-peers/facilitator.cjs")
            .display()
            .to_string();
        let p = self.start(
            &mut state,
            "facilitator",
            Path::new("node"),
            vec![script],
            envs,
        )?;
        state.facilitator_url = format!("http://127.0.0.1:{port}");
        wait_http(
            "facilitator",
            &format!("{}/supported", state.facilitator_url),
            Some(&p),
            Duration::from_secs(30),
        )
        .await?;

        let count = self.verifier_replicas.max(1);
        self.say(&format!(
            "verifier: {count} replica(s) (ServiceAccount x402/x402-verifier)"
        ));
        let mut envs = kube_env(VERIFIER);
        envs.push((
            "OBOL_VERIFIER_FACILITATOR_URL".into(),
            state.facilitator_url.clone(),
        ));
        let verifier_ports = self
            .start_verifiers(&mut state, count, &bins.verifier, envs)
            .await?;

        self.say("demo upstream");
        state.demo_port = self
            .start_upstream(&mut state, "demo-upstream", &bins.obol)
            .await?;
        self.say("LLM upstream: a fake OpenAI-compatible API (the metered offer `llm` sells it)");
        state.llm_port = self
            .start_upstream(&mut state, "llm-upstream", &bins.obol)
            .await?;
        let (demo_port, llm_port) = (state.demo_port, state.llm_port);

        self.say("gateway: Traefik + the dev adapter (HTTPRoutes → Traefik's file provider)");
        let (web, ping) = (
            process::free_port().map_err(|e| fail("traefik", e))?,
            process::free_port().map_err(|e| fail("traefik", e))?,
        );
        // A directory: the adapter's routes in one file, the verifier replicas' balancers (if
        // any) in another.
        let dynamic_dir = paths.run.join("traefik");
        std::fs::create_dir_all(&dynamic_dir).map_err(|e| fail("traefik", e))?;
        let dynamic = dynamic_dir.join("routes.yml");
        std::fs::write(&dynamic, "{}\n").map_err(|e| fail("traefik", e))?;
        let balancer_args = self.balance_verifiers(&mut state, &verifier_ports, &dynamic_dir)?;
        let mut args = vec![
            "--global.checkNewVersion=false".into(),
            "--global.sendAnonymousUsage=false".into(),
            format!("--entryPoints.web.address=127.0.0.1:{web}"),
            format!("--entryPoints.traefik.address=127.0.0.1:{ping}"),
            "--ping=true".into(),
            format!("--providers.file.directory={}", dynamic_dir.display()),
            "--providers.file.watch=true".into(),
        ];
        args.extend(balancer_args);
        let p = self.start(&mut state, "traefik", Path::new(&traefik_bin), args, vec![])?;
        wait_http(
            "traefik",
            &format!("http://127.0.0.1:{ping}/ping"),
            Some(&p),
            Duration::from_secs(30),
        )
        .await?;
        state.gateway_url = format!("http://127.0.0.1:{web}");
        if verifier_ports.len() > 1 {
            wait_http(
                "verifier balancer",
                &format!("{}/readyz", state.verifier_url),
                None,
                Duration::from_secs(30),
            )
            .await?;
        }
        // The Gateway the adapter plays, as a cluster's Traefik installation has it.
        let played = crate::traefik::render::GatewayRef {
            name: crate::traefik::render::DEV_GATEWAY_NAME.into(),
            namespace: crate::traefik::render::DEV_GATEWAY_NAMESPACE.into(),
            entry_point: crate::traefik::render::DEV_ENTRY_POINT.into(),
        };
        let mut kinds = obol_deploy::apply::Kinds::default();
        for object in crate::traefik::adapter::gateway_objects(&played, web) {
            obol_deploy::apply::apply(
                &client,
                &mut kinds,
                &object,
                crate::identity::FIELD_MANAGER,
                false,
            )
            .await
            .map_err(|e| fail("Gateway", e))?;
        }
        let args = vec![
            "dev".into(),
            "gateway-adapter".into(),
            "--file".into(),
            dynamic.display().to_string(),
        ];
        self.start(
            &mut state,
            "gateway-adapter",
            &bins.obol,
            args,
            kube_env(GATEWAY_ADAPTER),
        )?;

        self.say("controller and registrar (ServiceAccounts in obol-system, leader-elected)");
        let mut envs = kube_env(CONTROLLER);
        envs.extend(
            [
                ("OBOL_CONTROLLER_VERIFIER_URL", state.verifier_url.clone()),
                // Registration documents and discovery name the gateway as it answers here.
                ("OBOL_CONTROLLER_PUBLIC_BASE_URL", state.gateway_url.clone()),
                (
                    "OBOL_CONTROLLER_LEASE_NAMESPACE",
                    CONTROLLER.namespace.into(),
                ),
                ("OBOL_CONTROLLER_IDENTITY", "dev-controller".into()),
                ("OBOL_CONTROLLER_PROBE_INTERVAL", "5s".into()),
                // Gateway mode proxy: HTTPRoutes go to the verifier's Service (applied below).
                (
                    "OBOL_CONTROLLER_VERIFIER_SERVICE",
                    crate::demo::VERIFIER_SERVICE.name.into(),
                ),
                (
                    "OBOL_CONTROLLER_VERIFIER_NAMESPACE",
                    crate::demo::VERIFIER_SERVICE.namespace.into(),
                ),
                (
                    "OBOL_CONTROLLER_VERIFIER_GATEWAY_PORT",
                    crate::demo::VERIFIER_SERVICE.gateway_port.to_string(),
                ),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let admin = process::free_port().map_err(|e| fail("controller", e))?;
        envs.push((
            "OBOL_CONTROLLER_LISTEN".into(),
            format!("127.0.0.1:{admin}"),
        ));
        let p = self.start(&mut state, "controller", &bins.controller, vec![], envs)?;
        state.controller_url = format!("http://127.0.0.1:{admin}");
        wait_http(
            "controller",
            &format!("{}/readyz", state.controller_url),
            Some(&p),
            Duration::from_secs(30),
        )
        .await?;
        let port = process::free_port().map_err(|e| fail("registrar", e))?;
        let mut envs = kube_env(REGISTRAR);
        envs.extend(
            [
                ("OBOL_REGISTRAR_RPC_URL", state.rpc_url.clone()),
                (
                    "OBOL_REGISTRAR_KEY_FILE",
                    paths.run.join(REGISTRAR_KEY_FILE).display().to_string(),
                ),
                ("OBOL_REGISTRAR_LISTEN", format!("127.0.0.1:{port}")),
                ("OBOL_REGISTRAR_LEASE_NAMESPACE", REGISTRAR.namespace.into()),
                ("OBOL_REGISTRAR_IDENTITY", "dev-registrar".into()),
                // A local chain mines at once: look for receipts often.
                ("OBOL_REGISTRAR_POLL_INTERVAL_MS", "100".into()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let p = self.start(&mut state, "registrar", &bins.registrar, vec![], envs)?;
        state.registrar_url = format!("http://127.0.0.1:{port}");
        wait_http(
            "registrar",
            &format!("{}/readyz", state.registrar_url),
            Some(&p),
            Duration::from_secs(30),
        )
        .await?;
        crate::discovery::registrar_service(&client, port)
            .await
            .map_err(|e| fail("registrar", e))?;

        self.say("verifier Service: ExternalName to its listeners on loopback");
        crate::demo::create_verifier_service(
            &state,
            port_of(&state.verifier_url),
            port_of(&state.verifier_gateway_url),
        )
        .await
        .map_err(|e| fail("verifier Service", e))?;

        self.say(
            "demo offer: ServiceOffer demo/demo at /services/demo (gateway mode proxy), registered on chain",
        );
        crate::demo::create_offer(&state, demo_port)
            .await
            .map_err(|e| fail("demo offer", e))?;
        self.say(
            "metered offer: ServiceOffer demo/llm at /services/llm (0.15 / 0.6 USDC per million prompt / completion tokens, upto and exact)",
        );
        crate::demo::create_llm_offer(&state, llm_port)
            .await
            .map_err(|e| fail("llm offer", e))?;
        crate::demo::wait_ready(&state, crate::demo::DEMO, Duration::from_secs(90))
            .await
            .map_err(|e| fail("demo offer", e))?;
        crate::demo::wait_ready(&state, crate::demo::LLM, Duration::from_secs(90))
            .await
            .map_err(|e| fail("llm offer", e))?;

        // Ready means the route is accepted; Traefik loads its file on its own schedule. The
        // stack is up when the gateway actually gates the offers' paths.
        for offer in [crate::demo::DEMO, crate::demo::LLM] {
            wait_gated(
                &format!("{}/services/{offer}/", state.gateway_url),
                Duration::from_secs(30),
            )
            .await?;
        }
        let agent = crate::discovery::wait_registered(
            &client,
            crate::demo::DEMO,
            crate::demo::DEMO,
            Duration::from_secs(60),
        )
        .await
        .map_err(|e| fail("demo registration", e))?;
        crate::discovery::wait_well_known(&state.gateway_url, &agent.0, Duration::from_secs(30))
            .await
            .map_err(|e| fail("discovery", e))?;
        state.demo_agent = Some(agent);
        // The storefront's catalogue, through the gateway as a buyer's agent finds it.
        crate::discovery::wait_catalogue(
            &state.gateway_url,
            &crate::discovery::catalogue_key(crate::demo::DEMO, crate::demo::DEMO),
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| fail("discovery", e))?;

        let buyers = self.buyer_replicas.max(1);
        if buyers > 1 {
            self.say(&format!(
                "buyer: {buyers} replicas of StatefulSet demo/x402-buyer (ServiceAccount llm/x402-buyer, {}'s Role in namespace demo), each spending its partition of every purchase",
                crate::identity::BUYER_STATEFULSET_DIR
            ));
        } else {
            self.say("buyer (ServiceAccount llm/x402-buyer, deploy/'s Role in namespace demo): watches PurchaseRequests, reads the chain");
        }
        crate::identity::apply_buyer_rbac(&client, &paths.repo, crate::demo::DEMO, buyers)
            .await
            .map_err(|e| fail("buyer RBAC", e))?;
        let buyer_kubeconfig = crate::identity::write_kubeconfigs(
            &client,
            &state.kubeconfig,
            &paths.run.join("kube"),
            &[BUYER],
        )
        .await
        .map_err(|e| fail("buyer identity", e))?;
        let buyer_env: Vec<(String, String)> = buyer_kubeconfig
            .iter()
            .map(|p| ("KUBECONFIG".to_owned(), p.display().to_string()))
            .collect();
        for ordinal in 0..buyers {
            let (name, replica) = buyer_replica(ordinal, buyers);
            let dir = paths.run.join(&name);
            std::fs::create_dir_all(dir.join("state")).map_err(|e| fail(&name, e))?;
            let port = process::free_port().map_err(|e| fail(&name, e))?;
            let mut args = vec![
                "--source".into(),
                "kube".into(),
                "--namespace".into(),
                crate::demo::DEMO.into(),
                "--rpc-url".into(),
                state.rpc_url.clone(),
                "--state".into(),
                dir.join("state/consumed.json").display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
            ];
            if let Some(replica) = replica {
                args.extend(["--replica".into(), replica]);
            }
            let p = self.start(&mut state, &name, &bins.buyer, args, buyer_env.clone())?;
            let url = format!("http://127.0.0.1:{port}");
            wait_http(
                &name,
                &format!("{url}/healthz"),
                Some(&p),
                Duration::from_secs(30),
            )
            .await?;
            if buyers > 1 {
                state.buyers.push(url.clone());
            }
            if ordinal == 0 {
                state.buyer_url = url;
            }
        }

        self.say("purchase: obol buy http demo (pre-signed authorizations, dev account #1)");
        let key_file = paths.run.join("buyer.key");
        write_secret(&key_file, DEV_ACCOUNTS[1].1.as_bytes()).map_err(|e| fail("purchase", e))?;
        let max_price = obol_api::price::format_atomic(u128::from(DEMO_PRICE_ATOMIC), 6);
        let buy = std::process::Command::new(&bins.obol)
            .args([
                "buy",
                "http",
                crate::demo::DEMO,
                &format!("{}/services/{}", state.gateway_url, crate::demo::DEMO),
                "--count",
                &DEMO_AUTHS.to_string(),
                "--max-price",
                &max_price,
                "--key-file",
                &key_file.display().to_string(),
                "-n",
                crate::demo::DEMO,
                "--yes",
            ])
            .env("KUBECONFIG", &state.kubeconfig)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| fail("purchase", e))?;
        if !buy.status.success() {
            return Err(fail(
                "purchase",
                format!(
                    "obol buy http failed ({}):\n{}{}",
                    buy.status,
                    String::from_utf8_lossy(&buy.stdout),
                    String::from_utf8_lossy(&buy.stderr)
                ),
            ));
        }
        if buyers > 1 {
            crate::demo::wait_buyer_replicas(&state, buyers, Duration::from_secs(60))
                .await
                .map_err(|e| fail("buyer replicas", e))?;
        }
        self.paths.save(&state)?;
        Ok(state)
    }

    /// Starts `obol dev <name> --listen 127.0.0.1:PORT` (an upstream the stack's offers sell)
    /// on a free port, waits for its `/health`, and returns the port.
    async fn start_upstream(
        &self,
        state: &mut State,
        name: &str,
        obol: &Path,
    ) -> Result<u16, Error> {
        let port = process::free_port().map_err(|e| fail(name, e))?;
        let args = vec![
            "dev".into(),
            name.into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        let p = self.start(state, name, obol, args, vec![])?;
        wait_http(
            name,
            &format!("http://127.0.0.1:{port}/health"),
            Some(&p),
            Duration::from_secs(10),
        )
        .await?;
        Ok(port)
    }

    /// anvil with everything the stack uses on chain: the test USDC at Base Sepolia's USDC
    /// address and a funded buyer, the IdentityRegistry at the official registry address,
    /// Multicall3, and a registrar key of the stack's own (0600) with ether for gas.
    async fn chain(&self, state: &mut State, anvil_bin: &str) -> Result<(), Error> {
        self.say(
            "chain: anvil (chain id 84532), test USDC, IdentityRegistry, Multicall3, Permit2 and the upto proxy",
        );
        let port = process::free_port().map_err(|e| fail("anvil", e))?;
        let args = [
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--chain-id",
            "84532",
            "--silent",
        ];
        self.start(
            state,
            "anvil",
            Path::new(anvil_bin),
            args.map(String::from).to_vec(),
            vec![],
        )?;
        state.rpc_url = format!("http://127.0.0.1:{port}");
        let rpc = Rpc::new(&state.rpc_url);
        rpc.wait_ready(Duration::from_secs(20))
            .await
            .map_err(|e| fail("anvil", e))?;
        let network =
            obol_x402::chain::Network::resolve("base-sepolia").map_err(|e| fail("chain", e))?;
        let usdc: Address = network
            .usdc
            .as_ref()
            .map(|u| u.address)
            .ok_or_else(|| fail("chain", "no USDC"))?;
        let contracts = self.paths.repo.join("contracts");
        rpc.install_test_usdc_at(&contracts, usdc, "USDC", "2")
            .await
            .map_err(|e| fail("test USDC", e))?;
        rpc.mint(usdc, dev_address(1), U256::from(BUYER_FUNDS_ATOMIC))
            .await
            .map_err(|e| fail("funding the buyer", e))?;
        state.usdc = format!("{usdc}");
        // `upto` (the metered offer): the test Permit2 and x402UptoPermit2Proxy at their
        // canonical addresses, and the buyer's one-time approval of the token to Permit2, which
        // every Permit2 payer gives once.
        rpc.install_upto_permit2(&contracts)
            .await
            .map_err(|e| fail("Permit2 and the upto proxy", e))?;
        self.say("chain: the buyer (dev account #1) approves Permit2 for its test USDC, once");
        rpc.approve(
            usdc,
            dev_address(1),
            obol_x402::permit2::PERMIT2_ADDRESS,
            U256::MAX,
        )
        .await
        .map_err(|e| fail("the buyer's Permit2 approval", e))?;
        let registry = crate::onchain::install_contracts(&rpc, &contracts)
            .await
            .map_err(|e| fail("registry and Multicall3", e))?;
        state.registry = format!("{registry}");
        let (key, hex) = crate::onchain::new_key().map_err(|e| fail("registrar key", e))?;
        let key_file = self.paths.run.join(REGISTRAR_KEY_FILE);
        write_secret(&key_file, hex.as_bytes()).map_err(|e| fail("registrar key", e))?;
        crate::onchain::fund(&rpc, key.address())
            .await
            .map_err(|e| fail("funding the registrar", e))?;
        state.registrar = format!("{}", key.address());
        Ok(())
    }
}

/// The process name and `--replica` of buyer `ordinal` of `count`. One buyer keeps the name
/// `buyer` and runs unpartitioned, as before; several are the StatefulSet's pods
/// `x402-buyer-<ordinal>` (the buyer's default `--statefulset`). Pure.
pub fn buyer_replica(ordinal: usize, count: usize) -> (String, Option<String>) {
    if count <= 1 {
        ("buyer".to_owned(), None)
    } else {
        (
            format!("buyer-{ordinal}"),
            Some(format!("{}-{ordinal}", BUYER.service_account)),
        )
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_default()
}

/// The service binaries `up` runs.
struct Bins {
    verifier: PathBuf,
    controller: PathBuf,
    registrar: PathBuf,
    buyer: PathBuf,
    obol: PathBuf,
}

/// The registrar's key file in the run directory (0600).
pub const REGISTRAR_KEY_FILE: &str = "registrar.key";

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The summary printed at the end of `up`: every "Try" line works pasted into a new shell.
pub fn summary(state: &State) -> String {
    let obol = state.bin_dir.join("obol");
    let env = if state.run_dir == state.repo.join(DEFAULT_RUN_DIR) {
        format!("{} dev env", shell_quote(&obol.display().to_string()))
    } else {
        format!(
            "OBOL_DEV_RUN_DIR={} {} dev env",
            shell_quote(&state.run_dir.display().to_string()),
            shell_quote(&obol.display().to_string())
        )
    };
    let agent = state
        .demo_agent
        .as_ref()
        .map(|(id, tx)| format!(" It is ERC-8004 agent {id} (transaction {tx})."))
        .unwrap_or_default();
    let tries: String = try_lines(&env)
        .iter()
        .map(|(c, why)| format!("  # {why}\n  {c}\n"))
        .collect();
    let agent = if state.verifiers.len() > 1 {
        format!(
            "{agent} {} verifier replicas serve it, sharing their reservations in Redis (obol dev status lists them).",
            state.verifiers.len()
        )
    } else {
        agent
    };
    format!(
        "\nThe local stack is up. A Ready offer `demo` sells {gw}/services/demo/ for 0.001 test USDC.{agent}\n\
         A Ready offer `llm` sells a fake OpenAI-compatible API at {gw}/services/llm/v1/chat/completions per token \
         (0.15 / 0.6 test USDC per million prompt / completion tokens): x402 `upto` settles exactly what an answer used.\n\n\
         Try (in any shell):\n{tries}\n\
         Stop everything: obol dev down\n",
        gw = state.gateway_url
    )
}

/// The "Try" commands and what each shows; `env` is the command printing the environment.
pub fn try_lines(env: &str) -> Vec<(String, &'static str)> {
    vec![
        (format!("eval \"$({env})\""), "the stack's variables; obol on PATH"),
        ("curl -i $OBOL_GATEWAY_URL/services/demo/hello".into(), "402 Payment Required (v1 body + PAYMENT-REQUIRED header)"),
        ("curl -i $OBOL_BUYER_URL/upstream/demo/hello".into(), "200: the buyer pays with a pre-signed authorization"),
        (format!("curl -s $OBOL_GATEWAY_URL{}", obol_api::routes::AGENT_REGISTRATION), "the ERC-8004 discovery document, through the gateway"),
        (format!("curl -s $OBOL_GATEWAY_URL{}", obol_api::routes::WELL_KNOWN_X402), "the x402 catalogue: every Ready offer's resources and how to pay for them"),
        (format!("curl -s $OBOL_GATEWAY_URL{}", obol_api::routes::OPENAPI), "the same as OpenAPI 3.1 (x-x402 per operation)"),
        (pay_llm_line(), "a chat completion paid per token by the official @x402/fetch upto client: the receipt's amount is what the tokens cost"),
        ("obol sell status demo -n demo".into(), "conditions, agent id and registration transaction"),
        ("obol buy status demo -n demo".into(), "what the demo purchase has left"),
        ("obol sell http mine -n demo --upstream demo --port $OBOL_DEMO_PORT --wallet $OBOL_SELLER_ADDRESS --price 0.002 --register --wait".into(), "your own offer, registered on chain"),
        ("obol dev balance".into(), "the seller's and buyer's test USDC on chain"),
        ("kubectl get so,pr,rr -A".into(), "the offers and their children"),
    ]
}

/// The prompt of the "Try" line paying `llm` (5 words: 5 prompt tokens for the fake).
pub const LLM_TRY_PROMPT: &str = "write a haiku about payments";
/// Completion tokens the "Try" line asks for.
pub const LLM_TRY_MAX_TOKENS: u64 = 40;

/// The "Try" line paying the metered offer: the official client (`tools/x402-peers/pay.cjs`,
/// `@x402/fetch` with `@x402/evm`'s `upto` and `exact` schemes) posts a chat completion; it
/// prints the answer and the decoded receipt, whose `amount` is what the tokens cost.
fn pay_llm_line() -> String {
    let body = serde_json::json!({
        "messages": [{"role": "user", "content": LLM_TRY_PROMPT}],
        "max_tokens": LLM_TRY_MAX_TOKENS,
    });
    format!(
        "NODE_PATH=\"$OBOL_X402_PEERS/node_modules\" BUYER_KEY=$OBOL_BUYER_KEY SCHEMES=upto,exact node \"$OBOL_REPO/tools/x402-peers/pay.cjs\" $OBOL_GATEWAY_URL/services/{}/v1/chat/completions {}",
        crate::demo::LLM,
        shell_quote(&body.to_string())
    )
}

#[cfg(test)]
mod buyer_tests {
    use super::buyer_replica;

    #[test]
    fn one_buyer_keeps_its_name_several_are_the_statefulsets_pods() {
        for (ordinal, count, name, replica) in [
            (0, 0, "buyer", None),
            (0, 1, "buyer", None),
            (0, 3, "buyer-0", Some("x402-buyer-0")),
            (2, 3, "buyer-2", Some("x402-buyer-2")),
        ] {
            assert_eq!(
                buyer_replica(ordinal, count),
                (name.to_owned(), replica.map(str::to_owned)),
                "{ordinal} of {count}"
            );
        }
    }
}
