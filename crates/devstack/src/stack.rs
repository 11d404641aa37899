//! `obol dev up | down | env | status`: the whole product on one machine, with real parts.
//!
//! Started, in order: the local control plane (`scripts/testenv`), anvil (chain id 84532) with
//! the test USDC at Base Sepolia's USDC address and a funded buyer, the official x402 reference
//! facilitator, the verifier, a demo upstream, Traefik with the dev adapter, the controller, the
//! registrar, the demo offer, and the buyer with pre-signed authorizations for it. Every process
//! binds 127.0.0.1, logs to `<run>/<name>.log`, and is recorded in `<run>/stack.json` so that
//! `down` stops exactly those pids.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use serde::{Deserialize, Serialize};

use crate::chain::{DEV_ACCOUNTS, Rpc, dev_address};
use crate::process::{self, Proc};

/// The demo offer's price per request, in atomic USDC units (0.001 USDC).
pub const DEMO_PRICE_ATOMIC: u64 = 1000;
/// Pre-signed authorizations the buyer gets for the demo offer.
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
    /// Buyer URL.
    pub buyer_url: String,
    /// Registrar URL.
    pub registrar_url: String,
    /// The seller wallet of the demo offer.
    pub seller: String,
    /// The buyer account.
    pub buyer: String,
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

impl Paths {
    fn state_file(&self) -> PathBuf {
        self.run.join("stack.json")
    }

    /// The recorded state, if any.
    pub fn load(&self) -> Option<State> {
        let text = std::fs::read_to_string(self.state_file()).ok()?;
        serde_json::from_str(&text).ok()
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
    ];
    vars.iter()
        .map(|(k, v)| format!("export {k}='{v}'\n"))
        .collect()
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
        state.kubeconfig = testenv_dir.join("kubeconfig");
        let kube_env = vec![(
            "KUBECONFIG".to_owned(),
            state.kubeconfig.display().to_string(),
        )];

        self.say("tools: anvil, Traefik, x402 reference packages");
        let anvil_bin = run_script("anvil", &tools.join("anvil.sh"), &[])?;
        let traefik_bin = run_script("traefik", &tools.join("traefik.sh"), &[])?;
        let peers = run_script("x402 peers", &tools.join("x402-peers.sh"), &[])?;
        let verifier = self.bin("x402-verifier")?;
        let controller = self.bin("serviceoffer-controller")?;
        let registrar = self.bin("erc8004-registrar")?;
        let buyer = self.bin("x402-buyer")?;
        let obol = self.bin("obol")?;

        self.say("chain: anvil (chain id 84532), test USDC, funded buyer");
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
            &mut state,
            "anvil",
            Path::new(&anvil_bin),
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
        let contracts = paths.repo.join("contracts");
        rpc.install_test_usdc_at(&contracts, usdc, "USDC", "2")
            .await
            .map_err(|e| fail("test USDC", e))?;
        rpc.mint(usdc, dev_address(1), U256::from(BUYER_FUNDS_ATOMIC))
            .await
            .map_err(|e| fail("funding the buyer", e))?;
        state.usdc = format!("{usdc}");

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

        self.say("verifier");
        let port = process::free_port().map_err(|e| fail("verifier", e))?;
        let mut envs = kube_env.clone();
        envs.push((
            "OBOL_VERIFIER_FACILITATOR_URL".into(),
            state.facilitator_url.clone(),
        ));
        let gateway_port = process::free_port().map_err(|e| fail("verifier", e))?;
        let args = vec![
            "--route-source".into(),
            "kube".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--gateway-listen".into(),
            format!("127.0.0.1:{gateway_port}"),
        ];
        let p = self.start(&mut state, "verifier", &verifier, args, envs)?;
        state.verifier_url = format!("http://127.0.0.1:{port}");
        wait_http(
            "verifier",
            &format!("{}/readyz", state.verifier_url),
            Some(&p),
            Duration::from_secs(30),
        )
        .await?;

        self.say("demo upstream");
        let demo_port = process::free_port().map_err(|e| fail("demo upstream", e))?;
        let args = vec![
            "dev".into(),
            "demo-upstream".into(),
            "--listen".into(),
            format!("127.0.0.1:{demo_port}"),
        ];
        let p = self.start(&mut state, "demo-upstream", &obol, args, vec![])?;
        wait_http(
            "demo upstream",
            &format!("http://127.0.0.1:{demo_port}/health"),
            Some(&p),
            Duration::from_secs(10),
        )
        .await?;

