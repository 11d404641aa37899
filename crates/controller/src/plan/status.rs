//! Conditions, phase and the two decisions that depend on observations: whether the HTTPRoute
//! may be published (fail closed) and whether the RegistrationRequest is due.

use obol_api::condition::{
    self as cond, Condition, ConditionStatus, reasons, same_ignoring_time, set_condition, types,
};
use obol_api::{PaymentRoute, RegistrationRequest, ServiceOfferStatus};

pub use super::conditions::{
    ApplyFailure, Observed, RegistrationSeen, gate_conditions, registered_condition,
    route_table_condition,
};
pub use super::drain::{carry_drain, drained_condition, mark_ready, requeue_after};

/// What the upstream health probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The health path answered below 400.
    Healthy {
        /// HTTP status code.
        code: u16,
    },
    /// It answered 400 or more, or not at all (the message says which).
    Unhealthy {
        /// What went wrong.
        message: String,
    },
    /// The upstream Service does not exist.
    MissingService,
    /// The Service has no ready endpoint address.
    NoEndpoints,
}

impl Probe {
    /// Whether the upstream answered healthily.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy { .. })
    }
}

/// Why the HTTPRoute is not (or no longer) published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withheld {
    /// An older offer owns the path.
    PathConflict,
    /// The offer is paused (annotation `obol.org/paused: "true"`).
    Paused,
    /// The offer's drain ended (`spec.drainAt` + `drainGracePeriod`).
    Drained,
    /// The verifier has not admitted the PaymentRoute (at any generation) or refused it.
    PaymentGate,
    /// The upstream has never answered healthily.
    Upstream,
}

/// What to do with the HTTPRoute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteAction {
    /// Apply the desired route.
    Apply,
    /// Leave whatever exists untouched: the PaymentRoute was admitted at an earlier generation
    /// and its current one is pending. The verifier keeps gating with the version it loaded,
    /// so the route stays closed, and a spec change does not cause an outage.
    Hold,
    /// Delete the route (no request may reach the upstream).
    Withdraw(Withheld),
}

/// The fail-closed rule: the HTTPRoute is applied only when the path is ours, the offer's drain
/// has not ended, the offer is not paused, the PaymentRoute is admitted at its current
/// generation and the upstream has answered healthily at least once.
pub fn route_action(
    payment_route: Option<&PaymentRoute>,
    healthy_once: bool,
    conflict: bool,
    paused: bool,
    drained: bool,
) -> RouteAction {
    if conflict {
        return RouteAction::Withdraw(Withheld::PathConflict);
    }
    if drained {
        return RouteAction::Withdraw(Withheld::Drained);
    }
    if paused {
        return RouteAction::Withdraw(Withheld::Paused);
    }
    let Some(pr) = payment_route else {
        return RouteAction::Withdraw(Withheld::PaymentGate);
    };
    if pr.admitted_at_current_generation() {
        if healthy_once {
            RouteAction::Apply
        } else {
            RouteAction::Withdraw(Withheld::Upstream)
        }
    } else if admitted_earlier(pr) && !refused(pr) {
        RouteAction::Hold
    } else {
        RouteAction::Withdraw(Withheld::PaymentGate)
    }
}

fn admitted_earlier(pr: &PaymentRoute) -> bool {
    let generation = pr.metadata.generation;
    pr.status.as_ref().is_some_and(|s| {
        s.admitted
            && s.last_admitted_generation.is_some()
            && s.last_admitted_generation < generation
    })
}

/// The verifier's `Admitted=False` condition, when it refused the route.
fn refused(pr: &PaymentRoute) -> bool {
    refusal(pr).is_some()
}

pub(super) fn refusal(pr: &PaymentRoute) -> Option<&Condition> {
    let status = pr.status.as_ref()?;
    cond::find(&status.conditions, types::ADMITTED).filter(|c| {
        c.status == ConditionStatus::False
            && (c.observed_generation.is_none() || c.observed_generation == pr.metadata.generation)
    })
}

