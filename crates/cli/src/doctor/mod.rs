//! `obol doctor`: what is wrong with the installation, one line per check with the fix. Exit 0
//! only when every check passes.
//!
//! Facts are gathered at the edge; each check's verdict is a pure function of them (`judge_*`,
//! table-tested beside them). What the cluster should hold (RBAC, the Gateway, where the
//! registrar's key is) is derived from the shipped manifests (`-k`, as `obol install`), never
//! retyped.
//!
//! | Check | Passes when |
//! |---|---|
//! | `crds` | this release's CRDs are present with this release's schemas |
//! | `gateway-crds` | the Gateway API (HTTPRoute, Gateway) and Traefik Middleware CRDs are present |
//! | `gateway` | each Gateway the shipped routes attach to is `Accepted` and `Programmed` |
//! | `rbac` | the shipped accounts, roles and bindings exist and grant every rule they state |
//! | `verifier` | its `/readyz` answers 200 |
//! | `facilitator` | its `/supported` lists every offer's network |
//! | `clock` | its `Date` is within [`MAX_SKEW_SECS`] of ours |
//! | `registrar` | when an offer registers on chain: a key, and ether for a registration's gas |

mod gateway;
mod rbac;
mod registrar;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use crate::failure::{self, Failure};
use crate::kube_args::KubeArgs;

/// Largest clock difference with the facilitator that payments tolerate: EIP-3009
/// authorizations carry validAfter/validBefore in seconds, and a skew beyond a few seconds makes
/// them fail without a clear reason.
pub const MAX_SKEW_SECS: i64 = 5;

/// `obol doctor` flags.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The verifier's admin address (`/readyz`), e.g. a `kubectl port-forward` of
    /// `svc/x402-verifier` in namespace x402 (`obol dev env` exports it for the local stack).
    #[arg(long, env = "OBOL_VERIFIER_URL", value_name = "URL")]
    verifier_url: String,
    /// The facilitator the verifier uses (`/supported`).
    #[arg(long, env = "OBOL_FACILITATOR_URL", value_name = "URL")]
    facilitator_url: String,
    /// The kustomization that was installed (`obol install -k`): the RBAC, Gateway and
    /// registrar key location to check.
    #[arg(
        short = 'k',
        long = "kustomize",
        default_value = "deploy",
        value_name = "DIR"
    )]
    dir: PathBuf,
    /// An RPC endpoint of the chain offers register on (the registrar's balance).
    #[arg(long, env = "OBOL_RPC_URL", value_name = "URL")]
    rpc_url: Option<String>,
    /// The registrar's key file, when it runs outside the cluster (the local stack); by
    /// default the Secret its Deployment mounts is read (only its address is used).
    #[arg(long, env = "OBOL_REGISTRAR_KEY_FILE", value_name = "FILE")]
    registrar_key_file: Option<PathBuf>,
    #[command(flatten)]
    kube: KubeArgs,
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Short name.
    pub check: &'static str,
    /// What was found (passing) or what is wrong.
    pub finding: String,
    /// How to fix it; `None` when the check passes.
    pub fix: Option<String>,
}

impl Verdict {
    fn ok(check: &'static str, finding: impl Into<String>) -> Self {
        Self {
            check,
            finding: finding.into(),
            fix: None,
        }
    }

