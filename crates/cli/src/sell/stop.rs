//! `obol sell stop NAME [--grace 1h | --now | --cancel] [--wait [--timeout 10m]]`: drain an
//! offer ([`obol_api::drain`]).
//!
//! Sets `spec.drainAt` (now) and `spec.drainGracePeriod` by server-side apply under a field
//! manager of its own ([`STOP_FIELD_MANAGER`]): `obol sell http` re-applying the offer neither
//! removes the drain nor is undone by it, and `--cancel` removes exactly what `stop` wrote.
//!
//! `--wait` follows the offer until the controller reports it `Drained` (exit 0); out of time
//! it exits [`TIMEOUT`], and when the drain is removed meanwhile ([`ERROR`]) or the offer is
//! deleted ([`NOT_FOUND`]) it says so. `--cancel --wait` follows it until Ready again, as
//! `obol sell http --wait` does.

use std::time::Duration;

use jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use obol_api::ServiceOffer;
use obol_api::condition::{self, Phase, types};
use obol_api::drain::{self, Drain};
use obol_api::service_offer::OfferField;
use serde_json::{Value, json};

use super::offer::chain;
use super::parse_duration;
use crate::failure::{ERROR, Failure, NOT_FOUND, REFUSED, TIMEOUT};
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
    /// Wait until the offer reports Drained (its route withdrawn), or with --cancel until it is
    /// Ready again. Exit 4 when --timeout runs out first.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits (default: until the grace period ends, plus 1m; with --cancel 2m).
    #[arg(long, requires = "wait", value_parser = parse_duration)]
    timeout: Option<Duration>,
}

/// What `--wait` waits for beyond the drain's end by default: the controller's reconcile at the
/// end and the status write.
pub const WAIT_SLACK: Duration = Duration::from_secs(60);

/// How long `--cancel --wait` waits for Ready by default.
pub const CANCEL_WAIT: Duration = Duration::from_secs(120);

/// How long `--wait` waits: `--timeout`, else until `drain` ends plus [`WAIT_SLACK`]. Pure.
pub fn wait_timeout(flag: Option<Duration>, drain: &Drain, now: Timestamp) -> Duration {
    flag.unwrap_or_else(|| {
        let left = now.duration_until(drain.ends).as_secs().max(0);
        Duration::from_secs(left.unsigned_abs()) + WAIT_SLACK
    })
}

/// Where a stopped offer is, as `--wait` judges it. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The status of the current generation says `Drained` ([`condition::compute_phase`]).
    Drained,
    /// Not yet; the `Drained` condition's reason and message, when there is one.
    Draining(String),
    /// `spec.drainAt` is gone: someone sold it again.
    Cancelled,
}

/// Where `offer` is after `stop` drained it ([`Progress`]). Pure.
pub fn progress(offer: &ServiceOffer) -> Progress {
    if offer.spec.drain_at.is_none() {
        return Progress::Cancelled;
    }
    let status = offer.status.clone().unwrap_or_default();
    let phase = condition::compute_phase(
        offer.metadata.deletion_timestamp.is_some(),
        offer.metadata.generation,
        status.observed_generation,
        &status.conditions,
    );
    match phase {
        Phase::Drained => return Progress::Drained,
        Phase::Pending => {
            return Progress::Draining("the controller has not reconciled the drain yet".into());
        }
        _ => {}
    }
    let why = condition::find(&status.conditions, types::DRAINED).map_or_else(
        || format!("phase {phase:?}, no Drained condition yet"),
        |c| {
            format!(
                "Drained={} ({}): {}",
                c.status.as_str(),
                c.reason,
                c.message
            )
        },
    );
    Progress::Draining(why)
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
        match (self.wait, plan.drain) {
            (false, _) => Ok(()),
            (true, Some(drain)) => {
                let timeout = wait_timeout(self.timeout, &drain, now);
                wait_drained(&offers, &format!("{ns}/{}", self.name), timeout).await
            }
            (true, None) => {
                let timeout = self.timeout.unwrap_or(CANCEL_WAIT);
                super::http::wait_ready(&offers, &self.name, timeout).await
            }
        }
    }
}

