//! The registrar's key and its balance, when some offer asks for on-chain registration: without
//! a key the registrar registers off chain only; without ether for gas its transactions fail.
//!
//! The key is read where the registrar reads it: the Secret its Deployment mounts (derived from
//! the manifests), or a key file when it runs outside the cluster (the local stack). Only its
//! address leaves this module.

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use obol_deploy::Object;
use serde_json::{Value, json};

use super::Verdict;

/// Gas a registration is budgeted: `register` (about 450k gas on the local IdentityRegistry),
/// then the agent URI and one transaction per metadata entry (a registration of the demo
/// offer used about 720k in all); the margin covers longer URIs and more metadata. A budget
/// to warn early, not an estimate.
pub const REGISTRATION_GAS: u128 = 1_000_000;

/// Where the registrar's key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file (the registrar's `--key-file` outside the cluster).
    File(PathBuf),
    /// An entry of a Secret its Deployment mounts.
    Secret {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// Entry (file name under the mount).
        key: String,
    },
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "key file {}", path.display()),
            Self::Secret {
                namespace,
                name,
                key,
            } => write!(f, "Secret {namespace}/{name} (entry {key})"),
        }
    }
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The Secret entry the registrar's Deployment (the one running as `account`) reads its key
/// from: a container environment value naming a file under the mount of a Secret volume.
/// Pure.
pub fn shipped_key_secret(objects: &[Object], account: &str) -> Result<KeySource, String> {
    let deployment = objects
        .iter()
        .find(|o| {
            o.kind() == "Deployment"
                && str_of(&o.0, "/spec/template/spec/serviceAccountName") == account
        })
        .ok_or_else(|| format!("the manifests run no Deployment as {account}"))?;
    let pod = &deployment.0["spec"]["template"]["spec"];
    let secrets: Vec<(&str, &str)> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?, v["secret"]["secretName"].as_str()?)))
        .collect();
    for container in pod["containers"].as_array().into_iter().flatten() {
        let mounts: Vec<(&str, &str)> = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let (_, secret) = secrets.iter().find(|(v, _)| m["name"] == *v)?;
                Some((m["mountPath"].as_str()?, *secret))
            })
            .collect();
        let values = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["value"].as_str())
            .chain(
                container["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|a| a.split_once('=').map_or(a, |(_, v)| v)),
            );
        for value in values {
            for (mount, secret) in &mounts {
                let file = value
                    .strip_prefix(mount.trim_end_matches('/'))
                    .and_then(|rest| rest.strip_prefix('/'));
                if let Some(file) = file.filter(|f| !f.is_empty() && !f.contains('/')) {
                    return Ok(KeySource::Secret {
                        namespace: deployment.namespace().unwrap_or("default").to_owned(),
                        name: (*secret).to_owned(),
                        key: file.to_owned(),
                    });
                }
            }
        }
    }
    Err(format!(
        "{} reads no key from a Secret volume",
        deployment.id()
    ))
}

/// The registrar's funds on the chain of `--rpc-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funds {
    /// The RPC endpoint's chain.
    pub chain_id: u64,
    /// The registrar's balance, wei.
    pub balance_wei: u128,
    /// The chain's gas price, wei.
    pub gas_price_wei: u128,
}

/// What the registrar check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarFacts {
    /// Offers asking for on-chain registration (`namespace/name`).
    pub registering: Vec<String>,
    /// Their chains.
    pub chains: BTreeSet<u64>,
    /// Where the key was looked for.
    pub source: String,
    /// The key's address, or why there is none.
    pub key: Result<String, String>,
    /// Its funds; `None` without `--rpc-url`.
    pub funds: Option<Result<Funds, String>>,
}

fn eth(wei: u128) -> String {
    format!("{} ETH", obol_api::price::format_atomic(wei, 18))
}

