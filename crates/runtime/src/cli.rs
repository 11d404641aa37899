//! The one naming scheme of the services' flags, and the deprecated names that still work.
//!
//! Every flag `--some-flag` of a service also reads the variable `<PREFIX>_SOME_FLAG` (e.g.
//! `OBOL_CONTROLLER_LEASE_DURATION`): the variable names are derived here from the flag names,
//! never written by hand, and the environment is read only here. The command line wins over a
//! variable. Durations follow [`crate::duration`].
//!
//! Flags renamed when the services were unified keep working for one release: [`rewrite`]
//! turns an old flag (or variable) into the new flag before clap parses, and says so in a
//! warning that [`crate::main`] logs once logging is set up.

use std::ffi::OsString;

/// A renamed flag or variable that still works, with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deprecated {
    /// The old flag (without `--`), whose derived variable is old too; `None` for a variable
    /// only.
    pub flag: Option<&'static str>,
    /// An old variable outside the scheme (e.g. `RUST_LOG`).
    pub env: Option<&'static str>,
    /// The flag that replaces it (without `--`).
    pub new: &'static str,
    /// A bare number given to the old name counted this unit (`ms`); appended on rewrite.
    pub unit: Option<&'static str>,
}

impl Deprecated {
    /// `--flag` (and its variable) became `--new`, same values.
    pub const fn flag(flag: &'static str, new: &'static str) -> Self {
        Self {
            flag: Some(flag),
            env: None,
            new,
            unit: None,
        }
    }

    /// The variable `env` became `--new` (and its variable).
    pub const fn env(env: &'static str, new: &'static str) -> Self {
        Self {
            flag: None,
            env: Some(env),
            new,
            unit: None,
        }
    }

    /// A bare number given to the old name meant `unit` (e.g. `--retry-max-ms 200`).
    #[must_use]
    pub const fn unit(mut self, unit: &'static str) -> Self {
        self.unit = Some(unit);
        self
    }
}

/// The variable a flag reads: `<prefix>_` + the flag in upper snake case.
pub fn env_name(prefix: &str, flag: &str) -> String {
    format!("{prefix}_{}", flag.replace('-', "_").to_ascii_uppercase())
}

/// A flag of a command, as far as variables are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The long name, without `--`.
    pub long: String,
    /// Whether it takes a value (`--log info`); else it is a switch (`--verbose`).
    pub takes_value: bool,
}

/// The flags of `command` that read a variable (all but help and version).
pub fn flags(command: &clap::Command) -> Vec<Flag> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            (!matches!(long, "help" | "version")).then(|| Flag {
                long: long.to_owned(),
                takes_value: arg.get_action().takes_values(),
            })
        })
        .collect()
}

/// `command` with each flag's variable named in its help.
pub fn with_env_help(command: clap::Command, prefix: &str) -> clap::Command {
    command.mut_args(|arg| match arg.get_long() {
        Some(long) if !matches!(long, "help" | "version") => {
            let var = env_name(prefix, long);
            let help = match arg.get_help() {
                Some(help) => format!("{help} [env: {var}]"),
                None => format!("[env: {var}]"),
            };
            arg.help(help)
        }
        _ => arg,
    })
}

/// The listen flag: a value `:PORT` (the Go buyer's spelling) means all interfaces.
const LISTEN: &str = "listen";

fn with_unit(value: &str, unit: Option<&str>) -> String {
    match unit {
        Some(unit) if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{value}{unit}")
        }
        _ => value.to_owned(),
    }
}

/// What [`rewrite`] did: the arguments clap should parse, and one warning per old name used.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// The command line with old flags replaced (variables become flags at the end).
    pub args: Vec<OsString>,
    /// What to tell the operator.
    pub warnings: Vec<String>,
}

