//! `obol doctor`: what is wrong with the installation, one line per check with the fix. Exit 0
//! only when every check passes.
//!
//! Facts are gathered at the edge (`gather`); each check's verdict is a pure function of them
//! (`judge_*`, table-tested below).

use std::collections::BTreeMap;
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

    /// One line: `ok   name: finding` or `FAIL name: finding; fix: …`.
    pub fn line(&self) -> String {
        match &self.fix {
            None => format!("ok   {}: {}", self.check, self.finding),
            Some(fix) => format!("FAIL {}: {}; fix: {fix}", self.check, self.finding),
        }
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
            let e = format!("unreachable ({})", obol_x402_error(&e));
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

fn obol_x402_error(e: &reqwest::Error) -> String {
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
        let (client, _) = self.kube.connect().await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let mut verdicts = vec![];

        let wanted: BTreeMap<String, Schemas> = obol_api::crdgen::crds()
            .iter()
            .map(|c| (c.metadata.name.clone().unwrap_or_default(), schemas(c)))
            .collect();
        let found: BTreeMap<String, Schemas> = Api::<CustomResourceDefinition>::all(client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|c| wanted.contains_key(c.metadata.name.as_deref().unwrap_or_default()))
            .map(|c| (c.metadata.name.clone().unwrap_or_default(), schemas(c)))
            .collect();
        verdicts.push(judge_crds(&wanted, &found));

        let verifier = http
            .get(format!("{}/readyz", self.verifier_url))
            .send()
            .await
            .map(|a| a.status().as_u16())
            .map_err(|e| format!("unreachable ({})", obol_x402_error(&e)));
        verdicts.push(judge_verifier(&self.verifier_url, &verifier));

        let offer_networks: Vec<String> = match Api::<obol_api::ServiceOffer>::all(client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => {
                let mut n: Vec<String> = list
                    .items
                    .iter()
                    .map(|o| o.spec.payment.network.clone())
                    .collect();
                n.sort();
                n.dedup();
                n
            }
            Err(_) => vec![],
        };
        let (supported, skew) = facilitator_facts(&http, &self.facilitator_url).await;
        verdicts.push(judge_facilitator(
            &self.facilitator_url,
            &supported,
            &offer_networks,
        ));
        verdicts.push(judge_clock(&skew));

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
    }
}