        self.say("gateway: Traefik + the dev adapter (HTTPRoutes → Traefik's file provider)");
        let (web, ping) = (
            process::free_port().map_err(|e| fail("traefik", e))?,
            process::free_port().map_err(|e| fail("traefik", e))?,
        );
        let dynamic = paths.run.join("traefik-dynamic.yml");
        std::fs::write(&dynamic, "{}\n").map_err(|e| fail("traefik", e))?;
        let args = vec![
            "--global.checkNewVersion=false".into(),
            "--global.sendAnonymousUsage=false".into(),
            format!("--entryPoints.web.address=127.0.0.1:{web}"),
            format!("--entryPoints.traefik.address=127.0.0.1:{ping}"),
            "--ping=true".into(),
            format!("--providers.file.filename={}", dynamic.display()),
            "--providers.file.watch=true".into(),
        ];
        let p = self.start(&mut state, "traefik", Path::new(&traefik_bin), args, vec![])?;
        wait_http(
            "traefik",
            &format!("http://127.0.0.1:{ping}/ping"),
            Some(&p),
            Duration::from_secs(30),
        )
        .await?;
        state.gateway_url = format!("http://127.0.0.1:{web}");
        let args = vec![
            "dev".into(),
            "gateway-adapter".into(),
            "--file".into(),
            dynamic.display().to_string(),
        ];
        self.start(&mut state, "gateway-adapter", &obol, args, kube_env.clone())?;

        self.say("controller and registrar");
        let mut envs = kube_env.clone();
        envs.push((
            "OBOL_CONTROLLER_VERIFIER_URL".into(),
            state.verifier_url.clone(),
        ));
        envs.push(("OBOL_CONTROLLER_LEADER_ELECT".into(), "false".into()));
        let admin = process::free_port().map_err(|e| fail("controller", e))?;
        envs.push((
            "OBOL_CONTROLLER_ADMIN_ADDR".into(),
            format!("127.0.0.1:{admin}"),
        ));
        envs.push(("OBOL_CONTROLLER_PROBE_INTERVAL".into(), "5s".into()));
        self.start(&mut state, "controller", &controller, vec![], envs)?;
        let key_file = paths.run.join("registrar.key");
        std::fs::write(&key_file, DEV_ACCOUNTS[3].1).map_err(|e| fail("registrar", e))?;
        let port = process::free_port().map_err(|e| fail("registrar", e))?;
        let mut envs = kube_env.clone();
        envs.push(("OBOL_REGISTRAR_RPC_URL".into(), state.rpc_url.clone()));
        envs.push((
            "OBOL_REGISTRAR_KEY_FILE".into(),
            key_file.display().to_string(),
        ));
        envs.push(("OBOL_REGISTRAR_LISTEN".into(), format!("127.0.0.1:{port}")));
        envs.push(("OBOL_REGISTRAR_LEADER_ELECT".into(), "false".into()));
        self.start(&mut state, "registrar", &registrar, vec![], envs)?;
        state.registrar_url = format!("http://127.0.0.1:{port}");

        self.say("demo offer: ServiceOffer demo/demo at /services/demo");
        crate::demo::create_offer(&state, demo_port)
            .await
            .map_err(|e| fail("demo offer", e))?;
        crate::demo::wait_ready(&state, Duration::from_secs(90))
            .await
            .map_err(|e| fail("demo offer", e))?;

        // Ready means the route is accepted; Traefik loads its file on its own schedule. The
        // stack is up when the gateway actually gates the demo path.
        wait_gated(
            &format!("{}/services/demo/", state.gateway_url),
            Duration::from_secs(30),
        )
        .await?;

        self.say("buyer: pre-signed authorizations for the demo offer");
        let dir = paths.run.join("buyer");
        crate::demo::write_buyer_config(&dir, &state, DEMO_AUTHS).map_err(|e| fail("buyer", e))?;
        let port = process::free_port().map_err(|e| fail("buyer", e))?;
        let args = vec![
            "--config-dir".into(),
            dir.join("config").display().to_string(),
            "--auths-dir".into(),
            dir.join("auths").display().to_string(),
            "--state".into(),
            dir.join("state/consumed.json").display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        let p = self.start(&mut state, "buyer", &buyer, args, vec![])?;
        state.buyer_url = format!("http://127.0.0.1:{port}");
        wait_http(
            "buyer",
            &format!("{}/healthz", state.buyer_url),
            Some(&p),
            Duration::from_secs(20),
        )
        .await?;
        self.paths.save(&state)?;
        Ok(state)
    }
}

/// The summary printed at the end of `up`.
pub fn summary(state: &State) -> String {
    format!(
        "\nThe local stack is up. A Ready offer `demo` sells {gw}/services/demo/ for 0.001 test USDC.\n\n\
         Try:\n  eval \"$(obol dev env)\"\n\
         \x20 curl -i $OBOL_GATEWAY_URL/services/demo/hello          # 402 Payment Required (v1 body + PAYMENT-REQUIRED header)\n\
         \x20 curl -i $OBOL_BUYER_URL/upstream/demo/hello            # 200: the buyer pays with a pre-signed authorization\n\
         \x20 obol dev balance                                        # the seller's and buyer's test USDC on chain\n\
         \x20 kubectl get so,pr,rr -A                                 # the offer and its children\n\n\
         Stop everything: obol dev down\n",
        gw = state.gateway_url
    )
}
