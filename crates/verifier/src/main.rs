//! `x402-verifier`: see the library crate for endpoints and flags.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    // kube and reqwest share one rustls provider; a second install attempt is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = obol_verifier::Args::parse();
    match args.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("x402-verifier: {error:#}");
            ExitCode::FAILURE
        }
    }
}
