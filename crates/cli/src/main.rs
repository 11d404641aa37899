//! `obol`: see the library crate.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = obol_cli::Args::parse();
    match args.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("obol: {error:#}");
            ExitCode::from(obol_cli::failure::exit_code(&error))
        }
    }
}