/// Key present and enough ether for a registration's gas, when some offer registers.
pub fn judge_registrar(f: &RegistrarFacts) -> Verdict {
    const CHECK: &str = "registrar";
    if f.registering.is_empty() {
        return Verdict::ok(CHECK, "no offer asks for on-chain registration");
    }
    let chains: Vec<String> = f.chains.iter().map(|c| format!("eip155:{c}")).collect();
    let address = match &f.key {
        Ok(a) => a,
        Err(e) => {
            return Verdict::bad(
                CHECK,
                format!(
                    "no signing key ({e}): {} register off chain only",
                    f.registering.join(", ")
                ),
                format!(
                    "give the registrar a funded key (0x + 64 hex digits) in its {}, then restart it",
                    f.source
                ),
            );
        }
    };
    let funds = match &f.funds {
        None => {
            return Verdict::bad(
                CHECK,
                format!("cannot read the balance of {address}: no --rpc-url"),
                format!(
                    "pass --rpc-url (or OBOL_RPC_URL): an RPC endpoint of {}",
                    chains.join(", ")
                ),
            );
        }
        Some(Err(e)) => {
            return Verdict::bad(
                CHECK,
                format!("cannot read the balance of {address}: {e}"),
                "check --rpc-url",
            );
        }
        Some(Ok(funds)) => funds,
    };
    if !f.chains.contains(&funds.chain_id) {
        return Verdict::bad(
            CHECK,
            format!(
                "--rpc-url is chain eip155:{}; the offers register on {}",
                funds.chain_id,
                chains.join(", ")
            ),
            format!("pass --rpc-url of {}", chains.join(", ")),
        );
    }
    let need = REGISTRATION_GAS.saturating_mul(funds.gas_price_wei);
    let held = format!(
        "{address} holds {} on eip155:{}; a registration needs about {} ({REGISTRATION_GAS} gas at {} wei)",
        eth(funds.balance_wei),
        funds.chain_id,
        eth(need),
        funds.gas_price_wei
    );
    if funds.balance_wei < need {
        Verdict::bad(
            CHECK,
            held,
            format!(
                "send ether to {address} on eip155:{} (pending registrations retry)",
                funds.chain_id
            ),
        )
    } else {
        Verdict::ok(CHECK, held)
    }
}

/// The address of the key in `text`; the key itself never leaves this function.
fn address_of(text: &str) -> Result<String, String> {
    let key: obol_x402::PrivateKey = text.parse().map_err(|e| format!("{e}"))?;
    Ok(format!("{}", key.address()))
}

/// Reads the key's address from `source`.
pub async fn key_address(client: &Client, source: &KeySource) -> Result<String, String> {
    match source {
        KeySource::File(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            address_of(&text)
        }
        KeySource::Secret {
            namespace,
            name,
            key,
        } => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let secret = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading Secret {namespace}/{name}: {e}"))?
                .ok_or_else(|| format!("no Secret {namespace}/{name}"))?;
            let bytes = secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .ok_or_else(|| format!("Secret {namespace}/{name} has no entry {key}"))?;
            let text = std::str::from_utf8(&bytes.0)
                .map_err(|_| format!("Secret {namespace}/{name} entry {key} is not text"))?;
            address_of(text)
        }
    }
}

async fn rpc_u128(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    params: Value,
) -> Result<u128, String> {
    let rpc = obol_x402::rpc::JsonRpc::new(http.clone(), url).map_err(|e| e.to_string())?;
    let value = rpc.call(method, params).await.map_err(|e| e.to_string())?;
    obol_x402::rpc::quantity(method, &value).map_err(|e| e.to_string())
}

