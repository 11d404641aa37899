//! `obol sell stop NAME [--grace 1h | --now | --cancel]`: drain an offer ([`obol_api::drain`]).
//!
//! Sets `spec.drainAt` (now) and `spec.drainGracePeriod` by server-side apply under a field
//! manager of its own ([`STOP_FIELD_MANAGER`]): `obol sell http` re-applying the offer neither
//! removes the drain nor is undone by it, and `--cancel` removes exactly what `stop` wrote.

use jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use obol_api::ServiceOffer;
use obol_api::drain::{self, Drain};
use obol_api::service_offer::OfferField;
use serde_json::{Value, json};

use super::offer::chain;
use crate::failure::{Failure, NOT_FOUND, REFUSED};
use crate::kube_args::KubeArgs;

/// Field manager of `obol sell stop`'s applies (apart from `obol sell http`'s, see the module).
pub const STOP_FIELD_MANAGER: &str = "obol-cli-stop";

/// Grace period when neither `--grace` nor `--now` is given.
pub const DEFAULT_GRACE: &str = "5m";

/// `obol sell stop NAME`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Offer name.
    name: String,
    /// How long the route keeps gating before it is withdrawn (`90s`, `15m`, `1h`; at most
    /// 720h). Discovery lists the offer as unavailable from now on.
    #[arg(long, default_value = DEFAULT_GRACE, conflicts_with = "now")]
    grace: String,
    /// Withdraw the route now (no grace period).
    #[arg(long)]
    now: bool,
    /// Sell again: remove the drain `obol sell stop` set.
    #[arg(long, conflicts_with_all = ["grace", "now"])]
    cancel: bool,
}

/// What `stop` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Drain, the route gating for this long (`--grace`).
    Grace(String),
    /// Drain with no grace (`--now`).
    Now,
    /// Remove the drain (`--cancel`).
    Cancel,
}

/// The apply to make and the drain it sets (`None`: cancelled).
#[derive(Debug, Clone, PartialEq)]
pub struct StopPlan {
    /// The server-side apply body (only the fields `stop` owns).
    pub body: Value,
    /// When the drain starts and ends.
    pub drain: Option<Drain>,
}

/// Plans `stop` of `offer` at `now`: the drain fields, checked by
/// [`obol_api::ServiceOfferSpec::validate`] on the offer as it will be. An offer already
/// invalid for another reason can still be drained (its drain fields are checked alone).
pub fn plan_stop(offer: &ServiceOffer, how: &Stop, now: Timestamp) -> Result<StopPlan, String> {
    let name = offer.metadata.name.clone().unwrap_or_default();
    let mut spec = offer.spec.clone();
    let (drain_at, grace) = match how {
        Stop::Cancel => (None, None),
        Stop::Now => (Some(whole_seconds(now)), Some("0s".to_owned())),
        Stop::Grace(g) => (Some(whole_seconds(now)), Some(g.clone())),
    };
    spec.drain_at = drain_at.clone();
    spec.drain_grace_period = grace.clone();
    let drain = match spec.validate(&name, chain) {
        Ok(valid) => valid.drain,
        Err(e) if matches!(e.field, OfferField::DrainAt | OfferField::DrainGracePeriod) => {
            let subject = match e.field {
                OfferField::DrainGracePeriod => "--grace",
                other => other.spec_path(),
            };
            return Err(e.message_for(subject));
        }
        Err(_) => drain::schedule(drain_at.as_deref(), grace.as_deref())
            .map_err(|e| format!("invalid drain: {e:?}"))?,
    };
    let mut fields = serde_json::Map::new();
    if let (Some(at), Some(g)) = (drain_at, grace) {
        fields.insert("drainAt".into(), json!(at));
        fields.insert("drainGracePeriod".into(), json!(g));
    }
    let body = json!({
        "apiVersion": obol_api::API_VERSION,
        "kind": "ServiceOffer",
        "metadata": {"name": name},
        "spec": fields,
    });
    Ok(StopPlan { body, drain })
}

