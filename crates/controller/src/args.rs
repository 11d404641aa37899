//! Command-line flags, each with an `OBOL_CONTROLLER_*` environment variable.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;

use crate::plan::{GatewayRef, Settings};
use crate::run::{LeaseConfig, RunConfig};

/// `serviceoffer-controller`: reconciles ServiceOffers. Reads `KUBECONFIG` like kubectl (else
/// the in-cluster service account).
#[derive(Debug, clap::Parser)]
#[command(name = "serviceoffer-controller", version)]
pub struct Args {
    /// Base URL of the x402 verifier; Middlewares call `<url>/verify/<ns>/<paymentroute>`.
    #[arg(
        long,
        env = "OBOL_CONTROLLER_VERIFIER_URL",
        default_value = "http://x402-verifier.x402.svc.cluster.local:8080"
    )]
    pub verifier_url: String,
    /// Name of the Gateway every HTTPRoute attaches to.
    #[arg(
        long,
        env = "OBOL_CONTROLLER_GATEWAY_NAME",
        default_value = "traefik-gateway"
    )]
    pub gateway_name: String,
    /// Namespace of that Gateway.
    #[arg(
        long,
        env = "OBOL_CONTROLLER_GATEWAY_NAMESPACE",
        default_value = "traefik"
    )]
    pub gateway_namespace: String,
    /// Public base URL announced in registrations (`<url><path>`).
    #[arg(
        long,
        env = "OBOL_CONTROLLER_PUBLIC_BASE_URL",
        default_value = "http://obol.stack:8080"
    )]
    pub public_base_url: String,
    /// Deadline of one upstream health probe (`500ms`, `2s`, `1m`).
    #[arg(long, env = "OBOL_CONTROLLER_PROBE_TIMEOUT", default_value = "2s")]
    pub probe_timeout: Secs,
    /// How often each offer's upstream is re-probed.
    #[arg(long, env = "OBOL_CONTROLLER_PROBE_INTERVAL", default_value = "30s")]
    pub probe_interval: Secs,
    /// How long deletion waits for the RegistrationRequest to disappear before giving up with a
    /// Warning Event.
    #[arg(long, env = "OBOL_CONTROLLER_CLEANUP_TIMEOUT", default_value = "2m")]
    pub cleanup_timeout: Secs,
    /// Most reconciles in flight.
    #[arg(long, env = "OBOL_CONTROLLER_CONCURRENCY", default_value_t = 32)]
    pub concurrency: u16,
    /// Campaign for a Lease before reconciling (two replicas: one works, one waits).
    #[arg(long, env = "OBOL_CONTROLLER_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Lease name.
    #[arg(
        long,
        env = "OBOL_CONTROLLER_LEASE_NAME",
        default_value = "serviceoffer-controller"
    )]
    pub lease_name: String,
    /// Lease namespace (in a cluster: the controller's own, via the Downward API).
    #[arg(
        long,
        env = "OBOL_CONTROLLER_LEASE_NAMESPACE",
        default_value = "default"
    )]
    pub lease_namespace: String,
    /// Lease duration: a dead leader is replaced within this time.
    #[arg(long, env = "OBOL_CONTROLLER_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: Secs,
    /// Renew this long before the lease expires.
    #[arg(long, env = "OBOL_CONTROLLER_LEASE_GRACE", default_value = "5s")]
    pub lease_grace: Secs,
    /// Identity in the Lease; default `POD_NAME`, else `<hostname>-<pid>`.
    #[arg(long, env = "OBOL_CONTROLLER_IDENTITY")]
    pub identity: Option<String>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "OBOL_CONTROLLER_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(
        long,
        env = "OBOL_CONTROLLER_ADMIN_ADDR",
        default_value = "0.0.0.0:8384"
    )]
    pub admin_addr: SocketAddr,
}

impl Args {
    /// Connects to the cluster and runs until SIGINT/SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            verifier_url,
            gateway_name,
            gateway_namespace,
            public_base_url,
            probe_timeout,
            probe_interval,
            cleanup_timeout,
            concurrency,
            leader_elect,
            lease_name,
            lease_namespace,
            lease_duration,
            lease_grace,
            identity,
            namespace,
            admin_addr,
        } = self;
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .init();
        anyhow::ensure!(
            lease_duration.0 > lease_grace.0,
            "--lease-duration must exceed --lease-grace"
        );
        let identity = identity
            .or_else(|| std::env::var("POD_NAME").ok())
            .unwrap_or_else(default_identity);
        let config = RunConfig {
            settings: Settings {
                verifier_url,
                gateway: GatewayRef {
                    name: gateway_name,
                    namespace: gateway_namespace,
                },
                public_base_url,
            },
            probe_timeout: probe_timeout.0,
            probe_interval: probe_interval.0,
            cleanup_timeout: cleanup_timeout.0,
            concurrency,
            lease: leader_elect.then_some(LeaseConfig {
                name: lease_name,
                namespace: lease_namespace,
                identity,
                duration: lease_duration.0,
                grace: lease_grace.0,
            }),
            admin_addr: Some(admin_addr),
            namespace: namespace.filter(|n| !n.is_empty()),
        };
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes (KUBECONFIG or in-cluster)")?;
        crate::run(client, config, shutdown_signal()).await?;
        Ok(())
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "controller".into());
    format!("{host}-{}", std::process::id())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// A duration flag: `<n>ms`, `<n>s`, `<n>m` or a bare number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secs(pub Duration);

impl FromStr for Secs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => s.split_at(i),
            None => (s, "s"),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 500ms, 2s or 1m"))?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
        };
        if d.is_zero() {
            return Err(format!("{s:?} must be positive"));
        }
        Ok(Self(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn durations() {
        let ok = [("500ms", 500), ("2s", 2000), ("1m", 60_000), ("7", 7000)];
        for (s, ms) in ok {
            assert_eq!(
                s.parse::<Secs>().unwrap().0,
                Duration::from_millis(ms),
                "{s}"
            );
        }
        for bad in ["", "0s", "2h", "s", "-1s", "1.5s"] {
            assert!(bad.parse::<Secs>().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_match_the_design() {
        let a = Args::try_parse_from(["serviceoffer-controller"]).unwrap();
        assert_eq!(
            a.verifier_url,
            "http://x402-verifier.x402.svc.cluster.local:8080"
        );
        assert_eq!(
            (a.gateway_name.as_str(), a.gateway_namespace.as_str()),
            ("traefik-gateway", "traefik")
        );
        assert_eq!(a.probe_timeout.0, Duration::from_secs(2));
        assert!(a.leader_elect);
        assert!(a.lease_duration.0 > a.lease_grace.0);
        let b = Args::try_parse_from(["x", "--leader-elect", "false", "--probe-interval", "1s"])
            .unwrap();
        assert!(!b.leader_elect);
        assert_eq!(b.probe_interval.0, Duration::from_secs(1));
    }
}
