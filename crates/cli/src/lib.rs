//! The `obol` command line. Subcommands parse their arguments and call the library crates; no
//! decision is made here that a library test could not see.
//!
//! | subcommand | what it does |
//! |---|---|
//! | `obol crdgen [--out DIR]` | prints (or writes to `DIR`) the CRD YAML generated from the Rust types |
//!
//! `obol sell …` and `obol dev …` come with issues #8 and #9.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Generate the CustomResourceDefinitions from the Rust types.
    Crdgen {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

impl Args {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        let Self { command } = self;
        match command {
            Command::Crdgen { out } => crdgen(out),
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