/// Whether the upstream has answered healthily at least once: in this process (`seen`, kept
/// per offer uid by the shell) or before it, as the last status says. Only then may the route
/// be published.
pub fn healthy_once(seen: bool, old: Option<&ServiceOfferStatus>) -> bool {
    seen || old.is_some_and(|s| cond::is_true(&s.conditions, types::UPSTREAM_HEALTHY))
}

/// Which gate children go after the route step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateWithdrawal {
    /// Delete the PaymentRoute.
    pub payment_route: bool,
    /// Delete the Middleware.
    pub middleware: bool,
}

/// Which gate children are deleted once the route step is done (never before: traffic stops
/// before the gate goes). An offer whose path another offer owns loses both. In mode `proxy`
/// (`middleware_wanted` false) a Middleware left from the ForwardAuth mode goes once no live
/// HTTPRoute can still name it: the new route was applied, or the route is withdrawn. While the
/// route is held, or its apply failed, the old route may still name it, so it stays.
pub fn gate_withdrawal(
    middleware_wanted: bool,
    route_action: RouteAction,
    route_applied: bool,
) -> GateWithdrawal {
    if route_action == RouteAction::Withdraw(Withheld::PathConflict) {
        return GateWithdrawal {
            payment_route: true,
            middleware: true,
        };
    }
    let no_route_names_it = match route_action {
        RouteAction::Apply => route_applied,
        RouteAction::Withdraw(_) => true,
        RouteAction::Hold => false,
    };
    GateWithdrawal {
        payment_route: false,
        middleware: !middleware_wanted && no_route_names_it,
    }
}

/// The readiness mark to write on the PaymentRoute after the status was decided, when it
/// differs from the one applied (`was_ready`, the last status's) and the PaymentRoute exists.
pub fn ready_mark_change(
    was_ready: bool,
    ready: bool,
    payment_route_present: bool,
) -> Option<bool> {
    (ready != was_ready && payment_route_present).then_some(ready)
}

