//! `obol buy list`, `obol buy status`.

use kube::Api;
use kube::api::ListParams;
use obol_api::purchase_request::{PurchaseRequest, PurchaseRequestStatus, types};

use crate::failure::{Failure, NOT_FOUND};
use crate::kube_args::KubeArgs;
use crate::sell::Output;

/// `obol buy list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// All namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
}

/// `obol buy status [NAME]`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Purchase name (all purchases of the namespace when omitted).
    name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
}

fn n(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn ready(p: &PurchaseRequest) -> String {
    p.status
        .as_ref()
        .and_then(|s| obol_api::condition::find(&s.conditions, types::READY))
        .map_or_else(|| "-".to_owned(), |c| c.status.as_str().to_owned())
}

/// One line per purchase.
pub fn list(purchases: &[PurchaseRequest]) -> String {
    let mut rows = vec![[
        "NAMESPACE".to_owned(),
        "NAME".into(),
        "SELLER".into(),
        "PRICE".into(),
        "BOUGHT".into(),
        "REMAINING".into(),
        "HELD".into(),
        "SPENT".into(),
        "READY".into(),
    ]];
    for p in purchases {
        let s = p.status.clone().unwrap_or_default();
        rows.push([
            p.metadata.namespace.clone().unwrap_or_default(),
            p.metadata.name.clone().unwrap_or_default(),
            p.spec.seller_url.clone(),
            p.spec.price.clone(),
            p.spec.count.to_string(),
            n(s.remaining),
            n(s.held),
            n(s.spent),
            ready(p),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

/// The detail of one purchase.
pub fn status(p: &PurchaseRequest) -> String {
    let s = p.status.clone().unwrap_or_default();
    let spec = &p.spec;
    let name = p.metadata.name.clone().unwrap_or_default();
    let mut out = format!(
        "PurchaseRequest {}/{name}\n  seller     {}\n  upstream   /upstream/{}/\n  terms      {} atomic units per request on {}, asset {}, payTo {}\n  payer      {}\n  bought     {} in {} ConfigMaps\n",
        p.metadata.namespace.clone().unwrap_or_default(),
        spec.seller_url,
        spec.upstream_name(&name),
        spec.price,
        spec.network,
        spec.asset,
        spec.pay_to,
        spec.payer,
        spec.count,
        spec.pool.len(),
    );
    out.push_str(&format!(
        "  remaining  {}\n  held       {}\n  spent      {} (healed {})\n  expired    {}\n  skipped    {}\n",
        n(s.remaining),
        n(s.held),
        n(s.spent),
        n(s.healed),
        n(s.expired),
        n(s.skipped),
    ));
    out.push_str(&charged_lines(&spec.price, &s));
    if let Some(seen) = &s.last_seller {
        out.push_str(&format!(
            "  seller said {} {} at {}{}\n",
            seen.http_status
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            seen.outcome,
            seen.time,
            if seen.message.is_empty() {
                String::new()
            } else {
                format!(": {}", seen.message)
            }
        ));
    }
    for b in &s.buyers {
        out.push_str(&format!(
            "  replica {} slots [{}]: remaining {}, held {}, spent {} (healed {}), expired {}, at {}\n",
            b.name, b.slots, b.remaining, b.held, b.spent, b.healed, b.expired, b.updated
        ));
    }
    for c in &s.conditions {
        out.push_str(&format!(
            "  {:<16} {:<7} {} {}\n",
            c.type_,
            c.status.as_str(),
            c.reason,
            c.message
        ));
    }
    if s.observed_generation != p.metadata.generation {
        out.push_str("  (the buyer has not reported on the current generation yet)\n");
    }
    out
}

/// What the receipts charged against what was authorized for them (a metered `upto`
/// purchase: the seller settles what each answer used, at most the price signed for), and how
/// many spends did not say (a streamed answer settles after its head). Nothing when no
/// receipt stated an amount.
fn charged_lines(price: &str, s: &PurchaseRequestStatus) -> String {
    let receipts = s.receipts.unwrap_or(0);
    let Some(charged) = s.charged.as_deref().filter(|_| receipts > 0) else {
        return String::new();
    };
    let authorized = price
        .parse::<u128>()
        .ok()
        .and_then(|p| p.checked_mul(u128::from(receipts)));
    let noun = if receipts == 1 { "receipt" } else { "receipts" };
    let mut out = match authorized {
        Some(a) => {
            let unmoved = charged
                .parse::<u128>()
                .ok()
                .and_then(|c| a.checked_sub(c))
                .map_or_else(String::new, |u| format!("; {u} never moved"));
            format!(
                "  charged    {charged} atomic units by {receipts} {noun} (authorized {a}{unmoved})\n"
            )
        }
        None => format!("  charged    {charged} atomic units by {receipts} {noun}\n"),
    };
    let unstated = s.spent.unwrap_or(0).saturating_sub(receipts);
    if unstated > 0 {
        out.push_str(&format!(
            "  ({unstated} spent without a stated charge: exact answers, streams whose trailer never came, or spends another replica recorded)\n"
        ));
    }
    out
}

pub(super) async fn get_purchase(
    api: &Api<PurchaseRequest>,
    ns: &str,
    name: &str,
) -> anyhow::Result<PurchaseRequest> {
    api.get_opt(name).await?.ok_or_else(|| {
        Failure::new(
            NOT_FOUND,
            format!("PurchaseRequest {ns}/{name} not found (obol buy list -A)"),
        )
        .into()
    })
}

impl ListArgs {
    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        let (client, ns) = kube.connect().await?;
        let api: Api<PurchaseRequest> = if self.all_namespaces {
            Api::all(client)
        } else {
            Api::namespaced(client, &ns)
        };
        let mut items = api.list(&ListParams::default()).await?.items;
        items.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        match self.output {
            Output::Text => print!("{}", list(&items)),
            Output::Json => println!("{}", serde_json::to_string_pretty(&items)?),
            Output::Yaml => print!("{}", serde_yaml::to_string(&items)?),
        }
        Ok(())
    }
}

impl StatusArgs {
    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        let (client, ns) = kube.connect().await?;
        let api: Api<PurchaseRequest> = Api::namespaced(client, &ns);
        let items = match &self.name {
            Some(name) => vec![get_purchase(&api, &ns, name).await?],
            None => api.list(&ListParams::default()).await?.items,
        };
        match (self.output, &self.name) {
            (Output::Json, Some(_)) => println!("{}", serde_json::to_string_pretty(&items[0])?),
            (Output::Yaml, Some(_)) => print!("{}", serde_yaml::to_string(&items[0])?),
            (Output::Json, None) => println!("{}", serde_json::to_string_pretty(&items)?),
            (Output::Yaml, None) => print!("{}", serde_yaml::to_string(&items)?),
            (Output::Text, _) if items.is_empty() => {
                println!("No PurchaseRequests in namespace {ns}.")
            }
            (Output::Text, _) => {
                let texts: Vec<String> = items.iter().map(status).collect();
                print!("{}", texts.join("\n"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use obol_api::purchase_request::{BuyerReplicaStatus, PurchaseRequestSpec};

    use super::*;

    #[test]
    fn status_shows_each_replicas_share() {
        let mut p = PurchaseRequest::new(
            "demo",
            PurchaseRequestSpec {
                seller_url: "https://seller.example/services/demo".into(),
                upstream: None,
                remote_model: None,
                network: "base-sepolia".into(),
                asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
                pay_to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
                price: "1000".into(),
                scheme: None,
                payer: "0x857b06519E91e3A54538791bDbb0E22373e36b66".into(),
                eip712_name: None,
                eip712_version: None,
                count: 10,
                pool: vec![],
            },
        );
        let share = |name: &str, slots: &str, remaining| BuyerReplicaStatus {
            name: name.into(),
            slots: slots.into(),
            remaining,
            spent: 1,
            updated: "2026-12-03T17:00:00.123Z".into(),
            ..BuyerReplicaStatus::default()
        };
        p.status = Some(PurchaseRequestStatus {
            remaining: Some(7),
            buyers: vec![
                share("x402-buyer-0", "0,2,4,6,8,10", 4),
                share("x402-buyer-1", "1,3,5,7,9,11", 3),
            ],
            ..PurchaseRequestStatus::default()
        });
        let text = status(&p);
        assert!(
            text.contains(
                "replica x402-buyer-0 slots [0,2,4,6,8,10]: remaining 4, held 0, spent 1 (healed 0)"
            ),
            "{text}"
        );
        assert!(text.contains("replica x402-buyer-1 slots [1,3,5,7,9,11]: remaining 3"));
        assert!(text.contains("remaining  7"));
        assert!(!text.contains("charged"), "{text}");
    }

    #[test]
    fn a_metered_purchase_shows_charged_against_authorized() {
        let status = |spent, receipts, charged: Option<&str>| PurchaseRequestStatus {
            spent: Some(spent),
            receipts,
            charged: charged.map(str::to_owned),
            ..PurchaseRequestStatus::default()
        };
        let cases: &[(&str, &str, PurchaseRequestStatus, &str)] = &[
            (
                "every spend stated",
                "2400",
                status(3, Some(3), Some("183")),
                "  charged    183 atomic units by 3 receipts (authorized 7200; 7017 never moved)\n",
            ),
            (
                "a stream among them",
                "2400",
                status(4, Some(3), Some("183")),
                "  charged    183 atomic units by 3 receipts (authorized 7200; 7017 never moved)\n  (1 spent without a stated charge: exact answers, streams whose trailer never came, or spends another replica recorded)\n",
            ),
            (
                "unreadable price",
                "x",
                status(1, Some(1), Some("5")),
                "  charged    5 atomic units by 1 receipt\n",
            ),
            ("no receipt", "2400", status(3, None, None), ""),
            ("zero receipts", "2400", status(3, Some(0), Some("0")), ""),
        ];
        for (name, price, s, want) in cases {
            assert_eq!(charged_lines(price, s), *want, "{name}");
        }
    }
}
