//! Command-line flags, each with its `OBOL_CONTROLLER_*` variable (see [`obol_runtime::cli`]).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use obol_runtime::cli::Deprecated;
use obol_runtime::duration::positive;
use obol_runtime::{LeaseArgs, LogArgs, Shutdown, Surroundings};

use crate::plan::{GatewayRef, ServiceRef, Settings};
use crate::run::RunConfig;

/// `serviceoffer-controller`: reconciles ServiceOffers. Reads `KUBECONFIG` like kubectl (else
/// the in-cluster service account).
#[derive(Debug, clap::Parser)]
#[command(name = "serviceoffer-controller", version)]
pub struct Args {
    /// Base URL of the x402 verifier; Middlewares call `<url>/verify/<ns>/<paymentroute>`.
    #[arg(
        long,
        default_value = "http://x402-verifier.x402.svc.cluster.local:8080"
    )]
    pub verifier_url: String,
    /// Name of the verifier's Service: the backend of HTTPRoutes in gateway mode `proxy`.
    #[arg(long, default_value = "x402-verifier")]
    pub verifier_service: String,
    /// Namespace of the verifier's Service.
    #[arg(long, default_value = "x402")]
    pub verifier_namespace: String,
    /// The verifier Service's port that serves gateway traffic (its `--gateway-listen`).
    #[arg(
        long,
        default_value_t = 8081,
        value_parser = clap::value_parser!(i32).range(1..=65535)
    )]
    pub verifier_gateway_port: i32,
    /// Name of the Gateway every HTTPRoute attaches to.
    #[arg(long, default_value = "traefik-gateway")]
    pub gateway_name: String,
    /// Namespace of that Gateway.
    #[arg(long, default_value = "traefik")]
    pub gateway_namespace: String,
    /// Public base URL announced in registrations (`<url><path>`).
    #[arg(long, default_value = "http://obol.stack:8080")]
    pub public_base_url: String,
    /// Deadline of one upstream health probe (`500ms`, `2s`, `1m`).
    #[arg(long, default_value = "2s", value_parser = positive)]
    pub probe_timeout: Duration,
    /// How often each offer's upstream is re-probed.
    #[arg(long, default_value = "30s", value_parser = positive)]
    pub probe_interval: Duration,
    /// How long deletion waits for the RegistrationRequest to disappear before giving up with a
    /// Warning Event.
    #[arg(long, default_value = "2m", value_parser = positive)]
    pub cleanup_timeout: Duration,
    /// Most reconciles in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: u16,
    /// Leader election.
    #[command(flatten)]
    pub lease: LeaseArgs,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, default_value = "0.0.0.0:8384")]
    pub listen: SocketAddr,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

impl obol_runtime::Service for Args {
    const ENV_PREFIX: &'static str = "OBOL_CONTROLLER";
    const DEPRECATED: &'static [Deprecated] = &[
        Deprecated::flag("admin-addr", "listen"),
        // The controller read its log filter from RUST_LOG before it had --log.
        Deprecated::env("RUST_LOG", "log"),
    ];

    fn log(&self) -> &LogArgs {
        &self.log
    }

    /// Connects to the cluster and runs until shutdown.
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes (KUBECONFIG or in-cluster)")?;
        let around = Surroundings::of_this_process(
            &obol_runtime::program_name::<Self>(),
            client.default_namespace(),
        );
        let config = self.config(&around).map_err(anyhow::Error::msg)?;
        crate::run(client, config, shutdown.requested()).await?;
        Ok(())
    }
}

impl Args {
    /// What [`crate::run`] needs, with the lease defaults from `around`.
    pub fn config(self, around: &Surroundings) -> Result<RunConfig, String> {
        let lease = self.lease.config(around)?;
        Ok(RunConfig {
            settings: Settings {
                verifier_url: self.verifier_url,
                verifier_gateway: ServiceRef {
                    name: self.verifier_service,
                    namespace: self.verifier_namespace,
                    port: self.verifier_gateway_port,
                },
                gateway: GatewayRef {
                    name: self.gateway_name,
                    namespace: self.gateway_namespace,
                },
                public_base_url: self.public_base_url,
            },
            probe_timeout: self.probe_timeout,
            probe_interval: self.probe_interval,
            cleanup_timeout: self.cleanup_timeout,
            concurrency: self.concurrency,
            lease,
            listen: Some(self.listen),
            namespace: self.namespace.filter(|n| !n.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
        assert_eq!(a.probe_timeout, Duration::from_secs(2));
        assert_eq!(a.listen.to_string(), "0.0.0.0:8384");
        assert_eq!(a.log.filter, "info");
        assert!(a.lease.leader_elect);
        assert!(a.lease.lease_duration > a.lease.lease_grace);
        assert_eq!(
            (
                a.verifier_service.as_str(),
                a.verifier_namespace.as_str(),
                a.verifier_gateway_port
            ),
            ("x402-verifier", "x402", 8081)
        );
        assert!(Args::try_parse_from(["x", "--verifier-gateway-port", "0"]).is_err());
        let b = Args::try_parse_from(["x", "--leader-elect", "false", "--probe-interval", "1s"])
            .unwrap();
        assert!(!b.lease.leader_elect);
        assert_eq!(b.probe_interval, Duration::from_secs(1));
        assert!(Args::try_parse_from(["x", "--probe-timeout", "0s"]).is_err());
    }

    #[test]
    fn the_lease_defaults_to_the_program_and_the_clients_namespace() {
        let around = Surroundings {
            program: "serviceoffer-controller".into(),
            namespace: "obol-system".into(),
            pod_name: Some("controller-0".into()),
            hostname: None,
            pid: 1,
        };
        let config = Args::try_parse_from(["x"])
            .unwrap()
            .config(&around)
            .unwrap();
        let lease = config.lease.unwrap();
        assert_eq!(lease.name, "serviceoffer-controller");
        assert_eq!(lease.namespace, "obol-system");
        assert_eq!(lease.identity, "controller-0");
    }
}