fn whole_seconds(t: Timestamp) -> String {
    drain::format(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// What `stop` tells the seller once applied.
pub fn announce(offer: &str, drain: Option<&Drain>, now: Timestamp) -> String {
    let Some(d) = drain else {
        return format!("ServiceOffer {offer}: drain removed; the offer is sold again once Ready.");
    };
    let end = drain::format(d.ends);
    if d.ends <= now {
        return format!(
            "ServiceOffer {offer} stops now: its route is withdrawn at {end} and the offer turns Drained. `obol sell stop --cancel` sells it again."
        );
    }
    let left = jiff::SignedDuration::from_secs(now.duration_until(d.ends).as_secs());
    format!(
        "ServiceOffer {offer} is draining: discovery lists it as unavailable; its route keeps gating until {end} (in {left:#}) and is withdrawn then. `obol sell stop --cancel` sells it again."
    )
}

impl StopArgs {
    fn how(&self) -> Stop {
        if self.cancel {
            Stop::Cancel
        } else if self.now {
            Stop::Now
        } else {
            Stop::Grace(self.grace.clone())
        }
    }

    pub(super) async fn run(self, kube: &KubeArgs) -> anyhow::Result<()> {
        let (client, ns) = kube.connect().await?;
        let offers: Api<ServiceOffer> = Api::namespaced(client, &ns);
        let Some(offer) = offers.get_opt(&self.name).await? else {
            return Err(Failure::new(
                NOT_FOUND,
                format!("ServiceOffer {ns}/{} not found", self.name),
            )
            .into());
        };
        let how = self.how();
        let now = Timestamp::now();
        let plan = plan_stop(&offer, &how, now).map_err(|m| Failure::new(REFUSED, m))?;
        let params = PatchParams::apply(STOP_FIELD_MANAGER).force();
        let applied = offers
            .patch(&self.name, &params, &Patch::Apply(&plan.body))
            .await?;
        if how == Stop::Cancel && applied.spec.drain_at.is_some() {
            return Err(Failure::new(
                REFUSED,
                format!(
                    "ServiceOffer {ns}/{}: spec.drainAt was not set by `obol sell stop`; remove it where it was written (kubectl edit so {})",
                    self.name, self.name
                ),
            )
            .into());
        }
        println!(
            "{}",
            announce(&format!("{ns}/{}", self.name), plan.drain.as_ref(), now)
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> ServiceOffer {
        serde_json::from_value(json!({
            "apiVersion": "obol.org/v1alpha1",
            "kind": "ServiceOffer",
            "metadata": {"name": "demo", "namespace": "ns"},
            "spec": {
                "upstream": {"service": "up"},
                "payment": {
                    "network": "base-sepolia",
                    "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    "price": {"perRequest": "0.001"}
                }
            }
        }))
        .unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn stop_plans() {
        let now = ts("2026-01-02T03:04:05.678Z");
        let grace = |g: &str| Stop::Grace(g.into());
        // (how, spec fields written, drain end) or the refusal
        type Want = Result<(Value, Option<&'static str>), &'static str>;
        let cases: Vec<(Stop, Want)> = vec![
            (
                grace("1h"),
                Ok((
                    json!({"drainAt": "2026-01-02T03:04:05Z", "drainGracePeriod": "1h"}),
                    Some("2026-01-02T04:04:05Z"),
                )),
            ),
            (
                Stop::Now,
                Ok((
                    json!({"drainAt": "2026-01-02T03:04:05Z", "drainGracePeriod": "0s"}),
                    Some("2026-01-02T03:04:05Z"),
                )),
            ),
            (Stop::Cancel, Ok((json!({}), None))),
            (
                grace("2d"),
                Err(
                    "invalid --grace \"2d\": use a whole number of seconds, minutes or hours (90s, 15m, 1h), at most 720h",
                ),
            ),
            (grace("1h30m"), Err("invalid --grace \"1h30m\"")),
        ];
        for (how, want) in cases {
            let got = plan_stop(&offer(), &how, now);
            match want {
                Ok((fields, end)) => {
                    let plan = got.unwrap();
                    assert_eq!(plan.body["spec"], fields, "{how:?}");
                    assert_eq!(plan.body["metadata"], json!({"name": "demo"}));
                    assert_eq!(plan.body["kind"], "ServiceOffer");
                    assert_eq!(plan.drain.map(|d| d.ends), end.map(ts), "{how:?}");
                }
                Err(message) => {
                    let e = got.unwrap_err();
                    assert!(e.starts_with(message), "{how:?}: {e}");
                }
            }
        }
        // An offer invalid for another reason can still be stopped.
        let mut broken = offer();
        broken.spec.payment.network = "nowhere".into();
        let plan = plan_stop(&broken, &grace("10m"), now).unwrap();
        assert_eq!(plan.drain.unwrap().ends, ts("2026-01-02T03:14:05Z"));
        assert!(plan_stop(&broken, &grace("10"), now).is_err());
    }

    #[test]
    fn what_stop_says() {
        let now = ts("2026-01-02T03:00:00Z");
        let d = |end: &str| Drain {
            starts: now,
            ends: ts(end),
        };
        let draining = announce("ns/demo", Some(&d("2026-01-02T04:30:00Z")), now);
        assert!(
            draining.contains("keeps gating until 2026-01-02T04:30:00Z (in 1h 30m)"),
            "{draining}"
        );
        let at_once = announce("ns/demo", Some(&d("2026-01-02T03:00:00Z")), now);
        assert!(at_once.contains("stops now"), "{at_once}");
        assert!(announce("ns/demo", None, now).contains("sold again"));
    }
}
