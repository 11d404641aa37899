//! `erc8004-registrar`: see the library crate.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    // One rustls provider (aws-lc-rs) before any TLS client exists.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = obol_registrar::Args::parse();
    match args.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("erc8004-registrar: {error:#}");
            ExitCode::FAILURE
        }
    }
}