/// The funds of `address` on the chain of `url`.
pub async fn funds(http: &reqwest::Client, url: &str, address: &str) -> Result<Funds, String> {
    let chain_id = rpc_u128(http, url, "eth_chainId", json!([])).await?;
    Ok(Funds {
        chain_id: u64::try_from(chain_id).map_err(|e| format!("eth_chainId: {e}"))?,
        balance_wei: rpc_u128(http, url, "eth_getBalance", json!([address, "latest"])).await?,
        gas_price_wei: rpc_u128(http, url, "eth_gasPrice", json!([])).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> RegistrarFacts {
        RegistrarFacts {
            registering: vec!["demo/mine".into()],
            chains: [84532].into(),
            source: "Secret obol-system/k (entry key)".into(),
            key: Ok("0xabc".into()),
            funds: Some(Ok(Funds {
                chain_id: 84532,
                balance_wei: 10u128.pow(18),
                gas_price_wei: 1_000_000_000,
            })),
        }
    }

    #[test]
    fn registrar_verdicts() {
        let poor = Funds {
            chain_id: 84532,
            balance_wei: REGISTRATION_GAS * 1_000_000_000 - 1,
            gas_price_wei: 1_000_000_000,
        };
        let cases: Vec<(RegistrarFacts, Option<&str>, &str)> = vec![
            (
                facts(),
                None,
                "0xabc holds 1 ETH on eip155:84532; a registration needs about 0.001 ETH (1000000 gas at 1000000000 wei)",
            ),
            (
                RegistrarFacts {
                    registering: vec![],
                    key: Err("no Secret".into()),
                    funds: None,
                    ..facts()
                },
                None,
                "no offer asks for on-chain registration",
            ),
            (
                RegistrarFacts {
                    key: Err("no Secret obol-system/k".into()),
                    ..facts()
                },
                Some("in its Secret obol-system/k (entry key), then restart it"),
                "no signing key (no Secret obol-system/k): demo/mine register off chain only",
            ),
            (
                RegistrarFacts {
                    funds: None,
                    ..facts()
                },
                Some("an RPC endpoint of eip155:84532"),
                "cannot read the balance of 0xabc: no --rpc-url",
            ),
            (
                RegistrarFacts {
                    funds: Some(Err("eth_chainId: connection refused".into())),
                    ..facts()
                },
                Some("check --rpc-url"),
                "cannot read the balance of 0xabc: eth_chainId: connection refused",
            ),
            (
                RegistrarFacts {
                    funds: Some(Ok(Funds {
                        chain_id: 8453,
                        ..poor.clone()
                    })),
                    ..facts()
                },
                Some("pass --rpc-url of eip155:84532"),
                "--rpc-url is chain eip155:8453; the offers register on eip155:84532",
            ),
            (
                RegistrarFacts {
                    funds: Some(Ok(poor)),
                    ..facts()
                },
                Some("send ether to 0xabc on eip155:84532"),
                "0xabc holds 0.000999999999999999 ETH on eip155:84532; a registration needs about 0.001 ETH (1000000 gas at 1000000000 wei)",
            ),
        ];
        for (f, fix, finding) in cases {
            let v = judge_registrar(&f);
            assert_eq!(v.finding, finding);
            match fix {
                None => assert_eq!(v.fix, None, "{}", v.line()),
                Some(x) => assert!(
                    v.fix.as_deref().is_some_and(|y| y.contains(x)),
                    "{}",
                    v.line()
                ),
            }
        }
    }

    #[test]
    fn the_key_secret_is_where_the_shipped_deployment_reads_it() {
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
        let objects = obol_deploy::kustomize::render(&deploy).unwrap();
        let account = obol_devstack::identity::REGISTRAR.service_account;
        assert_eq!(
            shipped_key_secret(&objects, account).unwrap(),
            KeySource::Secret {
                namespace: "obol-system".into(),
                name: "erc8004-registrar-key".into(),
                key: "key".into(),
            }
        );
        assert!(
            shipped_key_secret(&objects, "nobody")
                .unwrap_err()
                .contains("no Deployment as nobody")
        );
        let mk = |env: Value, args: Value| {
            Object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "r", "namespace": "n"},
                "spec": {"template": {"spec": {"serviceAccountName": "sa",
                    "volumes": [{"name": "k", "secret": {"secretName": "s"}}, {"name": "c", "configMap": {"name": "m"}}],
                    "containers": [{"name": "r", "env": env, "args": args,
                        "volumeMounts": [{"name": "k", "mountPath": "/keys/"}, {"name": "c", "mountPath": "/etc/c"}]}]}}}}))
        };
        let cases = [
            (
                json!([{"name": "X", "value": "/keys/signer"}]),
                json!([]),
                Ok("signer"),
            ),
            (json!([]), json!(["--key-file=/keys/k2"]), Ok("k2")),
            (
                json!([{"name": "X", "value": "/etc/c/key"}]),
                json!([]),
                Err("reads no key"),
            ),
            (
                json!([{"name": "X", "value": "/keys/"}]),
                json!([]),
                Err("reads no key"),
            ),
        ];
        for (env, args, expected) in cases {
            let got = shipped_key_secret(&[mk(env.clone(), args)], "sa");
            match expected {
                Ok(key) => assert_eq!(
                    got,
                    Ok(KeySource::Secret {
                        namespace: "n".into(),
                        name: "s".into(),
                        key: key.into()
                    }),
                    "{env}"
                ),
                Err(e) => assert!(got.unwrap_err().contains(e), "{env}"),
            }
        }
    }

    #[test]
    fn only_the_address_of_a_key_is_kept() {
        let key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        assert_eq!(
            address_of(&format!("{key}\n")).unwrap().to_lowercase(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
        let e = address_of("0xnot-a-key").unwrap_err();
        assert!(!e.contains("not-a-key"), "{e}");
    }
}
