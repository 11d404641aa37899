//! `obol sell …`: create, inspect, test and delete ServiceOffers.

mod delete;
mod http;
mod inspect;
pub mod offer;
pub mod render;

use std::time::Duration;

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

/// Parses `2m`, `90s`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 2m, 90s)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("invalid duration unit in {s:?} (use s, m or h)")),
    };
    Ok(Duration::from_secs(secs))
}

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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("2x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
