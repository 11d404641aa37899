//! kubeconfig, context and namespace handling, as kubectl does it.

use std::path::PathBuf;

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Cluster connection flags.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeArgs {
    /// kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
}

impl KubeArgs {
    /// A client and the namespace to use.
    pub async fn connect(&self) -> anyhow::Result<(Client, String)> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match &self.kubeconfig {
            Some(path) if !path.as_os_str().is_empty() => {
                // KUBECONFIG may list several files; like kubectl, merge them in order.
                let mut merged: Option<Kubeconfig> = None;
                for part in std::env::split_paths(path) {
                    let kc = Kubeconfig::read_from(&part)
                        .with_context(|| format!("reading kubeconfig {}", part.display()))?;
                    merged = Some(match merged {
                        None => kc,
                        Some(m) => m.merge(kc)?,
                    });
                }
                let kc = merged.context("empty KUBECONFIG")?;
                Config::from_custom_kubeconfig(kc, &options).await?
            }
            _ => match Config::from_kubeconfig(&options).await {
                Ok(config) => config,
                Err(kubeconfig_error) => Config::incluster().map_err(|_| kubeconfig_error)?,
            },
        };
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).context("creating the Kubernetes client")?;
        Ok((client, namespace))
    }
}
