//! `x402-buyer`: see the `obol_buyer` library.

fn main() -> std::process::ExitCode {
    obol_runtime::main::<obol_buyer::Args>()
}
