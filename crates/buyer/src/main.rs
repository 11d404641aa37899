//! `x402-buyer`: see the library crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "x402-buyer: this component is not implemented yet (issue #{})",
        obol_buyer::TRACKING_ISSUE
    );
    ExitCode::from(2)
}