/// The command line clap should parse: `args` (the program name first) with old flag names
/// replaced by the new ones of `table`, then each of `flags` not on the command line taken from
/// its variable (read through `env`), then from an old variable of `table`; `--listen :PORT`
/// becomes `--listen 0.0.0.0:PORT`. Pure.
pub fn rewrite(
    prefix: &str,
    flags: &[Flag],
    table: &[Deprecated],
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Rewritten {
    let mut out = Rewritten::default();
    let mut args = args.into_iter();
    out.args.extend(args.next());
    // The value of `--name value` still to come, and how to rewrite it.
    let mut pending: Option<(&str, Option<&str>)> = None;
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            pending = None;
            out.args.push(arg);
            continue;
        };
        if let Some((name, unit)) = pending.take() {
            out.args
                .push(value(&mut out.warnings, name, text, unit).into());
            continue;
        }
        if text == "--" {
            out.args.push(arg);
            out.args.extend(args.by_ref());
            break;
        }
        let Some(flag) = text.strip_prefix("--") else {
            out.args.push(arg);
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        let (new, unit) = match table.iter().find(|d| d.flag == Some(name)) {
            Some(d) => {
                out.warnings
                    .push(format!("--{name} is deprecated; use --{}", d.new));
                (d.new, d.unit)
            }
            None if name == LISTEN => (LISTEN, None),
            None => {
                out.args.push(arg);
                continue;
            }
        };
        match inline {
            Some(v) => {
                let v = value(&mut out.warnings, new, v, unit);
                out.args.push(format!("--{new}={v}").into());
            }
            None => {
                out.args.push(format!("--{new}").into());
                pending = Some((new, unit));
            }
        }
    }
    let given = |flag: &str, args: &[OsString]| {
        let long = format!("--{flag}");
        let inline = format!("--{flag}=");
        args.iter()
            .filter_map(|a| a.to_str())
            .any(|a| a == long || a.starts_with(&inline))
    };
    let on_command_line: Vec<&str> = flags
        .iter()
        .map(|f| f.long.as_str())
        .filter(|long| given(long, &out.args))
        .collect();
    for flag in flags
        .iter()
        .filter(|f| !on_command_line.contains(&f.long.as_str()))
    {
        let Some(v) = env(&env_name(prefix, &flag.long)) else {
            continue;
        };
        let long = &flag.long;
        if flag.takes_value {
            let v = value(&mut out.warnings, long, &v, None);
            out.args.push(format!("--{long}={v}").into());
        } else if matches!(v.as_str(), "1" | "true" | "yes" | "on") {
            out.args.push(format!("--{long}").into());
        } else if !matches!(v.as_str(), "" | "0" | "false" | "no" | "off") {
            // Let clap refuse it, naming the flag.
            out.args.push(format!("--{long}={v}").into());
        }
    }
    for d in table {
        let old_vars = d
            .env
            .map(str::to_owned)
            .into_iter()
            .chain(d.flag.map(|f| env_name(prefix, f)));
        for old in old_vars {
            let Some(v) = env(&old) else { continue };
            let new_var = env_name(prefix, d.new);
            if on_command_line.contains(&d.new) || env(&new_var).is_some() {
                out.warnings.push(format!(
                    "{old} is deprecated and ignored here: --{} or {new_var} is set",
                    d.new
                ));
                continue;
            }
            out.warnings.push(format!(
                "{old} is deprecated; use {new_var} (or --{})",
                d.new
            ));
            let v = value(&mut out.warnings, d.new, &v, d.unit);
            out.args.push(format!("--{}={v}", d.new).into());
        }
    }
    out
}

