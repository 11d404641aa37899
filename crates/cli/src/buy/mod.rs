//! `obol buy …`: buy pre-signed x402 authorizations from a seller for the cluster's buyer, and
//! inspect, refill and delete purchases.
//!
//! The key signs on this machine; only signed authorizations enter the cluster, in ConfigMaps
//! owned by a PurchaseRequest. Every refusal (price above `--max-price` or not confirmed, other
//! network or asset, a domain that is not the token's, plain http to another machine) comes
//! before anything is signed, exits 3, and writes nothing.

mod delete;
mod http;
mod inspect;
pub mod plan;
pub mod pool;
mod probe;
mod refill;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::kube_args::KubeArgs;

/// `obol buy`.
#[derive(Debug, Args)]
pub struct BuyArgs {
    #[command(subcommand)]
    command: BuyCommand,
    #[command(flatten)]
    kube: KubeArgs,
}

#[derive(Debug, Subcommand)]
enum BuyCommand {
    /// Buy authorizations for an HTTP seller: probe its 402, sign, write a PurchaseRequest.
    Http(Box<http::HttpArgs>),
    /// List purchases.
    List(inspect::ListArgs),
    /// Show a purchase: remaining, held, spent, healed, expired; what the buyer last saw.
    Status(inspect::StatusArgs),
    /// Buy more authorizations for an existing purchase, on its terms.
    Refill(Box<refill::RefillArgs>),
    /// Delete a purchase and its unspent authorizations.
    Delete(delete::DeleteArgs),
}

/// Where the signing key comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// File holding the payer's private key (`0x` + 64 hex digits); it is read here and never
    /// leaves this machine.
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
}

impl KeyArgs {
    /// Reads the key. Errors never contain key material.
    pub fn load(&self) -> anyhow::Result<obol_x402::PrivateKey> {
        let path = &self.key_file;
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read --key-file {}: {e}", path.display()))?;
        text.parse()
            .map_err(|e| anyhow::anyhow!("--key-file {}: {e}", path.display()))
    }
}

/// Parses `7d`, `12h`, `30m`, `90s`, or plain seconds.
pub fn parse_validity(s: &str) -> Result<Duration, String> {
    if let Some(days) = s.strip_suffix('d') {
        let n: u64 = days
            .parse()
            .map_err(|_| format!("invalid duration {s:?} (e.g. 7d, 12h)"))?;
        return Ok(Duration::from_secs(n * 86_400));
    }
    crate::sell::parse_duration(s)
}

impl BuyArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self { command, kube } = self;
        match command {
            BuyCommand::Http(args) => args.run(&kube).await,
            BuyCommand::List(args) => args.run(&kube).await,
            BuyCommand::Status(args) => args.run(&kube).await,
            BuyCommand::Refill(args) => args.run(&kube).await,
            BuyCommand::Delete(args) => args.run(&kube).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_durations() {
        assert_eq!(parse_validity("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_validity("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_validity("90"), Ok(Duration::from_secs(90)));
        assert!(parse_validity("xd").is_err());
        assert!(parse_validity("1w").is_err());
    }
}
