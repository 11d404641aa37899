//! `--log`: the one logging set-up of the services.

/// The log filter flag every service has.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct LogArgs {
    /// Log filter (`tracing` env-filter syntax: `info`, `warn,obol_registrar=debug`, ...).
    #[arg(long = "log", default_value = "info")]
    pub filter: String,
}

impl LogArgs {
    /// Installs the global subscriber: text lines on stdout, colours only on a terminal. Fails
    /// on a filter that does not parse.
    pub fn init(&self) -> Result<(), String> {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.filter)
            .map_err(|e| format!("--log {:?}: {e}", self.filter))?;
        tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .try_init()
            .map_err(|e| format!("logging: {e}"))
    }
}