/// A value for `--flag`: the old unit appended to a bare number; `:PORT` for `--listen`.
fn value(warnings: &mut Vec<String>, flag: &str, value: &str, unit: Option<&str>) -> String {
    if flag == LISTEN
        && let Some(port) = value.strip_prefix(':')
    {
        warnings.push(format!(
            "--listen {value} is deprecated; write the address, e.g. 0.0.0.0:{port}"
        ));
        return format!("0.0.0.0:{port}");
    }
    with_unit(value, unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[Deprecated] = &[
        Deprecated::flag("lease-duration-secs", "lease-duration"),
        Deprecated::flag("retry-max-ms", "retry-max").unit("ms"),
        Deprecated::flag("admin-addr", "listen"),
        Deprecated::env("RUST_LOG", "log"),
    ];

    fn run(args: &[&str], env: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
        let args = std::iter::once("svc")
            .chain(args.iter().copied())
            .map(OsString::from);
        let flag = |long: &str, takes_value| Flag {
            long: long.into(),
            takes_value,
        };
        let flags = [
            flag("lease-duration", true),
            flag("retry-max", true),
            flag("listen", true),
            flag("log", true),
            flag("dry-run", false),
        ];
        let out = rewrite("OBOL_SVC", &flags, TABLE, args, |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        });
        let args = out
            .args
            .iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        (args, out.warnings)
    }

    #[test]
    fn env_names_follow_the_flag_names() {
        assert_eq!(
            env_name("OBOL_CONTROLLER", "lease-duration"),
            "OBOL_CONTROLLER_LEASE_DURATION"
        );
        assert_eq!(env_name("OBOL_BUYER", "log"), "OBOL_BUYER_LOG");
    }

    #[test]
    fn new_names_pass_unchanged_and_silently() {
        let args = [
            "--lease-duration",
            "3s",
            "--log=debug",
            "pos",
            "--retry-max=1",
        ];
        let (out, warnings) = run(&args, &[("OBOL_SVC_LOG", "info")]);
        assert_eq!(out, args);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn old_flags_become_new_flags_with_a_warning() {
        let table: &[(&[&str], &[&str])] = &[
            (&["--lease-duration-secs", "3"], &["--lease-duration", "3"]),
            (&["--lease-duration-secs=3"], &["--lease-duration=3"]),
            (&["--retry-max-ms", "200"], &["--retry-max", "200ms"]),
            (&["--retry-max-ms=2s"], &["--retry-max=2s"]),
            (
                &["--admin-addr", "127.0.0.1:0"],
                &["--listen", "127.0.0.1:0"],
            ),
        ];
        for (args, want) in table {
            let (out, warnings) = run(args, &[]);
            assert_eq!(&out, want);
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].contains("is deprecated; use --"),
                "{warnings:?}"
            );
        }
    }

    #[test]
    fn old_variables_become_flags_unless_the_new_name_is_set() {
        let (out, warnings) = run(&[], &[("OBOL_SVC_RETRY_MAX_MS", "300000")]);
        assert_eq!(out, ["--retry-max=300000ms"]);
        assert!(
            warnings[0].contains("use OBOL_SVC_RETRY_MAX"),
            "{warnings:?}"
        );
        let (out, _) = run(&[], &[("RUST_LOG", "warn")]);
        assert_eq!(out, ["--log=warn"]);
        // The new name wins, from the command line or its variable; the old one is reported.
        let (out, warnings) = run(&["--log", "debug"], &[("RUST_LOG", "warn")]);
        assert_eq!(out, ["--log", "debug"]);
        assert!(warnings[0].contains("ignored"), "{warnings:?}");
        let (out, warnings) = run(&[], &[("RUST_LOG", "warn"), ("OBOL_SVC_LOG", "debug")]);
        assert_eq!(out, ["--log=debug"]);
        assert!(warnings[0].contains("ignored"), "{warnings:?}");
    }

    #[test]
    fn a_listen_port_alone_means_all_interfaces() {
        let (out, warnings) = run(&["--listen=:8402"], &[]);
        assert_eq!(out, ["--listen=0.0.0.0:8402"]);
        assert!(warnings[0].contains("0.0.0.0:8402"), "{warnings:?}");
        let (out, _) = run(&["--listen", ":1"], &[]);
        assert_eq!(out, ["--listen", "0.0.0.0:1"]);
        let (out, _) = run(&[], &[("OBOL_SVC_LISTEN", ":9")]);
        assert_eq!(out, ["--listen=0.0.0.0:9"]);
        let (out, warnings) = run(&["--listen", "127.0.0.1:1"], &[("OBOL_SVC_LISTEN", ":9")]);
        assert_eq!(out, ["--listen", "127.0.0.1:1"]);
        assert!(warnings.is_empty());
    }

    #[test]
    fn values_after_a_double_dash_are_left_alone() {
        let (out, warnings) = run(&["--", "--admin-addr", "x"], &[]);
        assert_eq!(out, ["--", "--admin-addr", "x"]);
        assert!(warnings.is_empty());
    }
}
