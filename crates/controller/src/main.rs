//! `serviceoffer-controller`: see the `obol_controller` library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // One rustls provider for the whole process, before any client exists (TOOLING.md §5).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match obol_controller::args::Args::parse().run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("serviceoffer-controller: {error:#}");
            ExitCode::FAILURE
        }
    }
}