    fn bad(check: &'static str, finding: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            finding: finding.into(),
            fix: Some(fix.into()),
        }
    }

    /// One line: `ok   name: finding` or `FAIL name: finding; fix: …` (a multi-line error
    /// from below is folded into it).
    pub fn line(&self) -> String {
        let line = match &self.fix {
            None => format!("ok   {}: {}", self.check, self.finding),
            Some(fix) => format!("FAIL {}: {}; fix: {fix}", self.check, self.finding),
        };
        line.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The schemas of a CRD by version name.
pub type Schemas = BTreeMap<String, Value>;

fn schemas(crd: &CustomResourceDefinition) -> Schemas {
    crd.spec
        .versions
        .iter()
        .map(|v| {
            let schema = v
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
                .unwrap_or(Value::Null);
            (v.name.clone(), schema)
        })
        .collect()
}

/// CRDs present and current: every CRD this release generates is in the cluster with the same
/// versions and schemas.
pub fn judge_crds(
    wanted: &BTreeMap<String, Schemas>,
    found: &BTreeMap<String, Schemas>,
) -> Verdict {
    let missing: Vec<&str> = wanted
        .keys()
        .filter(|n| !found.contains_key(*n))
        .map(String::as_str)
        .collect();
    let stale: Vec<&str> = wanted
        .iter()
        .filter(|(n, s)| found.get(*n).is_some_and(|f| f != *s))
        .map(|(n, _)| n.as_str())
        .collect();
    if !missing.is_empty() {
        return Verdict::bad(
            "crds",
            format!("missing: {}", missing.join(", ")),
            "obol install (or kubectl apply --server-side -f deploy/crds/)",
        );
    }
    if !stale.is_empty() {
        return Verdict::bad(
            "crds",
            format!("not this release's schema: {}", stale.join(", ")),
            "obol install, to apply this release's CRDs",
        );
    }
    Verdict::ok("crds", format!("{} present and current", wanted.len()))
}

/// The verifier ready: its `/readyz` answered 200.
pub fn judge_verifier(url: &str, answer: &Result<u16, String>) -> Verdict {
    match answer {
        Ok(200) => Verdict::ok("verifier", format!("{url}/readyz is ready")),
        Ok(code) => Verdict::bad(
            "verifier",
            format!("{url}/readyz answered {code} (not ready)"),
            "kubectl -n x402 logs deploy/x402-verifier (it is ready once its routes are loaded)",
        ),
        Err(e) => Verdict::bad(
            "verifier",
            format!("{url}/readyz: {e}"),
            "start the verifier: kubectl -n x402 rollout status deploy/x402-verifier",
        ),
    }
}

/// The chain id a network name or CAIP-2 id means, if known.
fn chain_of(network: &str) -> Option<u64> {
    obol_x402::chain::Network::resolve(network)
        .ok()
        .map(|n| n.chain_id)
}

/// The facilitator reachable and supporting every network the offers use.
pub fn judge_facilitator(
    url: &str,
    supported: &Result<Vec<String>, String>,
    offer_networks: &[String],
) -> Verdict {
    let networks = match supported {
        Ok(n) => n,
        Err(e) => {
            return Verdict::bad(
                "facilitator",
                format!("{url}/supported: {e}"),
                "check the verifier's --facilitator-url and that the facilitator runs",
            );
        }
    };
    let served = |want: &str| {
        networks
            .iter()
            .any(|n| n == want || (chain_of(n).is_some() && chain_of(n) == chain_of(want)))
    };
    let unsupported: Vec<&str> = offer_networks
        .iter()
        .filter(|w| !served(w))
        .map(String::as_str)
        .collect();
    if unsupported.is_empty() {
        Verdict::ok(
            "facilitator",
            format!(
                "{url} supports the offers' networks ({})",
                networks.join(", ")
            ),
        )
    } else {
        Verdict::bad(
            "facilitator",
            format!(
                "{url} does not support {} (it lists {})",
                unsupported.join(", "),
                networks.join(", ")
            ),
            "use a facilitator for these networks, or change the offers' network",
        )
    }
}

/// The local clock against the facilitator's `Date` header (seconds, facilitator minus local).
pub fn judge_clock(skew: &Result<i64, String>) -> Verdict {
    match skew {
        Ok(s) if s.abs() <= MAX_SKEW_SECS => {
            Verdict::ok("clock", format!("{s:+} s from the facilitator's clock"))
        }
        Ok(s) => Verdict::bad(
            "clock",
            format!(
                "{s:+} s from the facilitator's clock (more than {MAX_SKEW_SECS} s: payment windows fail)"
            ),
            "synchronise this machine's and the cluster nodes' clocks (NTP)",
        ),
        Err(e) => Verdict::bad(
            "clock",
            format!("no Date from the facilitator: {e}"),
            "fix the facilitator check first",
        ),
    }
}

/// `supported` networks and the skew against its `Date` header.
async fn facilitator_facts(
    http: &reqwest::Client,
    url: &str,
) -> (Result<Vec<String>, String>, Result<i64, String>) {
    let answer = match http.get(format!("{url}/supported")).send().await {
        Ok(a) => a,
        Err(e) => {
            let e = format!("unreachable ({})", error_chain(&e));
            return (Err(e.clone()), Err(e));
        }
    };
    let skew = answer
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .ok_or_else(|| "no Date header".to_owned())
        .and_then(|d| jiff::fmt::rfc2822::parse(d).map_err(|e| format!("{d}: {e}")))
        .map(|date| date.timestamp().as_second() - jiff::Timestamp::now().as_second());
    if !answer.status().is_success() {
        return (Err(format!("answered {}", answer.status())), skew);
    }
    let body: Value = match answer.json().await {
        Ok(v) => v,
        Err(e) => return (Err(format!("not JSON: {e}")), skew),
    };
    let mut networks: Vec<String> = body["kinds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["network"].as_str().map(str::to_owned))
        .collect();
    networks.sort();
    networks.dedup();
    (Ok(networks), skew)
}

/// An HTTP error with its causes (a refused connection says so).
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

impl DoctorArgs {
    /// Runs every check, prints one line each, fails when any fails.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            verifier_url,
            facilitator_url,
            dir,
            rpc_url,
            registrar_key_file,
            kube,
        } = self;
        let (client, _) = kube.connect().await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let mut verdicts = vec![];

        let crds = Api::<CustomResourceDefinition>::all(client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        let wanted: BTreeMap<String, Schemas> = obol_api::crdgen::crds()
            .iter()
            .map(|c| (c.metadata.name.clone().unwrap_or_default(), schemas(c)))
            .collect();
        let found: BTreeMap<String, Schemas> = crds
            .iter()
            .filter(|c| wanted.contains_key(c.metadata.name.as_deref().unwrap_or_default()))
            .map(|c| (c.metadata.name.clone().unwrap_or_default(), schemas(c)))
            .collect();
        verdicts.push(judge_crds(&wanted, &found));
        let present: BTreeSet<String> = crds
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        verdicts.push(gateway::judge_gateway_crds(
            &gateway::needed_crds(),
            &present,
        ));

        let shipped = obol_deploy::kustomize::render(&dir).map_err(|e| e.to_string());
        match &shipped {
            Ok(objects) => {
                let gateways = gateway::gather(&client, gateway::shipped_gateways(objects)).await;
                verdicts.push(gateway::judge_gateways(&gateways));
                verdicts.push(rbac::judge_rbac(&rbac::gather(&client, objects).await));
            }
            Err(e) => {
                for check in ["gateway", "rbac"] {
                    verdicts.push(Verdict::bad(
                        check,
                        format!("cannot read the shipped manifests: {e}"),
                        "run in the repository, or pass the installed kustomization with -k DIR",
                    ));
                }
            }
        }

        let verifier = http
            .get(format!("{verifier_url}/readyz"))
            .send()
            .await
            .map(|a| a.status().as_u16())
            .map_err(|e| format!("unreachable ({})", error_chain(&e)));
        verdicts.push(judge_verifier(&verifier_url, &verifier));

        let offers = Api::<obol_api::ServiceOffer>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let mut offer_networks: Vec<String> = offers
            .iter()
            .map(|o| o.spec.payment.network.clone())
            .collect();
        offer_networks.sort();
        offer_networks.dedup();
        let (supported, skew) = facilitator_facts(&http, &facilitator_url).await;
        verdicts.push(judge_facilitator(
            &facilitator_url,
            &supported,
            &offer_networks,
        ));
        verdicts.push(judge_clock(&skew));

        let registering: Vec<&obol_api::ServiceOffer> = offers
            .iter()
            .filter(|o| o.spec.registration_enabled())
            .collect();
        let source = match (registrar_key_file, &shipped) {
            (Some(file), _) => Ok(registrar::KeySource::File(file)),
            (None, Ok(objects)) => registrar::shipped_key_secret(
                objects,
                obol_devstack::identity::REGISTRAR.service_account,
            ),
            (None, Err(e)) => Err(format!("cannot read the shipped manifests: {e}")),
        };
        let key = match &source {
            Ok(source) if !registering.is_empty() => registrar::key_address(&client, source).await,
            Ok(_) => Err("not needed".to_owned()),
            Err(e) => Err(e.clone()),
        };
        let funds = match (&key, &rpc_url) {
            (Ok(address), Some(url)) => Some(registrar::funds(&http, url, address).await),
            _ => None,
        };
        verdicts.push(registrar::judge_registrar(&registrar::RegistrarFacts {
            registering: registering
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}",
                        o.metadata.namespace.as_deref().unwrap_or_default(),
                        o.metadata.name.as_deref().unwrap_or_default()
                    )
                })
                .collect(),
            chains: registering
                .iter()
                .filter_map(|o| chain_of(&o.spec.payment.network))
                .collect(),
            source: source.map_or_else(|e| e, |s| s.to_string()),
            key,
            funds,
        }));

        for v in &verdicts {
            println!("{}", v.line());
        }
        let failed = verdicts.iter().filter(|v| v.fix.is_some()).count();
        if failed > 0 {
            return Err(Failure::new(
                failure::ERROR,
                format!("{failed} of {} checks failed", verdicts.len()),
            )
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemas_of(pairs: &[(&str, Value)]) -> Schemas {
        pairs
            .iter()
            .map(|(v, s)| ((*v).to_owned(), s.clone()))
            .collect()
    }

    #[test]
    fn crds_must_be_present_and_current() {
        let s = schemas_of(&[("v1alpha1", serde_json::json!({"type": "object"}))]);
        let old = schemas_of(&[("v1alpha1", serde_json::json!({"type": "string"}))]);
        let wanted: BTreeMap<String, Schemas> = [
            ("a.obol.org".to_owned(), s.clone()),
            ("b.obol.org".to_owned(), s.clone()),
        ]
        .into();
        let cases = [
            (wanted.clone(), true, "2 present and current"),
            (
                [("a.obol.org".to_owned(), s.clone())].into(),
                false,
                "missing: b.obol.org",
            ),
            (
                [
                    ("a.obol.org".to_owned(), s.clone()),
                    ("b.obol.org".to_owned(), old),
                ]
                .into(),
                false,
                "not this release's schema: b.obol.org",
            ),
        ];
        for (found, ok, finding) in cases {
            let v = judge_crds(&wanted, &found);
            assert_eq!(v.fix.is_none(), ok, "{}", v.line());
            assert_eq!(v.finding, finding);
        }
    }

    #[test]
    fn verifier_facilitator_and_clock_verdicts() {
        assert!(judge_verifier("u", &Ok(200)).fix.is_none());
        assert!(
            judge_verifier("u", &Ok(503))
                .line()
                .starts_with("FAIL verifier: u/readyz answered 503")
        );
        assert!(
            judge_verifier("u", &Err("unreachable".into()))
                .fix
                .is_some()
        );

        let supported = Ok(vec!["eip155:84532".to_owned(), "base-sepolia".to_owned()]);
        assert!(
            judge_facilitator("f", &supported, &["base-sepolia".into()])
                .fix
                .is_none()
        );
        let only_v2 = Ok(vec!["eip155:84532".to_owned()]);
        assert!(
            judge_facilitator("f", &only_v2, &["base-sepolia".into()])
                .fix
                .is_none()
        );
        let v = judge_facilitator("f", &only_v2, &["base".into()]);
        assert!(v.line().contains("does not support base"), "{}", v.line());
        assert!(
            judge_facilitator("f", &Err("down".into()), &[])
                .fix
                .is_some()
        );

        for (skew, ok) in [(0, true), (5, true), (-5, true), (6, false), (-60, false)] {
            assert_eq!(judge_clock(&Ok(skew)).fix.is_none(), ok, "{skew}");
        }
        assert!(judge_clock(&Err("x".into())).fix.is_some());

        let multi = Verdict::bad("gateway", "404 page not found\n: parse error", "fix\nit");
        assert_eq!(
            multi.line(),
            "FAIL gateway: 404 page not found : parse error; fix: fix it"
        );
    }
}
