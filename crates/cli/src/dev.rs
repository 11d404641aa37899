//! `obol dev …`: the whole product on one machine (see `obol_devstack::stack`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use obol_devstack::stack::{self, Paths, Up};
use obol_devstack::traefik::adapter::{AdapterConfig, run as run_adapter};
use obol_devstack::traefik::render::GatewayRef;

use crate::failure::{Failure, REFUSED};

/// `obol dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(subcommand)]
    command: DevCommand,
    /// Repository root (default: the current directory).
    #[arg(long, global = true, env = "OBOL_REPO")]
    repo: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Start the local stack with a Ready demo offer (fast when it already runs).
    Up {
        /// Verifier replicas behind the verifier Service; more than one share their
        /// reservations in a Redis on loopback (Debian's redis-server) and the gateway
        /// balances over them.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(stack::replicas::MAX_REPLICAS)))]
        verifier_replicas: u16,
        /// Buyer replicas: more than one run as the buyer StatefulSet's pods would, each
        /// spending its partition of every purchase (`OBOL_BUYER_URL` is replica 0; `obol dev
        /// status` lists them all).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(stack::replicas::MAX_REPLICAS)))]
        buyer_replicas: u16,
    },
    /// Stop everything `up` started, its control plane too.
    Down,
    /// Print `export` lines for the running stack.
    Env,
    /// Say what runs.
    Status,
    /// Print the seller's and the buyer's test USDC.
    Balance,
    /// The demo upstream (started by `up`).
    #[command(hide = true)]
    DemoUpstream {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:18082")]
        listen: String,
    },
    /// The fake OpenAI-compatible LLM upstream of the `llm` demo offer (started by `up`).
    #[command(hide = true)]
    LlmUpstream {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:18083")]
        listen: String,
        /// Completion tokens when a request sets no `max_tokens`.
        #[arg(long, default_value_t = 16)]
        completion_tokens: u64,
        /// Pause before each streamed event, in milliseconds.
        #[arg(long, default_value_t = 0)]
        chunk_delay_ms: u64,
    },
    /// The dev gateway adapter (started by `up`).
    #[command(hide = true)]
    GatewayAdapter {
        /// Traefik's dynamic configuration file.
        #[arg(long)]
        file: PathBuf,
        /// Gateway name.
        #[arg(long, default_value = obol_devstack::traefik::render::DEV_GATEWAY_NAME)]
        gateway: String,
        /// Gateway namespace.
        #[arg(long, default_value = obol_devstack::traefik::render::DEV_GATEWAY_NAMESPACE)]
        gateway_namespace: String,
    },
}

fn is_repo(dir: &std::path::Path) -> bool {
    dir.join("scripts/testenv").is_file() && dir.join("contracts/out").is_dir()
}

impl DevArgs {
    /// Where the repository, the run directory and the binaries are. `env` and `status` only
    /// read the run directory: with `OBOL_DEV_RUN_DIR` set (as every printed command sets it)
    /// they work from a binary outside the repository too (a `CARGO_TARGET_DIR` elsewhere).
    fn paths(&self) -> anyhow::Result<Paths> {
        self.paths_for(true)
    }

