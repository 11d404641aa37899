//! `serviceoffer-controller`: see the `obol_controller` library.

fn main() -> std::process::ExitCode {
    obol_runtime::main::<obol_controller::args::Args>()
}
