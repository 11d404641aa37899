//! `x402-verifier`: see the library crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "x402-verifier: this component is not implemented yet (issue #{})",
        obol_verifier::TRACKING_ISSUE
    );
    ExitCode::from(2)
}
