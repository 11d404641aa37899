//! `erc8004-registrar`: see the library crate.

fn main() -> std::process::ExitCode {
    obol_runtime::main::<obol_registrar::Args>()
}
