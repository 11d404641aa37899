//! `x402-verifier`: see the library crate for endpoints and flags.

fn main() -> std::process::ExitCode {
    obol_runtime::main::<obol_verifier::Args>()
}
