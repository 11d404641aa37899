//! `x402-buyer`: see the `obol_buyer` library.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // One process-wide rustls provider before any TLS client is built (TOOLING.md §5).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match obol_buyer::Args::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("x402-buyer: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
