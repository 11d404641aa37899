//! What every service's `main` does, so that each `main.rs` is one call: install the TLS
//! provider, read the flags under the one naming scheme (old names with a warning), set up
//! logging, and run the service on a multi-threaded runtime until shutdown.

use std::ffi::OsString;
use std::future::Future;
use std::process::ExitCode;

use crate::cli::{self, Deprecated};
use crate::log::LogArgs;
use crate::shutdown::Shutdown;

/// A service binary: its flags (a clap parser whose command name is the program's name) and
/// how it runs.
pub trait Service: clap::Parser {
    /// The prefix of every variable, e.g. `OBOL_CONTROLLER` (see [`cli::env_name`]).
    const ENV_PREFIX: &'static str;
    /// Old flag and variable names that still work, with a warning.
    const DEPRECATED: &'static [Deprecated] = &[];

    /// The `--log` flag.
    fn log(&self) -> &LogArgs;

    /// Runs until `shutdown` is requested and work in flight is done (or a fatal error).
    fn run(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>>;
}

/// Installs the one rustls crypto provider of this project (aws-lc-rs), before any TLS client
/// exists (TOOLING.md §5). Idempotent.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is what we want anyway.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The program's name, as its command names it (the default lease name, the prefix of its
/// error lines).
pub fn program_name<S: clap::CommandFactory>() -> String {
    S::command().get_name().to_owned()
}

/// The service's command: its flags, each naming its variable in the help.
pub fn command<S: Service>() -> clap::Command {
    cli::with_env_help(S::command(), S::ENV_PREFIX)
}

/// Parses `args` (the program name first) with variables from `env` (the only place the
/// environment reaches the flags); returns the flags and the deprecation warnings. Pure.
pub fn parse_from<S: Service>(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(S, Vec<String>), clap::Error> {
    let mut command = command::<S>();
    let flags = cli::flags(&command);
    let rewritten = cli::rewrite(S::ENV_PREFIX, &flags, S::DEPRECATED, args, env);
    let matches = command.try_get_matches_from_mut(rewritten.args)?;
    let service = S::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    Ok((service, rewritten.warnings))
}

/// The whole `main` of a service.
pub fn main<S: Service>() -> ExitCode {
    install_crypto_provider();
    let name = program_name::<S>();
    let (service, warnings) = match parse_from::<S>(std::env::args_os(), |k| std::env::var(k).ok())
    {
        Ok(parsed) => parsed,
        // --help and --version end here too, with their own exit code.
        Err(error) => error.exit(),
    };
    if let Err(error) = service.log().init() {
        eprintln!("{name}: {error}");
        return ExitCode::FAILURE;
    }
    for warning in warnings {
        tracing::warn!(%warning, "Deprecated flag or variable");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = Shutdown::on_signals()?;
        service.run(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A service with one flag of each kind the real ones have.
    #[derive(Debug, clap::Parser)]
    #[command(name = "svc")]
    struct Svc {
        #[arg(long, default_value = "2s", value_parser = crate::duration::parse)]
        retry_max: Duration,
        #[arg(long, default_value = "127.0.0.1:1")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        lease: crate::LeaseArgs,
        #[command(flatten)]
        log: LogArgs,
    }

    impl Service for Svc {
        const ENV_PREFIX: &'static str = "OBOL_SVC";
        const DEPRECATED: &'static [Deprecated] = &[
            Deprecated::flag("retry-max-ms", "retry-max").unit("ms"),
            Deprecated::env("RUST_LOG", "log"),
        ];
        fn log(&self) -> &LogArgs {
            &self.log
        }
        async fn run(self, _: Shutdown) -> anyhow::Result<()> {
            Ok(())
        }
    }

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<(Svc, Vec<String>), clap::Error> {
        let args = std::iter::once("svc")
            .chain(args.iter().copied())
            .map(OsString::from);
        parse_from::<Svc>(args, |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn every_flag_reads_the_variable_named_after_it() {
        let (svc, warnings) = parse(
            &[],
            &[
                ("OBOL_SVC_RETRY_MAX", "3s"),
                ("OBOL_SVC_LEASE_DURATION", "20"),
                ("OBOL_SVC_LEADER_ELECT", "false"),
                ("OBOL_SVC_LOG", "debug"),
                ("OBOL_SVC_LISTEN", "127.0.0.1:2"),
            ],
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(svc.retry_max, Duration::from_secs(3));
        assert_eq!(svc.lease.lease_duration, Duration::from_secs(20));
        assert!(!svc.lease.leader_elect);
        assert_eq!(svc.log.filter, "debug");
        assert_eq!(svc.listen.port(), 2);
        let help = command::<Svc>().render_long_help().to_string();
        for var in [
            "OBOL_SVC_RETRY_MAX",
            "OBOL_SVC_LEASE_GRACE",
            "OBOL_SVC_IDENTITY",
        ] {
            assert!(help.contains(var), "{var} not in\n{help}");
        }
        assert!(!help.contains("OBOL_SVC_HELP"), "{help}");
    }

    #[test]
    fn old_names_still_work_with_a_warning() {
        let (svc, warnings) = parse(&["--retry-max-ms", "250"], &[("RUST_LOG", "warn")]).unwrap();
        assert_eq!(svc.retry_max, Duration::from_millis(250));
        assert_eq!(svc.log.filter, "warn");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let (svc, warnings) = parse(&[], &[("OBOL_SVC_RETRY_MAX_MS", "1500")]).unwrap();
        assert_eq!(svc.retry_max, Duration::from_millis(1500));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = parse(&["--retry-max", "2 weeks"], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--retry-max") && err.contains("unknown unit"),
            "{err}"
        );
        let err = parse(&[], &[("OBOL_SVC_RETRY_MAX", "soon")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--retry-max") && err.contains("not a duration"),
            "{err}"
        );
        let err = parse(&[], &[("OBOL_SVC_LEASE_GRACE", "0s")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than zero"), "{err}");
        assert!(parse(&["--nope"], &[]).is_err());
    }
}
