//! The `obol` command line. Subcommands parse their flags and call the library crates; every
//! decision worth testing is a pure function (`sell::offer`, `sell::render`).
//!
//! | subcommand | what it does |
//! |---|---|
//! | `obol sell http NAME --upstream SVC --wallet 0x… --price 0.001` | checks preconditions, then creates or updates the ServiceOffer (`--dry-run`, `--wait`) |
//! | `obol sell status [NAME] [-o json\|yaml]` | conditions, phase, endpoint, agent id |
//! | `obol sell list [-A]` | one line per offer |
//! | `obol sell test NAME` | probes the endpoint through the gateway and explains the answer |
//! | `obol sell delete NAME [--yes]` | deletes and waits until everything it created is gone |
//! | `obol buy http NAME SELLER_URL --count N --max-price P --key-file F` (or `--keystore F` with `--password-file F` or `OBOL_KEYSTORE_PASSWORD`) | probes the seller's 402, refuses before signing (price above the cap or unconfirmed, other network or asset, plain http off this machine), signs N EIP-3009 authorizations here, writes a PurchaseRequest and its ConfigMaps; with `--scheme upto --rpc-url URL` (a metered seller): sends the payer's one-time Permit2 approval if its allowance does not cover the batch and its outstanding upto authorizations (asks unless --yes), signs N Permit2 witness authorizations for the maximum |
//! | `obol buy list \| status \| refill \| delete` | inspect, buy more on the same terms, delete (says how many were never spent) |
//! | `obol dev up \| down \| env \| status \| balance` | the local stack with a demo offer |
//! | `obol install [-k DIR] [--dry-run] [--timeout S]` | server-side apply of `deploy/` (or the release overlay), then waits for the Deployments |
//! | `obol uninstall [-k DIR] [--force] [--dry-run]` | removes them; refused while ServiceOffers exist unless `--force` |
//! | `obol doctor --verifier-url URL --facilitator-url URL` | one line per check (CRDs, verifier ready, facilitator networks, clock skew) with the fix; exit 0 only when all pass |
//! | `obol crdgen [--out DIR]` | the CRD YAML generated from the Rust types |
//! | `obol completions SHELL` | shell completions |
//!
//! Exit codes: see [`failure`]. Cluster access like kubectl: `--kubeconfig` / `$KUBECONFIG`,
//! `--context`, `-n`.

pub mod buy;
mod dev;
pub mod doctor;
pub mod failure;
pub mod install;
mod kube_args;
pub mod sell;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

/// The `obol` command line.
#[derive(Debug, Parser)]
#[command(
    name = "obol",
    version,
    about = "Sell HTTP services for x402 payments from a Kubernetes cluster"
)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sell services: create, inspect, test and delete ServiceOffers.
    Sell(Box<sell::SellArgs>),
    /// Buy from sellers: pre-signed authorizations for the cluster's x402 buyer.
    Buy(Box<buy::BuyArgs>),
    /// The local stack on one machine: up, down, env, status, balance.
    Dev(dev::DevArgs),
    /// Apply the operator to the current cluster (server-side apply) and wait until it runs.
    Install(install::InstallArgs),
    /// Remove what `install` applied (refused while ServiceOffers exist, unless --force).
    Uninstall(install::UninstallArgs),
    /// Check the installation: one line per check with the fix; exit 0 only when all pass.
    Doctor(doctor::DoctorArgs),
    /// Generate the CustomResourceDefinitions from the Rust types.
    Crdgen {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print shell completions.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
}

impl Args {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self { command } = self;
        match command {
            Command::Sell(args) => args.run().await,
            Command::Buy(args) => args.run().await,
            Command::Dev(args) => args.run().await,
            Command::Install(args) => args.run().await,
            Command::Uninstall(args) => args.run().await,
            Command::Doctor(args) => args.run().await,
            Command::Crdgen { out } => crdgen(out),
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Args::command(),
                    "obol",
                    &mut std::io::stdout(),
                );
                Ok(())
            }
        }
    }
}

fn crdgen(out: Option<PathBuf>) -> anyhow::Result<()> {
    let files = obol_api::crdgen::render()?;
    match out {
        None => {
            for (_, text) in files {
                println!("---\n{text}");
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (name, text) in files {
                let path = dir.join(&name);
                std::fs::write(&path, text)?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Args::command().debug_assert();
    }
}
