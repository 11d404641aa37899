//! The leader-election flags of the services that elect a leader (the ServiceOffer controller,
//! the registrar), and the settings they resolve to.

use std::time::Duration;

/// Leader-election settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity.
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub grace: Duration,
}

/// `--leader-elect`, `--lease-*` and `--identity`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct LeaseArgs {
    /// Campaign for a Lease before working (two replicas: one works, one waits).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Lease name (default: the program's name).
    #[arg(long)]
    pub lease_name: Option<String>,
    /// Lease namespace (default: the namespace the process runs in: in a cluster the pod's own,
    /// else the kubeconfig context's).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// Lease duration: a dead leader is replaced within this time.
    #[arg(long, default_value = "15s", value_parser = crate::duration::positive)]
    pub lease_duration: Duration,
    /// Renew this long before the lease expires.
    #[arg(long, default_value = "5s", value_parser = crate::duration::positive)]
    pub lease_grace: Duration,
    /// Identity in the Lease (default: `POD_NAME`, else `<hostname>-<pid>`).
    #[arg(long)]
    pub identity: Option<String>,
}

/// Where the defaults come from: the process and its surroundings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Surroundings {
    /// The program's name (the default lease name).
    pub program: String,
    /// The Kubernetes client's default namespace.
    pub namespace: String,
    /// `POD_NAME`, when set.
    pub pod_name: Option<String>,
    /// The host name, when known.
    pub hostname: Option<String>,
    /// This process's id.
    pub pid: u32,
}

impl Surroundings {
    /// Reads `POD_NAME`, the host name and the pid of this process.
    pub fn of_this_process(program: &str, namespace: &str) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .filter(|h| !h.is_empty());
        Self {
            program: program.to_owned(),
            namespace: namespace.to_owned(),
            pod_name: std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()),
            hostname,
            pid: std::process::id(),
        }
    }
}

impl LeaseArgs {
    /// The settings, or `None` without `--leader-elect`. Refuses a grace that is not shorter
    /// than the duration.
    pub fn config(&self, around: &Surroundings) -> Result<Option<LeaseConfig>, String> {
        if !self.leader_elect {
            return Ok(None);
        }
        if self.lease_duration <= self.lease_grace {
            return Err("--lease-duration must exceed --lease-grace".into());
        }
        let identity = self
            .identity
            .clone()
            .filter(|i| !i.is_empty())
            .or_else(|| around.pod_name.clone())
            .unwrap_or_else(|| {
                let host = around.hostname.as_deref().unwrap_or(&around.program);
                format!("{host}-{}", around.pid)
            });
        let or = |flag: &Option<String>, default: &str| {
            flag.clone()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(Some(LeaseConfig {
            name: or(&self.lease_name, &around.program),
            namespace: or(&self.lease_namespace, &around.namespace),
            identity,
            duration: self.lease_duration,
            grace: self.lease_grace,
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        lease: LeaseArgs,
    }

    fn args(flags: &[&str]) -> LeaseArgs {
        Cli::try_parse_from(std::iter::once("svc").chain(flags.iter().copied()))
            .unwrap()
            .lease
    }

    fn around(pod_name: Option<&str>, hostname: Option<&str>) -> Surroundings {
        Surroundings {
            program: "svc".into(),
            namespace: "obol-system".into(),
            pod_name: pod_name.map(str::to_owned),
            hostname: hostname.map(str::to_owned),
            pid: 42,
        }
    }

    #[test]
    fn defaults_come_from_the_program_and_its_namespace() {
        let config = args(&[]).config(&around(None, Some("node-1"))).unwrap();
        assert_eq!(
            config,
            Some(LeaseConfig {
                name: "svc".into(),
                namespace: "obol-system".into(),
                identity: "node-1-42".into(),
                duration: Duration::from_secs(15),
                grace: Duration::from_secs(5),
            })
        );
    }

    #[test]
    fn identity_is_the_flag_else_the_pod_else_host_and_pid() {
        let table = [
            (&["--identity", "me"][..], Some("pod-0"), Some("h"), "me"),
            (&[][..], Some("pod-0"), Some("h"), "pod-0"),
            (&[][..], None, Some("h"), "h-42"),
            (&[][..], None, None, "svc-42"),
        ];
        for (flags, pod, host, want) in table {
            let config = args(flags).config(&around(pod, host)).unwrap().unwrap();
            assert_eq!(config.identity, want, "{flags:?} {pod:?} {host:?}");
        }
    }

    #[test]
    fn flags_override_and_durations_are_checked() {
        let config = args(&[
            "--lease-name=l",
            "--lease-namespace=ns",
            "--lease-duration=4",
            "--lease-grace=1s",
        ])
        .config(&around(None, None))
        .unwrap()
        .unwrap();
        assert_eq!(
            (config.name.as_str(), config.namespace.as_str()),
            ("l", "ns")
        );
        assert_eq!(config.duration, Duration::from_secs(4));
        assert_eq!(
            args(&["--leader-elect", "false"]).config(&around(None, None)),
            Ok(None)
        );
        let err = args(&["--lease-duration=5s", "--lease-grace=5s"])
            .config(&around(None, None))
            .unwrap_err();
        assert!(
            err.contains("--lease-duration must exceed --lease-grace"),
            "{err}"
        );
        let cli = Cli::try_parse_from(["svc", "--lease-duration=0s"]);
        assert!(cli.is_err());
    }
}