/// A condition's `lastTransitionTime`: RFC 3339 with second precision.
pub fn condition_time(now: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Whether the RegistrationRequest is due: registration enabled and the first three
/// conditions True.
pub fn registration_due(enabled: bool, gate: &[Condition]) -> bool {
    enabled
        && [
            types::UPSTREAM_HEALTHY,
            types::PAYMENT_GATE_READY,
            types::ROUTE_PUBLISHED,
        ]
        .iter()
        .all(|t| cond::is_true(gate, t))
}

/// The next status: `conditions` (without timestamps) merged into the old ones so that
/// `lastTransitionTime` moves only on flips, plus `Ready`, phase and the copied fields.
pub fn next_status(
    old: Option<&ServiceOfferStatus>,
    generation: Option<i64>,
    conditions: Vec<Condition>,
    path: &str,
    registration: Option<&RegistrationRequest>,
    now: &str,
) -> ServiceOfferStatus {
    let mut merged = old.map(|s| s.conditions.clone()).unwrap_or_default();
    let ready = cond::ready_condition(generation, generation, &conditions);
    let mut all = conditions;
    all.push(ready);
    merged.retain(|m| all.iter().any(|n| n.type_ == m.type_));
    for mut condition in all {
        condition.observed_generation = generation;
        set_condition(&mut merged, condition, now);
    }
    let rr_status = registration.and_then(|r| r.status.as_ref());
    let phase = cond::compute_phase(false, generation, generation, &merged);
    ServiceOfferStatus {
        phase: Some(phase),
        observed_generation: generation,
        conditions: merged,
        endpoint: Some(path.to_owned()),
        agent_id: rr_status.and_then(|s| s.agent_id.clone()),
        registration_tx_hash: rr_status.and_then(|s| s.tx_hash.clone()),
    }
}

/// The status of an invalid offer: `Ready=False/InvalidSpec` (phase `Failed`), every other
/// condition `Unknown` with the same reason.
pub fn invalid_status(
    old: Option<&ServiceOfferStatus>,
    generation: Option<i64>,
    message: &str,
    now: &str,
) -> ServiceOfferStatus {
    let mut merged = old.map(|s| s.conditions.clone()).unwrap_or_default();
    let others = [
        types::UPSTREAM_HEALTHY,
        types::PAYMENT_GATE_READY,
        types::ROUTE_PUBLISHED,
        types::REGISTERED,
    ];
    let mut all: Vec<Condition> = others
        .iter()
        .map(|t| {
            Condition::new(
                t,
                ConditionStatus::Unknown,
                reasons::INVALID_SPEC,
                "Spec is invalid",
            )
        })
        .collect();
    all.push(Condition::new(
        types::READY,
        ConditionStatus::False,
        reasons::INVALID_SPEC,
        message,
    ));
    merged.retain(|m| all.iter().any(|n| n.type_ == m.type_));
    for mut condition in all {
        condition.observed_generation = generation;
        set_condition(&mut merged, condition, now);
    }
    ServiceOfferStatus {
        phase: Some(cond::compute_phase(false, generation, generation, &merged)),
        observed_generation: generation,
        conditions: merged,
        endpoint: None,
        agent_id: old.and_then(|s| s.agent_id.clone()),
        registration_tx_hash: old.and_then(|s| s.registration_tx_hash.clone()),
    }
}

/// Whether `new` says something `old` does not, ignoring timestamps (no write otherwise).
pub fn status_changed(old: Option<&ServiceOfferStatus>, new: &ServiceOfferStatus) -> bool {
    let Some(old) = old else { return true };
    old.phase != new.phase
        || old.observed_generation != new.observed_generation
        || old.endpoint != new.endpoint
        || old.agent_id != new.agent_id
        || old.registration_tx_hash != new.registration_tx_hash
        || !same_ignoring_time(&old.conditions, &new.conditions)
}

/// Conditions whose status differs between `old` and `new` (for Events): `(new, was)`.
pub fn transitions<'a>(
    old: Option<&'a ServiceOfferStatus>,
    new: &'a ServiceOfferStatus,
) -> Vec<(&'a Condition, Option<ConditionStatus>)> {
    new.conditions
        .iter()
        .filter_map(|n| {
            let was = old
                .and_then(|o| cond::find(&o.conditions, &n.type_))
                .map(|c| c.status);
            (was != Some(n.status)).then_some((n, was))
        })
        .collect()
}

/// Reasons that mean something is wrong: a condition turning False with one of them makes the
/// transition Event a Warning.
const FAILURE_REASONS: [&str; 8] = [
    reasons::UNHEALTHY,
    reasons::MISSING_SERVICE,
    reasons::NO_ENDPOINTS,
    reasons::NOT_ADMITTED,
    reasons::APPLY_FAILED,
    reasons::PATH_CONFLICT,
    reasons::REGISTRATION_FAILED,
    reasons::INVALID_SPEC,
];

/// The one Event a status write publishes: every condition that flipped, in one note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// A Warning (some condition turned False for a failure reason) or Normal.
    pub warning: bool,
    /// The leading reason: the failure's, else `Ready`'s, else the first flip's.
    pub reason: String,
    /// `Type=Status (Reason): message; …`.
    pub note: String,
}

/// The Event for the flips between `old` and `new`, if any (Unknown conditions make none).
pub fn transition_notice(
    old: Option<&ServiceOfferStatus>,
    new: &ServiceOfferStatus,
) -> Option<Notice> {
    let flipped: Vec<&Condition> = transitions(old, new)
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| c.status != ConditionStatus::Unknown)
        .collect();
    let first = *flipped.first()?;
    let failure = flipped.iter().find(|c| {
        c.status == ConditionStatus::False && FAILURE_REASONS.contains(&c.reason.as_str())
    });
    let lead = failure
        .or_else(|| flipped.iter().find(|c| c.type_ == types::READY))
        .copied()
        .unwrap_or(first);
    let note = flipped
        .iter()
        .map(|c| {
            format!(
                "{}={} ({}): {}",
                c.type_,
                c.status.as_str(),
                c.reason,
                c.message
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some(Notice {
        warning: failure.is_some(),
        reason: lead.reason.clone(),
        note,
    })
}
