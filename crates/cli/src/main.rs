//! `obol`: see the library crate.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match obol_cli::Args::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("obol: {error:#}");
            ExitCode::FAILURE
        }
    }
}
