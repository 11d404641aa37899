//! `obol sell …`: create, inspect, test and delete ServiceOffers.

mod delete;
mod http;
mod inspect;
pub mod offer;
pub mod render;
pub mod stop;

use clap::{Args, Subcommand, ValueEnum};

use crate::kube_args::KubeArgs;

/// Field manager of the CLI's server-side applies.
pub const FIELD_MANAGER: &str = "obol-cli";

/// `obol sell`.
#[derive(Debug, Args)]
pub struct SellArgs {
    #[command(subcommand)]
    command: SellCommand,
    #[command(flatten)]
    kube: KubeArgs,
}

#[derive(Debug, Subcommand)]
enum SellCommand {
    /// Sell an HTTP service: create (or update) a ServiceOffer.
    Http(Box<http::HttpArgs>),
    /// Show an offer's conditions, phase, endpoint and agent id (all offers without NAME).
    Status(inspect::StatusArgs),
    /// List offers.
    List(inspect::ListArgs),
    /// Probe an offer through the gateway and explain the answer.
    Test(inspect::TestArgs),
    /// Delete an offer and wait until everything it created is gone.
    Delete(delete::DeleteArgs),
    /// Stop selling an offer: drain it (discovery lists it as unavailable, the route gates for
    /// the grace period, then is withdrawn).
    Stop(stop::StopArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Output {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Parses a duration: `2m`, `90s`, `1h`, or plain seconds ([`obol_runtime::duration`]).
pub use obol_runtime::duration::parse as parse_duration;

impl SellArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self { command, kube } = self;
        match command {
            SellCommand::Http(args) => args.run(&kube).await,
            SellCommand::Status(args) => args.run(&kube).await,
            SellCommand::List(args) => args.run(&kube).await,
            SellCommand::Test(args) => args.run(&kube).await,
            SellCommand::Delete(args) => args.run(&kube).await,
            SellCommand::Stop(args) => args.run(&kube).await,
        }
    }
}
