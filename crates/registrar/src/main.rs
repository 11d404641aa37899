//! `erc8004-registrar`: see the library crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "erc8004-registrar: this component is not implemented yet (issue #{})",
        obol_registrar::TRACKING_ISSUE
    );
    ExitCode::from(2)
}