/// Polls the offer until [`progress`] says it is drained, printing each change; fails with
/// [`TIMEOUT`] (where it is), [`ERROR`] (the drain was removed) or [`NOT_FOUND`] (deleted).
async fn wait_drained(
    offers: &Api<ServiceOffer>,
    key: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let name = key.rsplit('/').next().unwrap_or(key);
    println!(
        "Waiting up to {}s for {key} to be Drained…",
        timeout.as_secs()
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let offer = match offers.get_opt(name).await {
            Ok(Some(offer)) => offer,
            Ok(None) => {
                return Err(
                    Failure::new(NOT_FOUND, format!("{key} was deleted while draining")).into(),
                );
            }
            Err(e) => {
                // The API server may be briefly unavailable: keep trying until the deadline.
                last = format!("cannot read the offer: {e}");
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match progress(&offer) {
            Progress::Drained => {
                println!("ServiceOffer {key} is Drained: its route is withdrawn.");
                return Ok(());
            }
            Progress::Cancelled => {
                return Err(Failure::new(
                    ERROR,
                    format!("{key}: the drain was removed while waiting (obol sell stop --cancel?); it is sold again"),
                )
                .into());
            }
            Progress::Draining(why) => {
                if why != last {
                    println!("  {why}");
                    last = why;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Failure::new(
        TIMEOUT,
        format!("{key} not Drained after {}s; {last}", timeout.as_secs()),
    )
    .into())
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
    fn wait_timeouts() {
        let now = ts("2026-01-02T03:00:00Z");
        let drain = |end: &str| Drain {
            starts: now,
            ends: ts(end),
        };
        let cases = [
            (None, "2026-01-02T03:05:00Z", 300 + 60),
            (None, "2026-01-02T03:00:00Z", 60),
            // A drain that ended before now (clock skew): the slack alone.
            (None, "2026-01-02T02:00:00Z", 60),
            (Some(10), "2026-01-02T04:00:00Z", 10),
        ];
        for (flag, end, secs) in cases {
            assert_eq!(
                wait_timeout(flag.map(Duration::from_secs), &drain(end), now),
                Duration::from_secs(secs),
                "{flag:?} {end}"
            );
        }
    }

    #[test]
    fn progress_table() {
        let with = |drain_at: Option<&str>,
                    generation: i64,
                    observed: i64,
                    drained: Option<(&str, &str)>| {
            let mut o = offer();
            o.spec.drain_at = drain_at.map(str::to_owned);
            o.metadata.generation = Some(generation);
            let conditions: Vec<Value> = drained
                .into_iter()
                .map(|(status, reason)| {
                    json!({"type": "Drained", "status": status, "reason": reason,
                           "message": "m", "lastTransitionTime": "2026-01-02T03:00:00Z"})
                })
                .collect();
            o.status = Some(
                serde_json::from_value(
                    json!({"observedGeneration": observed, "conditions": conditions}),
                )
                .unwrap(),
            );
            o
        };
        let at = Some("2026-01-02T03:00:00Z");
        let cases = [
            (with(at, 2, 2, Some(("True", "Drained"))), Ok(())),
            (
                with(at, 2, 2, Some(("False", "Draining"))),
                Err("Drained=False (Draining): m"),
            ),
            // The status is of an older generation: not yet, whatever it says.
            (
                with(at, 3, 2, Some(("True", "Drained"))),
                Err("has not reconciled the drain yet"),
            ),
            (
                with(at, 2, 2, None),
                Err("phase Reconciling, no Drained condition yet"),
            ),
        ];
        for (o, want) in cases {
            match (progress(&o), want) {
                (Progress::Drained, Ok(())) => {}
                (Progress::Draining(why), Err(words)) => assert!(why.contains(words), "{why}"),
                (got, want) => panic!("got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(
            progress(&with(None, 2, 2, Some(("True", "Drained")))),
            Progress::Cancelled
        );
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
