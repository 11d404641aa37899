//! `serviceoffer-controller`: see the library crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "serviceoffer-controller: this component is not implemented yet (issue #{})",
        obol_controller::TRACKING_ISSUE
    );
    ExitCode::from(2)
}