    fn paths_for(&self, needs_repo: bool) -> anyhow::Result<Paths> {
        let exe = std::env::current_exe().context("locating the obol binary")?;
        let bin = exe.parent().map(PathBuf::from).unwrap_or_default();
        let cwd = std::env::current_dir()?;
        // OBOL_DEV_RUN_DIR lets a test run a stack of its own beside a developer's.
        let run_dir = std::env::var_os("OBOL_DEV_RUN_DIR").map(PathBuf::from);
        let repo = match &self.repo {
            Some(r) => r.clone(),
            // From the repository root, or from anywhere with the repository's own binary
            // (target/<profile>/obol), or the repository the stack of OBOL_DEV_RUN_DIR records
            // (a binary built into a target directory elsewhere): the printed commands work in
            // any directory.
            None => [cwd.as_path(), bin.as_path()]
                .into_iter()
                .flat_map(|start| start.ancestors())
                .find(|dir| is_repo(dir))
                .map(PathBuf::from)
                .or_else(|| Some(stack::recorded(run_dir.as_ref()?)?.repo).filter(|r| is_repo(r)))
                .unwrap_or(cwd.clone()),
        };
        if let (false, Some(run), false) = (needs_repo, &run_dir, is_repo(&repo)) {
            return Ok(Paths {
                run: run.clone(),
                repo,
                bin,
            });
        }
        if !is_repo(&repo) {
            return Err(Failure::new(
                REFUSED,
                format!(
                    "{} is not the repository root: run obol dev from there, or pass --repo",
                    repo.display()
                ),
            )
            .into());
        }
        let run = run_dir.unwrap_or_else(|| repo.join(stack::DEFAULT_RUN_DIR));
        Ok(Paths { run, repo, bin })
    }

    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match &self.command {
            DevCommand::Up {
                verifier_replicas,
                buyer_replicas,
            } => {
                let paths = self.paths()?;
                let say = |line: &str| eprintln!("[obol dev] {line}");
                let state = Up {
                    paths: &paths,
                    progress: &say,
                    verifier_replicas: usize::from(*verifier_replicas),
                    buyer_replicas: usize::from(*buyer_replicas),
                }
                .run()
                .await?;
                print!("{}", stack::summary(&state));
                Ok(())
            }
            DevCommand::Down => {
                let paths = self.paths()?;
                for p in stack::down(&paths) {
                    eprintln!("[obol dev] stopped {p}");
                }
                let status = std::process::Command::new(paths.repo.join("scripts/testenv"))
                    .arg("down")
                    .env("OBOL_TESTENV_DIR", stack::testenv_dir(&paths))
                    .status()?;
                anyhow::ensure!(status.success(), "scripts/testenv down failed");
                Ok(())
            }
            DevCommand::Env => {
                let state = self.running_state()?;
                print!("{}", stack::env_lines(&state));
                Ok(())
            }
            DevCommand::Status => {
                let paths = self.paths_for(false)?;
                let Some(state) = paths.load() else {
                    println!("not running (obol dev up)");
                    return Ok(());
                };
                for p in &state.procs {
                    let alive = if obol_devstack::process::alive(p.pid) {
                        "running"
                    } else {
                        "STOPPED"
                    };
                    println!(
                        "{:<16} {alive:<8} pid {:<7} log {}",
                        p.name,
                        p.pid,
                        p.log.display()
                    );
                }
                for line in stack::replicas::status_lines(&state) {
                    println!("{line}");
                }
                for (ordinal, url) in state.buyers.iter().enumerate() {
                    let (name, _) = stack::buyer_replica(ordinal, state.buyers.len());
                    println!("{name:<16} {url}");
                }
                Ok(())
            }
            DevCommand::Balance => {
                let state = self.running_state()?;
                let (seller, buyer) = obol_devstack::demo::balances(&state)
                    .await
                    .map_err(anyhow::Error::msg)?;
                println!(
                    "seller {} {} USDC",
                    state.seller,
                    obol_api::price::format_atomic(u128::try_from(seller).unwrap_or(u128::MAX), 6)
                );
                println!(
                    "buyer  {} {} USDC",
                    state.buyer,
                    obol_api::price::format_atomic(u128::try_from(buyer).unwrap_or(u128::MAX), 6)
                );
                Ok(())
            }
            DevCommand::DemoUpstream { listen } => {
                obol_devstack::demo::serve_demo_upstream(listen).await?;
                Ok(())
            }
            DevCommand::LlmUpstream {
                listen,
                completion_tokens,
                chunk_delay_ms,
            } => {
                let config = obol_devstack::llm::LlmConfig {
                    default_completion_tokens: *completion_tokens,
                    chunk_delay: std::time::Duration::from_millis(*chunk_delay_ms),
                };
                obol_devstack::llm::serve(listen, config).await?;
                Ok(())
            }
            DevCommand::GatewayAdapter {
                file,
                gateway,
                gateway_namespace,
            } => {
                let client = kube::Client::try_default().await?;
                let gateway = GatewayRef {
                    name: gateway.clone(),
                    namespace: gateway_namespace.clone(),
                    entry_point: obol_devstack::traefik::render::DEV_ENTRY_POINT.into(),
                };
                run_adapter(
                    client,
                    AdapterConfig {
                        gateway,
                        file: file.clone(),
                    },
                )
                .await?;
                Ok(())
            }
        }
    }

    fn running_state(&self) -> anyhow::Result<stack::State> {
        let paths = self.paths_for(false)?;
        match paths.load() {
            Some(state) if stack::running(&state) => Ok(state),
            _ => Err(Failure::new(REFUSED, "the local stack is not running: obol dev up").into()),
        }
    }
}
